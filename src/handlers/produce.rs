//! Produce: appends each partition's record batch to its log, as it arrived or, where the
//! topic's `compression.type` names another codec, recompressed; with acks=all, answers once
//! the in-sync replicas hold it (the high watermark passed it).

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_storage::{StorageError, TargetCompression};

use super::cluster::missing_topic;
use super::current_leader;
use super::record_errors;
use super::schema_check;
use super::Session;
use super::{allowed, is_internal_topic, off_event_loop};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::topics::{on_storage_thread, Partition, Topic};
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
/// Produce v12 is a transaction.version 2 producer's (KIP-890 part 2): it does not add
/// partitions to its transaction, the leader has them added.
const FIRST_VERSION_ADDING_PARTITIONS: i16 = 12;

/// Partitions whose transactional batch is refused before its append, with the code.
type Refused = HashMap<(String, i32), i16>;

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
    let refused = match transactional_id {
        Some(id) if version >= FIRST_VERSION_ADDING_PARTITIONS && !transaction_denied => {
            add_to_transaction(broker, session, id, &request.topic_data, version).await
        }
        _ => Refused::new(),
    };
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
            (request.acks, version),
            transactional_id,
            &refused,
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

/// Produce v12+ comes from a transaction.version 2 producer, which never adds partitions
/// itself: the partitions its transactional batches go to are added to its transaction
/// first (Kafka's ADD_PARTITION verification, one request for all of them). A refusal is
/// answered on each of them as Kafka's ReplicaManager passes it on: a coordinator out of
/// reach as NOT_ENOUGH_REPLICAS (which the producer retries without a metadata refresh), a
/// fenced producer as INVALID_PRODUCER_EPOCH, anything else (CONCURRENT_TRANSACTIONS,
/// TRANSACTION_ABORTABLE, INVALID_TXN_STATE, ...) as it came.
async fn add_to_transaction(
    broker: &Broker,
    session: &Session,
    id: &str,
    topics: &[TopicProduceData],
    version: i16,
) -> Refused {
    let mut wanted = Vec::new();
    let mut producer = None;
    for data in topics {
        let topic = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            broker.topics.get_by_id(data.topic_id)
        } else {
            broker.topics.get(&data.name)
        };
        let Some(topic) = topic.filter(|t| {
            !is_internal_topic(&t.name)
                && allowed(
                    broker,
                    session,
                    Operation::Write,
                    ResourceType::Topic,
                    &t.name,
                )
        }) else {
            continue;
        };
        for partition in &data.partition_data {
            let header = partition
                .records
                .as_ref()
                .and_then(|records| samsa_storage::BatchHeader::parse(records).ok());
            let Some(header) = header.filter(|h| h.is_transactional()) else {
                continue;
            };
            if topic.partition(partition.index).is_some() {
                producer.get_or_insert((header.producer_id, header.producer_epoch));
                wanted.push((topic.name.clone(), partition.index));
            }
        }
    }
    let Some((producer_id, epoch)) = producer else {
        return Refused::new();
    };
    let Err(err) = broker
        .txns
        .add_implicitly(id, producer_id, epoch, &wanted)
        .await
    else {
        return Refused::new();
    };
    use kafka_protocol::error::ResponseError as E;
    let code = match err.response_error() {
        E::NetworkException
        | E::CoordinatorLoadInProgress
        | E::CoordinatorNotAvailable
        | E::NotCoordinator => E::NotEnoughReplicas,
        E::ProducerFenced => E::InvalidProducerEpoch,
        other => other,
    };
    tracing::debug!(
        transactional_id = id,
        "partitions not added to the transaction: {err}"
    );
    wanted.into_iter().map(|p| (p, code.code())).collect()
}

async fn produce_topic(
    broker: &Broker,
    data: TopicProduceData,
    topic: Result<Arc<Topic>, BrokerError>,
    (acks, version): (i16, i16),
    transactional_id: Option<&str>,
    refused: &Refused,
) -> (TopicProduceResponse, Vec<(usize, Arc<Partition>, i64)>) {
    let mut waits = Vec::new();
    let mut partitions = Vec::with_capacity(data.partition_data.len());
    for (position, partition) in data.partition_data.into_iter().enumerate() {
        let index = partition.index;
        let refusal = topic
            .as_ref()
            .ok()
            .and_then(|t| refused.get(&(t.name.clone(), index)));
        if let Some(code) = refusal {
            partitions.push(failed_with(index, *code));
            continue;
        }
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
                if let BrokerError::InvalidRequest(reason) = &err {
                    answer.error_message = Some(StrBytes::from_string(reason.clone()));
                }
                if let (Some(partition), true) = (partition, err.in_append()) {
                    // Kafka reports the log start with an error the log itself raised.
                    answer.log_start_offset = partition.offsets().map_or(-1, |o| o.log_start);
                }
                match &err {
                    BrokerError::Storage(StorageError::RecordsRefused(refused)) => {
                        let name = topic.as_ref().map_or("", |t| t.name.as_str());
                        record_errors::describe(&mut answer, name, index, refused);
                    }
                    BrokerError::RecordsInvalid(refused) => {
                        record_errors::describe_reasons(&mut answer, refused);
                    }
                    _ => {}
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
    if let Some(link) = topic.configs.mirror_link() {
        return Err(mirror_is_read_only(&topic.name, link));
    }
    partition.check_writable(acks == -1)?;
    let records = data.records.unwrap_or_default();
    let header = exactly_one_batch(&records)?;
    schema_check::check(broker, topic, &header, &records).await?;
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
        // On a storage thread, as any append: the check and the write hold the
        // coordinator's lock together, so neither may wait on the event loop.
        let (txns, id, name, appending) = (
            broker.txns.clone(),
            id.to_owned(),
            topic.name.clone(),
            partition.clone(),
        );
        let (info, sync_due) = on_storage_thread(move || {
            txns.append_in_transaction(
                &id,
                header.producer_id,
                header.producer_epoch,
                (&name, data.index),
                || appending.append_unsynced(records, now_ms()),
            )
        })
        .await?;
        partition.sync_through(sync_due).await?;
        info
    } else {
        partition.append(records, now_ms()).await?
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
    off_event_loop(move || {
        let rewritten = samsa_storage::recompress(&records, target, max_message_bytes)?;
        Ok(rewritten.unwrap_or(records))
    })
    .await
}

/// A partition's refusal. As Kafka's, it carries no message: Kafka sends one only with the
/// records it names (KIP-467, see `record_errors`).
fn failed(index: i32, err: &BrokerError) -> PartitionProduceResponse {
    failed_with(index, err.code())
}

fn failed_with(index: i32, code: i16) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
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

/// A mirror topic takes records only from its cluster link: INVALID_REQUEST, which clients
/// do not retry, with what to do about it.
pub(super) fn mirror_is_read_only(topic: &str, link: &str) -> BrokerError {
    BrokerError::InvalidRequest(format!(
        "Topic '{topic}' is a read-only mirror of cluster link '{link}'; promote it (delete its config samsa.link.name) to write to it."
    ))
}
