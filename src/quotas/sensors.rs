//! The sensors of one quota type: a rate (or token bucket) per matched entity, with what
//! `/metrics` shows of it.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::limits::{Entity, Limit, QuotaKey};
use super::stats::{Rate, TokenBucket, Windows};

/// A sensor idle this long is dropped with its metrics (Kafka's
/// `InactiveSensorExpirationTimeSeconds`).
const EXPIRE_AFTER_MS: i64 = 3600 * 1000;

#[derive(Default)]
pub(super) struct Sensor {
    pub rate: Rate,
    pub bucket: TokenBucket,
    /// Everything recorded, for a counter.
    pub total: f64,
    pub throttle_ms_total: u64,
    pub throttled: u64,
    pub last_used_ms: i64,
}

/// What `/metrics` shows of one sensor.
#[derive(Debug, Clone)]
pub struct EntityStats {
    pub key: QuotaKey,
    pub entity: Entity,
    /// The measured rate, per second, over the quota windows.
    pub rate: f64,
    /// Everything recorded: bytes, request-time percent-seconds, or partition mutations.
    pub total: f64,
    pub throttle_ms_total: u64,
    pub throttled: u64,
}

pub(super) struct Sensors {
    key: QuotaKey,
    /// Held only for a record or a measure, nothing taken under it.
    sensors: Mutex<HashMap<Entity, Sensor>>,
}

impl Sensors {
    pub fn new(key: QuotaKey) -> Sensors {
        Sensors {
            key,
            sensors: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the entity's sensor, creating it when first needed.
    pub fn with<T>(&self, entity: &Entity, now: i64, f: impl FnOnce(&mut Sensor) -> T) -> T {
        let mut sensors = self.sensors.lock();
        let sensor = match sensors.get_mut(entity) {
            Some(sensor) => sensor,
            None => sensors.entry(entity.clone()).or_default(),
        };
        sensor.last_used_ms = now;
        f(sensor)
    }

    /// Records on the entity's rate and returns the throttle it now needs (0 within quota).
    pub fn record_rate(&self, limit: &Limit, windows: Windows, value: f64, now: i64) -> i64 {
        self.with(&limit.entity, now, |sensor| {
            sensor.rate.record(windows, value, now);
            sensor.total += value;
            sensor.rate.throttle_ms(windows, limit.value, now)
        })
    }

    pub fn note_throttle(&self, entity: &Entity, ms: i64, now: i64) {
        self.with(entity, now, |sensor| {
            sensor.throttle_ms_total += ms.max(0) as u64;
            sensor.throttled += 1;
        });
    }

    pub fn stats(&self, windows: Windows, now: i64) -> Vec<EntityStats> {
        let mut sensors = self.sensors.lock();
        sensors.retain(|_, s| now - s.last_used_ms < EXPIRE_AFTER_MS);
        sensors
            .iter_mut()
            .map(|(entity, sensor)| EntityStats {
                key: self.key,
                entity: entity.clone(),
                rate: sensor.rate.measure(windows, now),
                total: sensor.total,
                throttle_ms_total: sensor.throttle_ms_total,
                throttled: sensor.throttled,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sensors_expire() {
        let sensors = Sensors::new(QuotaKey::ProducerByteRate);
        let windows = Windows {
            samples: 11,
            window_ms: 1000,
        };
        let limit = Limit {
            value: 100.0,
            entity: Entity {
                user: "alice".into(),
                client_id: String::new(),
            },
        };
        sensors.record_rate(&limit, windows, 10.0, 0);
        assert_eq!(sensors.stats(windows, 1000).len(), 1);
        assert!(sensors.stats(windows, EXPIRE_AFTER_MS).is_empty());
    }
}
