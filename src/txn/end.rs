//! Writing a transactional id's state, acknowledged once replicated (Kafka appends it with
//! acks=-1 and the transaction's timeout), and ending transactions: EndTxn, the abort of
//! transactions past their timeout, and the expiry of idle ids.
//!
//! A state is appended and made current under the coordinator's lock, so the log and memory
//! agree on the order of changes; the wait for the replicas does not hold the lock. If the
//! replicas do not take it, the previous state is put back (Kafka keeps the new one pending
//! until then): the client was refused, and a later state supersedes the record in the log.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::load::Txns;
use super::markers::Marker;
use super::state::{EndV2, TxnMetadata, NO_PRODUCER_ID, TV_EPOCH_BUMP};
use super::{TransactionCoordinator, TxnError};
use crate::clock::now_ms;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::event_loop::off_event_loop;
use crate::group::GroupCoordinator;
use crate::topics::internal::Appended;

/// What EndTxn does once it has decided.
enum EndStep {
    /// A retry of an end that is complete: the producer id and epoch to answer with.
    Answer((i64, i16)),
    /// The PrepareCommit or PrepareAbort, to acknowledge before the markers go out.
    Prepared(Box<StateWrite>),
}

/// A state in the log and in memory, not yet acknowledged.
#[must_use = "a state change is answered once it is acknowledged"]
pub(super) struct StateWrite {
    id: String,
    written: TxnMetadata,
    /// What to put back if the replicas do not take it: `None` when nothing should be (the
    /// markers are out, so the transaction is over whatever the log says).
    previous: Option<Option<TxnMetadata>>,
    appended: Appended,
    deadline: Instant,
}

impl StateWrite {
    pub(super) fn written(&self) -> &TxnMetadata {
        &self.written
    }
}

impl TransactionCoordinator {
    /// Appends `next` as `id`'s state and makes it current.
    pub(super) fn write_locked(
        &self,
        txns: &mut Txns,
        id: &str,
        next: TxnMetadata,
    ) -> Result<StateWrite> {
        let appended = self
            .log
            .write(id, Some(&next), now_ms())
            .map_err(|err| err.for_coordinator_write(CoordinatorWrite::TransactionState))?;
        let previous = txns.insert(id, next.clone());
        Ok(StateWrite {
            id: id.to_owned(),
            deadline: Instant::now() + Duration::from_millis(next.timeout_ms.max(1) as u64),
            written: next,
            previous: Some(previous),
            appended,
        })
    }

    /// Waits until the in-sync replicas hold the state; if they do not, it is undone (unless
    /// something changed it meanwhile) and the client told as Kafka tells it.
    pub(super) async fn acknowledged(&self, write: StateWrite) -> Result<()> {
        let Err(err) = write.appended.replicated(write.deadline).await else {
            return Ok(());
        };
        tracing::warn!(transactional_id = %write.id, "transaction state not replicated: {err}");
        if let Some(previous) = write.previous {
            let mut txns = self.txns.lock();
            if txns.get(&write.id) == Some(&write.written) {
                match previous {
                    Some(previous) => txns.insert(&write.id, previous),
                    None => txns.remove(&write.id),
                };
            }
        }
        Err(err.for_coordinator_write(CoordinatorWrite::TransactionState))
    }

    /// EndTxn from the producer, answered once the transaction is complete, with the
    /// producer id and epoch it goes on with (EndTxn v5 tells the producer; `client_tv` 2
    /// bumps the epoch, see [`TxnMetadata::end_v2`]).
    pub async fn end_txn(
        self: &Arc<Self>,
        id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        client_tv: i16,
        groups: &GroupCoordinator,
    ) -> Result<(i64, i16)> {
        let (this, owned) = (self.clone(), id.to_owned());
        let step =
            off_event_loop(move || this.end_step(&owned, producer_id, epoch, commit, client_tv));
        match step.await? {
            EndStep::Answer(answer) => Ok(answer),
            EndStep::Prepared(prepare) => {
                let complete = self.finish_end(groups, id, *prepare, commit).await?;
                Ok((complete.producer_id, complete.producer_epoch))
            }
        }
    }

    /// EndTxn's checks and its PrepareCommit or PrepareAbort, or the answer to a retry of an
    /// end that is complete.
    fn end_step(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        client_tv: i16,
    ) -> Result<EndStep> {
        let _ending = self.ends.write();
        let mut txns = self.locked_for(id)?;
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let current = (metadata.producer_id, metadata.producer_epoch);
        if client_tv < TV_EPOCH_BUMP {
            metadata.check_producer(producer_id, epoch)?;
            if !metadata.end(commit)? {
                return Ok(EndStep::Answer(current));
            }
            let next = metadata.clone();
            return self
                .prepare_end(&mut txns, id, next, commit)
                .map(|prepare| EndStep::Prepared(Box::new(prepare)));
        }
        let empty = match metadata.end_v2(producer_id, epoch, commit)? {
            EndV2::Retry => return Ok(EndStep::Answer(current)),
            EndV2::Prepare { empty } => empty,
        };
        let mut next = metadata.clone();
        let next_producer_id = match next.epoch_exhausted() {
            true => self.new_producer_id()?,
            false => NO_PRODUCER_ID,
        };
        next.prepare_v2(commit, next_producer_id, empty, now_ms());
        self.write_locked(&mut txns, id, next)
            .map(|prepare| EndStep::Prepared(Box::new(prepare)))
    }

    /// The first step of ending a transaction: PrepareCommit or PrepareAbort.
    pub(super) fn prepare_end(
        &self,
        txns: &mut Txns,
        id: &str,
        mut next: TxnMetadata,
        commit: bool,
    ) -> Result<StateWrite> {
        next.prepare(commit, now_ms());
        self.write_locked(txns, id, next)
    }

    /// The rest of it: once the prepared state is replicated the end is decided, and only
    /// then do the markers go out. Returns the complete state.
    pub(super) async fn finish_end(
        self: &Arc<Self>,
        groups: &GroupCoordinator,
        id: &str,
        prepare: StateWrite,
        commit: bool,
    ) -> Result<TxnMetadata> {
        let prepared = prepare.written.clone();
        self.acknowledged(prepare).await?;
        self.complete_decided(groups, id, prepared, commit).await
    }

    /// A decided end (`prepared`, its PrepareCommit or PrepareAbort, is replicated): the
    /// markers, then CompleteCommit or CompleteAbort, acknowledged once replicated. If this
    /// broker stops coordinating the id meanwhile (the partition was unloaded, or loaded again
    /// at a new epoch, whose load finishes it), or a partition was written by a newer
    /// coordinator, it stops with NOT_COORDINATOR and leaves the rest to that coordinator.
    /// Returns the complete state.
    pub(super) async fn complete_decided(
        self: &Arc<Self>,
        groups: &GroupCoordinator,
        id: &str,
        prepared: TxnMetadata,
        commit: bool,
    ) -> Result<TxnMetadata> {
        let partition = self.partition_of(id);
        let epoch = self
            .locked_for(id)?
            .coordinator_epoch(partition)
            .ok_or(BrokerError::NotCoordinator)?;
        let still_ours = |txns: &Txns| {
            txns.get(id) == Some(&prepared) && txns.coordinator_epoch(partition) == Some(epoch)
        };
        let coordinating = || still_ours(&self.txns.lock());
        if !coordinating() {
            return Err(BrokerError::NotCoordinator);
        }
        let partitions: Vec<(String, i32)> = prepared.partitions.iter().cloned().collect();
        let marker = Marker::ending(&prepared, commit, epoch);
        self.markers()
            .write_markers(groups, marker, &partitions, &coordinating)
            .await?;
        let (this, owned) = (self.clone(), id.to_owned());
        let mut complete = off_event_loop(move || {
            let mut txns = this.locked_for(&owned)?;
            let still_ours = txns.get(&owned) == Some(&prepared)
                && txns.coordinator_epoch(partition) == Some(epoch);
            if !still_ours {
                return Err(BrokerError::NotCoordinator);
            }
            let mut next = prepared;
            next.complete(now_ms());
            this.write_locked(&mut txns, &owned, next)
        })
        .await?;
        // The markers are out: the transaction is over whatever becomes of this record.
        complete.previous = None;
        let state = complete.written.clone();
        self.acknowledged(complete).await?;
        Ok(state)
    }

    /// Aborts every transaction open longer than its timeout, at a bumped epoch so the
    /// producer that let it time out is fenced.
    pub async fn abort_timed_out(self: &Arc<Self>, groups: &GroupCoordinator) {
        let now = now_ms();
        let this = self.clone();
        let prepared = off_event_loop(move || {
            let _ending = this.ends.write();
            let mut txns = this.txns.lock();
            let due = txns.matching(|m| m.timed_out(now));
            Ok(due.into_iter()
                .filter_map(|(id, metadata)| {
                    tracing::info!(transactional_id = %id, producer_id = metadata.producer_id, "aborting a transaction that timed out");
                    match this.fence_and_abort(&mut txns, &id, metadata) {
                        Ok(prepare) => Some((id, prepare)),
                        Err(err) => {
                            tracing::error!(transactional_id = %id, "cannot abort timed-out transaction: {err}");
                            None
                        }
                    }
                })
                .collect::<Vec<(String, StateWrite)>>())
        });
        let prepared = match prepared.await {
            Ok(prepared) => prepared,
            Err(err) => return tracing::error!("cannot abort timed-out transactions: {err}"),
        };
        // Side by side: one whose partitions are slow to take their markers holds up no other.
        let aborts = prepared.into_iter().map(|(id, prepare)| async move {
            if let Err(err) = self.finish_end(groups, &id, prepare, false).await {
                tracing::error!(transactional_id = %id, "cannot abort timed-out transaction: {err}");
            }
        });
        join_all(aborts).await;
    }

    /// Forgets transactional ids unused for `transactional_id_expiration_ms`. Nobody waits
    /// for the tombstones: one lost with a leader leaves an idle id that expires again.
    pub fn expire_ids(&self) {
        let now = now_ms();
        let mut txns = self.txns.lock();
        let expiration = self.config.transactional_id_expiration_ms;
        for (id, _) in txns.matching(|m| m.expired(now, expiration)) {
            match self.log.write(&id, None, now) {
                Ok(_) => {
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    txns.remove(&id);
                }
                Err(err) => {
                    tracing::error!(transactional_id = %id, "cannot expire transactional id: {err}")
                }
            }
        }
    }
}
