//! Which `__transaction_state` partitions this broker coordinates: loading one replays its
//! transactional ids and queues the transactions it finds half-ended, which
//! [`TransactionCoordinator::finish_half_ended`] then finishes (their markers may have to
//! wait for other brokers, which a load must not); unloading it forgets them. The broker loads
//! the partitions it becomes leader of and unloads those it loses.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;

use super::state::{TxnMetadata, TxnState};
use super::{TransactionCoordinator, TxnListing};
use crate::clock::now_ms;
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::topics::internal::PartitionLoads;

/// The transactional ids of the loaded partitions, and the partitions' states.
pub(super) struct Txns {
    by_id: HashMap<String, TxnMetadata>,
    pub(super) loads: PartitionLoads<()>,
    /// The leader epoch each loaded partition was loaded at: this coordinator's epoch there.
    epochs: HashMap<i32, i32>,
    /// Found in PrepareCommit or PrepareAbort by a load, not yet being finished.
    half_ended: Vec<(String, TxnMetadata)>,
}

impl Txns {
    pub(super) fn new() -> Txns {
        Txns {
            by_id: HashMap::new(),
            loads: PartitionLoads::new(),
            epochs: HashMap::new(),
            half_ended: Vec::new(),
        }
    }

    /// The coordinator epoch of loaded partition `partition`.
    pub(super) fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.epochs
            .get(&partition)
            .copied()
            .filter(|_| self.loads.is_loaded(partition))
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
    pub(super) fn matching(
        &self,
        wanted: impl Fn(&TxnMetadata) -> bool,
    ) -> Vec<(String, TxnMetadata)> {
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
    /// Replays `__transaction_state` partition `partition`, whose local log must exist and
    /// be led here, and starts coordinating its transactional ids (COORDINATOR_LOAD_IN_PROGRESS
    /// meanwhile) at the partition's leader epoch; the transactions it left in PrepareCommit
    /// or PrepareAbort wait for [`Self::finish_half_ended`]. Loading a loaded partition does
    /// nothing; if the replay fails the partition stays loading.
    pub fn load_partition(&self, partition: i32) -> Result<()> {
        let Some(load) = self.txns.lock().loads.start(partition) else {
            return Ok(());
        };
        let epoch = self.log.topic().partition(partition)?.leader_epoch();
        let super::log::Replayed {
            txns: replayed,
            legacy,
        } = self.log.replay(partition)?;
        // Before the ids are served, so no new state can come between.
        for id in &legacy {
            if let Err(err) = self.log.rewrite_legacy(id, replayed.get(id), now_ms()) {
                tracing::warn!(partition, transactional_id = %id, "cannot rewrite a JSON transaction state record in Kafka's format: {err}");
            }
        }
        if !legacy.is_empty() {
            tracing::info!(
                partition,
                rewritten = legacy.len(),
                "rewrote JSON transaction state records in Kafka's format"
            );
        }
        let count = replayed.len();
        let mut txns = self.txns.lock();
        // Unloaded, or loaded again, while this load ran: its result is not wanted.
        if txns.loads.finish(partition, load).is_none() {
            return Ok(());
        }
        let half_ended: Vec<(String, TxnMetadata)> = replayed
            .iter()
            .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        txns.half_ended.extend(half_ended);
        txns.by_id.extend(replayed);
        txns.epochs.insert(partition, epoch);
        tracing::info!(
            partition,
            epoch,
            transactional_ids = count,
            "loaded transaction state"
        );
        Ok(())
    }

    /// Finishes the transactions loads found half-ended: their end was decided (the
    /// PrepareCommit or PrepareAbort is in the log) but their markers may not all be written.
    /// They are written, and the transactions complete; each independently of the others.
    /// Nobody waits for the answer, so failures are only logged.
    pub async fn finish_half_ended(self: &Arc<Self>, groups: &GroupCoordinator) {
        let half_ended = std::mem::take(&mut self.txns.lock().half_ended);
        let finishing = half_ended.into_iter().map(|(id, metadata)| async move {
            tracing::info!(transactional_id = %id, state = metadata.state.name(), "completing a transaction left half-ended");
            let commit = metadata.state == TxnState::PrepareCommit;
            if let Err(err) = self.complete_decided(groups, &id, metadata, commit).await {
                tracing::warn!(transactional_id = %id, "cannot complete a transaction left half-ended: {err}");
            }
        });
        join_all(finishing).await;
    }

    /// Stops coordinating the transactional ids of `partition` (its leadership moved): they
    /// are forgotten, and their producers' next requests answer NOT_COORDINATOR. An EndTxn
    /// underway stops before its next step; the partition's new coordinator finishes it.
    pub fn unload_partition(&self, partition: i32) {
        // After the appends checked against these ids are written (see `ends`).
        let _ending = self.ends.write();
        let mut txns = self.txns.lock();
        txns.loads.unload(partition);
        txns.epochs.remove(&partition);
        let before = txns.by_id.len();
        txns.by_id
            .retain(|id, _| self.partition_of(id) != partition);
        txns.half_ended
            .retain(|(id, _)| self.partition_of(id) != partition);
        tracing::info!(
            partition,
            transactional_ids = before - txns.by_id.len(),
            "unloaded transaction state"
        );
    }
}
