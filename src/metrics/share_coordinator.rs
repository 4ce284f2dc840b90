//! The share coordinator's metrics, after Kafka's `share-coordinator-metrics` group
//! (`write-total`, `write-latency-avg`/`-max`) and its runtime's partition counts: kept
//! by the coordinator as it works, so nothing is computed at the scrape.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

use super::LATENCY_BUCKETS;

#[derive(Clone)]
pub struct ShareCoordinatorMetrics {
    /// WriteShareGroupState requests, and reads that wrote a new leader epoch (Kafka records
    /// both on its write sensor).
    pub writes: IntCounter,
    pub write_errors: IntCounter,
    /// From the request to its record held by the in-sync replicas.
    pub write_latency: Histogram,
    pub reads: IntCounter,
    /// `__share_group_state` partitions this broker coordinates.
    pub partitions_loaded: IntGauge,
}

impl ShareCoordinatorMetrics {
    pub fn new(registry: &Registry) -> ShareCoordinatorMetrics {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let write_latency = Histogram::with_opts(
            HistogramOpts::new(
                "samsa_share_coordinator_write_latency_seconds",
                "Time a share state write took, up to its record held by the in-sync replicas (Kafka's write-latency)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(write_latency.clone()))
            .expect("unique metric");
        let partitions_loaded = IntGauge::new(
            "samsa_share_coordinator_partitions",
            "__share_group_state partitions this broker coordinates",
        )
        .expect("valid metric");
        registry
            .register(Box::new(partitions_loaded.clone()))
            .expect("unique metric");
        ShareCoordinatorMetrics {
            writes: counter(
                "samsa_share_coordinator_write_total",
                "Share state writes (Kafka's write-total)",
            ),
            write_errors: counter(
                "samsa_share_coordinator_write_errors_total",
                "Share state writes refused or failed",
            ),
            write_latency,
            reads: counter(
                "samsa_share_coordinator_read_total",
                "ReadShareGroupState requests served here",
            ),
            partitions_loaded,
        }
    }
}
