//! Fetch: whole record batches from each partition's log, served as stored. A fetch that
//! finds fewer than `min_bytes` waits, up to `max_wait_ms`, for an append to any of its
//! partitions. A fetch from a follower (a replica id set) reads up to the log end instead of
//! the high watermark, and tells the leader how far the follower has got.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::sync::watch;
use uuid::Uuid;

use super::cluster::missing_topic;
use super::current_leader;
use super::Session;
use super::{allowed, allowed_on_cluster};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::topics::{Isolation, Partition};

/// Fetch v13 names topics by id instead of by name (KIP-516).
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
const READ_COMMITTED: i8 = 1;
/// From v12 an answer refusing a partition to a stale fetcher names the current leader (KIP-951).
const FIRST_VERSION_WITH_CURRENT_LEADER: i16 = 12;
/// Fetch v16 lists the endpoints of the leaders it names (KIP-951).
const FIRST_VERSION_WITH_NODE_ENDPOINTS: i16 = 16;
/// From v15 the follower names itself in `replica_state` (KIP-903) instead of `replica_id`.
const FIRST_VERSION_WITH_REPLICA_STATE: i16 = 15;

/// A requested partition, resolved once so every round of a long poll reads the same logs.
struct Wanted {
    index: i32,
    fetch_offset: i64,
    max_bytes: i32,
    /// The leader epoch the fetcher believes current; -1 when it does not say.
    current_leader_epoch: i32,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct WantedTopic {
    name: TopicName,
    id: Uuid,
    partitions: Vec<Wanted>,
}

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    // samsa keeps no fetch sessions (KIP-227). Epochs 0 (open a session) and -1 (no session)
    // are full fetches, answered with session id 0 so the client keeps sending full fetches;
    // a positive epoch continues a session samsa never created, which Kafka answers thus.
    if request.session_epoch > 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let read_committed = request.isolation_level == READ_COMMITTED;
    let replica = if version >= FIRST_VERSION_WITH_REPLICA_STATE {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // Consumers send -1; other negative ids are Kafka's tools' and read as consumers do.
    let reader = if replica >= 0 {
        Reader::Follower(replica)
    } else {
        Reader::Consumer { read_committed }
    };
    // A follower needs CLUSTER_ACTION rather than READ on each topic, as in Kafka.
    let may_replicate = matches!(reader, Reader::Follower(_))
        && allowed_on_cluster(broker, session, Operation::ClusterAction);
    let topics: Vec<WantedTopic> = request
        .topics
        .into_iter()
        .map(|t| resolve(broker, session, t, version, reader, may_replicate))
        .collect();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    loop {
        // Subscribe before reading, so an append that lands after the read still wakes us.
        let watchers: Vec<watch::Receiver<i64>> = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.partition.as_ref().ok().map(|p| p.watch_progress()))
            .collect();
        let round = read_round(&topics, request.max_bytes, reader, version);
        let done = round.bytes >= i64::from(request.min_bytes.max(0))
            || round.had_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            record_traffic(broker, &topics, &round.responses);
            let mut response = FetchResponse::default();
            // As Kafka's, only a consumer is told where the new leaders are: a follower
            // learns of them from the metadata.
            let consumer = !matches!(reader, Reader::Follower(_));
            if consumer && version >= FIRST_VERSION_WITH_NODE_ENDPOINTS {
                let leaders = round
                    .responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.current_leader.leader_id);
                response =
                    response.with_node_endpoints(current_leader::node_endpoints(broker, leaders));
            }
            return response.with_responses(round.responses);
        }
        wait_for_append(watchers, deadline).await;
    }
}

fn resolve(
    broker: &Broker,
    session: &Session,
    topic: FetchTopic,
    version: i16,
    reader: Reader,
    may_replicate: bool,
) -> WantedTopic {
    let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
    let found = if by_id {
        broker.topics.get_by_id(topic.topic_id).ok_or_else(|| {
            missing_topic(
                broker,
                None,
                Some(topic.topic_id),
                BrokerError::UnknownTopicId,
            )
            .response_error()
        })
    } else {
        broker.topics.get(&topic.topic).ok_or_else(|| {
            missing_topic(
                broker,
                Some(&topic.topic),
                None,
                BrokerError::UnknownTopicOrPartition,
            )
            .response_error()
        })
    };
    // A name is checked before existence, as Kafka does; an unknown id reveals nothing.
    let name = if by_id {
        found.as_ref().ok().map(|t| t.name.as_str())
    } else {
        Some(topic.topic.as_str())
    };
    let denied = match reader {
        Reader::Follower(_) => !may_replicate,
        Reader::Consumer { .. } => {
            name.is_some_and(|n| !allowed(broker, session, Operation::Read, ResourceType::Topic, n))
        }
    };
    let found = if denied {
        Err(BrokerError::from(AuthError::TopicDenied).response_error())
    } else {
        found
    };
    let partitions = topic
        .partitions
        .into_iter()
        .map(|p| Wanted {
            index: p.partition,
            fetch_offset: p.fetch_offset,
            max_bytes: p.partition_max_bytes,
            current_leader_epoch: p.current_leader_epoch,
            partition: match &found {
                Ok(t) => t
                    .partition(p.partition)
                    .cloned()
                    .ok_or(ResponseError::UnknownTopicOrPartition),
                Err(missing) => Err(*missing),
            },
        })
        .collect();
    WantedTopic {
        name: topic.topic,
        id: topic.topic_id,
        partitions,
    }
}

struct Round {
    responses: Vec<FetchableTopicResponse>,
    bytes: i64,
    had_error: bool,
}

/// Who is fetching: what it may read, and whether its fetch reports replication progress.
#[derive(Clone, Copy)]
enum Reader {
    Consumer { read_committed: bool },
    Follower(i32),
}

fn read_round(topics: &[WantedTopic], max_bytes: i32, reader: Reader, version: i16) -> Round {
    let mut budget = i64::from(max_bytes.max(0));
    let mut round = Round {
        responses: Vec::with_capacity(topics.len()),
        bytes: 0,
        had_error: false,
    };
    for topic in topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|wanted| {
                let data = read_partition(wanted, &mut budget, round.bytes > 0, reader, version);
                round.had_error |= data.error_code != 0;
                round.bytes += data.records.as_ref().map_or(0, |r| r.len() as i64);
                data
            })
            .collect();
        round.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.name.clone())
                .with_topic_id(topic.id)
                .with_partitions(partitions),
        );
    }
    round
}

/// Reads one partition within what is left of the response's byte budget. The first
/// partition with data may exceed the budget by one batch (KIP-74), so a batch larger
/// than the limits can still be consumed.
fn read_partition(
    wanted: &Wanted,
    budget: &mut i64,
    response_has_data: bool,
    reader: Reader,
    version: i16,
) -> PartitionData {
    let read_committed = matches!(
        reader,
        Reader::Consumer {
            read_committed: true
        }
    );
    let base = PartitionData::default()
        .with_partition_index(wanted.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(read_committed.then(Vec::new));
    // An errored partition carries no offsets, as Kafka's do; one that does not exist
    // also gets an empty (not null) aborted-transactions list, like Kafka's.
    let failed = |code: i16| {
        base.clone()
            .with_error_code(code)
            .with_records(Some(Default::default()))
    };
    let partition = match &wanted.partition {
        Ok(partition) => partition,
        Err(err) => return failed(err.code()).with_aborted_transactions(Some(Vec::new())),
    };
    let limit = i64::from(wanted.max_bytes.max(0)).min(*budget);
    let isolation = match reader {
        Reader::Consumer {
            read_committed: true,
        } => Isolation::ReadCommitted,
        Reader::Consumer {
            read_committed: false,
        } => Isolation::ReadUncommitted,
        Reader::Follower(_) => Isolation::LogEnd,
    };
    let allowed = partition
        .check_leader_epoch(wanted.current_leader_epoch)
        .and_then(|()| match reader {
            Reader::Follower(replica) => {
                partition.record_follower_fetch(replica, wanted.fetch_offset, now_ms())
            }
            Reader::Consumer { .. } => Ok(()),
        });
    let result = if let Err(err) = allowed {
        Err(err)
    } else if limit <= 0 && response_has_data {
        partition
            .offsets()
            .map(|offsets| (bytes::Bytes::new(), offsets, Vec::new()))
    } else {
        partition
            .read(wanted.fetch_offset, limit.max(0) as usize, isolation)
            .map(|r| (r.records, r.offsets, r.aborted))
    };
    match result {
        Ok((records, offsets, aborted)) => {
            *budget -= records.len() as i64;
            let aborted = aborted
                .into_iter()
                .map(|txn| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_first_offset(txn.first_offset)
                })
                .collect();
            base.with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.last_stable)
                .with_log_start_offset(offsets.log_start)
                .with_aborted_transactions(read_committed.then_some(aborted))
                .with_records(Some(records))
        }
        Err(err) => {
            // Out-of-range offsets and stale epochs are the client's to handle; storage
            // failures are the operator's.
            let storage_failure = matches!(&err, BrokerError::Storage(e)
                if !matches!(e, samsa_storage::StorageError::OffsetOutOfRange { .. }));
            if storage_failure {
                tracing::warn!(topic = %partition.topic, partition = partition.index, "fetch failed: {err}");
            }
            let stale = matches!(
                err,
                BrokerError::NotLeaderOrFollower | BrokerError::FencedLeaderEpoch { .. }
            );
            if stale && version >= FIRST_VERSION_WITH_CURRENT_LEADER {
                return failed(err.code()).with_current_leader(current_leader::of(partition));
            }
            failed(err.code())
        }
    }
}

async fn wait_for_append(mut watchers: Vec<watch::Receiver<i64>>, deadline: tokio::time::Instant) {
    let changes = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
    let _ = tokio::time::timeout_at(deadline, changes).await;
}

fn record_traffic(broker: &Broker, topics: &[WantedTopic], responses: &[FetchableTopicResponse]) {
    for (wanted, response) in topics.iter().zip(responses) {
        for (partition, data) in wanted.partitions.iter().zip(&response.partitions) {
            if let (Ok(partition), Some(records)) = (&partition.partition, &data.records) {
                if !records.is_empty() {
                    broker.metrics.record_fetch(
                        &partition.topic,
                        records.len(),
                        count_records(records),
                    );
                }
            }
        }
    }
}

/// Records in whole batches, from each batch header's record count.
fn count_records(mut batches: &[u8]) -> u64 {
    let mut count = 0;
    while let Ok(header) = samsa_storage::BatchHeader::parse(batches) {
        count += header.record_count.max(0) as u64;
        match batches.get(header.total_size()..) {
            Some(rest) => batches = rest,
            None => break,
        }
    }
    count
}
