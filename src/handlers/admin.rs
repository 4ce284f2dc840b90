//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::Session;
use super::{allowed, allowed_on_cluster, str_bytes};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::cluster::NewTopic;
use crate::error::BrokerError;
use crate::group::store::OFFSETS_TOPIC;
use crate::quotas::Client;
use crate::topics::TopicConfig;

/// CreateTopics v5 added the created topic's configs, partitions and replication factor.
const FIRST_VERSION_WITH_TOPIC_DETAILS: i16 = 5;
/// DeleteTopics v6 names topics by name or by id.
const FIRST_DELETE_VERSION_WITH_IDS: i16 = 6;
/// The versions from which an exhausted controller mutation quota refuses the mutation with
/// THROTTLING_QUOTA_EXCEEDED (KIP-599); older ones are accepted and throttled.
const STRICT_CREATE_TOPICS_VERSION: i16 = 6;
const STRICT_DELETE_TOPICS_VERSION: i16 = 5;
const STRICT_CREATE_PARTITIONS_VERSION: i16 = 3;

pub async fn create_topics(
    broker: &Broker,
    session: &mut Session,
    request: CreateTopicsRequest,
    version: i16,
    client_id: &str,
) -> CreateTopicsResponse {
    let user = session.user_name().to_owned();
    let mut quota = broker.quotas.mutation_quota(
        &broker.cluster,
        Client {
            user: &user,
            client_id,
        },
        version >= STRICT_CREATE_TOPICS_VERSION,
    );
    // CREATE on the cluster covers every topic; otherwise each topic needs its own.
    let may_create_any = allowed_on_cluster(broker, session, Operation::Create);
    let duplicates = duplicated(request.topics.iter().map(|t| t.name.as_str()));
    let mut topics = Vec::new();
    for topic in first_of_each(request.topics, |t| t.name.to_string()) {
        let name = topic.name.clone();
        let result = if duplicates.contains(name.as_str()) {
            Err(BrokerError::InvalidRequest("Duplicate topic name.".into()))
        } else if !may_create_any
            && !allowed(
                broker,
                session,
                Operation::Create,
                ResourceType::Topic,
                &name,
            )
        {
            Err(AuthError::TopicDenied.into())
        } else if let Err(err) = quota
            .record(f64::from(requested_partitions(broker, &topic)))
            .await
        {
            Err(err.into())
        } else {
            create(broker, topic, request.validate_only).await
        };
        topics.push(match result {
            Ok((id, partitions, replication_factor, configs)) => {
                let mut created = CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_message(None)
                    .with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor);
                if version >= FIRST_VERSION_WITH_TOPIC_DETAILS {
                    created = created.with_configs(Some(configs));
                }
                created
            }
            Err(err) => CreatableTopicResult::default()
                .with_name(name)
                .with_error_code(err.code())
                .with_error_message(err.message().map(str_bytes))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    session.throttled(quota.throttle());
    CreateTopicsResponse::default().with_topics(topics)
}

/// The partitions a new topic asks for: its count, its explicit assignment's, or the
/// broker's default; what the controller mutation quota takes.
fn requested_partitions(broker: &Broker, topic: &CreatableTopic) -> i32 {
    if topic.num_partitions > 0 {
        topic.num_partitions
    } else if !topic.assignments.is_empty() {
        topic.assignments.len() as i32
    } else {
        broker.config.num_partitions
    }
}

/// What a created topic is: its id, partition count, replication factor and configs.
type Created = (uuid::Uuid, i32, i16, Vec<CreatableTopicConfigs>);

/// Replica lists of an explicit assignment: given with a partition count or a replication
/// factor it is refused, and partitions must be numbered 0, 1, ... in order.
fn explicit_assignment(topic: &CreatableTopic) -> Result<Option<Vec<Vec<i32>>>, BrokerError> {
    if topic.assignments.is_empty() {
        return Ok(None);
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(BrokerError::InvalidRequest(
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."
                .into(),
        ));
    }
    for (i, assignment) in topic.assignments.iter().enumerate() {
        if assignment.partition_index != i as i32 {
            return Err(BrokerError::InvalidReplicaAssignment(
                "Partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
    }
    Ok(Some(
        topic
            .assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    ))
}

/// Config overrides of a new topic; a null value is refused, as Kafka does.
fn topic_configs(topic: &CreatableTopic) -> Result<BTreeMap<String, String>, BrokerError> {
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let value = config.value.as_ref().ok_or_else(|| {
            BrokerError::InvalidConfig(format!(
                "Null value not supported for topic configs: {}",
                config.name.as_str()
            ))
        })?;
        configs.insert(config.name.to_string(), value.to_string());
    }
    Ok(configs)
}

fn described_configs(broker: &Broker, configs: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    configs
        .entries(&broker.config)
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(entry.name))
                .with_value(Some(str_bytes(entry.value)))
                .with_config_source(entry.source.code())
        })
        .collect()
}

async fn create(
    broker: &Broker,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<Created, BrokerError> {
    let spec = NewTopic {
        assignment: explicit_assignment(&topic)?,
        configs: topic_configs(&topic)?,
        partitions: (topic.num_partitions != -1).then_some(topic.num_partitions),
        replication_factor: (topic.replication_factor != -1).then_some(topic.replication_factor),
        name: topic.name.to_string(),
    };
    let config = &broker.config;
    TopicConfig(spec.configs.clone()).check_schema_registry(None, config)?;
    let created = broker
        .cluster
        .create_topic(
            spec,
            config.num_partitions,
            config.default_replication_factor,
            validate_only,
        )
        .await?;
    let configs = described_configs(broker, &created.configs);
    Ok((
        created.id,
        created.partitions,
        created.replication_factor,
        configs,
    ))
}

pub async fn delete_topics(
    broker: &Broker,
    session: &mut Session,
    request: DeleteTopicsRequest,
    version: i16,
    client_id: &str,
) -> DeleteTopicsResponse {
    let user = session.user_name().to_owned();
    let mut quota = broker.quotas.mutation_quota(
        &broker.cluster,
        Client {
            user: &user,
            client_id,
        },
        version >= STRICT_DELETE_TOPICS_VERSION,
    );
    let may_delete = |name: &str| {
        allowed(
            broker,
            session,
            Operation::Delete,
            ResourceType::Topic,
            name,
        )
    };
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= FIRST_DELETE_VERSION_WITH_IDS
    {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    // A topic named twice is refused once, and nothing of it is deleted, as Kafka does.
    let duplicates = duplicated(
        targets
            .iter()
            .filter_map(|(name, _)| name.as_deref().map(|n| n.as_str())),
    );
    let mut responses = Vec::new();
    for (name, id) in first_of_each(targets, |(name, id)| {
        name.as_ref()
            .map_or_else(|| id.to_string(), |n| n.to_string())
    }) {
        if name
            .as_ref()
            .is_some_and(|n| duplicates.contains(n.as_str()))
        {
            let err = BrokerError::InvalidRequest("Duplicate topic name.".into());
            responses.push(
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            );
            continue;
        }
        let topic = match &name {
            Some(name) if !may_delete(name) => Err(AuthError::TopicDenied.into()),
            Some(name) => broker
                .topics
                .get(name)
                .ok_or(BrokerError::UnknownTopicOrPartition),
            None => broker
                .topics
                .get_by_id(id)
                .ok_or(BrokerError::UnknownTopicId)
                .and_then(|t| {
                    if may_delete(&t.name) {
                        Ok(t)
                    } else {
                        Err(AuthError::TopicDenied.into())
                    }
                }),
        };
        let topic = topic.and_then(|t| fixed_internal(&t.name, "deleted").map(|_| t));
        let topic = match topic {
            Ok(t) => match quota.record(t.partitions.len() as f64).await {
                Ok(()) => Ok(t),
                Err(err) => Err(err.into()),
            },
            Err(err) => Err(err),
        };
        let result = match topic {
            Ok(t) => broker.cluster.delete_topic(&t.name).await.map(|_| t),
            Err(err) => Err(err),
        };
        responses.push(match result {
            Ok(topic) => DeletableTopicResult::default()
                .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
                .with_topic_id(topic.id),
            Err(err) => DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(id)
                .with_error_code(err.code())
                .with_error_message(err.message().map(str_bytes)),
        });
    }
    session.throttled(quota.throttle());
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    session: &mut Session,
    request: CreatePartitionsRequest,
    version: i16,
    client_id: &str,
) -> CreatePartitionsResponse {
    let user = session.user_name().to_owned();
    let mut quota = broker.quotas.mutation_quota(
        &broker.cluster,
        Client {
            user: &user,
            client_id,
        },
        version >= STRICT_CREATE_PARTITIONS_VERSION,
    );
    let duplicates = duplicated(request.topics.iter().map(|t| t.name.as_str()));
    let mut results = Vec::new();
    for topic in first_of_each(request.topics, |t| t.name.to_string()) {
        let result = if duplicates.contains(topic.name.as_str()) {
            Err(BrokerError::InvalidRequest(
                "Duplicate topic in request.".into(),
            ))
        } else if !allowed(
            broker,
            session,
            Operation::Alter,
            ResourceType::Topic,
            &topic.name,
        ) {
            Err(AuthError::TopicDenied.into())
        } else if let Err(err) = fixed_internal(&topic.name, "given more partitions") {
            Err(err)
        } else if let Err(err) = quota
            .record(f64::from(added_partitions(
                broker,
                &topic.name,
                topic.count,
            )))
            .await
        {
            Err(err.into())
        } else {
            let assignment = topic.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            broker
                .cluster
                .create_partitions(&topic.name, topic.count, assignment, request.validate_only)
                .await
        };
        let response = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match result {
            Ok(()) => response,
            Err(err) => response
                .with_error_code(err.code())
                .with_error_message(err.message().map(str_bytes)),
        });
    }
    session.throttled(quota.throttle());
    CreatePartitionsResponse::default().with_results(results)
}

/// The partitions a CreatePartitions adds to a topic (none when it does not grow it).
fn added_partitions(broker: &Broker, topic: &str, count: i32) -> i32 {
    let current = broker
        .topics
        .get(topic)
        .map_or(0, |t| t.partitions.len() as i32);
    (count - current).max(0)
}

/// Kafka 4.4 lets a client delete or grow `__consumer_offsets` (it then loses or moves every
/// group). samsa's coordinator holds the topic's partitions open and places groups by their
/// count, so it refuses both, with the code Kafka gives a Produce into the topic.
fn fixed_internal(name: &str, what: &str) -> Result<(), BrokerError> {
    if name == OFFSETS_TOPIC {
        return Err(BrokerError::InvalidTopic(format!(
            "The internal topic {OFFSETS_TOPIC} holds the group coordinator's state and cannot be {what}."
        )));
    }
    Ok(())
}

/// The items in order, keeping only the first of each key: a request naming a topic twice
/// gets one answer for it.
fn first_of_each<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> impl Iterator<Item = T> {
    let mut seen = HashSet::new();
    items.into_iter().filter(move |item| seen.insert(key(item)))
}

/// Names that occur more than once.
fn duplicated<'a>(names: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut seen = HashSet::new();
    names
        .filter(|n| !seen.insert(*n))
        .map(str::to_owned)
        .collect()
}
