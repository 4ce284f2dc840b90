//! The controller mutation quota (KIP-599) is counted by the active controller, as Kafka's
//! `ControllerApis` counts it: a client that spreads its CreateTopics, CreatePartitions and
//! DeleteTopics over several brokers gets the one rate, not one per broker. The broker that
//! receives a mutation asks the active controller to charge it (`MetadataNode::
//! charge_mutation`); the controller's broker side keeps the token buckets and decides,
//! through the [`MutationCharger`] it installs.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

/// One request's mutations, charged to its user and client id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutationCharge {
    pub user: String,
    pub client_id: String,
    /// Partitions created, added or deleted.
    pub permits: f64,
    /// Refuse once the bucket is negative (the request versions that can say
    /// THROTTLING_QUOTA_EXCEEDED), rather than accept and throttle.
    pub strict: bool,
}

/// The controller's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Charged {
    /// Recorded; the client is throttled this long (0: not at all).
    Accepted { throttle_ms: i64 },
    /// Not recorded: the strict quota is exhausted for this long.
    Refused { throttle_ms: i64 },
}

/// What decides a charge on the active controller.
pub trait MutationCharger: Send + Sync {
    fn charge(&self, charge: &MutationCharge) -> Charged;
}

/// The charger a node's broker side installs once it is built; until then, or on a node
/// without one, every mutation is accepted unthrottled.
#[derive(Default)]
pub struct ChargerSlot(OnceLock<Arc<dyn MutationCharger>>);

impl ChargerSlot {
    pub fn install(&self, charger: Arc<dyn MutationCharger>) {
        let _ = self.0.set(charger);
    }

    pub fn charge(&self, charge: &MutationCharge) -> Charged {
        match self.0.get() {
            Some(charger) => charger.charge(charge),
            None => Charged::Accepted { throttle_ms: 0 },
        }
    }
}
