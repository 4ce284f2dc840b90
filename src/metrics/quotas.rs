//! What `/metrics` shows of client quotas: per matched entity (the `user` and `client_id`
//! Kafka tags its quota sensors with) the measured rate and the throttles applied, as
//! Kafka's `kafka.server:type=Produce|Fetch|Request|ControllerMutation` metrics
//! (`byte-rate`, `request-time`, `mutation-rate`, `throttle-time`). An entity's series
//! disappear with its sensor, an hour after its last request.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use crate::quotas::EntityStats;

const LABELS: &[&str] = &["quota", "user", "client_id"];

pub(super) struct QuotaMetrics {
    rate: GaugeVec,
    throttle_ms: IntCounterVec,
    throttles: IntCounterVec,
}

impl QuotaMetrics {
    pub fn register(registry: &Registry) -> QuotaMetrics {
        let rate = GaugeVec::new(
            Opts::new(
                "samsa_client_quota_rate",
                "Measured rate of a quota's sensor over the quota windows: bytes a second \
                 (producer_byte_rate, consumer_byte_rate), percent of a thread \
                 (request_percentage), partitions a second (controller_mutation_rate)",
            ),
            LABELS,
        )
        .expect("valid metric");
        let throttle_ms = IntCounterVec::new(
            Opts::new(
                "samsa_client_quota_throttle_time_ms_total",
                "Milliseconds of throttle applied to an entity's responses, by the quota that set it",
            ),
            LABELS,
        )
        .expect("valid metric");
        let throttles = IntCounterVec::new(
            Opts::new(
                "samsa_client_quota_throttles_total",
                "Responses throttled, by the quota that set the throttle",
            ),
            LABELS,
        )
        .expect("valid metric");
        for metric in [
            Box::new(rate.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(throttle_ms.clone()),
            Box::new(throttles.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        QuotaMetrics {
            rate,
            throttle_ms,
            throttles,
        }
    }

    /// Rebuilt on every scrape, so that expired entities go away.
    pub fn update(&self, stats: &[EntityStats]) {
        self.rate.reset();
        self.throttle_ms.reset();
        self.throttles.reset();
        for stat in stats {
            let labels = [
                stat.key.config_name(),
                stat.entity.user.as_str(),
                stat.entity.client_id.as_str(),
            ];
            self.rate.with_label_values(&labels).set(stat.rate);
            self.throttle_ms
                .with_label_values(&labels)
                .inc_by(stat.throttle_ms_total);
            self.throttles
                .with_label_values(&labels)
                .inc_by(stat.throttled);
        }
    }
}
