//! What `/metrics` shows of the share-partitions this broker leads (KIP-932): per share group
//! and partition the start offset, the records acquired (Kafka's in-flight messages), archived
//! and delivered more than once, and the lag Kafka's `kafka-share-groups --describe` reports
//! (high watermark minus start offset minus the records already delivered after it); the
//! share sessions (ShareSessionsCount); the acknowledgements by type
//! (RecordAcknowledgementsPerSec); and the share fetches and acknowledgements that failed
//! (Failed/TotalShareFetchRequestsPerSec, ...ShareAcknowledgementRequestsPerSec).

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use uuid::Uuid;

use crate::topics::TopicRegistry;

/// One share-partition as the share-partition leader reports it for `/metrics`.
#[derive(Debug, Clone)]
pub struct SharePartitionStats {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub start_offset: i64,
    pub acquired: usize,
    pub archived: usize,
    pub redelivered: usize,
    /// Records after the start offset whose delivery is complete (acknowledged, archived).
    pub delivery_complete: i32,
}

const LABELS: &[&str] = &["group", "topic", "partition"];

pub struct ShareMetrics {
    start_offset: IntGaugeVec,
    acquired: IntGaugeVec,
    archived: IntGaugeVec,
    redelivered: IntGaugeVec,
    lag: IntGaugeVec,
    sessions: IntGauge,
    acknowledgements: IntCounterVec,
    requests: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help), LABELS).expect("valid metric");
    registry
        .register(Box::new(gauge.clone()))
        .expect("unique metric");
    gauge
}

impl ShareMetrics {
    pub(super) fn register(registry: &Registry) -> ShareMetrics {
        let sessions = IntGauge::new(
            "samsa_share_sessions",
            "Share sessions cached (ShareSessionsCount)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(sessions.clone()))
            .expect("unique metric");
        let acknowledgements = IntCounterVec::new(
            Opts::new(
                "samsa_share_acknowledged_records_total",
                "Records acknowledged by share consumers, by type (RecordAcknowledgementsPerSec)",
            ),
            &["type"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(acknowledgements.clone()))
            .expect("unique metric");
        let requests = IntCounterVec::new(
            Opts::new(
                "samsa_share_requests_total",
                "Share fetch and acknowledgement requests, and those that failed",
            ),
            &["request", "outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        ShareMetrics {
            start_offset: gauge(registry, "samsa_share_partition_start_offset", "A share group's start offset (SPSO) in a partition"),
            acquired: gauge(registry, "samsa_share_partition_acquired_records", "Records acquired by members, under a lock"),
            archived: gauge(registry, "samsa_share_partition_archived_records", "Records archived past the start offset (rejected, gaps, or at the delivery limit)"),
            redelivered: gauge(registry, "samsa_share_partition_redelivered_records", "Records in flight delivered more than once"),
            lag: gauge(registry, "samsa_share_partition_lag", "Records after the start offset, up to the high watermark, not yet delivered for good"),
            sessions,
            acknowledgements,
            requests,
        }
    }

    /// Rebuilt on every scrape, so that share-partitions no longer led go away.
    pub fn update(&self, topics: &TopicRegistry, stats: &[SharePartitionStats], sessions: usize) {
        for gauge in [
            &self.start_offset,
            &self.acquired,
            &self.archived,
            &self.redelivered,
            &self.lag,
        ] {
            gauge.reset();
        }
        self.sessions.set(sessions as i64);
        for s in stats {
            let Some(topic) = topics.get_by_id(s.topic_id) else {
                continue;
            };
            let index = s.partition.to_string();
            let labels = [s.group.as_str(), topic.name.as_str(), index.as_str()];
            self.start_offset
                .with_label_values(&labels)
                .set(s.start_offset);
            self.acquired
                .with_label_values(&labels)
                .set(s.acquired as i64);
            self.archived
                .with_label_values(&labels)
                .set(s.archived as i64);
            self.redelivered
                .with_label_values(&labels)
                .set(s.redelivered as i64);
            if let Some(offsets) = topic.partition(s.partition).and_then(|p| p.offsets().ok()) {
                let lag = offsets.high_watermark - s.start_offset - s.delivery_complete as i64;
                self.lag.with_label_values(&labels).set(lag.max(0));
            }
        }
    }

    /// Records acknowledged with one type (1 accept, 2 release, 3 reject, 0 gap, 4 renew).
    pub fn record_acknowledged(&self, kind: i8, records: u64) {
        let name = match kind {
            0 => "gap",
            1 => "accept",
            2 => "release",
            3 => "reject",
            _ => "renew",
        };
        self.acknowledgements
            .with_label_values(&[name])
            .inc_by(records);
    }

    /// One ShareFetch or ShareAcknowledge request served, failed when it had a top-level error.
    pub fn record_request(&self, request: &str, failed: bool) {
        let outcome = if failed { "failed" } else { "ok" };
        self.requests.with_label_values(&[request, outcome]).inc();
    }
}
