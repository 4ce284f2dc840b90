//! The controller mutation quota of one request (KIP-599): partitions created, added or
//! deleted are taken from a token bucket per entity. Kafka's `StrictControllerMutationQuota`
//! refuses a mutation once the bucket is negative (THROTTLING_QUOTA_EXCEEDED, for the
//! versions that know that error); its `PermissiveControllerMutationQuota` accepts it and
//! throttles the client instead.

use std::time::Instant;

use super::limits::{Limit, QuotaKey};
use super::sensors::Sensors;
use super::stats::Windows;
use super::Throttle;
use crate::clock::now_ms;
use crate::error::BrokerError;

pub struct MutationQuota<'a> {
    sensors: &'a Sensors,
    windows: Windows,
    limit: Option<Limit>,
    strict: bool,
    /// The last throttle found and when, so that the time the request spent afterwards is
    /// taken off what the client is told (Kafka's `AbstractControllerMutationQuota`).
    throttle: Option<(i64, Instant)>,
}

/// A mutation refused by a strict quota: the throttle the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub throttle_ms: i64,
}

impl From<QuotaExceeded> for BrokerError {
    fn from(_: QuotaExceeded) -> BrokerError {
        BrokerError::ThrottlingQuotaExceeded
    }
}

impl<'a> MutationQuota<'a> {
    pub(super) fn new(
        sensors: &'a Sensors,
        windows: Windows,
        limit: Option<Limit>,
        strict: bool,
    ) -> MutationQuota<'a> {
        MutationQuota {
            sensors,
            windows,
            limit,
            strict,
            throttle: None,
        }
    }

    /// Takes `permits` (partitions) from the bucket. A strict quota checks the bucket
    /// first and refuses when it is already negative; otherwise the mutation is recorded,
    /// even when it takes the bucket below zero.
    pub fn record(&mut self, permits: f64) -> Result<(), QuotaExceeded> {
        let Some(limit) = &self.limit else {
            return Ok(());
        };
        let (windows, strict, now) = (self.windows, self.strict, now_ms());
        let throttle_ms = self.sensors.with(&limit.entity, now, |sensor| {
            if strict && sensor.bucket.tokens(windows, limit.value, now) < 0.0 {
                return Err(sensor.bucket.throttle_ms(windows, limit.value, now));
            }
            sensor.bucket.record(windows, limit.value, permits, now);
            sensor.rate.record(windows, permits, now);
            sensor.total += permits;
            Ok(sensor.bucket.throttle_ms(windows, limit.value, now))
        });
        match throttle_ms {
            Err(ms) => {
                self.throttle = Some((ms, Instant::now()));
                Err(QuotaExceeded { throttle_ms: ms })
            }
            Ok(ms) => {
                // A strict quota lets this mutation through and refuses the next ones.
                if !strict && ms > 0 {
                    self.throttle = Some((ms, Instant::now()));
                }
                Ok(())
            }
        }
    }

    /// The throttle to answer with, less the time since it was found.
    pub fn throttle(&self) -> Option<Throttle> {
        let (ms, at) = self.throttle?;
        let left = ms - at.elapsed().as_millis() as i64;
        let limit = self.limit.as_ref()?;
        (left > 0).then(|| Throttle {
            ms: left,
            key: QuotaKey::ControllerMutationRate,
            entity: limit.entity.clone(),
        })
    }
}
