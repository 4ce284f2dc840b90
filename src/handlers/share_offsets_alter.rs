//! AlterShareGroupOffsets (91) and DeleteShareGroupOffsets (92), as Kafka 4.4's `KafkaApis`
//! and `GroupCoordinatorService` serve them (what `kafka-share-groups --reset-offsets` and
//! `--delete-offsets` send).
//!
//! Both answer UNSUPPORTED_VERSION while `share.version` is 0. Altering needs READ on the
//! group, deleting DELETE on it (else GROUP_AUTHORIZATION_FAILED), and both READ on each
//! topic (else TOPIC_AUTHORIZATION_FAILED for it, listed first). The group must be empty
//! (NON_EMPTY_GROUP); a group's failure is the answer's top-level error, and the topics'
//! errors are then dropped, as Kafka drops them.
//!
//! Altering initializes each named share-partition's state anew with the share coordinator
//! (a new state epoch, the requested start offset, no batches); deleting deletes the state of
//! each named topic's share-partitions. The group's `ShareGroupStatePartitionMetadata`
//! records the steps (`group::share::offsets`). This broker's share-partition leader drops
//! what it holds of them, to read the new state when next fetched; a leader elsewhere finds
//! its state epoch fenced at its next write and reads it then.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as AlterPartition,
    AlterShareGroupOffsetsResponseTopic as AlterTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as DeleteTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::consumer_group::topic_image;
use super::off_event_loop;
use super::share_group::share_enabled;
use super::{allowed, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::share::offsets::{NothingToDelete, TopicOutcome};
use crate::group::share::TopicId;
use crate::share::kafka_words;
use crate::share::state::SharePartitionKey;

/// The words Kafka sends with a code here (`Errors.message()`), where ours differ.
fn words(code: ResponseError) -> Option<String> {
    use ResponseError as E;
    let text = match code {
        E::UnsupportedVersion => "The version of API is not supported.",
        E::GroupAuthorizationFailed => "Group authorization failed.",
        E::TopicAuthorizationFailed => "Topic authorization failed.",
        E::InvalidGroupId => "The configured groupId is invalid.",
        E::NonEmptyGroup => "The group is not empty.",
        other => kafka_words(other),
    };
    Some(text.to_owned())
}

/// A group's failure: the code, and Kafka's words for it (the coordinator's own where it
/// has them, as "Group g is not a share group.").
fn group_failure(err: &BrokerError) -> (i16, Option<StrBytes>) {
    let code = err.response_error();
    let message = match err {
        BrokerError::NonEmptyGroup
        | BrokerError::InvalidGroupId
        | BrokerError::UnsupportedVersion(_)
        | BrokerError::Auth(_) => words(code),
        _ => err.message(),
    };
    (err.code(), message.map(str_bytes))
}

/// Kafka's checks before the coordinator: `share.version`, `operation` on the group, and a
/// group id (each answered with the code's words alone).
fn refused(
    broker: &Broker,
    session: &Session,
    operation: Operation,
    group_id: &str,
) -> Option<BrokerError> {
    if !share_enabled(broker) {
        Some(BrokerError::UnsupportedVersion(String::new()))
    } else if !allowed(broker, session, operation, ResourceType::Group, group_id) {
        Some(AuthError::GroupDenied.into())
    } else if group_id.is_empty() {
        Some(BrokerError::InvalidGroupId)
    } else {
        None
    }
}

fn key(group_id: &str, topic_id: TopicId, partition: i32) -> SharePartitionKey {
    SharePartitionKey {
        group_id: group_id.to_owned(),
        topic_id,
        partition,
    }
}

pub async fn alter(
    broker: &Broker,
    session: &Session,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let failed = |err: BrokerError| {
        let (code, message) = group_failure(&err);
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    let group_id = req.group_id.to_string();
    if let Some(err) = refused(broker, session, Operation::Read, &group_id) {
        return failed(err);
    }
    let image = topic_image(broker);
    let id_of = |name: &str| image.get(name).map_or(Uuid::nil(), |m| m.id);
    let refused = |t: &alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic,
                   err: ResponseError| {
        AlterTopic::default()
            .with_topic_name(t.topic_name.clone())
            .with_topic_id(id_of(&t.topic_name))
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        AlterPartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(err.code())
                            .with_error_message(words(err).map(str_bytes))
                    })
                    .collect(),
            )
    };
    // Kafka answers unreadable and unknown topics before asking the coordinator.
    let mut responses = Vec::new();
    let mut asked = Vec::new();
    for t in &req.topics {
        let readable = allowed(
            broker,
            session,
            Operation::Read,
            ResourceType::Topic,
            &t.topic_name,
        );
        if !readable {
            responses.push(refused(t, ResponseError::TopicAuthorizationFailed));
        } else if !image.contains_key(t.topic_name.as_str()) {
            responses.push(refused(t, ResponseError::UnknownTopicOrPartition));
        } else {
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.start_offset))
                .collect();
            asked.push((t.topic_name.to_string(), partitions));
        }
    }
    let (groups, id, topics) = (broker.groups.clone(), group_id.to_string(), image.clone());
    let altered = off_event_loop(move || groups.share_alter_offsets(&id, &asked, &topics));
    let plan = match altered.await {
        Ok(plan) => plan,
        Err(err) => return failed(err),
    };
    if let Err(err) = plan.written.acknowledged().await {
        return failed(err);
    }
    let mut errors: BTreeMap<(TopicId, i32), BrokerError> = BTreeMap::new();
    let mut done: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
    let mut undone: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
    for (topic_id, partitions) in &plan.initialize {
        for (partition, start_offset) in partitions {
            let key = key(&group_id, *topic_id, *partition);
            let outcome = broker
                .share_state
                .initialize(&key, plan.state_epoch, *start_offset)
                .await;
            // What this broker's share-partition leader holds of it is stale now.
            broker.share_leader.forget(|k| *k == key);
            match outcome {
                Ok(()) => done.entry(*topic_id).or_default().insert(*partition),
                Err(err) => {
                    tracing::warn!(group = %group_id, topic = %topic_id, partition, "cannot initialize share-partition state to alter its offset: {err}");
                    errors.insert((*topic_id, *partition), err);
                    undone.entry(*topic_id).or_default().insert(*partition)
                }
            };
        }
    }
    for (partitions, ok) in [(done, true), (undone, false)] {
        if partitions.is_empty() {
            continue;
        }
        let (groups, id, topics) = (broker.groups.clone(), group_id.to_string(), image.clone());
        let written =
            off_event_loop(move || groups.share_initialized(&id, &partitions, ok, &topics));
        let recorded = match written.await {
            Ok(pending) => pending.acknowledged().await,
            Err(err) => Err(err),
        };
        if let Err(err) = recorded {
            return failed(err);
        }
    }
    responses.extend(plan.topics.iter().map(|t| alter_answer(t, &errors, &id_of)));
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

fn alter_answer(
    topic: &TopicOutcome,
    errors: &BTreeMap<(TopicId, i32), BrokerError>,
    id_of: &dyn Fn(&str) -> Uuid,
) -> AlterTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(p, exists)| {
            let answer = AlterPartition::default().with_partition_index(*p);
            let error = topic.id.and_then(|id| errors.get(&(id, *p)));
            match (exists, error) {
                (false, _) => {
                    let err = ResponseError::UnknownTopicOrPartition;
                    answer
                        .with_error_code(err.code())
                        .with_error_message(words(err).map(str_bytes))
                }
                (true, Some(err)) => answer
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
                (true, None) => answer,
            }
        })
        .collect();
    AlterTopic::default()
        .with_topic_name(TopicName(str_bytes(topic.name.clone())))
        .with_topic_id(id_of(&topic.name))
        .with_partitions(partitions)
}

pub async fn delete(
    broker: &Broker,
    session: &Session,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let failed = |err: BrokerError| {
        let (code, message) = group_failure(&err);
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    let group_id = req.group_id.to_string();
    if let Some(err) = refused(broker, session, Operation::Delete, &group_id) {
        return failed(err);
    }
    let topic_error = |name: &str, id: Uuid, err: ResponseError, message: Option<String>| {
        DeleteTopic::default()
            .with_topic_name(TopicName(str_bytes(name.to_owned())))
            .with_topic_id(id)
            .with_error_code(err.code())
            .with_error_message(message.map(str_bytes))
    };
    let mut responses = Vec::new();
    let mut asked = Vec::new();
    for t in &req.topics {
        if allowed(
            broker,
            session,
            Operation::Read,
            ResourceType::Topic,
            &t.topic_name,
        ) {
            asked.push(t.topic_name.to_string());
        } else {
            let err = ResponseError::TopicAuthorizationFailed;
            responses.push(topic_error(&t.topic_name, Uuid::nil(), err, words(err)));
        }
    }
    let image = topic_image(broker);
    let (groups, id) = (broker.groups.clone(), group_id.to_string());
    let deleting = off_event_loop(move || groups.share_delete_offsets(&id, &asked, &image));
    let plan = match deleting.await {
        Ok(plan) => plan,
        Err(err) => return failed(err),
    };
    if let Err(err) = plan.written.acknowledged().await {
        return failed(err);
    }
    let mut deleted = Vec::new();
    let mut undeleted = Vec::new();
    for (topic_id, name, partitions) in &plan.delete {
        let mut failure = None;
        for partition in partitions {
            let key = key(&group_id, *topic_id, *partition);
            let outcome = broker.share_state.delete(&key).await;
            broker.share_leader.forget(|k| *k == key);
            if let Err(err) = outcome {
                tracing::warn!(group = %group_id, topic = %topic_id, partition, "cannot delete share-partition state: {err}");
                failure.get_or_insert(err.response_error());
            }
        }
        match failure {
            // Kafka words a failed topic with its code's message.
            Some(err) => undeleted.push(topic_error(name, *topic_id, err, words(err))),
            None => deleted.push((*topic_id, name)),
        }
    }
    if !deleted.is_empty() {
        let ids: BTreeSet<TopicId> = deleted.iter().map(|(id, _)| *id).collect();
        let (groups, id) = (broker.groups.clone(), group_id.to_string());
        let written = off_event_loop(move || groups.share_offsets_deleted(&id, &ids));
        let recorded = match written.await {
            Ok(pending) => pending.acknowledged().await,
            Err(err) => Err(err),
        };
        if let Err(err) = recorded {
            return failed(err);
        }
    }
    // Kafka lists the deleted topics first, then those it refused, then those that failed.
    responses.extend(deleted.into_iter().map(|(id, name)| {
        DeleteTopic::default()
            .with_topic_name(TopicName(str_bytes(name.clone())))
            .with_topic_id(id)
    }));
    for (name, why) in &plan.refused {
        let err = ResponseError::UnknownTopicOrPartition;
        let message = match why {
            NothingToDelete::UnknownTopic => words(err),
            NothingToDelete::NoOffsets => Some("There is no offset information to delete.".into()),
        };
        responses.push(topic_error(name, Uuid::nil(), err, message));
    }
    responses.extend(undeleted);
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}
