//! Writing the end of a transaction into its partitions. A marker is appended by the leader
//! of its partition ([`append_marker`], which the WriteTxnMarkers handler uses too); where the
//! coordinator sends it is a [`MarkerWriter`]'s business: `ClusterMarkers` (see
//! [`super::cluster_markers`]) sends each to its partition's leader, this broker included (a
//! single node leads them all). It writes a marker again until it is written
//! ([`write_until_done`]), as Kafka's `TransactionMarkerChannelManager` does: a
//! transaction is complete only once every partition holds its marker, since a partition
//! without one keeps the transaction open and its last stable offset behind it.

use std::future::Future;
#[cfg(test)]
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use kafka_protocol::error::ResponseError;
use samsa_storage::ControlType;
use tokio::sync::watch;
use tokio::time::Instant;

use super::state::TxnMetadata;
use crate::clock::now_ms;
use crate::error::{BrokerError, Result};
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::topics::{on_storage_thread, TopicRegistry};

pub(super) type TopicPartition = (String, i32);

/// Between two rounds of writing what is still unwritten (Kafka's `retry.backoff.ms`).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// One marker, as WriteTxnMarkers carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    /// The leader epoch of the transactional id's `__transaction_state` partition at the
    /// coordinator that sent it: partitions refuse markers of an older coordinator.
    pub coordinator_epoch: i32,
    /// The transaction.version the transaction ended under (WriteTxnMarkers v2): from 2 a
    /// partition takes the marker only at an epoch newer than the producer's there.
    pub transaction_version: i16,
}

impl Marker {
    /// `txn`'s commit (or abort) marker from a coordinator at `coordinator_epoch`.
    pub fn ending(txn: &TxnMetadata, commit: bool, coordinator_epoch: i32) -> Marker {
        Marker {
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            commit,
            coordinator_epoch,
            transaction_version: txn.client_tv,
        }
    }
}

/// Whether this broker still coordinates the transaction whose markers are being written.
pub type StillCoordinating<'a> = &'a (dyn Fn() -> bool + Send + Sync);

/// Where a transaction's markers go. Called once the transaction's PrepareCommit or
/// PrepareAbort is replicated, so the end is decided before any partition sees it.
pub trait MarkerWriter: Send + Sync {
    /// Writes `marker` into each of `partitions`, returning once every one is acknowledged or
    /// given up on (its topic is gone), since the transaction must end either way. It stops
    /// with NOT_COORDINATOR when `coordinating` turns false or a partition fences this
    /// coordinator: the transaction is left to the coordinator that took over. `groups` is
    /// this broker's group coordinator, told of markers written into its `__consumer_offsets`
    /// partitions (Kafka's onTransactionCompleted), so their pending offsets settle.
    fn write_markers<'a>(
        &'a self,
        groups: &'a GroupCoordinator,
        marker: Marker,
        partitions: &'a [(String, i32)],
        coordinating: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>>;
}

/// Appends `marker` to partition `index` of `topic`, which this broker must lead, and waits
/// until the in-sync replicas hold it or `deadline` passes: Kafka's WriteTxnMarkers appends
/// with acks=-1. A marker in `__consumer_offsets` then settles the group coordinator's
/// pending offsets of the producer (only then: a marker the replicas did not take is sent
/// again). A partition this broker holds no replica of is UNKNOWN_TOPIC_OR_PARTITION, as
/// Kafka answers for a partition that is not online here.
pub async fn append_marker(
    topics: &TopicRegistry,
    groups: &GroupCoordinator,
    marker: Marker,
    (topic, index): (&str, i32),
    deadline: Instant,
) -> Result<()> {
    let partition = topics
        .get(topic)
        .and_then(|t| t.partition(index).cloned())
        .filter(|p| p.is_hosted())
        .ok_or(BrokerError::UnknownTopicOrPartition)?;
    partition.ensure_leader()?;
    if !partition.has_min_isr() {
        return Err(BrokerError::NotEnoughReplicas);
    }
    let control = if marker.commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    // A data partition's append, as Produce's: on a storage thread, its fsync awaited.
    let writer = partition.clone();
    let (written, sync_due) = on_storage_thread(move || {
        writer.write_marker_unsynced(
            marker.producer_id,
            marker.producer_epoch,
            control,
            marker.coordinator_epoch,
            now_ms(),
            marker.transaction_version,
        )
    })
    .await?;
    partition.sync_through(sync_due).await?;
    partition
        .wait_until_replicated(written.last_offset + 1, deadline)
        .await?;
    if topic == OFFSETS_TOPIC {
        groups.complete_transaction(index, marker.producer_id, marker.commit);
    }
    Ok(())
}

/// What one attempt at a partition's marker came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Written,
    Retry,
    /// A newer coordinator, or a newer epoch of the producer, wrote to the partition.
    Fenced,
    /// The topic (or partition) is deleted: there is nothing to end.
    Gone,
}

/// Writes `marker` into `partitions` in rounds: `attempt` tries every partition still
/// unwritten and says how each went; those to retry get another round after
/// [`RETRY_BACKOFF`]. A deleted partition is given up on. The whole transaction is given up
/// (NOT_COORDINATOR, its PrepareCommit or PrepareAbort left for the next coordinator or the
/// next start's load to finish) when `coordinating` turns false, a partition is
/// [`Outcome::Fenced`], or `shutdown` turns true; a `shutdown` whose sender is gone never
/// does. No lock is held between rounds: `attempt` takes what it needs each time.
pub(super) async fn write_until_done<R>(
    marker: Marker,
    partitions: &[TopicPartition],
    coordinating: StillCoordinating<'_>,
    shutdown: &watch::Receiver<bool>,
    mut attempt: impl FnMut(Vec<TopicPartition>) -> R,
) -> Result<()>
where
    R: Future<Output = Vec<(TopicPartition, Outcome)>>,
{
    let mut unwritten = partitions.to_vec();
    let mut shutdown = shutdown.clone();
    loop {
        if !coordinating() || *shutdown.borrow() {
            tracing::info!(
                producer_id = marker.producer_id,
                "no longer coordinating; the transaction is left to the next coordinator"
            );
            return Err(BrokerError::NotCoordinator);
        }
        let mut retry = Vec::new();
        for (partition, outcome) in attempt(unwritten).await {
            match outcome {
                Outcome::Written => {}
                Outcome::Retry => retry.push(partition),
                Outcome::Gone => {
                    tracing::warn!(
                        topic = partition.0,
                        partition = partition.1,
                        "no marker written: the partition no longer exists"
                    )
                }
                Outcome::Fenced => {
                    tracing::info!(
                        topic = partition.0,
                        partition = partition.1,
                        producer_id = marker.producer_id,
                        "a newer coordinator or producer epoch wrote to the partition; this coordinator stops ending the transaction"
                    );
                    return Err(BrokerError::NotCoordinator);
                }
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        unwritten = retry;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_BACKOFF) => {}
            Ok(()) = shutdown.changed() => {}
        }
    }
}

/// Appends `marker` to each of `partitions`, which this broker leads, side by side.
pub(super) async fn append_each(
    topics: &TopicRegistry,
    groups: &GroupCoordinator,
    marker: Marker,
    partitions: Vec<TopicPartition>,
    deadline: Instant,
) -> Vec<(TopicPartition, Outcome)> {
    let appends = partitions.into_iter().map(|partition| async move {
        let appended = append_marker(
            topics,
            groups,
            marker,
            (&partition.0, partition.1),
            deadline,
        )
        .await;
        let outcome = match appended {
            Ok(()) => Outcome::Written,
            Err(err) => outcome_of(&partition, Some(err.response_error())),
        };
        (partition, outcome)
    });
    join_all(appends).await
}

/// Kafka's reading of a marker's answer (TransactionMarkerRequestCompletionHandler): the
/// producer or coordinator epoch moved on, so this end is someone else's now; a message
/// format or version the partition cannot take means the producer never wrote there either,
/// so there is nothing to end; anything else (a failed disk write included) is tried again.
pub(super) fn outcome_of(
    (topic, partition): &TopicPartition,
    error: Option<ResponseError>,
) -> Outcome {
    use ResponseError as E;
    match error {
        None => Outcome::Written,
        Some(E::InvalidProducerEpoch | E::TransactionCoordinatorFenced) => Outcome::Fenced,
        Some(E::UnsupportedForMessageFormat | E::UnsupportedVersion) => Outcome::Written,
        Some(
            error @ (E::UnknownTopicOrPartition
            | E::NotLeaderOrFollower
            | E::NotEnoughReplicas
            | E::NotEnoughReplicasAfterAppend
            | E::RequestTimedOut
            | E::KafkaStorageError
            | E::CoordinatorLoadInProgress),
        ) => {
            tracing::info!(
                topic,
                partition,
                "transaction marker not written ({error:?}); retrying"
            );
            Outcome::Retry
        }
        // Kafka takes these for a bug; retrying lets an operator fix, say, a missing ACL.
        Some(error) => {
            tracing::error!(
                topic,
                partition,
                "transaction marker refused with {error:?}; retrying"
            );
            Outcome::Retry
        }
    }
}

/// The writer of a coordinator not yet wired to the metadata (see `server::start`), which
/// happens before any client is served.
pub struct Unwired;

impl MarkerWriter for Unwired {
    fn write_markers<'a>(
        &'a self,
        _groups: &'a GroupCoordinator,
        _marker: Marker,
        _partitions: &'a [(String, i32)],
        _coordinating: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Err(BrokerError::CoordinatorNotAvailable) })
    }
}

/// For tests of the coordinator alone: markers appended to this broker's own logs, each
/// partition led here alone, so nothing waits for replicas.
#[cfg(test)]
pub struct LocalMarkers {
    topics: Arc<TopicRegistry>,
    shutdown: watch::Receiver<bool>,
}

#[cfg(test)]
impl LocalMarkers {
    /// Retries stop when `shutdown` turns true; with its sender gone they never do.
    pub fn new(topics: Arc<TopicRegistry>, shutdown: watch::Receiver<bool>) -> LocalMarkers {
        LocalMarkers { topics, shutdown }
    }

    /// One round: the partitions still in the registry get their marker appended.
    async fn attempt(
        &self,
        groups: &GroupCoordinator,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Outcome)> {
        let (present, gone): (Vec<_>, Vec<_>) =
            partitions.into_iter().partition(|(topic, index)| {
                self.topics
                    .get(topic)
                    .is_some_and(|t| t.partition(*index).is_some())
            });
        let mut outcomes = append_each(&self.topics, groups, marker, present, Instant::now()).await;
        outcomes.extend(gone.into_iter().map(|partition| (partition, Outcome::Gone)));
        outcomes
    }
}

#[cfg(test)]
impl MarkerWriter for LocalMarkers {
    /// A partition whose topic is gone is given up on; a failed write is retried.
    fn write_markers<'a>(
        &'a self,
        groups: &'a GroupCoordinator,
        marker: Marker,
        partitions: &'a [(String, i32)],
        coordinating: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(write_until_done(
            marker,
            partitions,
            coordinating,
            &self.shutdown,
            move |unwritten| self.attempt(groups, marker, unwritten),
        ))
    }
}

#[cfg(test)]
mod tests;
