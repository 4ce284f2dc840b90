//! Client telemetry (KIP-714): which metrics each client instance is asked to push, the
//! rules its pushes must keep, and the pushed values handed to `/metrics`. Mirrors Kafka's
//! `ClientMetricsManager` and `ClientMetricsInstance`.
//!
//! Instances live in a cache of at most [`MAX_INSTANCES`] (least recently used first out),
//! each expiring when it has sent nothing for three push intervals (a minute at least), or
//! when the connection that first asked closes, as in Kafka. The clock is passed in.

mod distribution;
pub mod otlp;
pub mod subscription;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::config::telemetry::TelemetryConfig;
use crate::error::TelemetryError;
use crate::metrics::client_series::{
    sanitize_name, ClientSeries, PushedValue, Pusher, SeriesKind, SeriesLimits,
};
pub use subscription::{kafka_uuid, ClientIdentity, Subscribed, Subscription};

/// Kafka's cache size: 16k active client connections per broker.
pub const MAX_INSTANCES: usize = 16_384;
/// Kafka's shortest expiry of an instance that stopped asking.
const MIN_EXPIRY_MS: i64 = 60_000;
/// Expired instances are looked for at most this often.
const SWEEP_EVERY_MS: i64 = 1_000;
/// Most attributes of a point kept as labels; more are dropped from the label set.
const MAX_ATTRIBUTES: usize = 16;
/// Kafka's reserved ids: the zero and the metadata topic's.
const RESERVED: [Uuid; 2] = [Uuid::nil(), Uuid::from_u128(1)];

/// What GetTelemetrySubscriptions answers.
#[derive(Debug, Clone)]
pub struct SubscriptionAnswer {
    pub client_instance_id: Uuid,
    pub subscribed: Subscribed,
    pub max_bytes: i32,
}

/// A push as the handler received it.
#[derive(Debug)]
pub struct Push {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub terminating: bool,
    pub compression: i8,
    pub metrics: Bytes,
}

struct Instance {
    client: ClientIdentity,
    subscribed: Subscribed,
    last_get_ms: i64,
    last_push_ms: i64,
    terminating: bool,
    last_error: Option<TelemetryError>,
    expires_ms: i64,
    lru: u64,
}

impl Instance {
    /// Kafka's `maybeUpdateGetRequestTimestamp`: an interval since the last get or push.
    fn get_allowed(&mut self, now: i64) -> bool {
        let last = self.last_get_ms.max(self.last_push_ms);
        let allowed = now - last >= i64::from(self.subscribed.interval_ms);
        if allowed {
            self.last_get_ms = now;
        }
        allowed
    }

    /// Kafka's `maybeUpdatePushRequestTimestamp`: the first push after a get may come at
    /// once, later ones an interval apart.
    fn push_allowed(&mut self, now: i64) -> bool {
        let allowed = self.last_get_ms > self.last_push_ms
            || now - self.last_push_ms >= i64::from(self.subscribed.interval_ms);
        if allowed {
            self.last_push_ms = now;
        }
        allowed
    }
}

#[derive(Default)]
struct Instances {
    by_id: HashMap<Uuid, Instance>,
    /// Use order, oldest first, for eviction.
    lru: BTreeMap<u64, Uuid>,
    tick: u64,
    /// The instance each connection created, forgotten with the connection.
    by_connection: HashMap<u64, Uuid>,
    last_sweep_ms: i64,
}

pub struct ClientTelemetry {
    config: TelemetryConfig,
    subscriptions: Vec<Subscription>,
    instances: Mutex<Instances>,
    series: Arc<ClientSeries>,
}

impl ClientTelemetry {
    pub fn new(config: &TelemetryConfig, series: Arc<ClientSeries>) -> ClientTelemetry {
        ClientTelemetry {
            config: config.clone(),
            subscriptions: config
                .subscriptions
                .iter()
                .map(Subscription::compile)
                .collect(),
            instances: Mutex::new(Instances::default()),
            series,
        }
    }

    /// Whether samsa exports pushed metrics, and so advertises the two APIs: Kafka does when
    /// a telemetry exporter is configured; samsa is its own, on when a subscription is.
    pub fn exporting(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    /// GetTelemetrySubscriptions: assigns an instance id when the client has none, and tells
    /// it what to push; THROTTLING_QUOTA_EXCEEDED when it asks again within its interval
    /// (unless its last push was refused for its subscription id or codec).
    pub fn subscriptions(
        &self,
        requested: Uuid,
        client: &ClientIdentity,
        connection: u64,
        now: i64,
    ) -> Result<SubscriptionAnswer, TelemetryError> {
        let mut instances = self.instances.lock();
        self.sweep(&mut instances, now);
        let id = if requested.is_nil() {
            new_instance_id(&instances)
        } else {
            requested
        };
        let instance = self.instance(&mut instances, id, client, connection, now);
        let may_retry = matches!(
            instance.last_error,
            Some(
                TelemetryError::UnknownSubscriptionId | TelemetryError::UnsupportedCompressionType
            )
        );
        if !instance.get_allowed(now) && !may_retry {
            return Err(TelemetryError::ThrottlingQuotaExceeded);
        }
        instance.last_error = None;
        Ok(SubscriptionAnswer {
            client_instance_id: id,
            subscribed: instance.subscribed.clone(),
            max_bytes: self.config.max_bytes,
        })
    }

    /// PushTelemetry: Kafka's checks in Kafka's order, then the payload decoded and its
    /// subscribed metrics recorded (INVALID_RECORD when it cannot be decoded).
    pub fn push(
        &self,
        push: Push,
        client: &ClientIdentity,
        connection: u64,
        now: i64,
    ) -> Result<(), TelemetryError> {
        let id = push.client_instance_id;
        if RESERVED.contains(&id) {
            return Err(TelemetryError::InvalidRequest);
        }
        let (subscribed, pusher) = {
            let mut instances = self.instances.lock();
            self.sweep(&mut instances, now);
            let instance = self.instance(&mut instances, id, client, connection, now);
            let checked = self.check_push(instance, &push, now);
            // Kafka takes the flag whatever the outcome.
            instance.terminating = push.terminating;
            if let Err(err) = checked {
                instance.last_error = Some(err);
                return Err(err);
            }
            let pusher = Pusher {
                client_instance_id: kafka_uuid(id),
                client_id: instance.client.client_id.clone(),
                principal: instance.client.principal.clone(),
                resource: Vec::new(),
            };
            (instance.subscribed.clone(), pusher)
        };
        if push.metrics.is_empty() || !self.exporting() {
            self.set_last_error(id, None);
            return Ok(());
        }
        // Decoded outside the lock: a large payload must not hold up every other client.
        match otlp::decode(push.compression, push.metrics, self.config.max_bytes) {
            Ok(decoded) => {
                let pusher = Pusher {
                    resource: labels(decoded.resource),
                    ..pusher
                };
                let values = decoded
                    .points
                    .into_iter()
                    .filter(|p| subscribed.wants(&p.name))
                    .filter_map(exposed)
                    .collect();
                let limits = SeriesLimits {
                    per_client: self.config.max_series_per_client,
                    total: self.config.max_series,
                };
                // Only for an instance still known, so an expired one leaves nothing behind.
                let instances = self.instances.lock();
                if instances.by_id.contains_key(&id) {
                    self.series.record(id, pusher, values, limits);
                }
                drop(instances);
                self.set_last_error(id, None);
                Ok(())
            }
            Err(reason) => {
                tracing::debug!(instance = %kafka_uuid(id), "cannot decode pushed metrics: {reason}");
                self.set_last_error(id, Some(TelemetryError::InvalidRecord));
                Err(TelemetryError::InvalidRecord)
            }
        }
    }

    /// Forgets the instance a closed connection created, as Kafka's disconnect listener does.
    pub fn connection_closed(&self, connection: u64) {
        let mut instances = self.instances.lock();
        if let Some(id) = instances.by_connection.remove(&connection) {
            self.forget(&mut instances, id);
        }
    }

    /// Instances known now.
    pub fn instance_count(&self) -> usize {
        self.instances.lock().by_id.len()
    }

    fn check_push(
        &self,
        instance: &mut Instance,
        push: &Push,
        now: i64,
    ) -> Result<(), TelemetryError> {
        if instance.terminating {
            return Err(TelemetryError::InvalidRequest);
        }
        if !instance.push_allowed(now) && !push.terminating {
            return Err(TelemetryError::ThrottlingQuotaExceeded);
        }
        if push.subscription_id != instance.subscribed.id {
            return Err(TelemetryError::UnknownSubscriptionId);
        }
        if !(0..=4).contains(&push.compression) {
            return Err(TelemetryError::UnsupportedCompressionType);
        }
        if push.metrics.len() > self.config.max_bytes as usize {
            return Err(TelemetryError::TelemetryTooLarge);
        }
        Ok(())
    }

    fn set_last_error(&self, id: Uuid, error: Option<TelemetryError>) {
        if let Some(instance) = self.instances.lock().by_id.get_mut(&id) {
            instance.last_error = error;
        }
    }

    /// The cached instance, created (and its subscription computed) when new; its expiry
    /// pushed back either way.
    fn instance<'a>(
        &self,
        instances: &'a mut Instances,
        id: Uuid,
        client: &ClientIdentity,
        connection: u64,
        now: i64,
    ) -> &'a mut Instance {
        instances.tick += 1;
        let tick = instances.tick;
        if let Some(old) = instances.by_id.get(&id).map(|i| i.lru) {
            instances.lru.remove(&old);
        } else {
            while instances.by_id.len() >= MAX_INSTANCES {
                let Some((_, oldest)) = instances.lru.pop_first() else {
                    break;
                };
                self.forget(instances, oldest);
            }
            let subscribed = subscription::subscribe(&self.subscriptions, client, id);
            instances.by_id.insert(
                id,
                Instance {
                    client: client.clone(),
                    subscribed,
                    last_get_ms: 0,
                    last_push_ms: 0,
                    terminating: false,
                    last_error: None,
                    expires_ms: 0,
                    lru: tick,
                },
            );
            instances.by_connection.insert(connection, id);
        }
        instances.lru.insert(tick, id);
        let instance = instances.by_id.get_mut(&id).expect("inserted above");
        instance.lru = tick;
        let expiry = MIN_EXPIRY_MS.max(3 * i64::from(instance.subscribed.interval_ms));
        instance.expires_ms = now + expiry;
        instance
    }

    fn forget(&self, instances: &mut Instances, id: Uuid) {
        if let Some(gone) = instances.by_id.remove(&id) {
            instances.lru.remove(&gone.lru);
            self.series.remove(id);
        }
    }

    fn sweep(&self, instances: &mut Instances, now: i64) {
        if now - instances.last_sweep_ms < SWEEP_EVERY_MS {
            return;
        }
        instances.last_sweep_ms = now;
        let expired: Vec<Uuid> = instances
            .by_id
            .iter()
            .filter(|(_, i)| i.expires_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.forget(instances, id);
        }
        let Instances {
            by_connection,
            by_id,
            ..
        } = instances;
        by_connection.retain(|_, id| by_id.contains_key(id));
    }
}

/// OTLP attributes as labels: names sanitised, at most [`MAX_ATTRIBUTES`], none that would
/// shadow the labels naming the pusher, the first of a name kept, sorted.
fn labels(attributes: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for (key, value) in attributes {
        let key = sanitize_name(&key, false);
        let ours = matches!(
            key.as_str(),
            "client_instance_id" | "client_id" | "principal"
        );
        if !ours && labels.len() < MAX_ATTRIBUTES && !labels.iter().any(|(k, _)| *k == key) {
            labels.push((key, value));
        }
    }
    labels.sort();
    labels
}

/// A fresh random id, neither reserved, in use, nor one whose text starts with '-' (Kafka's
/// `Uuid.randomUuid`).
fn new_instance_id(instances: &Instances) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let dash = id.as_bytes()[0] >> 2 == 62;
        if !RESERVED.contains(&id) && !dash && !instances.by_id.contains_key(&id) {
            return id;
        }
    }
}

/// A decoded point as a series: a Prometheus name, labels from its attributes. None for a
/// name that would pass for one of the broker's own metrics.
fn exposed(point: otlp::Point) -> Option<PushedValue> {
    let name = sanitize_name(&point.name, true);
    if name.starts_with("samsa_") || name.starts_with("process_") {
        return None;
    }
    // A histogram's `le` and a summary's `quantile` are labels of their own.
    let reserved = match point.kind {
        otlp::Kind::Histogram { .. } => "le",
        otlp::Kind::Summary => "quantile",
        _ => "",
    };
    let mut attributes: Vec<(String, String)> = Vec::new();
    for (key, value) in point.attributes {
        let key = sanitize_name(&key, false);
        let ours = matches!(
            key.as_str(),
            "client_instance_id" | "client_id" | "principal"
        ) || key == reserved;
        if !ours && attributes.len() < MAX_ATTRIBUTES && !attributes.iter().any(|(k, _)| *k == key)
        {
            attributes.push((key, value));
        }
    }
    attributes.sort();
    let (kind, adds) = match point.kind {
        otlp::Kind::Gauge => (SeriesKind::Gauge, false),
        otlp::Kind::Counter { delta } => (SeriesKind::Counter, delta),
        otlp::Kind::Histogram { delta } => (SeriesKind::Histogram, delta),
        otlp::Kind::Summary => (SeriesKind::Summary, false),
    };
    Some(PushedValue {
        name,
        help: point.description,
        attributes,
        kind,
        value: point.value,
        adds,
    })
}

#[cfg(test)]
mod tests;
