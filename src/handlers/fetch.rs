//! Fetch: whole record batches from each partition's log, served as stored. A fetch that
//! finds fewer than `min_bytes` waits, up to `max_wait_ms`, for an append to any of its
//! partitions. A fetch from a follower (a replica id set) reads up to the log end instead of
//! the high watermark, and tells the leader how far the follower has got. A fetch in a fetch
//! session (KIP-227, see [`super::fetch_session`]) reads every partition of its session and
//! is answered only those that changed; its long poll waits on all of them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::Encodable;
use tokio::sync::watch;
use uuid::Uuid;

use super::cluster::missing_topic;
use super::current_leader;
use super::fetch_session::{self, Answered, Context};
use super::Session;
use super::{allowed, allowed_on_cluster};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::fetch_sessions::{FetchParams, NO_SESSION};
use crate::quotas::{Client, Throttle};
use crate::topics::unread::UnreadRecords;
use crate::topics::{on_storage_thread, Isolation, Partition};
use samsa_storage::FileRange;

/// Fetch v13 names topics by id instead of by name (KIP-516).
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
const READ_COMMITTED: i8 = 1;
/// From v12 an answer refusing a partition to a stale fetcher names the current leader (KIP-951).
const FIRST_VERSION_WITH_CURRENT_LEADER: i16 = 12;
/// Fetch v16 lists the endpoints of the leaders it names (KIP-951).
const FIRST_VERSION_WITH_NODE_ENDPOINTS: i16 = 16;
/// From v15 the follower names itself in `replica_state` (KIP-903) instead of `replica_id`.
const FIRST_VERSION_WITH_REPLICA_STATE: i16 = 15;
/// A partition's records at least this large are sent from their file on a plaintext
/// connection; smaller ones cost less to copy than to splice.
const SEND_FROM_FILE_AT_LEAST: usize = 16 * 1024;

/// A requested partition, resolved once so every round of a long poll reads the same logs.
struct Wanted {
    index: i32,
    /// What the fetcher asks: the offset, the byte limit, and the leader epoch it believes
    /// current (-1 when it does not say).
    params: FetchParams,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct WantedTopic {
    name: TopicName,
    id: Uuid,
    partitions: Vec<Wanted>,
}

pub async fn handle(
    broker: &Broker,
    session: &mut Session,
    mut request: FetchRequest,
    version: i16,
    client_id: &str,
) -> FetchResponse {
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
    let follower = matches!(reader, Reader::Follower(_));
    // The session comes first: a session error is the whole answer (Kafka's
    // SessionErrorContext), before any partition is looked at.
    let (context, wanted) = fetch_session::plan(broker, &mut request, version);
    if let Context::Failed(err) = context {
        return FetchResponse::default()
            .with_error_code(BrokerError::from(err).code())
            .with_session_id(NO_SESSION);
    }
    // A follower needs CLUSTER_ACTION rather than READ on each topic, as in Kafka.
    let may_replicate = follower && allowed_on_cluster(broker, session, Operation::ClusterAction);
    let topics: Arc<Vec<WantedTopic>> = Arc::new(
        wanted
            .into_iter()
            .map(|t| resolve(broker, session, t, version, reader, may_replicate))
            .collect(),
    );
    let user = session.user_name().to_owned();
    let client = Client {
        user: &user,
        client_id,
    };
    // A consumer under a byte-rate quota gets small fetches, so that a throttled one
    // needs little room (see `ClientQuotas::fetch_max_bytes`).
    if !follower {
        if let Some(cap) = broker.quotas.fetch_max_bytes(client) {
            request.max_bytes = i64::from(request.max_bytes).min(cap) as i32;
            request.min_bytes = request.min_bytes.min(request.max_bytes);
        }
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    // Over TLS every byte is encrypted in memory anyway.
    let reads = if session.listener.protocol.uses_tls() {
        Reads::Copied
    } else {
        Reads::LeftInFiles
    };
    loop {
        // Subscribe before reading, so an append that lands after the read still wakes us.
        let watchers: Vec<watch::Receiver<i64>> = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.partition.as_ref().ok().map(|p| p.watch_progress()))
            .collect();
        let round = if any_news(&topics, reader) {
            // Reads are disk work: a storage thread does them.
            let (topics, max_bytes) = (topics.clone(), request.max_bytes);
            on_storage_thread(move || read_round(&topics, max_bytes, reader, version, reads)).await
        } else {
            // Every reader is caught up: nothing to read, only offsets to report.
            read_round(
                &topics,
                request.max_bytes,
                reader,
                version,
                Reads::OffsetsOnly,
            )
        };
        let done = round.bytes >= i64::from(request.min_bytes.max(0))
            || round.had_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if !done {
            wait_for_news(&topics, reader, watchers, deadline).await;
            continue;
        }
        if !follower {
            // Sent with its records all the same; the throttle holds the next fetch back
            // (see `ClientQuotas::record_fetch` for why Kafka's empty answer is not kept).
            session.throttled(over_quota(broker, client, &round.responses, version));
        }
        record_traffic(broker, &topics, &round);
        // The connection puts these ranges in the frame in place of their stand-ins.
        session.unread = round.unread;
        let mut response = FetchResponse::default();
        // As Kafka's, only a consumer is told where the new leaders are: a follower
        // learns of them from the metadata.
        if !follower && version >= FIRST_VERSION_WITH_NODE_ENDPOINTS {
            let leaders = round
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.current_leader.leader_id);
            response =
                response.with_node_endpoints(current_leader::node_endpoints(broker, leaders));
        }
        let answered = in_kafka_order(&topics, round.responses, follower);
        return match fetch_session::finish(broker, &context, version, follower, answered) {
            Ok((id, responses)) => response.with_session_id(id).with_responses(responses),
            // Another fetch of the session overtook this one (Kafka: "possible duplicate
            // request"): the error alone, with the session's id.
            Err((err, id)) => FetchResponse::default()
                .with_error_code(BrokerError::from(err).code())
                .with_session_id(id),
        };
    }
}

/// Records the answer's size against the consumer's `consumer_byte_rate`: the throttle it
/// earns, if any.
fn over_quota(
    broker: &Broker,
    client: Client<'_>,
    responses: &[FetchableTopicResponse],
    version: i16,
) -> Option<Throttle> {
    let size: usize = responses
        .iter()
        .map(|t| t.compute_size(version).unwrap_or(0))
        .sum();
    broker.quotas.record_fetch(client, size)
}

/// The partitions in the order Kafka's KafkaApis answers them: those read, then those
/// refused before reading. A consumer's refusals list the unknown topic ids first (Kafka
/// sets them aside before it authorizes the rest), a follower's keep the request's order.
/// Each comes with what was asked of it.
fn in_kafka_order(
    topics: &[WantedTopic],
    responses: Vec<FetchableTopicResponse>,
    follower: bool,
) -> Vec<Answered> {
    let (mut read, mut unknown_ids, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for (wanted, response) in topics.iter().zip(responses) {
        for (p, data) in wanted.partitions.iter().zip(response.partitions) {
            let answered = Answered {
                name: wanted.name.clone(),
                id: wanted.id,
                params: p.params,
                data,
            };
            match &p.partition {
                Ok(_) => read.push(answered),
                Err(ResponseError::UnknownTopicId) if !follower => unknown_ids.push(answered),
                Err(_) => refused.push(answered),
            }
        }
    }
    read.extend(unknown_ids);
    read.extend(refused);
    read
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
            params: fetch_session::params_of(&p),
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
    /// Records per partition answered, in the order of `responses`.
    records: Vec<u64>,
    /// The ranges whose stand-ins the responses carry.
    unread: Vec<UnreadRecords>,
}

/// What a round does with the records it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Nothing: it reports offsets only, as for partitions with nothing new.
    OffsetsOnly,
    /// Reads them into memory.
    Copied,
    /// Leaves large ones in their files, to be sent from there.
    LeftInFiles,
}

/// Who is fetching: what it may read, and whether its fetch reports replication progress.
#[derive(Clone, Copy)]
enum Reader {
    Consumer { read_committed: bool },
    Follower(i32),
}

impl Reader {
    fn isolation(self) -> Isolation {
        match self {
            Reader::Consumer {
                read_committed: true,
            } => Isolation::ReadCommitted,
            Reader::Consumer {
                read_committed: false,
            } => Isolation::ReadUncommitted,
            Reader::Follower(_) => Isolation::LogEnd,
        }
    }
}

/// Whether any wanted partition has records past its fetch offset, or an error to report;
/// from the partitions' offsets in memory, without reading.
fn any_news(topics: &[WantedTopic], reader: Reader) -> bool {
    topics.iter().flat_map(|t| &t.partitions).any(|wanted| {
        wanted.partition.as_ref().is_ok_and(|p| {
            p.has_news(
                wanted.params.fetch_offset,
                wanted.params.current_leader_epoch,
                reader.isolation(),
            )
        })
    })
}

/// Reads every wanted partition; with [`Reads::OffsetsOnly`], reports offsets only, as for
/// a partition with nothing new (the caller has checked that none has: see [`any_news`]).
fn read_round(
    topics: &[WantedTopic],
    max_bytes: i32,
    reader: Reader,
    version: i16,
    reads: Reads,
) -> Round {
    let mut budget = i64::from(max_bytes.max(0));
    let mut round = Round {
        responses: Vec::with_capacity(topics.len()),
        bytes: 0,
        had_error: false,
        records: Vec::new(),
        unread: Vec::new(),
    };
    for topic in topics {
        let partitions = topic
            .partitions
            .iter()
            .map(|wanted| {
                let has_data = round.bytes > 0;
                let (data, records) = read_partition(
                    wanted,
                    &mut budget,
                    has_data,
                    (reads, &mut round.unread),
                    reader,
                    version,
                );
                round.records.push(records);
                // A partition refused before reading (unknown, unauthorized) does not end a
                // long poll, as in Kafka, which reads only the others.
                round.had_error |= data.error_code != 0 && wanted.partition.is_ok();
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
/// than the limits can still be consumed. With the answer, the records it holds.
fn read_partition(
    wanted: &Wanted,
    budget: &mut i64,
    response_has_data: bool,
    (reads, unread): (Reads, &mut Vec<UnreadRecords>),
    reader: Reader,
    version: i16,
) -> (PartitionData, u64) {
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
        Err(err) => {
            return (
                failed(err.code()).with_aborted_transactions(Some(Vec::new())),
                0,
            )
        }
    };
    let limit = i64::from(wanted.params.max_bytes.max(0)).min(*budget);
    let isolation = reader.isolation();
    let allowed = partition
        .check_leader_epoch(wanted.params.current_leader_epoch)
        .and_then(|()| match reader {
            Reader::Follower(replica) => {
                partition.record_follower_fetch(replica, wanted.params.fetch_offset, now_ms())
            }
            Reader::Consumer { .. } => Ok(()),
        });
    let result = if let Err(err) = allowed {
        Err(err)
    } else if reads == Reads::OffsetsOnly || (limit <= 0 && response_has_data) {
        partition
            .offsets()
            .map(|offsets| ((bytes::Bytes::new(), 0), offsets, Vec::new()))
    } else {
        partition
            .locate(wanted.params.fetch_offset, limit.max(0) as usize, isolation)
            .and_then(|r| Ok((deliver(r.records, reads, unread)?, r.offsets, r.aborted)))
    };
    match result {
        Ok(((records, count), offsets, aborted)) => {
            *budget -= records.len() as i64;
            let aborted = aborted
                .into_iter()
                .map(|txn| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_first_offset(txn.first_offset)
                })
                .collect();
            let data = base
                .with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.last_stable)
                .with_log_start_offset(offsets.log_start)
                .with_aborted_transactions(read_committed.then_some(aborted))
                .with_records(Some(records));
            (data, count)
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
                let data = failed(err.code()).with_current_leader(current_leader::of(partition));
                return (data, 0);
            }
            (failed(err.code()), 0)
        }
    }
}

/// The records of a located range as the response carries them, and how many there are: a
/// large one's stand-in where it may be sent from its file, else the bytes, read here.
fn deliver(
    range: Option<FileRange>,
    reads: Reads,
    unread: &mut Vec<UnreadRecords>,
) -> Result<(bytes::Bytes, u64), BrokerError> {
    let Some(range) = range else {
        return Ok((bytes::Bytes::new(), 0));
    };
    let records = range.records();
    let range = if reads == Reads::LeftInFiles && range.len() >= SEND_FROM_FILE_AT_LEAST {
        match UnreadRecords::new(range, unread.len()) {
            Ok(left) => {
                let stand_in = left.stand_in.clone();
                unread.push(left);
                return Ok((stand_in, records));
            }
            Err(range) => range,
        }
    } else {
        range
    };
    let bytes = range.read().map_err(samsa_storage::StorageError::from)?;
    Ok((bytes, records))
}

/// Waits until a wanted partition has something new for its fetch offset, or the deadline.
/// A wake-up that brings nothing to this fetch (the high watermark of a partition moved,
/// but not past what this fetch asks, or a partition it only reports) waits again, without
/// a read.
async fn wait_for_news(
    topics: &[WantedTopic],
    reader: Reader,
    mut watchers: Vec<watch::Receiver<i64>>,
    deadline: tokio::time::Instant,
) {
    loop {
        let changes = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        match tokio::time::timeout_at(deadline, changes).await {
            Err(_) => return,
            // A partition gone (its sender dropped): the next round reports it.
            Ok((Err(_), _, _)) => return,
            Ok((Ok(()), _, _)) => {}
        }
        for watcher in &mut watchers {
            watcher.mark_unchanged();
        }
        if any_news(topics, reader) {
            return;
        }
    }
}

fn record_traffic(broker: &Broker, topics: &[WantedTopic], round: &Round) {
    let answered = topics
        .iter()
        .zip(&round.responses)
        .flat_map(|(wanted, response)| wanted.partitions.iter().zip(&response.partitions));
    for ((wanted, data), records) in answered.zip(&round.records) {
        if let (Ok(partition), Some(bytes)) = (&wanted.partition, &data.records) {
            if !bytes.is_empty() {
                broker
                    .metrics
                    .record_fetch(&partition.topic, bytes.len(), *records);
            }
        }
    }
}
