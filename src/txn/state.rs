//! One transactional id's coordinator state and the rules of its transitions, as Kafka's
//! `TransactionMetadata` with transaction.version 1. Pure: the coordinator persists each
//! new state and writes the markers.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::TxnError;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH` and `NO_PRODUCER_ID`.
pub const NO_EPOCH: i16 = -1;
pub const NO_PRODUCER_ID: i64 = -1;
/// An epoch this high cannot be bumped again: the producer gets a fresh id instead.
const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    PrepareEpochFence,
    Dead,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ];

    /// The name ListTransactions and DescribeTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// No transaction is open or ending: the id may take a new producer epoch or expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// What the coordinator knows of one transactional id; also its `__transaction_state` value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id and epoch before the last bump, so a retried InitProducerId
    /// (KIP-360) is recognised rather than fenced.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction began; -1 when none is open.
    pub start_ms: i64,
    pub update_ms: i64,
}

/// What InitProducerId does to an existing id.
#[derive(Debug, PartialEq, Eq)]
pub enum InitAction {
    /// Bump the epoch (or take the new producer id) and answer with it.
    Bump,
    /// A retry of the request that made the current epoch: answer with it unchanged.
    Retry,
    /// A transaction is open: abort it at a bumped epoch first, answer CONCURRENT_TRANSACTIONS.
    FenceAndAbort,
}

impl TxnMetadata {
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_EPOCH,
            last_producer_epoch: NO_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
        }
    }

    /// InitProducerId's decision; `expected` is the (producer id, epoch) the client named, if any.
    pub fn init_action(&self, expected: Option<(i64, i16)>) -> Result<InitAction, TxnError> {
        let retry = expected.is_some_and(|(id, epoch)| {
            epoch == self.last_producer_epoch
                && epoch != NO_EPOCH
                && (id == self.producer_id || id == self.last_producer_id)
        });
        let current = expected.is_none_or(|e| e == (self.producer_id, self.producer_epoch));
        if !(current || retry || self.producer_epoch == NO_EPOCH) {
            return Err(TxnError::ProducerFenced);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => Ok(InitAction::FenceAndAbort),
            TxnState::Dead => Err(TxnError::ConcurrentTransactions),
            _ if retry && !current => Ok(InitAction::Retry),
            _ => Ok(InitAction::Bump),
        }
    }

    /// The next epoch of an idle id; `None` when the epoch is spent and a new producer
    /// id must be taken (epoch 0).
    pub fn bump(
        &mut self,
        expected_epoch: Option<i16>,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Option<()> {
        if self.producer_epoch >= LAST_USABLE_EPOCH {
            return None;
        }
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = expected_epoch.unwrap_or(NO_EPOCH);
        self.producer_epoch += 1;
        self.timeout_ms = timeout_ms;
        self.reset(now_ms);
        Some(())
    }

    /// Moves to a fresh producer id at epoch 0 (the old epoch was spent).
    pub fn rotate(
        &mut self,
        new_producer_id: i64,
        expected_epoch: Option<i16>,
        timeout_ms: i32,
        now_ms: i64,
    ) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = expected_epoch.unwrap_or(NO_EPOCH);
        self.producer_id = new_producer_id;
        self.producer_epoch = 0;
        self.timeout_ms = timeout_ms;
        self.reset(now_ms);
    }

    fn reset(&mut self, now_ms: i64) {
        self.state = TxnState::Empty;
        self.partitions.clear();
        self.start_ms = -1;
        self.update_ms = now_ms;
    }

    /// Fences the current producer of an open transaction: the abort that follows is
    /// written at the bumped epoch, which the old producer can no longer use.
    pub fn fence(&mut self) {
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.last_producer_epoch = NO_EPOCH;
    }

    /// The checks every client call naming this id's producer makes.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn: whether anything changes (already-added partitions do not).
    pub fn add_partitions(
        &mut self,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<bool, TxnError> {
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => return Err(TxnError::InvalidTxnState),
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(false)
            }
            TxnState::Ongoing => {}
            _ => {
                self.start_ms = now_ms;
                self.partitions.clear();
            }
        }
        self.state = TxnState::Ongoing;
        self.partitions.extend(partitions.iter().cloned());
        self.update_ms = now_ms;
        Ok(true)
    }

    /// EndTxn: `Ok(true)` to start ending the open transaction, `Ok(false)` for a retry of
    /// an end that is already complete.
    pub fn end(&self, commit: bool) -> Result<bool, TxnError> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(true),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(false),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    pub fn prepare(&mut self, commit: bool, now_ms: i64) {
        self.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.update_ms = now_ms;
    }

    /// After every marker is written.
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        self.partitions.clear();
        self.start_ms = -1;
        self.update_ms = now_ms;
    }

    /// Open longer than its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms + i64::from(self.timeout_ms) <= now_ms
    }

    /// Idle and unused for `expiration_ms` (`transactional.id.expiration.ms`).
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.state.is_idle() && self.update_ms + expiration_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(epoch: i16) -> TxnMetadata {
        let mut m = TxnMetadata::new(7, 60_000, 0);
        m.producer_epoch = epoch;
        m
    }

    #[test]
    fn init_bumps_retries_and_fences_like_kafka() {
        let fresh = TxnMetadata::new(7, 60_000, 0);
        assert_eq!(fresh.init_action(None), Ok(InitAction::Bump));
        let mut m = idle(2);
        assert_eq!(m.init_action(Some((7, 2))), Ok(InitAction::Bump));
        m.bump(Some(2), 60_000, 1).unwrap();
        assert_eq!(m.producer_epoch, 3);
        // The same request again (its answer was lost): the epoch it produced, unchanged.
        assert_eq!(m.init_action(Some((7, 2))), Ok(InitAction::Retry));
        assert_eq!(m.init_action(Some((7, 0))), Err(TxnError::ProducerFenced));
        assert_eq!(m.init_action(Some((8, 3))), Err(TxnError::ProducerFenced));
        m.add_partitions(&[("t".into(), 0)], 5).unwrap();
        assert_eq!(m.init_action(None), Ok(InitAction::FenceAndAbort));
    }

    #[test]
    fn a_spent_epoch_needs_a_new_producer_id() {
        let mut m = idle(LAST_USABLE_EPOCH);
        assert!(m.bump(None, 1000, 1).is_none());
        m.rotate(99, None, 1000, 1);
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.last_producer_id),
            (99, 0, 7)
        );
    }

    #[test]
    fn end_follows_kafkas_state_table() {
        let mut m = idle(0);
        assert_eq!(m.end(true), Err(TxnError::InvalidTxnState));
        assert!(m.add_partitions(&[("t".into(), 0)], 10).unwrap());
        assert!(!m.add_partitions(&[("t".into(), 0)], 11).unwrap());
        assert_eq!(m.start_ms, 10);
        assert_eq!(m.end(true), Ok(true));
        m.prepare(true, 12);
        assert_eq!(m.end(true), Err(TxnError::ConcurrentTransactions));
        assert_eq!(m.end(false), Err(TxnError::InvalidTxnState));
        assert_eq!(
            m.add_partitions(&[("t".into(), 1)], 12),
            Err(TxnError::ConcurrentTransactions)
        );
        m.complete(13);
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert_eq!(m.end(true), Ok(false));
        assert_eq!(m.end(false), Err(TxnError::InvalidTxnState));
    }

    #[test]
    fn timeouts_and_expiry() {
        let mut m = idle(0);
        m.add_partitions(&[("t".into(), 0)], 100).unwrap();
        assert!(!m.timed_out(100 + 59_999));
        assert!(m.timed_out(100 + 60_000));
        assert!(!m.expired(1_000_000, 10));
        m.prepare(false, 200);
        m.complete(200);
        assert!(m.expired(210, 10));
    }
}
