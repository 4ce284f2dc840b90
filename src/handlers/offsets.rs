//! Committed offsets: OffsetCommit, OffsetFetch (one group, or several from v8) and
//! OffsetDelete, over [`crate::group::GroupCoordinator`].

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::{allowed, built_from, off_event_loop, str_bytes};
use super::{partition_codes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::group::{CommittedOffset, FetchedOffset};

fn may_group(broker: &Broker, session: &Session, op: Operation, group: &str) -> bool {
    allowed(broker, session, op, ResourceType::Group, group)
}

fn may_topic(broker: &Broker, session: &Session, op: Operation, topic: &str) -> bool {
    allowed(broker, session, op, ResourceType::Topic, topic)
}

/// OffsetFetch v8 asks for several groups at once.
const FIRST_MULTI_GROUP_FETCH: i16 = 8;
/// From v10 OffsetCommit and OffsetFetch name topics by id only (KIP-848).
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 10;

/// The name of the topic with `id`, or "" for an id this broker does not know (no topic
/// has the empty name, so it can stand for "unknown" in the keys below).
pub(super) fn name_of(broker: &Broker, id: Uuid) -> String {
    broker
        .topics
        .get_by_id(id)
        .map_or(String::new(), |t| t.name.clone())
}

/// The id of the topic named `name`, or the zero id if there is none.
fn id_of(broker: &Broker, name: &str) -> Uuid {
    broker.topics.get(name).map_or(Uuid::nil(), |t| t.id)
}

fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .topics
        .get(topic)
        .is_some_and(|t| t.partition(partition).is_some())
}

/// Committing needs READ on the group and on each topic, as in Kafka. The commit is answered
/// once the offsets partition's in-sync replicas hold it.
pub async fn commit(
    broker: &Broker,
    session: &Session,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_denied = !may_group(broker, session, Operation::Read, &req.group_id);
    let now = now_ms();
    // v2-4 let the client choose how long the offsets live; -1 means the broker's retention.
    let expire_timestamp =
        (version <= 4 && req.retention_time_ms >= 0).then(|| now + req.retention_time_ms);
    let max_metadata = broker.config.offset_metadata_max_bytes;
    let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
    let names: Vec<String> = req
        .topics
        .iter()
        .map(|t| match by_id {
            true => name_of(broker, t.topic_id),
            false => t.name.to_string(),
        })
        .collect();
    let mut errors: BTreeMap<(String, i32), BrokerError> = BTreeMap::new();
    let mut valid = Vec::new();
    for (topic, name) in req.topics.iter().zip(&names) {
        for p in &topic.partitions {
            let key = (name.clone(), p.partition_index);
            let metadata = p
                .committed_metadata
                .as_ref()
                .map_or(String::new(), |m| m.to_string());
            if group_denied {
                errors.insert(key, AuthError::GroupDenied.into());
            } else if by_id && name.is_empty() {
                errors.insert(key, BrokerError::UnknownTopicId);
            } else if !may_topic(broker, session, Operation::Read, name) {
                errors.insert(key, AuthError::TopicDenied.into());
            } else if !partition_exists(broker, name, p.partition_index) {
                errors.insert(key, BrokerError::UnknownTopicOrPartition);
            } else if metadata.len() > max_metadata {
                errors.insert(key, BrokerError::OffsetMetadataTooLarge);
            } else {
                valid.push((
                    key.0,
                    key.1,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: Some(metadata),
                        commit_timestamp: now,
                        expire_timestamp,
                        record_offset: -1,
                    },
                ));
            }
        }
    }
    let group_error = if valid.is_empty() {
        None
    } else {
        let groups = broker.groups.clone();
        let (group_id, member_id) = (req.group_id.to_string(), req.member_id.to_string());
        let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
        let generation = req.generation_id_or_member_epoch;
        let committed = off_event_loop(move || {
            groups.commit(
                &group_id,
                &member_id,
                instance_id.as_deref(),
                generation,
                valid,
                version,
            )
        })
        .await;
        match committed {
            Ok(pending) => pending.acknowledged().await.err(),
            Err(err) => Some(err),
        }
    };
    let asked = req.topics.iter().zip(names).map(|(t, name)| {
        let partitions = t.partitions.iter().map(|p| p.partition_index);
        (TopicName(str_bytes(name)), partitions)
    });
    let mut topics: Vec<OffsetCommitResponseTopic> =
        partition_codes::answer(asked, |topic, partition| {
            let own = errors.get(&(topic.to_owned(), partition));
            own.or(group_error.as_ref()).map_or(0, |e| e.code())
        });
    // Answered by the id each topic was asked by (v10), the name before.
    for (answer, asked) in topics.iter_mut().zip(&req.topics) {
        answer.topic_id = asked.topic_id;
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// The partitions asked for, by topic; `None` asks for everything the group committed.
type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// One partition's answer to OffsetFetch, before it takes a version's shape: topics at the
/// top of the response (v1-7), or within each group (v8+).
struct PartitionOffset {
    index: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error_code: i16,
}

impl PartitionOffset {
    /// No offset to tell of: -1, with the reason if there is one.
    fn none(index: i32, error_code: i16) -> PartitionOffset {
        PartitionOffset {
            index,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error_code,
        }
    }

    fn committed(fetched: FetchedOffset) -> PartitionOffset {
        let code = if fetched.unstable {
            BrokerError::UnstableOffsetCommit.code()
        } else {
            0
        };
        match fetched.offset {
            Some(o) => PartitionOffset {
                index: fetched.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.unwrap_or_default(),
                error_code: code,
            },
            None => PartitionOffset::none(fetched.partition, code),
        }
    }
}

/// A topic's partitions in an OffsetFetch answer.
struct TopicOffsets {
    name: String,
    /// Set from v10, which answers by id only.
    id: Uuid,
    partitions: Vec<PartitionOffset>,
}

// v1-4 have no leader epoch: their encoding leaves it out.
built_from! {
    PartitionOffset => OffsetFetchResponsePartition, OffsetFetchResponsePartitions;
    |p| {
        with_partition_index(p.index),
        with_committed_offset(p.offset),
        with_committed_leader_epoch(p.leader_epoch),
        with_metadata(Some(str_bytes(p.metadata))),
        with_error_code(p.error_code),
    }
}

built_from! {
    TopicOffsets => OffsetFetchResponseTopic;
    |t| {
        with_name(TopicName(str_bytes(t.name))),
        with_partitions(t.partitions.into_iter().map(Into::into).collect()),
    }
}

built_from! {
    TopicOffsets => OffsetFetchResponseTopics;
    |t| {
        with_name(TopicName(str_bytes(t.name))),
        with_topic_id(t.id),
        with_partitions(t.partitions.into_iter().map(Into::into).collect()),
    }
}

/// Every partition of `topics` answered with no offset and `code`.
fn without_offsets(topics: Vec<(String, Vec<i32>)>, code: i16) -> Vec<TopicOffsets> {
    topics
        .into_iter()
        .map(|(name, partitions)| TopicOffsets {
            name,
            id: Uuid::nil(),
            partitions: partitions
                .into_iter()
                .map(|p| PartitionOffset::none(p, code))
                .collect(),
        })
        .collect()
}

/// A group's committed offsets by topic, topics in the order asked for (as Kafka
/// answers), or by name when all are asked for. Needs DESCRIBE on the group; topics the
/// client may not describe are left out of "everything", and named ones come first,
/// answered TOPIC_AUTHORIZATION_FAILED.
fn fetch_group(
    broker: &Broker,
    session: &Session,
    group_id: &str,
    wanted: Wanted,
    require_stable: bool,
    member: Option<(Option<&str>, i32)>,
) -> Result<Vec<TopicOffsets>, BrokerError> {
    if !may_group(broker, session, Operation::Describe, group_id) {
        return Err(AuthError::GroupDenied.into());
    }
    let may_describe = |topic: &str| may_topic(broker, session, Operation::Describe, topic);
    let (wanted, denied) = match wanted {
        Some(topics) => {
            let (ok, denied): (Vec<_>, Vec<_>) =
                topics.into_iter().partition(|(t, _)| may_describe(t));
            (Some(ok), denied)
        }
        None => (None, Vec::new()),
    };
    let fetched = if wanted.as_ref().is_some_and(|w| w.is_empty()) {
        Vec::new()
    } else {
        broker
            .groups
            .fetch(group_id, wanted, require_stable, member)?
    };
    let mut committed: Vec<TopicOffsets> = Vec::new();
    for entry in fetched.into_iter().filter(|e| may_describe(&e.topic)) {
        let at = match committed.iter().position(|t| t.name == entry.topic) {
            Some(at) => at,
            None => {
                committed.push(TopicOffsets {
                    name: entry.topic.clone(),
                    id: Uuid::nil(),
                    partitions: Vec::new(),
                });
                committed.len() - 1
            }
        };
        committed[at]
            .partitions
            .push(PartitionOffset::committed(entry));
    }
    let topic_denied = BrokerError::from(AuthError::TopicDenied).code();
    let mut topics = without_offsets(denied, topic_denied);
    topics.extend(committed);
    Ok(topics)
}

/// The answers in the types of the version asked for.
fn shaped<T: From<TopicOffsets>>(topics: Vec<TopicOffsets>) -> Vec<T> {
    topics.into_iter().map(T::from).collect()
}

/// OffsetFetch v9 names the member and its epoch (KIP-848).
const FIRST_VERSION_WITH_MEMBER: i16 = 9;

/// OffsetFetch v7 lets consumers ask to be told about offsets still in a transaction.
const FIRST_VERSION_WITH_REQUIRE_STABLE: i16 = 7;

pub fn fetch(
    broker: &Broker,
    session: &Session,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let require_stable = version >= FIRST_VERSION_WITH_REQUIRE_STABLE && req.require_stable;
    if version >= FIRST_MULTI_GROUP_FETCH {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
                let mut unknown_ids = Vec::new();
                let wanted = g.topics.map(|topics| {
                    let mut wanted = Vec::new();
                    for t in topics {
                        let name = match by_id {
                            true => name_of(broker, t.topic_id),
                            false => t.name.to_string(),
                        };
                        if name.is_empty() && by_id {
                            unknown_ids.push((t.topic_id, t.partition_indexes));
                        } else {
                            wanted.push((name, t.partition_indexes));
                        }
                    }
                    wanted
                });
                let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                // v9 names the member, whose epoch a consumer group checks (KIP-848).
                let member = (version >= FIRST_VERSION_WITH_MEMBER)
                    .then_some((g.member_id.as_deref(), g.member_epoch));
                match fetch_group(broker, session, &g.group_id, wanted, require_stable, member) {
                    Ok(mut topics) if by_id => {
                        for t in &mut topics {
                            t.id = id_of(broker, &t.name);
                        }
                        // Committed offsets of topics deleted since are not named by id.
                        topics.retain(|t| !t.id.is_nil());
                        let unknown_id = BrokerError::UnknownTopicId.code();
                        topics.extend(unknown_ids.into_iter().map(|(id, partitions)| {
                            let mut answer =
                                without_offsets(vec![(String::new(), partitions)], unknown_id);
                            answer[0].id = id;
                            answer.remove(0)
                        }));
                        base.with_topics(shaped(topics))
                    }
                    Ok(topics) => base.with_topics(shaped(topics)),
                    Err(err) => base.with_error_code(err.code()),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let response = OffsetFetchResponse::default();
    match fetch_group(
        broker,
        session,
        &req.group_id,
        wanted.clone(),
        require_stable,
        None,
    ) {
        Ok(topics) => response.with_topics(shaped(topics)),
        // v2 added a top-level error; v1 can only report it on every partition asked for.
        Err(err) if version >= 2 => response.with_error_code(err.code()),
        Err(err) => response.with_topics(shaped(without_offsets(
            wanted.unwrap_or_default(),
            err.code(),
        ))),
    }
}

/// Deleting offsets needs DELETE on the group and READ on each topic, as in Kafka.
pub async fn delete(
    broker: &Broker,
    session: &Session,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !may_group(broker, session, Operation::Delete, &req.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(BrokerError::from(AuthError::GroupDenied).code());
    }
    let mut denied = Vec::new();
    let mut unknown = Vec::new();
    let mut wanted = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            let key = (topic.name.to_string(), p.partition_index);
            if !may_topic(broker, session, Operation::Read, &key.0) {
                denied.push(key);
            } else if partition_exists(broker, &key.0, key.1) {
                wanted.push(key);
            } else {
                unknown.push(key);
            }
        }
    }
    let (groups, group_id) = (broker.groups.clone(), req.group_id.to_string());
    let results = match off_event_loop(move || groups.delete_offsets(&group_id, wanted)).await {
        Ok(results) => results,
        Err(err) => return OffsetDeleteResponse::default().with_error_code(err.code()),
    };
    let code_of = |topic: &str, partition: i32| -> i16 {
        if denied.iter().any(|(t, p)| t == topic && *p == partition) {
            return BrokerError::from(AuthError::TopicDenied).code();
        }
        if unknown.iter().any(|(t, p)| t == topic && *p == partition) {
            return BrokerError::UnknownTopicOrPartition.code();
        }
        results
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .and_then(|(_, _, r)| r.as_ref().err())
            .map_or(0, |e| e.code())
    };
    let asked = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| p.partition_index);
        (t.name.clone(), partitions)
    });
    OffsetDeleteResponse::default().with_topics(partition_codes::answer(asked, code_of))
}
