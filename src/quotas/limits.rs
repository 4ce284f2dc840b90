//! Where the limits come from: the quotas stored in the replicated metadata, resolved for
//! one client as Kafka's `DefaultQuotaCallback` does. Only the interface lives here; the
//! store and the precedence rules belong to the metadata.

use std::net::IpAddr;
use std::sync::Arc;

use samsa_metadata::quotas::{ClientQuotaType, ClientQuotas};
use tokio::sync::watch;

use crate::cluster::Cluster;

/// The client quotas Kafka enforces per user and client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    /// The quota's name in AlterClientQuotas and `kafka-configs`.
    pub fn config_name(self) -> &'static str {
        self.quota_type().key()
    }

    fn quota_type(self) -> ClientQuotaType {
        match self {
            QuotaKey::ProducerByteRate => ClientQuotaType::Produce,
            QuotaKey::ConsumerByteRate => ClientQuotaType::Fetch,
            QuotaKey::RequestPercentage => ClientQuotaType::Request,
            QuotaKey::ControllerMutationRate => ClientQuotaType::ControllerMutation,
        }
    }

    /// Kafka's quota type, the `type` of its JMX metrics (`kafka.server:type=Produce`).
    pub fn kafka_type(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "Produce",
            QuotaKey::ConsumerByteRate => "Fetch",
            QuotaKey::RequestPercentage => "Request",
            QuotaKey::ControllerMutationRate => "ControllerMutation",
        }
    }
}

/// The entity a quota was matched on, as Kafka tags its sensors: the user (empty when the
/// quota names no user) and the client id (empty when it names none). Two clients that
/// match one entity share its sensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Entity {
    pub user: String,
    pub client_id: String,
}

/// A quota that applies to a client: its value and the entity it is counted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub value: f64,
    pub entity: Entity,
}

/// The quotas in force. Called on every request, so it must be cheap.
pub trait QuotaLimits: Send + Sync {
    /// The `key` quota that applies to `user` (the principal's name) and `client_id`.
    fn client(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<Limit>;
    /// The `connection_creation_rate` of connections from `ip`.
    fn ip_connection_rate(&self, ip: IpAddr) -> Option<f64>;
}

/// No quotas at all.
pub struct NoQuotas;

impl QuotaLimits for NoQuotas {
    fn client(&self, _: QuotaKey, _: &str, _: &str) -> Option<Limit> {
        None
    }

    fn ip_connection_rate(&self, _: IpAddr) -> Option<f64> {
        None
    }
}

/// The quotas of the replicated metadata as this node applied them, resolved by the
/// metadata's rules (Kafka's default quota callback).
struct Replicated {
    quotas: watch::Receiver<Arc<ClientQuotas>>,
}

impl QuotaLimits for Replicated {
    fn client(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<Limit> {
        let quotas = self.quotas.borrow().clone();
        // Most clusters have no quota at all: nothing to resolve on each request.
        if quotas.is_empty() {
            return None;
        }
        let resolved = quotas.resolve(key.quota_type(), Some(user), client_id);
        Some(Limit {
            value: resolved.limit?,
            entity: Entity {
                user: resolved.user_tag,
                client_id: resolved.client_id_tag,
            },
        })
    }

    fn ip_connection_rate(&self, ip: IpAddr) -> Option<f64> {
        let quotas = self.quotas.borrow().clone();
        quotas.connection_creation_rate(ip).map(|q| q.limit)
    }
}

/// The quotas of the replicated metadata, as this node has applied them.
pub fn limits_of(cluster: &Cluster) -> Arc<dyn QuotaLimits> {
    Arc::new(Replicated {
        quotas: cluster.subscribe_client_quotas(),
    })
}
