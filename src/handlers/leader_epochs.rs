//! OffsetForLeaderEpoch: where a leader epoch ends in this log. Followers ask it after a
//! leader change to find where their log diverged; consumers (KIP-320) to check that their
//! position survived one.

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Session;
use super::{allowed, allowed_on_cluster};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // A follower (replica id set, v3+) needs CLUSTER_ACTION; a consumer DESCRIBE on the topic.
    let from_follower = request.replica_id.0 >= 0;
    let follower_denied =
        from_follower && !allowed_on_cluster(broker, session, Operation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| answer_topic(broker, session, topic, from_follower, follower_denied))
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn answer_topic(
    broker: &Broker,
    session: &Session,
    topic: OffsetForLeaderTopic,
    from_follower: bool,
    follower_denied: bool,
) -> OffsetForLeaderTopicResult {
    let name = topic.topic.as_str();
    let denied = if from_follower {
        follower_denied
    } else {
        !allowed(
            broker,
            session,
            Operation::Describe,
            ResourceType::Topic,
            name,
        )
    };
    let partitions = topic
        .partitions
        .iter()
        .map(|wanted| {
            let answer = if denied {
                Err(AuthError::TopicDenied.into())
            } else {
                broker
                    .topics
                    .partition(name, wanted.partition)
                    .and_then(|partition| {
                        partition.leader_end_offset_for_epoch(
                            wanted.current_leader_epoch,
                            wanted.leader_epoch,
                        )
                    })
            };
            epoch_end(wanted.partition, answer)
        })
        .collect();
    OffsetForLeaderTopicResult::default()
        .with_topic(topic.topic)
        .with_partitions(partitions)
}

/// `(-1, -1)`, Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET, when the log cannot say.
fn epoch_end(partition: i32, answer: Result<Option<(i32, i64)>, BrokerError>) -> EpochEndOffset {
    let base = EpochEndOffset::default()
        .with_partition(partition)
        .with_leader_epoch(-1)
        .with_end_offset(-1);
    match answer {
        Ok(Some((epoch, end_offset))) => base.with_leader_epoch(epoch).with_end_offset(end_offset),
        Ok(None) => base,
        Err(err) => base.with_error_code(err.code()),
    }
}
