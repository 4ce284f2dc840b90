//! Produce: appends each partition's record batch to its log, as it arrived or, where the
//! topic's `compression.type` names another codec, recompressed; with acks=all, answers once
//! the in-sync replicas hold it (the high watermark passed it).

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_storage::{StorageError, TargetCompression};

use super::cluster::missing_topic;
use super::current_leader;
use super::record_errors;
use super::Session;
use super::{allowed, is_internal_topic};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::topics::{Partition, Topic};
use crate::txn::TxnError;

/// Produce v13 names topics by id instead of by name (KIP-516).
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
/// From Produce v11 clients know TRANSACTION_ABORTABLE (KIP-890), which Kafka sends for a
/// transactional batch whose partition is not in the transaction; older ones get
/// INVALID_TXN_STATE.
const FIRST_VERSION_WITH_ABORTABLE: i16 = 11;
/// From Produce v10 a NOT_LEADER_OR_FOLLOWER answer names the current leader and its
/// endpoint (KIP-951).
const FIRST_VERSION_WITH_CURRENT_LEADER: i16 = 10;

/// An acks=all write appended to a partition's log, not yet known replicated.
struct Unreplicated {
    topic: usize,
    partition: usize,
    log: Arc<Partition>,
    /// The high watermark that covers the write.
    end_offset: i64,
}

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> ProduceResponse {
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let (mut response, unreplicated) = append_all(broker, session, request, version).await;
    let deadline = tokio::time::Instant::now() + timeout;
    for write in unreplicated {
        if let Err(err) = write
            .log
            .wait_until_replicated(write.end_offset, deadline)
            .await
        {
            let answer = &mut response.responses[write.topic].partition_responses[write.partition];
            answer.error_code = err.code();
            if version >= FIRST_VERSION_WITH_CURRENT_LEADER
                && matches!(err, BrokerError::NotLeaderOrFollower)
            {
                answer.current_leader = current_leader::of(&write.log);
            }
        }
    }
    if version >= FIRST_VERSION_WITH_CURRENT_LEADER {
        let leaders = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .map(|p| p.current_leader.leader_id);
        response.node_endpoints = current_leader::node_endpoints(broker, leaders);
    }
    response
}

async fn append_all(
    broker: &Broker,
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> (ProduceResponse, Vec<Unreplicated>) {
    let acks_valid = matches!(request.acks, -1..=1);
    // A transactional produce needs WRITE on its transactional id before anything else.
    let transaction_denied = request.transactional_id.as_ref().is_some_and(|id| {
        !allowed(
            broker,
            session,
            Operation::Write,
            ResourceType::TransactionalId,
            id,
        )
    });
    let transactional_id = request.transactional_id.as_deref().map(|id| id.as_str());
    let mut unreplicated = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (topic_index, topic_data) in request.topic_data.into_iter().enumerate() {
        let may_write =
            |name: &str| allowed(broker, session, Operation::Write, ResourceType::Topic, name);
        let topic = if transaction_denied {
            Err(AuthError::TransactionalIdDenied.into())
        } else if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            broker
                .topics
                .get_by_id(topic_data.topic_id)
                .ok_or_else(|| {
                    missing_topic(
                        broker,
                        None,
                        Some(topic_data.topic_id),
                        BrokerError::UnknownTopicId,
                    )
                })
                .and_then(|t| {
                    if may_write(&t.name) {
                        Ok(t)
                    } else {
                        Err(AuthError::TopicDenied.into())
                    }
                })
        } else if !may_write(&topic_data.name) {
            // Checked before existence, so a client cannot probe for topics it may not see.
            Err(AuthError::TopicDenied.into())
        } else {
            broker.topics.get(&topic_data.name).ok_or_else(|| {
                missing_topic(
                    broker,
                    Some(&topic_data.name),
                    None,
                    BrokerError::UnknownTopicOrPartition,
                )
            })
        };
        let topic = if acks_valid {
            topic.and_then(not_internal)
        } else {
            Err(BrokerError::InvalidRequiredAcks(request.acks))
        };
        let (response, waits) = produce_topic(
            broker,
            topic_data,
            topic,
            request.acks,
            transactional_id,
            version,
        )
        .await;
        unreplicated.extend(
            waits
                .into_iter()
                .map(|(partition, log, end_offset)| Unreplicated {
                    topic: topic_index,
                    partition,
                    log,
                    end_offset,
                }),
        );
        responses.push(response);
    }
    (
        ProduceResponse::default().with_responses(responses),
        unreplicated,
    )
}

/// Only the coordinators write to `__consumer_offsets` and `__transaction_state`; Kafka
/// refuses clients with INVALID_TOPIC_EXCEPTION (its admin client id aside, which samsa
/// does not honour).
fn not_internal(topic: Arc<Topic>) -> Result<Arc<Topic>, BrokerError> {
    if is_internal_topic(&topic.name) {
        return Err(BrokerError::InvalidTopic(format!(
            "Cannot append to internal topic {}",
            topic.name
        )));
    }
    Ok(topic)
}

async fn produce_topic(
    broker: &Broker,
    data: TopicProduceData,
    topic: Result<Arc<Topic>, BrokerError>,
    acks: i16,
    transactional_id: Option<&str>,
    version: i16,
) -> (TopicProduceResponse, Vec<(usize, Arc<Partition>, i64)>) {
    let mut waits = Vec::new();
    let mut partitions = Vec::with_capacity(data.partition_data.len());
    for (position, partition) in data.partition_data.into_iter().enumerate() {
        let index = partition.index;
        let appended = match &topic {
            Ok(topic) => Ok(append(broker, topic, partition, acks, transactional_id).await),
            Err(err) => Err(err),
        };
        let response = match appended {
            Ok(Ok((response, wait))) => {
                if let Some((log, end_offset)) = wait {
                    waits.push((position, log, end_offset));
                }
                response
            }
            Ok(Err(BrokerError::Txn(TxnError::NotInTransaction)))
                if version >= FIRST_VERSION_WITH_ABORTABLE =>
            {
                failed(index, &BrokerError::TransactionAbortable)
            }
            Ok(Err(err)) => {
                tracing::debug!(partition = index, "produce rejected: {err}");
                let partition = topic.as_ref().ok().and_then(|t| t.partition(index));
                let mut answer = failed(index, &err);
                if let (Some(partition), true) = (partition, err.in_append()) {
                    // Kafka reports the log start with an error the log itself raised.
                    answer.log_start_offset = partition.offsets().map_or(-1, |o| o.log_start);
                }
                if let BrokerError::Storage(StorageError::RecordsRefused(refused)) = &err {
                    let name = topic.as_ref().map_or("", |t| t.name.as_str());
                    record_errors::describe(&mut answer, name, index, refused);
                }
                let moved = matches!(err, BrokerError::NotLeaderOrFollower)
                    && version >= FIRST_VERSION_WITH_CURRENT_LEADER;
                match partition {
                    Some(partition) if moved => {
                        answer.with_current_leader(current_leader::of(partition))
                    }
                    _ => answer,
                }
            }
            Err(err) => failed(index, err),
        };
        partitions.push(response);
    }
    let response = TopicProduceResponse::default()
        .with_name(data.name)
        .with_topic_id(data.topic_id)
        .with_partition_responses(partitions);
    (response, waits)
}

/// An acks=all append still to be replicated: its partition and the offset to wait for.
type PendingReplication = (Arc<Partition>, i64);

async fn append(
    broker: &Broker,
    topic: &Topic,
    data: PartitionProduceData,
    acks: i16,
    transactional_id: Option<&str>,
) -> Result<(PartitionProduceResponse, Option<PendingReplication>), BrokerError> {
    let partition = topic
        .partition(data.index)
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    partition.check_writable(acks == -1)?;
    let records = data.records.unwrap_or_default();
    let header = exactly_one_batch(&records)?;
    let bytes = records.len();
    // `producer` (the default) keeps the batch as it came; anything else may rewrite it.
    let records = match topic.configs.compression(&broker.config) {
        Some(target) if target.rewrites(&header) => {
            let max_message_bytes = topic.configs.max_message_bytes(&broker.config);
            recompressed(records, target, max_message_bytes).await?
        }
        _ => records,
    };
    let info = if header.is_transactional() {
        let id = transactional_id.ok_or_else(|| {
            BrokerError::InvalidRecord("transactional batches need a transactional id".into())
        })?;
        broker.txns.append_in_transaction(
            id,
            header.producer_id,
            header.producer_epoch,
            (&topic.name, data.index),
            || partition.append(records, now_ms()),
        )?
    } else {
        partition.append(records, now_ms())?
    };
    // A retried batch that was already written is acknowledged again, not counted again.
    if !info.duplicate {
        broker
            .metrics
            .record_append(&topic.name, bytes, info.record_count);
    }
    // Kafka answers a retried batch with the original batch's max timestamp as its log
    // append time, whatever the topic's timestamp type.
    let log_append_time = if info.duplicate {
        info.max_timestamp
    } else {
        info.log_append_time.unwrap_or(-1)
    };
    let response = PartitionProduceResponse::default()
        .with_index(data.index)
        .with_base_offset(info.base_offset)
        .with_log_append_time_ms(log_append_time)
        .with_log_start_offset(info.log_start_offset);
    // A retried batch too: the original may not be replicated yet.
    let wait = (acks == -1).then(|| (partition.clone(), info.last_offset + 1));
    Ok((response, wait))
}

/// The batch in the topic's codec, rewritten on a blocking thread: decompressing and
/// compressing a large batch takes milliseconds the event loop must not spend.
async fn recompressed(
    records: Bytes,
    target: TargetCompression,
    max_message_bytes: usize,
) -> Result<Bytes, BrokerError> {
    let rewritten = tokio::task::spawn_blocking(move || {
        samsa_storage::recompress(&records, target, max_message_bytes)
            .map(|rewritten| rewritten.unwrap_or(records))
    })
    .await
    .map_err(|e| BrokerError::Storage(StorageError::Io(std::io::Error::other(e))))?;
    Ok(rewritten?)
}

/// A partition's refusal. As Kafka's, it carries no message: Kafka sends one only with the
/// records it names (KIP-467, see `record_errors`).
fn failed(index: i32, err: &BrokerError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Since Produce v3 a partition's data must be exactly one v2 batch, as Kafka enforces;
/// the batch's contents are validated by the log.
fn exactly_one_batch(records: &[u8]) -> Result<samsa_storage::BatchHeader, BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::InvalidRecord(
            "Produce requests must have at least one record batch per partition".into(),
        ));
    }
    let header = samsa_storage::BatchHeader::parse(records)?;
    if header.total_size() < records.len() {
        return Err(BrokerError::InvalidRecord(
            "Produce requests are only allowed to contain exactly one record batch per partition"
                .into(),
        ));
    }
    Ok(header)
}
