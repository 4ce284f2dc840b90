//! Writing the end of a transaction into its partitions: the one place that knows where a
//! transaction's commit or abort markers go. Today every partition is on this broker, so the
//! markers are appended to local logs; in a cluster, partitions led by other brokers need
//! WriteTxnMarkers sent to their leaders, a later implementation of [`MarkerWriter`].

use std::sync::Arc;

use samsa_storage::ControlType;

use super::state::TxnMetadata;
use crate::broker::now_ms;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::topics::TopicRegistry;

/// The epoch of the coordinator written into markers: one node, never re-elected.
const COORDINATOR_EPOCH: i32 = 0;

/// Where a transaction's markers go. Called once the transaction's PrepareCommit or
/// PrepareAbort is replicated, so the end is decided before any partition sees it; returns
/// once every marker is written or given up on (a partition whose topic is gone), since the
/// transaction must end either way.
pub trait MarkerWriter: Send + Sync {
    /// Writes `txn`'s commit (or abort) marker into each of its partitions. `groups` is the
    /// group coordinator of this broker, told of markers written into `__consumer_offsets`
    /// partitions here (Kafka's onTransactionCompleted), so their pending offsets settle.
    fn write_markers(&self, groups: &GroupCoordinator, txn: &TxnMetadata, commit: bool);
}

/// Markers appended to this broker's own logs.
pub struct LocalMarkers {
    topics: Arc<TopicRegistry>,
}

impl LocalMarkers {
    pub fn new(topics: Arc<TopicRegistry>) -> LocalMarkers {
        LocalMarkers { topics }
    }
}

impl MarkerWriter for LocalMarkers {
    /// A partition whose topic is gone is skipped; a failed write is logged.
    fn write_markers(&self, groups: &GroupCoordinator, txn: &TxnMetadata, commit: bool) {
        let control = if commit { ControlType::Commit } else { ControlType::Abort };
        for (topic, index) in &txn.partitions {
            let Some(partition) = self.topics.get(topic).and_then(|t| t.partition(*index).cloned()) else {
                tracing::warn!(topic, partition = index, "no marker written: the partition no longer exists");
                continue;
            };
            let written = partition.write_marker(txn.producer_id, txn.producer_epoch, control, COORDINATOR_EPOCH, now_ms());
            if let Err(err) = written {
                tracing::error!(topic, partition = index, producer_id = txn.producer_id, "cannot write transaction marker: {err}");
                continue;
            }
            if topic == OFFSETS_TOPIC {
                groups.complete_transaction(*index, txn.producer_id, commit);
            }
        }
    }
}
