//! DescribeTopicPartitions (KIP-966): the partitions of topics, a page at a time, with the
//! eligible leader replicas. `kafka-topics --describe` uses it from Kafka 3.8 on, so a
//! topic of many partitions is described without one huge Metadata answer. Mirrors Kafka's
//! `DescribeTopicPartitionsRequestHandler`.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use uuid::Uuid;

use super::is_internal_topic;
use super::metadata::{PartitionView, TopicView};
use super::{allowed, authorized_operations, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;

/// Kafka's `max.request.partition.size.limit`: no page holds more partitions than this,
/// whatever the client asks.
const MAX_PARTITIONS_PER_PAGE: i32 = 2000;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let cursor = request.cursor.clone();
    let cursor_topic = cursor.as_ref().map_or("", |c| c.topic_name.as_str());
    if cursor.as_ref().is_some_and(|c| c.partition_index < 0) {
        return invalid(&request);
    }
    let cluster = broker.cluster.published();
    let everything = request.topics.is_empty();
    // Sorted by name, from the cursor's topic on.
    let names: BTreeSet<String> = if everything {
        cluster.topics.keys().cloned().collect()
    } else {
        request.topics.iter().map(|t| t.name.to_string()).collect()
    };
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.as_str() >= cursor_topic)
        .collect();
    // A cursor must point into the topics asked for.
    if cursor.is_some() && !names.iter().any(|n| n == cursor_topic) {
        return invalid(&request);
    }
    let describe = |name: &str| -> bool {
        allowed(
            broker,
            session,
            Operation::Describe,
            ResourceType::Topic,
            name,
        )
    };
    let operations =
        |name: &str| authorized_operations(broker, session, true, ResourceType::Topic, name);
    let mut denied = Vec::new();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut room = request
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_PAGE);
    for name in names {
        if !describe(&name) {
            // Listing everything leaves out what may not be seen; a topic asked for by name
            // is refused, whether it exists or not.
            if !everything {
                denied.push(failed(&name, AuthError::TopicDenied.into()));
            }
            continue;
        }
        if room == 0 {
            // The page is full: the next one starts with this topic.
            next_cursor = Some(cursor_at(&name, 0));
            break;
        }
        let Some(topic) = cluster.topics.get(&name) else {
            if !everything {
                let unknown = failed(&name, BrokerError::UnknownTopicOrPartition);
                topics.push(unknown.with_topic_authorized_operations(operations(&name)));
            }
            continue;
        };
        let view = TopicView::in_cluster(topic, &cluster);
        let first = if name == cursor_topic {
            cursor.as_ref().map_or(0, |c| c.partition_index)
        } else {
            0
        };
        let partitions: Vec<_> = view
            .partitions
            .iter()
            .skip(first.max(0) as usize)
            .take(room as usize)
            .map(partition)
            .collect();
        room -= partitions.len() as i32;
        let next = first + partitions.len() as i32;
        if (next as usize) < view.partitions.len() {
            next_cursor = Some(cursor_at(&name, next));
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(view.name.clone()))))
                .with_topic_id(view.id)
                .with_is_internal(is_internal_topic(&view.name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations(&view.name)),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    topics.extend(denied);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// A bad cursor: the API has no top-level error, so every topic asked for carries it.
fn invalid(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| failed(&t.name, BrokerError::InvalidRequest(String::new())))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic.to_owned())))
        .with_partition_index(partition)
}

fn failed(name: &str, err: BrokerError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name.to_owned()))))
        .with_topic_id(Uuid::nil())
        .with_error_code(err.code())
}

fn partition(p: &PartitionView) -> DescribeTopicPartitionsResponsePartition {
    let ids = |ids: &[i32]| Some(ids.iter().copied().map(BrokerId).collect());
    DescribeTopicPartitionsResponsePartition::from(p)
        .with_eligible_leader_replicas(ids(&p.elr))
        .with_last_known_elr(ids(&p.last_known_elr))
}
