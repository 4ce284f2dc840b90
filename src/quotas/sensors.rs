//! The sensors of one quota type: a rate (or token bucket) per matched entity, with what
//! `/metrics` shows of it.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::limits::{Entity, Limit, QuotaKey};
use super::stats::{Pace, Rate, TokenBucket, Windows};

/// A sensor idle this long is dropped with its metrics (Kafka's
/// `InactiveSensorExpirationTimeSeconds`).
const EXPIRE_AFTER_MS: i64 = 3600 * 1000;

#[derive(Default)]
pub(super) struct Sensor {
    pub rate: Rate,
    pub bucket: TokenBucket,
    /// Byte rates only: the bucket beside the rate (`record_paced`).
    pub pace: Pace,
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

    /// As [`Sensors::record_rate`], and the throttle is at least what a [`Pace`] of the
    /// quota's rate needs.
    ///
    /// Why: Kafka's rate forgets a sample whole when it leaves the windows, so a client
    /// whose requests are large beside its quota (librdkafka's 1 MB against 400 KB/s, 2.5
    /// windows each) is let through a burst each time its oldest sample expires: measured
    /// over a minute it gets 0.92-1.12 of the quota, depending on where the bursts fall
    /// (issue 20 asks for 10 %). The pace forgets nothing while the client is throttled,
    /// so a client at full speed is held to the quota over any minute; a client that idles
    /// bursts as Kafka lets it, and where Kafka's rate has forgotten nothing the two ask
    /// for about the same throttle (both are the bytes over the quota at its rate).
    pub fn record_paced(&self, limit: &Limit, windows: Windows, value: f64, now: i64) -> i64 {
        self.with(&limit.entity, now, |sensor| {
            sensor.rate.record(windows, value, now);
            sensor.total += value;
            let windowed = sensor.rate.throttle_ms(windows, limit.value, now);
            let paced = sensor.pace.record(windows, limit.value, value, now);
            let ms = windowed.max(paced);
            sensor.pace.hold(now + ms);
            ms
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

    const KAFKA: Windows = Windows {
        samples: 11,
        window_ms: 1000,
    };
    const QUOTA: f64 = 400_000.0;
    const START: i64 = 1_700_000_000_000;

    type Record = fn(&Sensors, &Limit, Windows, f64, i64) -> i64;

    fn quota() -> Limit {
        Limit {
            value: QUOTA,
            entity: Entity::default(),
        }
    }

    /// When a client at full speed sends 1 MB requests against 400 KB/s, each after the
    /// throttle of the one before plus a few milliseconds of jitter.
    fn full_speed(record: Record) -> Vec<i64> {
        let (sensors, limit) = (Sensors::new(QuotaKey::ProducerByteRate), quota());
        let (mut now, mut sent, mut jitter) = (START, Vec::new(), 7u64);
        while now < START + 200_000 {
            let throttle = record(&sensors, &limit, KAFKA, 1e6, now);
            sent.push(now);
            jitter = jitter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            now += throttle + 5 + (jitter >> 60) as i64;
        }
        sent
    }

    /// The fewest and most requests sent in any minute from the 15th second on.
    fn per_minute(sent: &[i64]) -> (usize, usize) {
        let counts = (15..120).map(|s| {
            let from = START + s * 1000;
            sent.iter()
                .filter(|&&t| (from..from + 60_000).contains(&t))
                .count()
        });
        counts.fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)))
    }

    #[test]
    fn a_client_at_full_speed_is_held_to_the_quota_in_every_minute() {
        // A minute at the quota is 24 requests. Kafka's windows alone let bursts through.
        let (_, windowed) = per_minute(&full_speed(Sensors::record_rate));
        assert!(windowed >= 27, "{windowed}");
        assert_eq!(per_minute(&full_speed(Sensors::record_paced)), (24, 24));
    }

    /// The longest throttle a client gets that sends `burst` 1 MB requests back to back
    /// every `period_ms`, from its fourth burst on.
    fn bursts(record: Record, burst: usize, period_ms: i64) -> i64 {
        let (sensors, limit) = (Sensors::new(QuotaKey::ProducerByteRate), quota());
        let mut longest = 0;
        for n in 0..30 {
            let mut now = START + n * period_ms;
            for _ in 0..burst {
                let throttle = record(&sensors, &limit, KAFKA, 1e6, now);
                if n >= 3 {
                    longest = longest.max(throttle);
                }
                now += throttle + 5;
            }
        }
        longest
    }

    #[test]
    fn an_idle_client_bursts_as_kafka_lets_it() {
        // 4 MB every 12 s and 2 MB every 6 s are under 400 KB/s: neither is throttled.
        for (burst, period) in [(4, 12_000), (2, 6_000)] {
            assert_eq!(bursts(Sensors::record_rate, burst, period), 0);
            assert_eq!(bursts(Sensors::record_paced, burst, period), 0);
        }
    }
}
