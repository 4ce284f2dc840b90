//! Which `__transaction_state` partitions this broker coordinates: loading one replays its
//! transactional ids and finishes the transactions it finds half-ended, unloading it forgets
//! them. On a single node every partition is loaded at start-up; in a cluster the broker
//! loads the partitions it becomes leader of and unloads those it loses.

use std::collections::HashMap;

use super::log::TxnLog;
use super::state::{TxnMetadata, TxnState};
use super::{TransactionCoordinator, TxnListing};
use crate::broker::now_ms;
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::topics::internal::PartitionLoads;

/// The transactional ids of the loaded partitions, and the partitions' states.
pub(super) struct Txns {
    by_id: HashMap<String, TxnMetadata>,
    pub(super) loads: PartitionLoads<()>,
}

impl Txns {
    pub(super) fn new(log: &TxnLog) -> Txns {
        let topic = log.topic();
        Txns {
            by_id: HashMap::new(),
            loads: PartitionLoads::new(topic.coordination(), topic.partition_count()),
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<&TxnMetadata> {
        self.by_id.get(id)
    }

    /// Makes `metadata` `id`'s state; returns the one it replaces.
    pub(super) fn insert(&mut self, id: &str, metadata: TxnMetadata) -> Option<TxnMetadata> {
        self.by_id.insert(id.to_owned(), metadata)
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<TxnMetadata> {
        self.by_id.remove(id)
    }

    /// The ids whose state matches, with it.
    pub(super) fn matching(&self, wanted: impl Fn(&TxnMetadata) -> bool) -> Vec<(String, TxnMetadata)> {
        self.by_id
            .iter()
            .filter(|(_, m)| wanted(m))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    pub(super) fn all(&self) -> Vec<TxnListing> {
        self.matching(|_| true)
    }
}

impl TransactionCoordinator {
    /// Loads every partition of `__transaction_state`: on a single node they are all this
    /// broker's. A topic not created yet has nothing to replay. A partition that fails to
    /// load stays loading; the others load.
    pub fn load(&self, groups: &GroupCoordinator) -> Result<()> {
        self.log.topic().load_every_partition(
            |count| self.txns.lock().loads.mark_loaded(0..count),
            |partition| self.load_partition(partition, groups),
        )
    }

    /// Replays `__transaction_state` partition `partition`, whose local log must exist and
    /// be led here, and starts coordinating its transactional ids (COORDINATOR_LOAD_IN_PROGRESS
    /// meanwhile); then finishes the transactions it left in PrepareCommit or PrepareAbort,
    /// with `groups` told of markers in `__consumer_offsets`. Loading a loaded partition does
    /// nothing; if the replay fails the partition stays loading.
    pub fn load_partition(&self, partition: i32, groups: &GroupCoordinator) -> Result<()> {
        let Some(load) = self.txns.lock().loads.start(partition) else { return Ok(()) };
        let replayed = self.log.replay(partition)?;
        let count = replayed.len();
        let half_ended: Vec<(String, TxnMetadata)> = {
            let mut txns = self.txns.lock();
            // Unloaded, or loaded again, while this load ran: its result is not wanted.
            if txns.loads.finish(partition, load).is_none() {
                return Ok(());
            }
            let half_ended = replayed
                .iter()
                .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect();
            txns.by_id.extend(replayed);
            half_ended
        };
        tracing::info!(partition, transactional_ids = count, "loaded transaction state");
        for (id, metadata) in half_ended {
            self.finish_half_ended(groups, &id, metadata);
        }
        Ok(())
    }

    /// A transaction whose end was decided (its PrepareCommit or PrepareAbort is in the log)
    /// but whose markers may not all be written: they are written, and it completes. Nobody
    /// waits for the answer, so nothing waits for the replicas either.
    fn finish_half_ended(&self, groups: &GroupCoordinator, id: &str, metadata: TxnMetadata) {
        tracing::info!(transactional_id = %id, state = metadata.state.name(), "completing a transaction left half-ended");
        let commit = metadata.state == TxnState::PrepareCommit;
        self.markers.write_markers(groups, &metadata, commit);
        let mut txns = self.txns.lock();
        if txns.get(id) != Some(&metadata) {
            return;
        }
        let mut complete = metadata;
        complete.complete(now_ms());
        match self.log.write(id, Some(&complete), now_ms()) {
            Ok(_) => {
                txns.insert(id, complete);
            }
            Err(err) => tracing::error!(transactional_id = %id, "cannot persist transaction state: {err}"),
        }
    }

    /// Stops coordinating the transactional ids of `partition` (its leadership moved): they
    /// are forgotten, and their producers' next requests answer NOT_COORDINATOR. An EndTxn
    /// underway stops before its next step; the partition's new coordinator finishes it.
    pub fn unload_partition(&self, partition: i32) {
        let mut txns = self.txns.lock();
        txns.loads.unload(partition);
        let before = txns.by_id.len();
        txns.by_id.retain(|id, _| self.partition_of(id) != partition);
        tracing::info!(partition, transactional_ids = before - txns.by_id.len(), "unloaded transaction state");
    }
}
