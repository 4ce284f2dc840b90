//! Prometheus metrics: request counts, errors and latency per API, traffic per topic,
//! log offsets and sizes per partition, connections, and the process itself.
//!
//! Names read like Kafka's JMX-exporter and Redpanda's: `samsa_kafka_requests_total`
//! beside `kafka_network_requestmetrics_requests_total`, labels in snake case, units in
//! the name (`_seconds`, `_bytes`).

pub mod client_series;
pub mod http;
mod quotas;
pub mod share;
pub mod share_coordinator;

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::fetch_sessions::FetchSessionStats;
use crate::group::GroupStats;
use crate::quotas::EntityStats;
use crate::topics::TopicRegistry;
use quotas::QuotaMetrics;

/// Latency buckets from 100 µs to 30 s: produce is sub-millisecond, long polls take seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_errors: IntCounterVec,
    request_latency: HistogramVec,
    topic_bytes_in: IntCounterVec,
    topic_records_in: IntCounterVec,
    topic_records_schema_rejected: IntCounterVec,
    topic_bytes_out: IntCounterVec,
    topic_records_out: IntCounterVec,
    partition_log_start: IntGaugeVec,
    partition_log_end: IntGaugeVec,
    partition_high_watermark: IntGaugeVec,
    partition_size: IntGaugeVec,
    partition_segments: IntGaugeVec,
    partition_replicas: IntGaugeVec,
    partition_in_sync_replicas: IntGaugeVec,
    under_replicated: IntGauge,
    group_members: IntGaugeVec,
    group_committed: IntGaugeVec,
    group_lag: IntGaugeVec,
    fetch_sessions: IntGauge,
    fetch_session_partitions: IntGauge,
    fetch_session_evictions: IntCounter,
    incremental_fetches: IntCounter,
    pub connections_open: IntGauge,
    pub connections_accepted: IntCounter,
    pub connections_closed: IntCounter,
    /// Connections closed unserved for their IP's connection_creation_rate.
    pub connections_throttled: IntCounter,
    quotas: QuotaMetrics,
    /// Share groups' share-partitions, sessions and acknowledgements (KIP-932).
    pub share: share::ShareMetrics,
    /// The share coordinator's work, counted by it.
    pub share_coordinator: share_coordinator::ShareCoordinatorMetrics,
    /// What clients pushed (KIP-714), rendered after the broker's own metrics.
    pub client_series: std::sync::Arc<client_series::ClientSeries>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let request_latency = HistogramVec::new(
            HistogramOpts::new(
                "samsa_kafka_request_latency_seconds",
                "Time from a request's decoding to its response's encoding",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api", "version"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_latency.clone()))
            .expect("unique metric");
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let single_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let share_coordinator = share_coordinator::ShareCoordinatorMetrics::new(&registry);
        let metrics = Metrics {
            share_coordinator,
            requests: counter("samsa_kafka_requests_total", "Requests served, by API and version", &["api", "version"]),
            request_errors: counter(
                "samsa_kafka_request_errors_total",
                "Error codes returned, by API and Kafka error name (one per failed topic, partition or resource)",
                &["api", "version", "error"],
            ),
            request_latency,
            topic_bytes_in: counter("samsa_topic_bytes_in_total", "Record batch bytes appended", &["topic"]),
            topic_records_in: counter("samsa_topic_records_in_total", "Records appended", &["topic"]),
            topic_records_schema_rejected: counter(
                "samsa_topic_records_rejected_by_schema_validation_total",
                "Records of refused batches that failed schema id validation",
                &["topic"],
            ),
            topic_bytes_out: counter("samsa_topic_bytes_out_total", "Record batch bytes fetched", &["topic"]),
            topic_records_out: counter("samsa_topic_records_out_total", "Records fetched (counted per batch header)", &["topic"]),
            partition_log_start: gauge("samsa_partition_log_start_offset", "First offset in the log", &["topic", "partition"]),
            partition_log_end: gauge("samsa_partition_log_end_offset", "Next offset to be written", &["topic", "partition"]),
            partition_high_watermark: gauge(
                "samsa_partition_high_watermark",
                "Offset below which records are visible to consumers",
                &["topic", "partition"],
            ),
            partition_size: gauge("samsa_partition_size_bytes", "Bytes of log segments on disk", &["topic", "partition"]),
            partition_segments: gauge("samsa_partition_segments", "Log segments on disk", &["topic", "partition"]),
            partition_replicas: gauge(
                "samsa_partition_replicas",
                "Replicas of a partition this broker leads",
                &["topic", "partition"],
            ),
            partition_in_sync_replicas: gauge(
                "samsa_partition_in_sync_replicas",
                "In-sync replicas of a partition this broker leads",
                &["topic", "partition"],
            ),
            under_replicated: single_gauge(
                "samsa_under_replicated_partitions",
                "Partitions this broker leads with fewer in-sync replicas than replicas",
            ),
            group_members: gauge("samsa_consumer_group_members", "Members of a consumer group", &["group"]),
            group_committed: gauge(
                "samsa_consumer_group_committed_offset",
                "Offset a group committed for a partition",
                &["group", "topic", "partition"],
            ),
            group_lag: gauge(
                "samsa_consumer_group_lag",
                "High watermark minus the group's committed offset",
                &["group", "topic", "partition"],
            ),
            fetch_sessions: single_gauge(
                "samsa_incremental_fetch_sessions",
                "Incremental fetch sessions cached (Kafka's NumIncrementalFetchSessions)",
            ),
            fetch_session_partitions: single_gauge(
                "samsa_incremental_fetch_partitions_cached",
                "Partitions cached over all fetch sessions (NumIncrementalFetchPartitionsCached)",
            ),
            fetch_session_evictions: single_counter(
                "samsa_incremental_fetch_session_evictions_total",
                "Fetch sessions evicted to make room for others (IncrementalFetchSessionEvictionsPerSec)",
            ),
            incremental_fetches: single_counter(
                "samsa_incremental_fetches_total",
                "Fetches served within a fetch session, sending only what changed",
            ),
            connections_open: single_gauge("samsa_connections_open", "Client connections open now"),
            connections_accepted: single_counter("samsa_connections_accepted_total", "Client connections accepted"),
            connections_closed: single_counter("samsa_connections_closed_total", "Client connections closed"),
            connections_throttled: single_counter(
                "samsa_connections_throttled_total",
                "Connections closed unserved, after a delay, for their IP's connection_creation_rate",
            ),
            quotas: QuotaMetrics::register(&registry),
            share: share::ShareMetrics::register(&registry),
            client_series: Default::default(),
            registry,
        };
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(err) = metrics.registry.register(Box::new(process)) {
            tracing::warn!("process metrics unavailable: {err}");
        }
        metrics
    }

    /// Records one served request.
    pub fn observe_request(
        &self,
        api: ApiKey,
        version: i16,
        elapsed: Duration,
        response: &ResponseKind,
    ) {
        let api_name = api_label(api);
        let version = version.to_string();
        let labels = [api_name.as_str(), version.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        for code in error_codes(response) {
            if let Some(error) = ResponseError::try_from_code(code) {
                self.request_errors
                    .with_label_values(&[labels[0], labels[1], &error_label(error)])
                    .inc();
            }
        }
    }

    pub fn record_append(&self, topic: &str, bytes: usize, records: u32) {
        self.topic_bytes_in
            .with_label_values(&[topic])
            .inc_by(bytes as u64);
        self.topic_records_in
            .with_label_values(&[topic])
            .inc_by(u64::from(records));
    }

    /// Records named as failing schema id validation (their batch was refused whole).
    pub fn record_schema_rejected(&self, topic: &str, records: usize) {
        self.topic_records_schema_rejected
            .with_label_values(&[topic])
            .inc_by(records as u64);
    }

    pub fn record_fetch(&self, topic: &str, bytes: usize, records: u64) {
        self.topic_bytes_out
            .with_label_values(&[topic])
            .inc_by(bytes as u64);
        self.topic_records_out
            .with_label_values(&[topic])
            .inc_by(records);
    }

    /// One fetch served as an incremental fetch of a session.
    pub fn record_incremental_fetch(&self) {
        self.incremental_fetches.inc();
    }

    /// The text exposition, with partition gauges read fresh from the logs.
    pub fn render(
        &self,
        topics: &TopicRegistry,
        groups: &[GroupStats],
        fetch_sessions: FetchSessionStats,
        quotas: &[EntityStats],
    ) -> String {
        self.quotas.update(quotas);
        self.fetch_sessions.set(fetch_sessions.sessions as i64);
        self.fetch_session_partitions
            .set(fetch_sessions.partitions as i64);
        // The cache counts evictions itself; the counter catches up with it.
        let counted = self.fetch_session_evictions.get();
        self.fetch_session_evictions
            .inc_by(fetch_sessions.evictions.saturating_sub(counted));
        let gauges = [
            &self.partition_log_start,
            &self.partition_log_end,
            &self.partition_high_watermark,
            &self.partition_size,
            &self.partition_segments,
            &self.partition_replicas,
            &self.partition_in_sync_replicas,
            &self.group_members,
            &self.group_committed,
            &self.group_lag,
        ];
        // Deleted topics must disappear, so the partition gauges are rebuilt on every scrape.
        for gauge in gauges {
            gauge.reset();
        }
        let mut under_replicated = 0;
        for partition in topics.partitions().into_iter().filter(|p| p.is_hosted()) {
            let index = partition.index.to_string();
            let labels = [partition.topic.as_str(), index.as_str()];
            if let Ok(stats) = partition.stats() {
                self.partition_log_start
                    .with_label_values(&labels)
                    .set(stats.offsets.log_start);
                self.partition_log_end
                    .with_label_values(&labels)
                    .set(stats.offsets.log_end);
                self.partition_high_watermark
                    .with_label_values(&labels)
                    .set(stats.offsets.high_watermark);
                self.partition_size
                    .with_label_values(&labels)
                    .set(stats.size_bytes as i64);
                self.partition_segments
                    .with_label_values(&labels)
                    .set(stats.segments as i64);
            }
            if let Some((replicas, in_sync)) = partition.replication() {
                self.partition_replicas
                    .with_label_values(&labels)
                    .set(replicas as i64);
                self.partition_in_sync_replicas
                    .with_label_values(&labels)
                    .set(in_sync as i64);
                under_replicated += i64::from(in_sync < replicas);
            }
        }
        self.under_replicated.set(under_replicated);
        for group in groups {
            self.group_members
                .with_label_values(&[group.id.as_str()])
                .set(group.members as i64);
            for (topic, partition, committed) in &group.committed {
                let index = partition.to_string();
                let labels = [group.id.as_str(), topic.as_str(), index.as_str()];
                self.group_committed
                    .with_label_values(&labels)
                    .set(*committed);
                // Lag is only meaningful for a partition that still exists.
                if let Ok(offsets) = topics
                    .partition(topic, *partition)
                    .and_then(|p| p.offsets())
                {
                    self.group_lag
                        .with_label_values(&labels)
                        .set((offsets.high_watermark - committed).max(0));
                }
            }
        }
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("cannot encode metrics: {err}");
        }
        let mut text = String::from_utf8(out).unwrap_or_default();
        self.client_series.render(&mut text);
        text
    }
}

/// The protocol's API name ("Produce", "FindCoordinator"), which is the key's Debug form.
fn api_label(api: ApiKey) -> String {
    format!("{api:?}")
}

/// Kafka's own spelling of an error: UNKNOWN_TOPIC_OR_PARTITION, not UnknownTopicOrPartition.
fn error_label(error: ResponseError) -> String {
    let camel = format!("{error:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Every error code a response carries, top-level and per topic, partition or resource.
fn error_codes(response: &ResponseKind) -> Vec<i16> {
    let mut codes = Vec::new();
    match response {
        ResponseKind::Produce(r) => {
            for t in &r.responses {
                codes.extend(t.partition_responses.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::Fetch(r) => {
            codes.push(r.error_code);
            for t in &r.responses {
                codes.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &r.topics {
                codes.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::Metadata(r) => {
            codes.push(r.error_code);
            codes.extend(r.topics.iter().map(|t| t.error_code));
        }
        ResponseKind::ApiVersions(r) => codes.push(r.error_code),
        ResponseKind::CreateTopics(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => codes.extend(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::CreatePartitions(r) => codes.extend(r.results.iter().map(|t| t.error_code)),
        ResponseKind::DescribeConfigs(r) => codes.extend(r.results.iter().map(|t| t.error_code)),
        ResponseKind::DescribeCluster(r) => codes.push(r.error_code),
        ResponseKind::FindCoordinator(r) => {
            codes.push(r.error_code);
            codes.extend(r.coordinators.iter().map(|c| c.error_code));
        }
        ResponseKind::JoinGroup(r) => codes.push(r.error_code),
        ResponseKind::SyncGroup(r) => codes.push(r.error_code),
        ResponseKind::Heartbeat(r) => codes.push(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            codes.push(r.error_code);
            codes.extend(r.members.iter().map(|m| m.error_code));
        }
        ResponseKind::OffsetCommit(r) => {
            for t in &r.topics {
                codes.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::OffsetFetch(r) => {
            codes.push(r.error_code);
            for t in &r.topics {
                codes.extend(t.partitions.iter().map(|p| p.error_code));
            }
            for g in &r.groups {
                codes.push(g.error_code);
                for t in &g.topics {
                    codes.extend(t.partitions.iter().map(|p| p.error_code));
                }
            }
        }
        ResponseKind::OffsetDelete(r) => {
            codes.push(r.error_code);
            for t in &r.topics {
                codes.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::DescribeGroups(r) => codes.extend(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::ListGroups(r) => codes.push(r.error_code),
        ResponseKind::DeleteGroups(r) => codes.extend(r.results.iter().map(|g| g.error_code)),
        ResponseKind::SaslHandshake(r) => codes.push(r.error_code),
        ResponseKind::SaslAuthenticate(r) => codes.push(r.error_code),
        ResponseKind::CreateAcls(r) => codes.extend(r.results.iter().map(|a| a.error_code)),
        ResponseKind::DescribeAcls(r) => codes.push(r.error_code),
        ResponseKind::DeleteAcls(r) => codes.extend(r.filter_results.iter().map(|a| a.error_code)),
        ResponseKind::GetTelemetrySubscriptions(r) => codes.push(r.error_code),
        ResponseKind::PushTelemetry(r) => codes.push(r.error_code),
        ResponseKind::DescribeUserScramCredentials(r) => {
            codes.push(r.error_code);
            codes.extend(r.results.iter().map(|u| u.error_code));
        }
        ResponseKind::AlterUserScramCredentials(r) => {
            codes.extend(r.results.iter().map(|u| u.error_code))
        }
        _ => {}
    }
    codes.retain(|&c| c != 0);
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_follow_kafka_spelling() {
        assert_eq!(
            error_label(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_label(ResponseError::CorruptMessage),
            "CORRUPT_MESSAGE"
        );
    }
}
