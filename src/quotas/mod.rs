//! Client quota enforcement, as Kafka 4.4's `ClientQuotaManager` (produce and fetch byte
//! rates), `ClientRequestQuotaManager` (request time), `ControllerMutationQuotaManager`
//! (topic and partition mutations) and `ConnectionQuotas` (connection creation per IP).
//!
//! This module measures and decides; it stores no quota. The limits come from the
//! replicated metadata through [`QuotaLimits`], the handlers record what each request used
//! and the network layer mutes a throttled connection for the time decided here.
//!
//! Each quota is counted on a sensor per matched entity (the user and client id the
//! matching quota names, as Kafka's metric tags), so every connection of one user under a
//! user quota shares one rate. Sensors idle for an hour are dropped, as Kafka's expire.

mod connections;
mod limits;
mod mutation;
mod sensors;
mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use connections::ConnectionRates;
pub use limits::{limits_of, Entity, Limit, NoQuotas, QuotaKey, QuotaLimits};
pub use mutation::{MutationQuota, QuotaExceeded};
pub use sensors::EntityStats;
use sensors::Sensors;
pub use stats::Windows;

use samsa_metadata::quotas::mutation::MutationCharger;

use crate::clock::now_ms;
use crate::cluster::Cluster;

/// A throttle decided for one request: how long, on which quota, for which entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub ms: i64,
    pub key: QuotaKey,
    pub entity: Entity,
}

impl Throttle {
    /// The longer of two throttles, as Kafka applies the larger of the byte-rate and the
    /// request-time throttle.
    pub fn longest(a: Option<Throttle>, b: Option<Throttle>) -> Option<Throttle> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.ms > a.ms { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.ms.max(0) as u64)
    }
}

/// Who a request is charged to: the user name of its principal and its client id.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub user: &'a str,
    pub client_id: &'a str,
}

/// The quota sensors of the broker, one set per quota type.
pub struct ClientQuotas {
    windows: Windows,
    limits: Arc<dyn QuotaLimits>,
    produce: Sensors,
    fetch: Sensors,
    request: Sensors,
    /// Shared with the controller's charger ([`mutation::Buckets`]).
    mutation: Arc<Sensors>,
    pub connections: ConnectionRates,
}

impl ClientQuotas {
    pub fn new(windows: Windows, limits: Arc<dyn QuotaLimits>) -> ClientQuotas {
        ClientQuotas {
            windows,
            produce: Sensors::new(QuotaKey::ProducerByteRate),
            fetch: Sensors::new(QuotaKey::ConsumerByteRate),
            request: Sensors::new(QuotaKey::RequestPercentage),
            mutation: Arc::new(Sensors::new(QuotaKey::ControllerMutationRate)),
            connections: ConnectionRates::new(windows, limits.clone()),
            limits,
        }
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    fn sensors(&self, key: QuotaKey) -> &Sensors {
        match key {
            QuotaKey::ProducerByteRate => &self.produce,
            QuotaKey::ConsumerByteRate => &self.fetch,
            QuotaKey::RequestPercentage => &self.request,
            QuotaKey::ControllerMutationRate => &self.mutation,
        }
    }

    /// Records `value` on the client's sensor for `key` and returns the throttle, if its
    /// rate is now over the quota (Kafka records first, then checks, so the request that
    /// crosses the quota is the one throttled). Nothing is recorded without a quota.
    fn record(
        &self,
        key: QuotaKey,
        client: Client<'_>,
        value: f64,
        max_ms: Option<i64>,
    ) -> Option<Throttle> {
        let limit = self.limits.client(key, client.user, client.client_id)?;
        let sensors = self.sensors(key);
        let ms = match key {
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => {
                sensors.record_paced(&limit, self.windows, value, now_ms())
            }
            _ => sensors.record_rate(&limit, self.windows, value, now_ms()),
        };
        let ms = max_ms.map_or(ms, |max| ms.min(max));
        (ms > 0).then_some(Throttle {
            ms,
            key,
            entity: limit.entity,
        })
    }

    /// A produce request of `bytes` (Kafka: the request's size) against
    /// `producer_byte_rate`.
    pub fn record_produce(&self, client: Client<'_>, bytes: usize) -> Option<Throttle> {
        self.record(QuotaKey::ProducerByteRate, client, bytes as f64, None)
    }

    /// The most a consumer's fetch may return: what the quota allows in one window (a
    /// fetch still returns its first batch whole). A fetch is charged as a produce is, all
    /// of it at once, so the smaller the step the closer the consumer is held to the quota
    /// in the windows Kafka measures: one window's worth keeps it within a few percent,
    /// where Kafka's cap (`samples - 1` windows, its `maxValueInQuotaWindow`) lets a
    /// consumer's fetches of a megabyte overshoot by 7 % (simulated with Kafka's windows;
    /// measured by `compat/tests/test_quota_rates.py`).
    pub fn fetch_max_bytes(&self, client: Client<'_>) -> Option<i64> {
        let limit =
            self.limits
                .client(QuotaKey::ConsumerByteRate, client.user, client.client_id)?;
        let seconds = self.windows.window_ms as f64 / 1000.0 / 4.0;
        Some((limit.value * seconds).clamp(1.0, i32::MAX as f64) as i64)
    }

    /// A fetch response of `bytes` against `consumer_byte_rate`. It is sent with its
    /// records, and the throttle it earned holds the next one back, as for a produce.
    ///
    /// Kafka answers a fetch that crosses the quota empty, yet throttles it as though its
    /// bytes had been sent: the consumer waits for windows that the unsent fetch had
    /// filled, and gets about 80 % of its quota (measured over a minute with Kafka 4.4, by
    /// `compat/tests/test_quota_rates.py --against-kafka`). Charged as a produce, it is held
    /// to the quota as a producer is.
    pub fn record_fetch(&self, client: Client<'_>, bytes: usize) -> Option<Throttle> {
        self.record(QuotaKey::ConsumerByteRate, client, bytes as f64, None)
    }

    /// `busy` spent serving a request, as a percentage of one thread for a second, against
    /// `request_percentage`; the throttle is at most one window, as Kafka bounds it.
    pub fn record_request_time(&self, client: Client<'_>, busy: Duration) -> Option<Throttle> {
        let percent = busy.as_nanos() as f64 * 100.0 / 1e9;
        let max = Some(self.windows.window_ms);
        self.record(QuotaKey::RequestPercentage, client, percent, max)
    }

    /// The controller mutation quota of one CreateTopics, CreatePartitions or DeleteTopics:
    /// strict (THROTTLING_QUOTA_EXCEEDED once exhausted) from the version that can say so,
    /// permissive (accepted, then throttled) before it; charged on the active controller.
    pub fn mutation_quota<'a>(
        &self,
        cluster: &'a Cluster,
        client: Client<'_>,
        strict: bool,
    ) -> MutationQuota<'a> {
        let limit = self.limits.client(
            QuotaKey::ControllerMutationRate,
            client.user,
            client.client_id,
        );
        MutationQuota::new(cluster, client, limit, strict)
    }

    /// What charges every broker's mutations while this node is the active controller.
    pub fn mutation_charger(&self) -> Arc<dyn MutationCharger> {
        Arc::new(mutation::Buckets {
            sensors: self.mutation.clone(),
            windows: self.windows,
            limits: self.limits.clone(),
        })
    }

    /// Counts a throttle applied, for the metrics.
    pub fn note_throttle(&self, throttle: &Throttle) {
        self.sensors(throttle.key)
            .note_throttle(&throttle.entity, throttle.ms, now_ms());
    }

    /// Every live sensor's figures, for `/metrics`; drops those idle for an hour.
    pub fn stats(&self) -> Vec<EntityStats> {
        let now = now_ms();
        let mut all = Vec::new();
        for key in QuotaKey::ALL {
            all.extend(self.sensors(key).stats(self.windows, now));
        }
        self.connections.expire(now);
        all
    }
}
