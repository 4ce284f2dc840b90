//! A follower's replica fetcher: keeps this broker's replicas of partitions led by one other
//! broker in step with the leader's logs, with Kafka's own requests. First each replica is
//! truncated to where its log agrees with the leader's (OffsetForLeaderEpoch for its newest
//! epoch), then batches are fetched from its log end and appended as they are, and the
//! leader's high watermark is taken as far as the replica reaches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::peer::{ClientError, PeerConnection};
use crate::topics::Partition;

/// Versions this fetcher speaks; samsa serves them, and so does Kafka.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 4;
const EARLIEST: i64 = -2;

#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This broker, named as the replica in every request.
    pub local_id: i32,
    /// How long the leader may hold a fetch that finds nothing (`replica.fetch.wait.max.ms`).
    pub fetch_wait_max_ms: i32,
    /// Bytes per partition per fetch (`replica.fetch.max.bytes`).
    pub fetch_max_bytes: i32,
    /// Wait after a failed exchange before trying again (`replica.fetch.backoff.ms`).
    pub backoff: Duration,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("leader answered {0:?}")]
    Leader(ResponseError),
}

/// One replica this fetcher keeps up to date.
struct Replica {
    topic: String,
    partition: Arc<Partition>,
    /// The leader epoch this fetcher follows the partition at. Every request quotes it, so a
    /// broker that no longer leads at it refuses; every change to the replica's log quotes it,
    /// so a replica that has since become leader (or follows a newer epoch) is left alone.
    epoch: i32,
    /// Set until the replica's log has been checked against the leader's.
    needs_truncation: bool,
}

/// Replicates `partitions` (this broker's follower replicas, all led by the broker at
/// `leader`, each with the leader epoch it is followed at) until `shutdown` turns true.
pub async fn replicate(
    config: FetcherConfig,
    leader: String,
    partitions: Vec<(String, Arc<Partition>, i32)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut replicas: Vec<Replica> = partitions
        .into_iter()
        .map(|(topic, partition, epoch)| Replica {
            topic,
            partition,
            epoch,
            needs_truncation: true,
        })
        .collect();
    let client_id = format!("samsa-replica-{}", config.local_id);
    let timeout =
        Duration::from_millis(config.fetch_wait_max_ms.max(0) as u64) + Duration::from_secs(10);
    let mut connection: Option<PeerConnection> = None;
    // A leader that is down fails every retry; that is said once, until it answers again.
    let mut failing = false;
    while !*shutdown.borrow() {
        // A replica whose role moved on is no longer this fetcher's: the reconciler that
        // moved it starts the fetcher it needs. With none left, this one is done.
        replicas.retain(|r| r.partition.follows(r.epoch));
        if replicas.is_empty() {
            return;
        }
        let result = async {
            let conn = match connection.as_mut() {
                Some(conn) => conn,
                None => {
                    connection.insert(PeerConnection::connect(&leader, &client_id, timeout).await?)
                }
            };
            for replica in replicas.iter_mut().filter(|r| r.needs_truncation) {
                truncate(conn, &config, replica, timeout).await?;
                replica.needs_truncation = false;
            }
            fetch(conn, &config, &mut replicas, timeout).await
        };
        let outcome = tokio::select! {
            outcome = result => outcome,
            _ = shutdown.changed() => return,
        };
        if outcome.is_ok() && failing {
            tracing::info!(leader = %leader, "replica fetcher: the leader answers again");
            failing = false;
        }
        if let Err(err) = outcome {
            if failing {
                tracing::debug!(leader = %leader, "replica fetcher: {err}; retrying");
            } else {
                tracing::warn!(leader = %leader, "replica fetcher: {err}; retrying");
                failing = true;
            }
            if matches!(err, FetchError::Client(_)) {
                connection = None;
            }
            tokio::select! {
                _ = tokio::time::sleep(config.backoff) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Cuts the replica's log back to where it agrees with the leader's (KIP-101, KIP-279), as
/// Kafka's fetcher decides it (`AbstractFetcherThread.getOffsetTruncationState`): ask the
/// leader where the replica's newest epoch ends; if the leader answers with an older epoch
/// that this log does not end where the leader's does, cut to the end of our own copy of it
/// and ask again for the epoch before.
async fn truncate(
    conn: &mut PeerConnection,
    config: &FetcherConfig,
    replica: &Replica,
    timeout: Duration,
) -> Result<(), FetchError> {
    let partition = &replica.partition;
    let Some(mut asked) = partition.latest_epoch()? else {
        return Ok(()); // Nothing written yet, so nothing to disagree about.
    };
    loop {
        let (epoch, end_offset) = leader_end_offset(conn, config, replica, asked, timeout).await?;
        let offsets = partition.offsets()?;
        // Where to cut, and the (strictly older) epoch to ask about next, if any.
        let (end, next) = if end_offset < 0 {
            // The leader cannot say (it has no epoch information this old): only what was
            // committed is certain, and Kafka's follower starts from its high watermark.
            (offsets.high_watermark, None)
        } else if epoch < 0 {
            (end_offset.min(offsets.log_end), None)
        } else {
            match partition.end_offset_for_epoch(epoch)? {
                // Our log does not know the leader's epoch: ours below it ends earlier or
                // at the same place; cut there and ask about our epoch before it.
                Some((ours, ours_end)) if ours != epoch => {
                    (ours_end.min(offsets.log_end), Some(ours))
                }
                Some((_, ours_end)) => (ours_end.min(end_offset).min(offsets.log_end), None),
                None => (end_offset.min(offsets.log_end), None),
            }
        };
        if end < offsets.log_end {
            tracing::info!(
                topic = %replica.topic,
                partition = partition.index,
                from = offsets.log_end,
                to = end,
                "truncating follower replica to the leader's log"
            );
            partition.truncate_to(replica.epoch, end)?;
        }
        match next {
            // The leader answers an epoch at or below the one asked, and ours is below that.
            Some(ours) if ours < asked => asked = ours,
            _ => return Ok(()),
        }
    }
}

/// The leader's OffsetForLeaderEpoch answer for `epoch`: (its epoch at or below, end offset).
async fn leader_end_offset(
    conn: &mut PeerConnection,
    config: &FetcherConfig,
    replica: &Replica,
    epoch: i32,
    timeout: Duration,
) -> Result<(i32, i64), FetchError> {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(config.local_id))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(replica.topic.clone())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(replica.partition.index)
                .with_current_leader_epoch(replica.epoch)
                .with_leader_epoch(epoch)])]);
    let response = conn
        .send(&request, OFFSET_FOR_LEADER_EPOCH_VERSION, timeout)
        .await?;
    let answer = only_answer(
        response.topics.first().and_then(|t| t.partitions.first()),
        |a| a.error_code,
    )?;
    Ok((answer.leader_epoch, answer.end_offset))
}

/// One fetch for every replica from its log end; waits on the leader up to
/// `fetch_wait_max_ms` when there is nothing new.
async fn fetch(
    conn: &mut PeerConnection,
    config: &FetcherConfig,
    replicas: &mut [Replica],
    timeout: Duration,
) -> Result<(), FetchError> {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for replica in replicas.iter() {
        let partition = &replica.partition;
        topics.entry(&replica.topic).or_default().push(
            FetchPartition::default()
                .with_partition(partition.index)
                .with_current_leader_epoch(replica.epoch)
                .with_fetch_offset(partition.offsets()?.log_end)
                .with_partition_max_bytes(config.fetch_max_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.local_id))
        .with_max_wait_ms(config.fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = conn.send(&request, FETCH_VERSION, timeout).await?;
    if let Some(err) = ResponseError::try_from_code(response.error_code) {
        return Err(FetchError::Leader(err));
    }
    for topic in response.responses {
        for data in topic.partitions {
            let Some(replica) = replicas.iter_mut().find(|r| {
                r.topic == topic.topic.as_str() && r.partition.index == data.partition_index
            }) else {
                continue;
            };
            match ResponseError::try_from_code(data.error_code) {
                None => {
                    let records = data.records.unwrap_or_default();
                    if !records.is_empty() {
                        replica
                            .partition
                            .append_replicated(replica.epoch, records, now_ms())
                            .await?;
                    }
                    replica
                        .partition
                        .follow_high_watermark(replica.epoch, data.high_watermark)?;
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    out_of_range(conn, config, replica, timeout).await?;
                }
                // Leadership is moving; the metadata that says where to will follow.
                Some(err) => return Err(FetchError::Leader(err)),
            }
        }
    }
    Ok(())
}

/// The replica's log end is outside the leader's log: behind its start (retention or
/// DeleteRecords moved it), so start afresh there; otherwise check against the leader's
/// epochs again.
async fn out_of_range(
    conn: &mut PeerConnection,
    config: &FetcherConfig,
    replica: &mut Replica,
    timeout: Duration,
) -> Result<(), FetchError> {
    let partition = &replica.partition;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(config.local_id))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(replica.topic.clone())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition.index)
                .with_timestamp(EARLIEST)])]);
    let response = conn.send(&request, LIST_OFFSETS_VERSION, timeout).await?;
    let answer = only_answer(
        response.topics.first().and_then(|t| t.partitions.first()),
        |a| a.error_code,
    )?;
    if partition.offsets()?.log_end < answer.offset {
        tracing::info!(
            topic = %replica.topic,
            partition = partition.index,
            start = answer.offset,
            "follower replica behind the leader's log start; starting over there"
        );
        partition.truncate_fully_and_start_at(replica.epoch, answer.offset)?;
    } else {
        replica.needs_truncation = true;
    }
    Ok(())
}

/// The one partition's answer of a one-partition request, unless it is missing or an error.
fn only_answer<T>(answer: Option<&T>, error_code: impl Fn(&T) -> i16) -> Result<&T, FetchError> {
    let answer = answer.ok_or(FetchError::Leader(ResponseError::UnknownServerError))?;
    match ResponseError::try_from_code(error_code(answer)) {
        Some(err) => Err(FetchError::Leader(err)),
        None => Ok(answer),
    }
}
