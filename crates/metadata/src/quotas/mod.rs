//! Client quotas (KIP-13, KIP-55, KIP-257, KIP-546, KIP-612) in the metadata log, as KRaft
//! keeps them (`ClientQuotaRecord`): every node enforces the same quotas, and they survive
//! restarts with the rest of the metadata.
//!
//! A quota belongs to an entity made of a `user`, a `client-id` (or both), or an `ip`, each
//! named or the default entity (Kafka's `<default>`, a null name on the wire). Each entity
//! holds values by key: `producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
//! `controller_mutation_rate` for users and client ids, `connection_creation_rate` for ips.
//!
//! `validate` holds Kafka's rules for AlterClientQuotas (`ClientQuotaControlManager`),
//! `describe` its filters for DescribeClientQuotas (`ClientQuotasImage`), and `resolve`
//! which quota applies to a connection (`ClientQuotaManager`'s default callback and
//! `ConnectionQuotas`). The proposer validates; applying only sets and removes values.

mod describe;
pub mod mutation;
mod resolve;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::state::{ClusterMetadata, CommandResult};

pub use describe::{describe, DescribeError, FilterComponent, MatchType};
pub use resolve::{ResolvedIpQuota, ResolvedQuota, ANONYMOUS};
pub use validate::{plan, Alteration, AlterationResult, Op, Plan, RequestEntity};

/// Entity types, as on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Quota keys, as on the wire and in `kafka-configs`.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The quotas a user or client id is held to, one rate each (Kafka's `ClientQuotaType`, one
/// `ClientQuotaManager` each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientQuotaType {
    /// `producer_byte_rate`: bytes per second produced.
    Produce,
    /// `consumer_byte_rate`: bytes per second fetched.
    Fetch,
    /// `request_percentage`: percentage of one request-handler thread's time.
    Request,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    ControllerMutation,
}

impl ClientQuotaType {
    pub const ALL: [ClientQuotaType; 4] = [
        ClientQuotaType::Produce,
        ClientQuotaType::Fetch,
        ClientQuotaType::Request,
        ClientQuotaType::ControllerMutation,
    ];

    /// The quota key that configures it.
    pub fn key(self) -> &'static str {
        match self {
            ClientQuotaType::Produce => PRODUCER_BYTE_RATE,
            ClientQuotaType::Fetch => CONSUMER_BYTE_RATE,
            ClientQuotaType::Request => REQUEST_PERCENTAGE,
            ClientQuotaType::ControllerMutation => CONTROLLER_MUTATION_RATE,
        }
    }
}

/// The name of one component of an entity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    /// Kafka's `<default>` entity (a null name on the wire, `--entity-default` in
    /// `kafka-configs`): applies to every user, client id or ip without its own quota.
    Default,
    Named(String),
}

impl EntityName {
    pub fn named(name: impl Into<String>) -> EntityName {
        EntityName::Named(name.into())
    }

    /// The wire's form: `None` for the default entity.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }

    pub fn from_wire(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, EntityName::named)
    }
}

/// What a quota is set on: a user, a client id, both, or an ip (never an ip with either of
/// the others, which validation refuses).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    pub fn user(user: EntityName) -> QuotaEntity {
        QuotaEntity {
            user: Some(user),
            ..QuotaEntity::default()
        }
    }

    pub fn client_id(client_id: EntityName) -> QuotaEntity {
        QuotaEntity {
            client_id: Some(client_id),
            ..QuotaEntity::default()
        }
    }

    pub fn user_client_id(user: EntityName, client_id: EntityName) -> QuotaEntity {
        QuotaEntity {
            user: Some(user),
            client_id: Some(client_id),
            ip: None,
        }
    }

    pub fn ip(ip: EntityName) -> QuotaEntity {
        QuotaEntity {
            ip: Some(ip),
            ..QuotaEntity::default()
        }
    }

    /// The components as the wire lists them: (entity type, name or `None` for default).
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(kind, name)| Some((kind, name.as_ref()?.as_wire())))
        .collect()
    }
}

/// Kafka's `user=alice, client-id=<default>` style, for logs.
impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components()
            .into_iter()
            .map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>")))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// One entity's values by key.
pub type EntityQuotas = BTreeMap<String, f64>;

/// Every configured quota, by entity. An entity without values is not kept, as Kafka drops
/// one when its last key is removed. Values are finite and positive (see `validate`), so
/// the state compares equal to itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<EntityEntry>", into = "Vec<EntityEntry>")]
pub struct ClientQuotas {
    entities: BTreeMap<QuotaEntity, EntityQuotas>,
}

impl Eq for ClientQuotas {}

/// JSON maps need string keys: the snapshot lists entities with their values instead.
#[derive(Serialize, Deserialize)]
struct EntityEntry {
    entity: QuotaEntity,
    quotas: EntityQuotas,
}

impl From<Vec<EntityEntry>> for ClientQuotas {
    fn from(entries: Vec<EntityEntry>) -> Self {
        ClientQuotas {
            entities: entries
                .into_iter()
                .filter(|e| !e.quotas.is_empty())
                .map(|e| (e.entity, e.quotas))
                .collect(),
        }
    }
}

impl From<ClientQuotas> for Vec<EntityEntry> {
    fn from(quotas: ClientQuotas) -> Self {
        quotas
            .entities
            .into_iter()
            .map(|(entity, quotas)| EntityEntry { entity, quotas })
            .collect()
    }
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Entities with their values, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &EntityQuotas)> {
        self.entities.iter()
    }

    pub fn get(&self, entity: &QuotaEntity) -> Option<&EntityQuotas> {
        self.entities.get(entity)
    }

    /// The value of `key` set on exactly `entity`.
    pub fn value(&self, entity: &QuotaEntity, key: &str) -> Option<f64> {
        self.entities.get(entity)?.get(key).copied()
    }

    fn apply(&mut self, change: &QuotaChange) {
        match change.value {
            Some(value) => {
                self.entities
                    .entry(change.entity.clone())
                    .or_default()
                    .insert(change.key.clone(), value);
            }
            None => {
                if let Some(values) = self.entities.get_mut(&change.entity) {
                    values.remove(&change.key);
                    if values.is_empty() {
                        self.entities.remove(&change.entity);
                    }
                }
            }
        }
    }
}

/// One value set or removed (Kafka's `ClientQuotaRecord`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub key: String,
    /// `None` removes the key.
    pub value: Option<f64>,
}

/// Validated values are finite (see [`ClientQuotas`]).
impl Eq for QuotaChange {}

impl ClusterMetadata {
    /// Applies an AlterClientQuotas' changes together, as Kafka applies its records
    /// atomically. Setting a value it has, or removing a key it lacks, changes nothing.
    pub(crate) fn apply_client_quotas(&mut self, changes: &[QuotaChange]) -> CommandResult {
        if !changes.is_empty() {
            let quotas = Arc::make_mut(&mut self.client_quotas);
            for change in changes {
                quotas.apply(change);
            }
        }
        CommandResult::ClientQuotasAltered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;

    fn set(entity: QuotaEntity, key: &str, value: f64) -> QuotaChange {
        QuotaChange {
            entity,
            key: key.into(),
            value: Some(value),
        }
    }

    fn remove(entity: QuotaEntity, key: &str) -> QuotaChange {
        QuotaChange {
            entity,
            key: key.into(),
            value: None,
        }
    }

    fn alter(m: &mut ClusterMetadata, changes: Vec<QuotaChange>) {
        let result = m.apply(&Command::AlterClientQuotas { changes });
        assert_eq!(result, Ok(CommandResult::ClientQuotasAltered));
    }

    #[test]
    fn values_are_set_replaced_and_removed_and_an_empty_entity_goes() {
        let mut m = ClusterMetadata::default();
        let alice = QuotaEntity::user(EntityName::named("alice"));
        alter(
            &mut m,
            vec![
                set(alice.clone(), PRODUCER_BYTE_RATE, 1024.0),
                set(alice.clone(), CONSUMER_BYTE_RATE, 2048.0),
                set(alice.clone(), PRODUCER_BYTE_RATE, 4096.0),
            ],
        );
        assert_eq!(
            m.client_quotas.value(&alice, PRODUCER_BYTE_RATE),
            Some(4096.0)
        );
        alter(&mut m, vec![remove(alice.clone(), PRODUCER_BYTE_RATE)]);
        assert_eq!(m.client_quotas.value(&alice, PRODUCER_BYTE_RATE), None);
        // Removing what is not there changes nothing.
        let before = m.clone();
        alter(&mut m, vec![remove(alice.clone(), REQUEST_PERCENTAGE)]);
        assert_eq!(m, before);
        alter(&mut m, vec![remove(alice.clone(), CONSUMER_BYTE_RATE)]);
        assert!(m.client_quotas.get(&alice).is_none());
        assert!(m.client_quotas.is_empty());
    }

    #[test]
    fn quotas_survive_a_snapshot_and_old_snapshots_load_without_them() {
        let mut m = ClusterMetadata::default();
        let default_client =
            QuotaEntity::user_client_id(EntityName::named("bob"), EntityName::Default);
        alter(
            &mut m,
            vec![
                set(default_client.clone(), REQUEST_PERCENTAGE, 12.5),
                set(
                    QuotaEntity::ip(EntityName::named("10.0.0.1")),
                    CONNECTION_CREATION_RATE,
                    5.0,
                ),
                set(
                    QuotaEntity::ip(EntityName::Default),
                    CONNECTION_CREATION_RATE,
                    9.0,
                ),
            ],
        );
        let json = serde_json::to_vec(&m).unwrap();
        let loaded: ClusterMetadata = serde_json::from_slice(&json).unwrap();
        assert_eq!(loaded, m);
        assert_eq!(
            loaded
                .client_quotas
                .value(&default_client, REQUEST_PERCENTAGE),
            Some(12.5)
        );

        let mut json = serde_json::to_value(&m).unwrap();
        json.as_object_mut().unwrap().remove("client_quotas");
        let old: ClusterMetadata = serde_json::from_value(json).unwrap();
        assert!(old.client_quotas.is_empty());
    }

    #[test]
    fn entities_show_their_components_in_wire_order() {
        let entity = QuotaEntity::user_client_id(EntityName::Default, EntityName::named("app"));
        assert_eq!(
            entity.components(),
            [(USER, None), (CLIENT_ID, Some("app"))]
        );
        assert_eq!(entity.to_string(), "user=<default>, client-id=app");
    }
}
