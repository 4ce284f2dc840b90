//! DescribeConfigs for topics, groups and this broker; IncrementalAlterConfigs and
//! AlterConfigs for topics and groups (broker settings are static, so changes to them are
//! refused). Groups' configs are in `group_configs`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{allowed, built_from, group_configs, str_bytes, Session};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::topics::config::{broker_entries, ConfigEntry};
use crate::topics::TopicConfig;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let may = |rt, name: &str| allowed(broker, session, Operation::DescribeConfigs, rt, name);
    let include = Include {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = match resource.resource_type {
                RESOURCE_TOPIC if !may(ResourceType::Topic, &resource.resource_name) => {
                    Err(AuthError::TopicDenied.into())
                }
                RESOURCE_TOPIC => topic_entries(broker, &resource.resource_name),
                RESOURCE_BROKER if !may(ResourceType::Cluster, CLUSTER_NAME) => {
                    Err(AuthError::ClusterDenied.into())
                }
                RESOURCE_BROKER => broker_entries_for(broker, &resource.resource_name),
                RESOURCE_GROUP => group_configs::describe(broker, session, &resource.resource_name),
                other => Err(BrokerError::UnsupportedResource(other)),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match entries {
                Ok(entries) => {
                    let keys = resource.configuration_keys;
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            keys.as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| encode(e, include, version))
                        .collect();
                    result.with_configs(configs)
                }
                Err(err) => result
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    let topic = broker
        .topics
        .get(name)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    Ok(topic.configs.entries(&broker.config))
}

fn broker_entries_for(broker: &Broker, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    // An empty name asks for the cluster-wide defaults, which on one node are this broker's.
    if !name.is_empty() && name != broker.node_id().to_string() {
        return Err(BrokerError::InvalidRequest(format!(
            "Broker id {name} is not this broker"
        )));
    }
    Ok(broker_entries(&broker.config))
}

/// DescribeConfigs v3 added the value type and documentation.
const FIRST_VERSION_WITH_TYPES: i16 = 3;

#[derive(Clone, Copy)]
struct Include {
    synonyms: bool,
    documentation: bool,
}

fn encode(entry: ConfigEntry, include: Include, version: i16) -> DescribeConfigsResourceResult {
    let synonyms = if include.synonyms {
        entry
            .synonyms
            .iter()
            .map(|synonym| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(synonym.name))
                    .with_value(Some(str_bytes(synonym.value.clone())))
                    .with_source(synonym.source.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.code())
        .with_synonyms(synonyms)
        .with_documentation(None);
    if version >= FIRST_VERSION_WITH_TYPES {
        result = result.with_config_type(entry.config_type as i8);
        if include.documentation {
            result = result.with_documentation(Some(str_bytes(entry.doc)));
        }
    }
    result
}

/// IncrementalAlterConfigs operation codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One config change of an IncrementalAlterConfigs or AlterConfigs resource.
struct Change {
    name: String,
    op: i8,
    value: Option<String>,
}

impl Change {
    fn new(name: StrBytes, op: i8, value: Option<StrBytes>) -> Change {
        Change {
            name: name.to_string(),
            op,
            value: value.map(|v| v.to_string()),
        }
    }
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND or SUBTRACT single topic configs.
pub async fn incremental_alter(
    broker: &Broker,
    session: &Session,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources = request.resources.into_iter().map(|r| {
        let changes = r.configs.into_iter();
        let changes = changes.map(|c| Change::new(c.name, c.config_operation, c.value));
        let resource = (r.resource_type, r.resource_name.to_string());
        (resource, changes.collect())
    });
    let responses = alter_all(broker, session, resources, false, request.validate_only).await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// AlterConfigs (legacy): the given configs replace all of a topic's overrides.
pub async fn alter(
    broker: &Broker,
    session: &Session,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources = request.resources.into_iter().map(|r| {
        let changes = r.configs.into_iter();
        let changes = changes.map(|c| Change::new(c.name, OP_SET, c.value));
        let resource = (r.resource_type, r.resource_name.to_string());
        (resource, changes.collect())
    });
    let responses = alter_all(broker, session, resources, true, request.validate_only).await;
    AlterConfigsResponse::default().with_responses(responses)
}

type Resource = (i8, String);

/// A resource's outcome, in either API's response.
struct Outcome {
    resource: Resource,
    code: i16,
    message: Option<StrBytes>,
}

impl Outcome {
    fn new(resource: Resource, result: Result<(), BrokerError>) -> Outcome {
        let (code, message) = match result {
            Ok(()) => (0, None),
            // Unlike most APIs, Kafka explains an unknown topic here.
            Err(err @ BrokerError::UnknownTopicOrPartition) => {
                let message = format!("The topic '{}' does not exist.", resource.1);
                (err.code(), Some(str_bytes(message)))
            }
            Err(err) => (err.code(), err.message().map(str_bytes)),
        };
        Outcome {
            resource,
            code,
            message,
        }
    }
}

built_from! {
    Outcome =>
        alter_configs_response::AlterConfigsResourceResponse,
        incremental_alter_configs_response::AlterConfigsResourceResponse;
    |o| {
        with_resource_type(o.resource.0),
        with_resource_name(str_bytes(o.resource.1)),
        with_error_code(o.code),
        with_error_message(o.message),
    }
}

/// Each resource's outcome, in request order; a resource named twice is refused both times.
async fn alter_all<R: From<Outcome>>(
    broker: &Broker,
    session: &Session,
    resources: impl Iterator<Item = (Resource, Vec<Change>)>,
    replace: bool,
    validate_only: bool,
) -> Vec<R> {
    let resources: Vec<_> = resources.collect();
    let duplicates = duplicated(resources.iter().map(|(key, _)| key.clone()));
    let mut outcomes = Vec::with_capacity(resources.len());
    for (resource, changes) in resources {
        let result = if duplicates.contains(&resource) {
            Err(BrokerError::InvalidRequest(
                "Error due to duplicate resources in the request".into(),
            ))
        } else {
            alter_one(broker, session, &resource, changes, replace, validate_only).await
        };
        outcomes.push(R::from(Outcome::new(resource, result)));
    }
    outcomes
}

fn duplicated<T: Ord + Clone>(keys: impl Iterator<Item = T>) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    keys.filter(|k| !seen.insert(k.clone())).collect()
}

/// Checks and applies one resource's changes. `replace` starts from no overrides (legacy
/// AlterConfigs) instead of the topic's current ones.
async fn alter_one(
    broker: &Broker,
    session: &Session,
    (kind, name): &(i8, String),
    changes: Vec<Change>,
    replace: bool,
    validate_only: bool,
) -> Result<(), BrokerError> {
    // Request-shape checks come before authorization, as in Kafka's ConfigAdminManager.
    if !duplicated(changes.iter().map(|c| c.name.clone())).is_empty() {
        return Err(BrokerError::InvalidRequest(
            "Error due to duplicate config keys".into(),
        ));
    }
    for change in &changes {
        if !(OP_SET..=OP_SUBTRACT).contains(&change.op) {
            return Err(BrokerError::InvalidRequest(format!(
                "Unknown operation type {}",
                change.op
            )));
        }
        if change.value.is_none() && change.op != OP_DELETE {
            return Err(BrokerError::InvalidRequest(format!(
                "Null value not supported for : {}",
                change.name
            )));
        }
    }
    let may = |rt, name: &str| allowed(broker, session, Operation::AlterConfigs, rt, name);
    match *kind {
        RESOURCE_TOPIC if !may(ResourceType::Topic, name) => Err(AuthError::TopicDenied.into()),
        RESOURCE_TOPIC => {
            let topic = broker
                .topics
                .get(name)
                .ok_or(BrokerError::UnknownTopicOrPartition)?;
            let base = if replace {
                BTreeMap::new()
            } else {
                topic.configs.0.clone()
            };
            let configs = apply(base, &topic.configs, broker, changes)?;
            TopicConfig(configs.clone())
                .check_schema_registry(Some(&topic.configs), &broker.config)?;
            broker
                .cluster
                .alter_topic_configs(name, configs, validate_only)
                .await
        }
        RESOURCE_BROKER if !may(ResourceType::Cluster, CLUSTER_NAME) => {
            Err(AuthError::ClusterDenied.into())
        }
        RESOURCE_GROUP => {
            let changes = changes
                .into_iter()
                .map(|c| (c.op, c.name, c.value))
                .collect();
            group_configs::alter(broker, session, name, changes, replace, validate_only).await
        }
        RESOURCE_BROKER => {
            broker_entries_for(broker, name)?;
            if changes
                .iter()
                .all(|c| c.op == OP_DELETE && BROKER_THROTTLES.contains(&c.name.as_str()))
            {
                return Ok(());
            }
            // samsa reads its broker settings from the config file at start-up only, so every
            // broker config is what Kafka calls read-only; Kafka refuses those so.
            let names: Vec<_> = changes.iter().map(|c| c.name.as_str()).collect();
            Err(BrokerError::InvalidRequest(format!(
                "Cannot update these configs dynamically: Set({})",
                names.join(", ")
            )))
        }
        other => Err(BrokerError::UnsupportedResource(other)),
    }
}

/// Replication throttles, which samsa does not have, so none is ever set: deleting one is
/// the no-op it is on a Kafka broker that has none set, which kafka-reassign-partitions
/// relies on when it clears throttles after a reassignment. Setting one is refused.
const BROKER_THROTTLES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];
const TOPIC_THROTTLES: &[&str] = &[
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// The topic's overrides after `changes`; values are validated by the registry.
fn apply(
    mut configs: BTreeMap<String, String>,
    current: &TopicConfig,
    broker: &Broker,
    changes: Vec<Change>,
) -> Result<BTreeMap<String, String>, BrokerError> {
    for Change { name, op, value } in changes {
        if op == OP_DELETE && TOPIC_THROTTLES.contains(&name.as_str()) {
            continue;
        }
        let is_list = TopicConfig::is_list(&name).ok_or_else(|| {
            BrokerError::InvalidConfig(format!("Unknown topic config name: {name}"))
        })?;
        match (op, value) {
            (OP_DELETE, _) => {
                configs.remove(&name);
            }
            (OP_SET, Some(value)) => {
                configs.insert(name, value);
            }
            (OP_APPEND | OP_SUBTRACT, _) if !is_list => {
                let verb = if op == OP_APPEND {
                    "append"
                } else {
                    "subtract"
                };
                return Err(BrokerError::InvalidConfig(format!(
                    "Config value {verb} is not allowed for config key: {name}"
                )));
            }
            (_, Some(value)) => {
                // Kafka appends to (or subtracts from) the effective value, default included.
                let effective = configs.get(&name).cloned().unwrap_or_else(|| {
                    current
                        .entries(&broker.config)
                        .into_iter()
                        .find(|e| e.name == name)
                        .map(|e| e.value)
                        .unwrap_or_default()
                });
                let mut items: Vec<String> = effective
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if op == OP_APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    } else if op == OP_SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name, items.join(","));
            }
            (_, None) => unreachable!("null values were refused above"),
        }
    }
    Ok(configs)
}
