//! One transactional id's coordinator state and the rules of its transitions, as Kafka's
//! `TransactionMetadata`: transaction.version 1 (the producer adds partitions, the epoch
//! moves only on InitProducerId and fences) and 2 (KIP-890 part 2: partitions are added by
//! their leaders, every EndTxn bumps the epoch). Pure: the coordinator persists each new
//! state and writes the markers.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::TxnError;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH` and `NO_PRODUCER_ID`.
pub const NO_EPOCH: i16 = -1;
pub const NO_PRODUCER_ID: i64 = -1;
/// An epoch this high cannot be bumped again: the producer gets a fresh id instead.
pub const LAST_USABLE_EPOCH: i16 = i16::MAX - 1;
/// The first transaction.version whose ends bump the producer epoch (Kafka's
/// `TransactionVersion.supportsEpochBump`).
pub const TV_EPOCH_BUMP: i16 = 2;

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
    /// The transaction.version of the client's last AddPartitionsToTxn or EndTxn (0 for
    /// version 1 requests, as Kafka records it; 2 for KIP-890 part 2).
    #[serde(default)]
    pub client_tv: i16,
    /// While a transaction.version 2 end whose epoch is spent is being written: the producer
    /// id it moves to once complete; -1 otherwise.
    #[serde(default = "no_producer_id")]
    pub next_producer_id: i64,
}

fn no_producer_id() -> i64 {
    NO_PRODUCER_ID
}

/// What EndTxn does under transaction.version 2.
#[derive(Debug, PartialEq, Eq)]
pub enum EndV2 {
    /// A retry of the end that made the current state: answer with the current id and epoch.
    Retry,
    /// Prepare the end at a bumped epoch; `empty` when no transaction is open (an abort the
    /// client sends not knowing whether a leader added a partition), which starts now.
    Prepare { empty: bool },
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
            client_tv: 0,
            next_producer_id: NO_PRODUCER_ID,
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
    /// `client_tv` is the transaction.version of the request (2 when a partition leader adds
    /// the partition for a KIP-890 producer).
    pub fn add_partitions(
        &mut self,
        partitions: &[(String, i32)],
        now_ms: i64,
        client_tv: i16,
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
        self.client_tv = client_tv;
        Ok(true)
    }

    /// EndTxn v5 (transaction.version 2), as Kafka 4.4 decides it. Every end bumps the
    /// epoch, so the epoch the client names tells a new end (the current epoch) from a retry
    /// of the last one (the epoch before its bump, or the last usable epoch of the producer id
    /// the end moved away from).
    pub fn end_v2(&self, producer_id: i64, epoch: i16, commit: bool) -> Result<EndV2, TxnError> {
        use TxnState as S;
        let retry_on_bump = i32::from(self.producer_epoch) == i32::from(epoch) + 1;
        let retry_on_overflow = self.last_producer_id == producer_id
            && epoch == LAST_USABLE_EPOCH
            && self.producer_epoch == 0;
        let valid_epoch = match self.state {
            S::Ongoing | S::Empty | S::Dead | S::PrepareEpochFence => epoch == self.producer_epoch,
            S::PrepareCommit | S::PrepareAbort => retry_on_bump,
            S::CompleteCommit | S::CompleteAbort => {
                retry_on_bump || retry_on_overflow || epoch == self.producer_epoch
            }
        };
        if producer_id != self.producer_id && !retry_on_overflow {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(TxnError::ProducerFenced);
        }
        let retry = retry_on_bump || retry_on_overflow;
        match (self.state, commit) {
            (S::Ongoing, _) => Ok(EndV2::Prepare { empty: false }),
            (S::CompleteCommit, true) | (S::CompleteAbort, false) if retry => Ok(EndV2::Retry),
            (S::CompleteCommit | S::CompleteAbort | S::Empty, false) if !retry => {
                Ok(EndV2::Prepare { empty: true })
            }
            (S::PrepareCommit, true) | (S::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (S::Dead | S::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// PrepareCommit or PrepareAbort under transaction.version 2: the epoch moves on by one
    /// (the markers carry it), and `next_producer_id` is the id taken once complete when the
    /// new epoch is the last one. `empty`: no transaction was open; it starts now.
    pub fn prepare_v2(&mut self, commit: bool, next_producer_id: i64, empty: bool, now_ms: i64) {
        if self.producer_epoch < i16::MAX {
            self.last_producer_epoch = self.producer_epoch;
            self.producer_epoch += 1;
        } else {
            tracing::error!(
                producer_id = self.producer_id,
                "ending a transaction at epoch {}, which cannot be bumped",
                self.producer_epoch
            );
        }
        self.next_producer_id = next_producer_id;
        self.client_tv = TV_EPOCH_BUMP;
        if empty {
            self.start_ms = now_ms;
        }
        self.prepare(commit, now_ms);
    }

    /// Whether the epoch an end would bump to is the last usable one, so the producer must
    /// move to a new id (Kafka's `isProducerEpochExhausted`).
    pub fn epoch_exhausted(&self) -> bool {
        self.producer_epoch >= LAST_USABLE_EPOCH
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

    /// After every marker is written. A transaction.version 2 end whose epoch was spent
    /// moves the producer to its next id, at epoch 0.
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        if self.client_tv >= TV_EPOCH_BUMP && self.next_producer_id != NO_PRODUCER_ID {
            self.last_producer_id = self.producer_id;
            self.producer_id = self.next_producer_id;
            self.producer_epoch = 0;
        }
        self.next_producer_id = NO_PRODUCER_ID;
        self.partitions.clear();
        // Kafka keeps the start of the transaction that ended (DescribeTransactions shows it).
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
        m.add_partitions(&[("t".into(), 0)], 5, 0).unwrap();
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
        assert!(m.add_partitions(&[("t".into(), 0)], 10, 0).unwrap());
        assert!(!m.add_partitions(&[("t".into(), 0)], 11, 0).unwrap());
        assert_eq!(m.start_ms, 10);
        assert_eq!(m.end(true), Ok(true));
        m.prepare(true, 12);
        assert_eq!(m.end(true), Err(TxnError::ConcurrentTransactions));
        assert_eq!(m.end(false), Err(TxnError::InvalidTxnState));
        assert_eq!(
            m.add_partitions(&[("t".into(), 1)], 12, 0),
            Err(TxnError::ConcurrentTransactions)
        );
        m.complete(13);
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert_eq!(m.end(true), Ok(false));
        assert_eq!(m.end(false), Err(TxnError::InvalidTxnState));
    }

    #[test]
    fn version_2_ends_bump_the_epoch_and_recognise_retries() {
        let mut m = idle(4);
        // Nothing open: a commit is refused, an abort ends an empty transaction.
        assert_eq!(m.end_v2(7, 4, true), Err(TxnError::InvalidTxnState));
        assert_eq!(m.end_v2(7, 4, false), Ok(EndV2::Prepare { empty: true }));
        m.add_partitions(&[("t".into(), 0)], 10, TV_EPOCH_BUMP)
            .unwrap();
        assert_eq!(m.end_v2(7, 3, true), Err(TxnError::ProducerFenced));
        assert_eq!(
            m.end_v2(8, 4, true),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(m.end_v2(7, 4, true), Ok(EndV2::Prepare { empty: false }));
        m.prepare_v2(true, NO_PRODUCER_ID, false, 11);
        assert_eq!((m.producer_epoch, m.last_producer_epoch), (5, 4));
        assert_eq!(m.end_v2(7, 4, true), Err(TxnError::ConcurrentTransactions));
        assert_eq!(m.end_v2(7, 4, false), Err(TxnError::InvalidTxnState));
        assert_eq!(m.end_v2(7, 5, true), Err(TxnError::ProducerFenced));
        m.complete(12);
        // The same commit again (its answer was lost), and the wrong outcome for it.
        assert_eq!(m.end_v2(7, 4, true), Ok(EndV2::Retry));
        assert_eq!(m.end_v2(7, 4, false), Err(TxnError::InvalidTxnState));
        assert_eq!(m.end_v2(7, 5, true), Err(TxnError::InvalidTxnState));
        assert_eq!(m.end_v2(7, 3, true), Err(TxnError::ProducerFenced));
    }

    #[test]
    fn a_version_2_end_at_the_last_epoch_moves_to_the_next_producer_id() {
        let mut m = idle(LAST_USABLE_EPOCH);
        m.add_partitions(&[("t".into(), 0)], 10, TV_EPOCH_BUMP)
            .unwrap();
        assert!(m.epoch_exhausted());
        m.prepare_v2(false, 99, false, 11);
        assert_eq!(m.producer_epoch, i16::MAX);
        m.complete(12);
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.last_producer_id),
            (99, 0, 7)
        );
        assert_eq!(m.next_producer_id, NO_PRODUCER_ID);
        assert_eq!(m.end_v2(7, LAST_USABLE_EPOCH, false), Ok(EndV2::Retry));
        assert_eq!(m.end_v2(99, 0, false), Ok(EndV2::Prepare { empty: true }));
    }

    #[test]
    fn timeouts_and_expiry() {
        let mut m = idle(0);
        m.add_partitions(&[("t".into(), 0)], 100, 0).unwrap();
        assert!(!m.timed_out(100 + 59_999));
        assert!(m.timed_out(100 + 60_000));
        assert!(!m.expired(1_000_000, 10));
        m.prepare(false, 200);
        m.complete(200);
        assert!(m.expired(210, 10));
    }
}
