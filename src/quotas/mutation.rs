//! The controller mutation quota of one request (KIP-599): partitions created, added or
//! deleted are taken from a token bucket per entity. Kafka's `StrictControllerMutationQuota`
//! refuses a mutation once the bucket is negative (THROTTLING_QUOTA_EXCEEDED, for the
//! versions that know that error); its `PermissiveControllerMutationQuota` accepts it and
//! throttles the client instead.
//!
//! The buckets are the active controller's ([`Buckets`], which it installs as its
//! `MutationCharger`): the broker that receives a request asks the controller to charge
//! each mutation, so a client is held to one rate however many brokers it talks to.

use std::sync::Arc;
use std::time::Instant;

use samsa_metadata::quotas::mutation::{Charged, MutationCharge, MutationCharger};

use super::limits::{Limit, QuotaKey, QuotaLimits};
use super::sensors::Sensors;
use super::stats::Windows;
use super::{Client, Throttle};
use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::error::BrokerError;

pub struct MutationQuota<'a> {
    cluster: &'a Cluster,
    user: String,
    client_id: String,
    /// The quota as this broker resolves it: none means nothing to charge; its entity
    /// names the throttle for the metrics.
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
        cluster: &'a Cluster,
        client: Client<'_>,
        limit: Option<Limit>,
        strict: bool,
    ) -> MutationQuota<'a> {
        MutationQuota {
            cluster,
            user: client.user.to_owned(),
            client_id: client.client_id.to_owned(),
            limit,
            strict,
            throttle: None,
        }
    }

    /// Takes `permits` (partitions) from the client's bucket on the active controller. A
    /// strict quota checks the bucket first and refuses when it is already negative;
    /// otherwise the mutation is recorded, even when it takes the bucket below zero. With
    /// no controller to ask (an election), the mutation is not charged: it cannot be made
    /// then anyway.
    pub async fn record(&mut self, permits: f64) -> Result<(), QuotaExceeded> {
        if self.limit.is_none() {
            return Ok(());
        }
        let charge = MutationCharge {
            user: self.user.clone(),
            client_id: self.client_id.clone(),
            permits,
            strict: self.strict,
        };
        let charged = match self.cluster.charge_mutation(charge).await {
            Ok(charged) => charged,
            Err(err) => {
                tracing::debug!(error = %err, "controller mutation quota not charged");
                Charged::Accepted { throttle_ms: 0 }
            }
        };
        match charged {
            Charged::Refused { throttle_ms } => {
                self.throttle = Some((throttle_ms, Instant::now()));
                Err(QuotaExceeded { throttle_ms })
            }
            Charged::Accepted { throttle_ms } => {
                // A strict quota lets this mutation through and refuses the next ones.
                if !self.strict && throttle_ms > 0 {
                    self.throttle = Some((throttle_ms, Instant::now()));
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

/// The token buckets of the controller mutation quota, kept by the node that is the active
/// controller and charged for every broker's requests.
pub(super) struct Buckets {
    pub sensors: Arc<Sensors>,
    pub windows: Windows,
    pub limits: Arc<dyn QuotaLimits>,
}

impl MutationCharger for Buckets {
    fn charge(&self, charge: &MutationCharge) -> Charged {
        let Some(limit) = self.limits.client(
            QuotaKey::ControllerMutationRate,
            &charge.user,
            &charge.client_id,
        ) else {
            return Charged::Accepted { throttle_ms: 0 };
        };
        let (windows, now) = (self.windows, now_ms());
        self.sensors.with(&limit.entity, now, |sensor| {
            if charge.strict && sensor.bucket.tokens(windows, limit.value, now) < 0.0 {
                return Charged::Refused {
                    throttle_ms: sensor.bucket.throttle_ms(windows, limit.value, now),
                };
            }
            sensor
                .bucket
                .record(windows, limit.value, charge.permits, now);
            sensor.rate.record(windows, charge.permits, now);
            sensor.total += charge.permits;
            Charged::Accepted {
                throttle_ms: sensor.bucket.throttle_ms(windows, limit.value, now),
            }
        })
    }
}
