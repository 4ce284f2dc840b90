//! AlterPartitionReassignments and ListPartitionReassignments: moving a partition's replicas
//! to other brokers while it stays online (see `samsa_metadata`'s reassignment module).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::Session;
use super::{allowed_on_cluster, str_bytes};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// v1 lets a reassignment change the replication factor only when asked to (KIP-860).
const FIRST_VERSION_WITH_FACTOR_CHECK: i16 = 1;

pub async fn alter(
    broker: &Broker,
    session: &Session,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_factor_change =
        version < FIRST_VERSION_WITH_FACTOR_CHECK || request.allow_replication_factor_change;
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(
            allow_factor_change && version >= FIRST_VERSION_WITH_FACTOR_CHECK,
        );
    if !allowed_on_cluster(broker, session, Operation::Alter) {
        let err = BrokerError::from(AuthError::ClusterDenied);
        return response.with_error_code(err.code());
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target = p
                .replicas
                .map(|r| r.into_iter().map(|b| b.0).collect::<Vec<_>>());
            let result = match checked(
                broker,
                &topic.name,
                p.partition_index,
                target.as_deref(),
                allow_factor_change,
            ) {
                Ok(()) => apply(broker, &topic.name, p.partition_index, target).await,
                Err(err) => Err(err),
            };
            let answer =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match result {
                Ok(()) => answer.with_error_message(None),
                Err(err) => answer
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            });
        }
        topics.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    response.with_error_message(None).with_responses(topics)
}

/// A partition as a reassignment sees it: its replicas before any reassignment running,
/// and whether one is.
struct Current {
    replicas: Vec<i32>,
    reassigning: bool,
}

/// Kafka's checks, in its order and with its messages: the partition, the target's
/// replicas, then (v1) a change of the replication factor.
fn checked(
    broker: &Broker,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_factor_change: bool,
) -> Result<(), BrokerError> {
    let current = current(broker, topic, partition)?;
    let Some(target) = target else {
        return match current.reassigning {
            true => Ok(()),
            false => Err(BrokerError::NoReassignmentInProgress),
        };
    };
    let invalid = |why: String| Err(BrokerError::InvalidReplicaAssignment(why));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    for (i, replica) in target.iter().enumerate() {
        if target[..i].contains(replica) {
            return invalid(format!(
                "The manual partition assignment includes the broker {replica} more than once."
            ));
        }
        if !registered(broker, *replica) {
            return invalid(format!(
                "The manual partition assignment includes broker {replica}, but no such broker is registered."
            ));
        }
    }
    if !allow_factor_change && target.len() != current.replicas.len() {
        return Err(BrokerError::InvalidReplicationFactor(format!(
            "The replication factor is changed from {} to {} but allowReplicationFactorChange is false.",
            current.replicas.len(),
            target.len()
        )));
    }
    Ok(())
}

fn current(broker: &Broker, topic: &str, partition: i32) -> Result<Current, BrokerError> {
    let no_topic =
        || BrokerError::NoSuchPartition(format!("Unable to find a topic named {topic}."));
    let no_partition =
        || BrokerError::NoSuchPartition(format!("Unable to find partition {topic}:{partition}."));
    let metadata = broker.cluster.metadata();
    let record = metadata.topics.get(topic).ok_or_else(no_topic)?;
    let p = usize::try_from(partition)
        .ok()
        .and_then(|i| record.partitions.get(i))
        .ok_or_else(no_partition)?;
    Ok(Current {
        replicas: p.original_replicas(),
        reassigning: !p.target_replicas.is_empty(),
    })
}

fn registered(broker: &Broker, id: i32) -> bool {
    broker.cluster.metadata().brokers.contains_key(&id)
}

/// Starts (or cancels) a checked reassignment.
async fn apply(
    broker: &Broker,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<(), BrokerError> {
    broker
        .cluster
        .reassign(topic, partition as u32, target)
        .await
}

pub fn list(
    broker: &Broker,
    session: &Session,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let response = ListPartitionReassignmentsResponse::default();
    if !allowed_on_cluster(broker, session, Operation::Describe) {
        let err = BrokerError::from(AuthError::ClusterDenied);
        return response.with_error_code(err.code());
    }
    let metadata = broker.cluster.metadata();
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics = Vec::new();
    for topic in metadata.topics.values() {
        let asked = match &wanted {
            None => None,
            Some(wanted) => match wanted.iter().find(|(name, _)| name == &topic.name) {
                Some((_, partitions)) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(index, p)| {
                !p.target_replicas.is_empty() && asked.is_none_or(|a| a.contains(&(*index as i32)))
            })
            .map(|(index, p)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(index as i32)
                    .with_replicas(ids(p.replicas.clone()))
                    .with_adding_replicas(ids(p.adding_replicas.clone()))
                    .with_removing_replicas(ids(p.removing_replicas()))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(topic.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    response.with_error_message(None).with_topics(topics)
}
