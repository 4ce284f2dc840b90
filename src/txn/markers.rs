//! Writing the end of a transaction into its partitions. A marker is appended by the leader
//! of its partition ([`append_marker`], which the WriteTxnMarkers handler uses too); where the
//! coordinator sends it is a [`MarkerWriter`]'s business: [`LocalMarkers`] on a single node,
//! where every partition is this broker's, `ClusterMarkers` (see [`super::cluster_markers`])
//! in a cluster, where each partition's leader gets it.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use samsa_storage::ControlType;
use tokio::time::Instant;

use super::state::TxnMetadata;
use crate::broker::now_ms;
use crate::error::{BrokerError, Result};
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::topics::TopicRegistry;

/// One marker, as WriteTxnMarkers carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    /// The leader epoch of the transactional id's `__transaction_state` partition at the
    /// coordinator that sent it: partitions refuse markers of an older coordinator.
    pub coordinator_epoch: i32,
}

impl Marker {
    /// `txn`'s commit (or abort) marker from a coordinator at `coordinator_epoch`.
    pub fn ending(txn: &TxnMetadata, commit: bool, coordinator_epoch: i32) -> Marker {
        Marker {
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            commit,
            coordinator_epoch,
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
    let written = partition.write_marker(
        marker.producer_id,
        marker.producer_epoch,
        control,
        marker.coordinator_epoch,
        now_ms(),
    )?;
    partition
        .wait_until_replicated(written.last_offset + 1, deadline)
        .await?;
    if topic == OFFSETS_TOPIC {
        groups.complete_transaction(index, marker.producer_id, marker.commit);
    }
    Ok(())
}

/// Markers appended to this broker's own logs: a single node leads every partition, and its
/// high watermark follows the log end, so nothing waits.
pub struct LocalMarkers {
    topics: Arc<TopicRegistry>,
}

impl LocalMarkers {
    pub fn new(topics: Arc<TopicRegistry>) -> LocalMarkers {
        LocalMarkers { topics }
    }
}

impl MarkerWriter for LocalMarkers {
    /// A partition whose topic is gone is skipped; a failed write is logged and skipped.
    fn write_markers<'a>(
        &'a self,
        groups: &'a GroupCoordinator,
        marker: Marker,
        partitions: &'a [(String, i32)],
        _: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (topic, index) in partitions {
                match append_marker(
                    &self.topics,
                    groups,
                    marker,
                    (topic, *index),
                    Instant::now(),
                )
                .await
                {
                    Ok(()) => {}
                    Err(BrokerError::UnknownTopicOrPartition) => {
                        tracing::warn!(
                            topic,
                            partition = index,
                            "no marker written: the partition no longer exists"
                        )
                    }
                    Err(err) => tracing::error!(
                        topic,
                        partition = index,
                        producer_id = marker.producer_id,
                        "cannot write transaction marker: {err}"
                    ),
                }
            }
            Ok(())
        })
    }
}
