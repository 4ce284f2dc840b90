//! The transaction coordinator: producer ids, and every transactional id this broker
//! coordinates (all of them, on a single node), as Kafka's `TransactionCoordinator` with
//! transaction.version 1 (no KIP-890 part 2: samsa does not advertise the feature).
//!
//! Each state change is appended to `__transaction_state` (see [`log`]) before it is
//! acknowledged, and replayed by [`TransactionCoordinator::load`] at start-up; until then
//! the transactional APIs answer COORDINATOR_LOAD_IN_PROGRESS. Ending a transaction writes
//! its markers at once, under the coordinator's lock, so a transaction is only ever seen in
//! PrepareCommit or PrepareAbort after a crash; loading finishes it.

pub mod log;
mod producer_ids;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use samsa_storage::ControlType;

use crate::auth::file::FileError;
use crate::broker::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::group::store::OFFSETS_TOPIC;
use crate::group::txn_offsets::TransactionCheck;
use crate::group::GroupCoordinator;
use crate::topics::TopicRegistry;
use log::TxnLog;
use producer_ids::ProducerIds;
use state::{InitAction, TxnMetadata, TxnState};

/// The epoch of the coordinator written into markers: one node, never re-elected.
const COORDINATOR_EPOCH: i32 = 0;

/// The coordinator's refusals; mapped to Kafka codes in [`crate::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the producer id is not the one of this transactional id")]
    InvalidProducerIdMapping,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the producer epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("another operation on this transaction is in progress")]
    ConcurrentTransactions,
    #[error("the transaction is not in a state that allows this")]
    InvalidTxnState,
    #[error("the transaction timeout is not between 1 ms and transaction_max_timeout_ms")]
    InvalidTransactionTimeout,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("Partition was not added to the transaction")]
    NotInTransaction,
}

/// One transactional id as ListTransactions and DescribeTransactions show it.
pub type TxnListing = (String, TxnMetadata);

pub struct TransactionCoordinator {
    config: Arc<Config>,
    ids: ProducerIds,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// Set once `__transaction_state` has been replayed.
    log: OnceLock<TxnLog>,
}

impl TransactionCoordinator {
    pub fn open(config: Arc<Config>) -> Result<TransactionCoordinator, FileError> {
        Ok(TransactionCoordinator {
            ids: ProducerIds::open(&config.data_dir)?,
            config,
            txns: Mutex::new(HashMap::new()),
            log: OnceLock::new(),
        })
    }

    /// Replays `__transaction_state`, then finishes the transactions a crash left half-ended.
    pub fn load(&self, topics: Arc<TopicRegistry>, groups: &GroupCoordinator) -> Result<()> {
        let log = TxnLog::new(topics.clone(), self.config.transaction_state_num_partitions);
        let replayed = log.replay()?;
        let count = replayed.len();
        let mut txns = self.txns.lock();
        *txns = replayed;
        let log = self.log.get_or_init(|| log);
        for (id, metadata) in txns.iter_mut() {
            if matches!(metadata.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                tracing::info!(transactional_id = %id, state = metadata.state.name(), "completing a transaction left half-ended");
                let commit = metadata.state == TxnState::PrepareCommit;
                write_markers(&topics, groups, metadata, commit);
                metadata.complete(now_ms());
                if let Err(err) = log.write(id, Some(metadata), now_ms()) {
                    tracing::error!(transactional_id = %id, "cannot persist transaction state: {err}");
                }
            }
        }
        tracing::info!(transactional_ids = count, "loaded transaction state");
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        self.log.get().is_some()
    }

    fn log(&self) -> Result<&TxnLog> {
        self.log.get().ok_or(BrokerError::CoordinatorLoadInProgress)
    }

    fn topics(&self) -> Result<Arc<TopicRegistry>> {
        self.log().map(|log| log.topics())
    }

    /// A producer id for an idempotent producer without a transactional id.
    pub fn new_producer_id(&self) -> Result<i64> {
        self.ids.allocate().map_err(|e| BrokerError::Storage(e.into()))
    }

    /// InitProducerId with a transactional id: its producer id and new epoch.
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        groups: &GroupCoordinator,
    ) -> Result<(i64, i16)> {
        let log = self.log()?;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout.into());
        }
        let now = now_ms();
        let mut txns = self.txns.lock();
        let metadata = match txns.get(id) {
            Some(existing) => existing.clone(),
            None => TxnMetadata::new(self.new_producer_id()?, timeout_ms, now),
        };
        let mut next = metadata.clone();
        match next.init_action(expected)? {
            InitAction::Retry => return Ok((next.producer_id, next.producer_epoch)),
            InitAction::FenceAndAbort => {
                next.fence();
                self.end_locked(log, groups, id, next, false, &mut txns)?;
                return Err(TxnError::ConcurrentTransactions.into());
            }
            InitAction::Bump => {
                let expected_epoch = expected.map(|(_, epoch)| epoch);
                if next.bump(expected_epoch, timeout_ms, now).is_none() {
                    next.rotate(self.new_producer_id()?, expected_epoch, timeout_ms, now);
                }
            }
        }
        log.write(id, Some(&next), now)?;
        let answer = (next.producer_id, next.producer_epoch);
        txns.insert(id.to_owned(), next);
        Ok(answer)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition).
    pub fn add_partitions(&self, id: &str, producer_id: i64, epoch: i16, partitions: &[(String, i32)]) -> Result<()> {
        let log = self.log()?;
        let mut txns = self.txns.lock();
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        metadata.check_producer(producer_id, epoch)?;
        let mut next = metadata.clone();
        let now = now_ms();
        if next.add_partitions(partitions, now)? {
            log.write(id, Some(&next), now)?;
            txns.insert(id.to_owned(), next);
        }
        Ok(())
    }

    /// Whether each partition is in the producer's open transaction (AddPartitionsToTxn
    /// `verify_only`, and Produce's check of a transactional batch).
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>> {
        self.log()?;
        let txns = self.txns.lock();
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        metadata.check_producer(producer_id, epoch)?;
        let open = metadata.state == TxnState::Ongoing;
        Ok(partitions.iter().map(|p| open && metadata.partitions.contains(p)).collect())
    }

    /// Produce of a transactional batch: `append` runs only if the batch belongs to an open
    /// transaction that includes its partition (Kafka's transaction.partition.verification),
    /// and runs under the coordinator's lock, so an EndTxn cannot write its markers between
    /// the check and the append: a batch landing after the marker would open a transaction
    /// in the log that no marker ever closes, holding read_committed consumers back for good.
    pub fn append_in_transaction<T>(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        (topic, partition): (&str, i32),
        append: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.log()?;
        let txns = self.txns.lock();
        let Some(metadata) = txns.get(id) else {
            return Err(TxnError::NotInTransaction.into());
        };
        if metadata.producer_id == producer_id && epoch < metadata.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch.into());
        }
        let member = metadata.producer_id == producer_id
            && metadata.producer_epoch == epoch
            && metadata.state == TxnState::Ongoing
            && metadata.partitions.contains(&(topic.to_owned(), partition));
        if !member {
            return Err(TxnError::NotInTransaction.into());
        }
        append()
    }

    /// EndTxn from the producer.
    pub fn end_txn(&self, id: &str, producer_id: i64, epoch: i16, commit: bool, groups: &GroupCoordinator) -> Result<()> {
        let log = self.log()?;
        let mut txns = self.txns.lock();
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        metadata.check_producer(producer_id, epoch)?;
        if !metadata.end(commit)? {
            return Ok(());
        }
        let next = metadata.clone();
        self.end_locked(log, groups, id, next, commit, &mut txns)
    }

    /// Prepare, markers, complete: each state persisted before the next step.
    fn end_locked(
        &self,
        log: &TxnLog,
        groups: &GroupCoordinator,
        id: &str,
        mut next: TxnMetadata,
        commit: bool,
        txns: &mut HashMap<String, TxnMetadata>,
    ) -> Result<()> {
        next.prepare(commit, now_ms());
        log.write(id, Some(&next), now_ms())?;
        txns.insert(id.to_owned(), next.clone());
        write_markers(&log.topics(), groups, &next, commit);
        next.complete(now_ms());
        log.write(id, Some(&next), now_ms())?;
        txns.insert(id.to_owned(), next);
        Ok(())
    }

    /// Aborts every transaction open longer than its timeout, at a bumped epoch so the
    /// producer that let it time out is fenced.
    pub fn abort_timed_out(&self, groups: &GroupCoordinator) {
        let Ok(log) = self.log() else { return };
        let now = now_ms();
        let mut txns = self.txns.lock();
        let due: Vec<(String, TxnMetadata)> = txns
            .iter()
            .filter(|(_, m)| m.timed_out(now))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        for (id, mut metadata) in due {
            tracing::info!(transactional_id = %id, producer_id = metadata.producer_id, "aborting a transaction that timed out");
            metadata.fence();
            if let Err(err) = self.end_locked(log, groups, &id, metadata, false, &mut txns) {
                tracing::error!(transactional_id = %id, "cannot abort timed-out transaction: {err}");
            }
        }
    }

    /// Forgets transactional ids unused for `transactional_id_expiration_ms`.
    pub fn expire_ids(&self) {
        let Ok(log) = self.log() else { return };
        let now = now_ms();
        let mut txns = self.txns.lock();
        let expiration = self.config.transactional_id_expiration_ms;
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, m)| m.expired(now, expiration))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            match log.write(&id, None, now) {
                Ok(()) => {
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    txns.remove(&id);
                }
                Err(err) => tracing::error!(transactional_id = %id, "cannot expire transactional id: {err}"),
            }
        }
    }

    pub fn list(&self) -> Result<Vec<TxnListing>> {
        self.log()?;
        Ok(self.txns.lock().iter().map(|(id, m)| (id.clone(), m.clone())).collect())
    }

    pub fn describe(&self, id: &str) -> Result<TxnMetadata> {
        self.log()?;
        self.txns.lock().get(id).cloned().ok_or(TxnError::TransactionalIdNotFound.into())
    }

    /// Whether `topic` exists (AddPartitionsToTxn refuses unknown partitions).
    pub fn partition_exists(&self, topic: &str, partition: i32) -> Result<bool> {
        Ok(self.topics()?.get(topic).is_some_and(|t| t.partition(partition).is_some()))
    }
}

/// Writes the transaction's marker into each of its partitions, and tells the group
/// coordinator about those in `__consumer_offsets`. A partition whose topic is gone is
/// skipped; a failed write is logged, as the transaction must still end.
fn write_markers(topics: &TopicRegistry, groups: &GroupCoordinator, txn: &TxnMetadata, commit: bool) {
    let control = if commit { ControlType::Commit } else { ControlType::Abort };
    for (topic, index) in &txn.partitions {
        let Some(partition) = topics.get(topic).and_then(|t| t.partition(*index).cloned()) else {
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

/// TxnOffsetCommit's producer check: Kafka answers a stale epoch there with
/// INVALID_PRODUCER_EPOCH rather than PRODUCER_FENCED, and a group's offsets partition
/// missing from the transaction (no AddOffsetsToTxn) with INVALID_TXN_STATE.
impl TransactionCheck for TransactionCoordinator {
    fn verify_then(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
        then: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        self.log()?;
        let txns = self.txns.lock();
        let metadata = txns.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        match metadata.check_producer(producer_id, producer_epoch) {
            Err(TxnError::ProducerFenced) => return Err(TxnError::InvalidProducerEpoch.into()),
            other => other?,
        }
        let added = metadata.state == TxnState::Ongoing
            && metadata.partitions.contains(&(OFFSETS_TOPIC.to_owned(), offsets_partition));
        if !added {
            return Err(TxnError::InvalidTxnState.into());
        }
        then()
    }
}
