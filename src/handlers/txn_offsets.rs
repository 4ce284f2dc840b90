//! TxnOffsetCommit: a transactional producer commits a consumer group's offsets inside its
//! transaction (consume-transform-produce), over [`crate::group::GroupCoordinator`]. The
//! offsets stay pending until the transaction ends.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponseTopic;
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use super::offsets::name_of;
use super::{allowed, off_event_loop};
use super::{partition_codes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::{CommittedOffset, TxnCommit};

/// From v4 a partition missing from the transaction is TRANSACTION_ABORTABLE, which the
/// client can recover from by aborting; older clients only know INVALID_TXN_STATE.
const FIRST_VERSION_WITH_ABORTABLE: i16 = 4;
/// From v5 the producer is a transaction.version 2 one, which sends no AddOffsetsToTxn:
/// the group's offsets partition is added to its transaction here (KIP-890 part 2).
const FIRST_VERSION_ADDING_GROUP: i16 = 5;
/// From v6 topics are named by id (as OffsetCommit v10).
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 6;

/// Needs WRITE on the transactional id, READ on the group (both checked first, in Kafka's
/// order, and answered on every partition) and READ on each topic. Answered once the offsets
/// partition's in-sync replicas hold the offsets.
pub async fn commit(
    broker: &Broker,
    session: &Session,
    mut req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    // A topic named by an id this broker does not know gets the empty name, which no topic
    // has: its partitions answer UNKNOWN_TOPIC_ID.
    let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
    if by_id {
        for topic in &mut req.topics {
            topic.name = TopicName(StrBytes::from_string(name_of(broker, topic.topic_id)));
        }
    }
    let denied = if !allowed(
        broker,
        session,
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(BrokerError::from(AuthError::TransactionalIdDenied))
    } else if !allowed(
        broker,
        session,
        Operation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        Some(BrokerError::from(AuthError::GroupDenied))
    } else {
        None
    };
    if let Some(err) = denied {
        return respond(&req, |_, _| err.code());
    }
    let now = now_ms();
    let max_metadata = broker.config.offset_metadata_max_bytes;
    let mut own: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let mut oversized = Vec::new();
    let mut valid = Vec::new();
    for topic in &req.topics {
        let topic_error = if by_id && topic.name.is_empty() {
            Some(BrokerError::UnknownTopicId)
        } else if !allowed(
            broker,
            session,
            Operation::Read,
            ResourceType::Topic,
            &topic.name,
        ) {
            Some(BrokerError::from(AuthError::TopicDenied))
        } else {
            None
        };
        let known = broker.topics.get(&topic.name);
        for p in &topic.partitions {
            let key = (topic.name.to_string(), p.partition_index);
            let metadata = p
                .committed_metadata
                .as_ref()
                .map_or(String::new(), |m| m.to_string());
            if let Some(err) = &topic_error {
                own.insert(key, err.code());
            } else if known
                .as_ref()
                .is_none_or(|t| t.partition(p.partition_index).is_none())
            {
                own.insert(key, BrokerError::UnknownTopicOrPartition.code());
            } else if metadata.len() > max_metadata {
                // Kafka finds these only after the group accepted the commit.
                oversized.push(key);
            } else {
                valid.push((
                    key.0,
                    key.1,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: Some(metadata),
                        commit_timestamp: now,
                        expire_timestamp: None,
                        record_offset: -1,
                    },
                ));
            }
        }
    }
    let group_code = if valid.is_empty() && oversized.is_empty() {
        None
    } else if let Some(code) = add_group(broker, &req, version).await {
        Some(code)
    } else {
        let groups = broker.groups.clone();
        let (group_id, transactional_id) =
            (req.group_id.to_string(), req.transactional_id.to_string());
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|i| i.to_string());
        let (producer_id, producer_epoch) = (req.producer_id.0, req.producer_epoch);
        let generation = req.generation_id_or_member_epoch;
        let pending = off_event_loop(move || {
            let commit = TxnCommit {
                group_id: &group_id,
                transactional_id: &transactional_id,
                producer_id,
                producer_epoch,
                member_id: &member_id,
                instance_id: instance_id.as_deref(),
                generation,
            };
            groups.commit_transactional(&commit, valid)
        })
        .await;
        let committed = match pending {
            Ok(pending) => pending.acknowledged().await,
            Err(err) => Err(err),
        };
        committed.err().map(|err| {
            if version >= FIRST_VERSION_WITH_ABORTABLE
                && err.response_error() == ResponseError::InvalidTxnState
            {
                BrokerError::TransactionAbortable.code()
            } else {
                err.code()
            }
        })
    };
    let too_large = BrokerError::OffsetMetadataTooLarge.code();
    respond(&req, |topic, partition| {
        let key = (topic.to_owned(), partition);
        if let Some(code) = own.get(&key) {
            *code
        } else if let Some(code) = group_code {
            code
        } else if oversized.contains(&key) {
            too_large
        } else {
            0
        }
    })
}

/// TxnOffsetCommit v5+: the group's offsets partition joins the producer's transaction, as
/// Kafka's group coordinator has it added before it writes; the refusal's code, if any, as
/// Kafka's coordinator answers it (a coordinator out of reach is COORDINATOR_NOT_AVAILABLE,
/// a fenced producer INVALID_PRODUCER_EPOCH).
async fn add_group(broker: &Broker, req: &TxnOffsetCommitRequest, version: i16) -> Option<i16> {
    if version < FIRST_VERSION_ADDING_GROUP {
        return None;
    }
    let offsets_partition = (
        OFFSETS_TOPIC.to_owned(),
        broker.groups.partition_of(&req.group_id),
    );
    let added = broker
        .txns
        .add_implicitly(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            &[offsets_partition],
        )
        .await;
    let code = match added.err()?.response_error() {
        ResponseError::NetworkException
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator => ResponseError::CoordinatorNotAvailable,
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        other => other,
    };
    Some(code.code())
}

/// One result per partition asked for, in the request's order, each topic answered by the
/// id it was asked by (v6) and the name before.
fn respond(
    req: &TxnOffsetCommitRequest,
    code: impl FnMut(&str, i32) -> i16,
) -> TxnOffsetCommitResponse {
    let asked = req.topics.iter().map(|t| {
        let partitions = t.partitions.iter().map(|p| p.partition_index);
        (t.name.clone(), partitions)
    });
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = partition_codes::answer(asked, code);
    for (answer, asked) in topics.iter_mut().zip(&req.topics) {
        answer.topic_id = asked.topic_id;
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}
