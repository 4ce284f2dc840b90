//! Per-producer state of one partition: what idempotent and transactional producers have
//! written, so retried batches are recognised, sequence gaps and stale epochs refused, and
//! open transactions bound the last stable offset. The rules are those of Kafka's
//! `ProducerStateManager` / `ProducerAppendInfo`.
//!
//! Changes are staged: [`ProducerStates::prepare`] validates an append against a copy of the
//! entries it touches, and [`ProducerStates::commit`] applies the copy once the bytes are
//! written, so a refused or failed append leaves the state as it was.

pub(crate) mod rebuild;
pub(crate) mod snapshot;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::StorageError;

/// How many recent batches per producer are kept to recognise retries (Kafka: 5, the most
/// in-flight requests an idempotent producer may have).
pub(crate) const RETAINED_BATCHES: usize = 5;
/// The epoch of a producer that has written nothing here yet.
const NO_EPOCH: i16 = -1;

/// A commit or abort marker, the one record of a control batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// A transaction that was aborted, as Fetch reports it to read_committed consumers so they
/// drop its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

/// Where one written batch of a producer went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// The last [`RETAINED_BATCHES`] batches of the current epoch, oldest first.
    pub batches: VecDeque<BatchMeta>,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new() -> Self {
        ProducerEntry {
            epoch: NO_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }

    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn duplicate_of(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMeta> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// A new epoch forgets the old epoch's batches: their sequences mean nothing any more.
    fn bump_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn add_batch(&mut self, epoch: i16, meta: BatchMeta) {
        self.bump_epoch(epoch);
        if self.batches.len() == RETAINED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
        self.last_timestamp = meta.max_timestamp;
    }
}

/// A data batch as the producer state sees it: its header and the offsets it was given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
}

impl DataBatch {
    /// `None` for batches without a producer id, which no producer state covers.
    pub fn of(header: &BatchHeader, first_offset: i64, max_timestamp: i64) -> Option<Self> {
        (header.producer_id >= 0).then(|| DataBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_seq: sequence_after(header.base_sequence, header.last_offset_delta),
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta.max(0)),
            max_timestamp,
            transactional: header.is_transactional(),
        })
    }

    fn meta(&self) -> BatchMeta {
        BatchMeta {
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            max_timestamp: self.max_timestamp,
        }
    }
}

/// A commit or abort marker as the producer state sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Marker {
    pub producer_id: i64,
    pub epoch: i16,
    pub control: ControlType,
    pub coordinator_epoch: i32,
    pub offset: i64,
    pub timestamp: i64,
    /// The transaction.version of the coordinator's transaction (WriteTxnMarkers v2): from 2
    /// every end bumps the producer's epoch, so a marker must carry a newer epoch than the
    /// partition has seen. 0 when replaying the log, which is trusted.
    pub transaction_version: i16,
}

/// What validating an append decided.
pub(crate) enum Prepared {
    /// A retry of a batch already written: write nothing, answer with the original.
    Duplicate(BatchMeta),
    Append(Update),
}

/// Staged changes, applied by [`ProducerStates::commit`] after the write succeeded.
#[derive(Default)]
pub(crate) struct Update {
    entries: HashMap<i64, ProducerEntry>,
    aborted: Vec<AbortedTxn>,
}

/// Every producer's state in one partition, and the aborted transactions still in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    pub(crate) producers: BTreeMap<i64, ProducerEntry>,
    /// Ordered by marker offset, which is the order they were written.
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl ProducerStates {
    /// Validates client batches (in order, with their offsets) without changing anything.
    pub fn prepare(&self, batches: &[DataBatch]) -> Result<Prepared, StorageError> {
        let mut update = Update::default();
        for batch in batches {
            let entry = self.staged(&mut update, batch.producer_id);
            if let Some(original) = entry.duplicate_of(batch.epoch, batch.first_seq, batch.last_seq)
            {
                return Ok(Prepared::Duplicate(original));
            }
            check_epoch(entry, batch.producer_id, batch.epoch)?;
            check_sequence(entry, batch)?;
            append_data(entry, batch)?;
        }
        Ok(Prepared::Append(update))
    }

    /// Validates a commit or abort marker without changing anything.
    pub fn prepare_marker(&self, marker: &Marker) -> Result<Update, StorageError> {
        let mut update = Update::default();
        let entry = self.staged(&mut update, marker.producer_id);
        check_marker_epoch(entry, marker)?;
        if entry.coordinator_epoch > marker.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced(format!(
                "marker of producer {} from coordinator epoch {}, which is older than {}",
                marker.producer_id, marker.coordinator_epoch, entry.coordinator_epoch
            )));
        }
        let aborted = end_txn(entry, marker);
        update.aborted.extend(aborted);
        Ok(update)
    }

    /// Applies staged changes; returns whether there were any.
    pub fn commit(&mut self, update: Update) -> bool {
        let changed = !update.entries.is_empty();
        self.producers.extend(update.entries);
        self.aborted.extend(update.aborted);
        changed
    }

    /// Replays a stored data batch while rebuilding state: the log is trusted, so nothing
    /// is checked (Kafka's log-origin appends skip the same checks).
    pub fn replay_data(&mut self, batch: &DataBatch) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(ProducerEntry::new);
        entry.add_batch(batch.epoch, batch.meta());
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.first_offset);
        }
    }

    pub fn replay_marker(&mut self, marker: &Marker) {
        let entry = self
            .producers
            .entry(marker.producer_id)
            .or_insert_with(ProducerEntry::new);
        let aborted = end_txn(entry, marker);
        self.aborted.extend(aborted);
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Aborted transactions with a marker at or after `from` that began before `to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start: no fetch can reach them.
    pub fn drop_aborted_before(&mut self, log_start: i64) {
        let below = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..below);
    }

    /// Forgets producers with no open transaction that wrote nothing for `expiration_ms`
    /// (Kafka's `producer.id.expiration.ms`); a later batch of theirs starts afresh.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    pub fn infos(&self) -> Vec<ProducerInfo> {
        self.producers
            .iter()
            .map(|(&producer_id, e)| ProducerInfo {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq().unwrap_or(-1),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    /// The entry of `producer_id` as staged so far in `update` (a copy of the committed one,
    /// or a fresh one).
    fn staged<'u>(&self, update: &'u mut Update, producer_id: i64) -> &'u mut ProducerEntry {
        update.entries.entry(producer_id).or_insert_with(|| {
            self.producers
                .get(&producer_id)
                .cloned()
                .unwrap_or_else(ProducerEntry::new)
        })
    }
}

fn check_epoch(entry: &ProducerEntry, producer_id: i64, epoch: i16) -> Result<(), StorageError> {
    if entry.epoch != NO_EPOCH && epoch < entry.epoch {
        return Err(StorageError::InvalidProducerEpoch(format!(
            "epoch {epoch} of producer {producer_id} is older than its current epoch {}",
            entry.epoch
        )));
    }
    Ok(())
}

/// A marker's epoch, as Kafka 4.2+ checks it: with transaction.version 2 the coordinator
/// bumped the epoch when the transaction ended, so the marker's must be newer than any the
/// partition has seen; the same epoch again is a retried marker of a transaction already
/// ended here (none is open, or the epoch cannot grow any more), which is written again.
/// With transaction.version 1 an older epoch is refused, as for data.
fn check_marker_epoch(entry: &ProducerEntry, marker: &Marker) -> Result<(), StorageError> {
    if marker.transaction_version < 2 {
        return check_epoch(entry, marker.producer_id, marker.epoch);
    }
    let current = entry.epoch;
    if marker.epoch > current {
        return Ok(());
    }
    if marker.epoch == current && (entry.txn_first_offset.is_none() || current == i16::MAX) {
        return Ok(());
    }
    Err(StorageError::InvalidProducerEpoch(format!(
        "marker epoch {} of producer {} is <= its current epoch {current} (transaction.version {})",
        marker.epoch, marker.producer_id, marker.transaction_version
    )))
}

/// Kafka's rules: a producer seen for the first time (or expired) may start at any sequence
/// (KIP-360: its earlier batches may have been removed by retention); a new epoch of a known
/// producer starts at 0; within an epoch each batch follows the last.
fn check_sequence(entry: &ProducerEntry, batch: &DataBatch) -> Result<(), StorageError> {
    if entry.epoch == NO_EPOCH {
        return Ok(());
    }
    if batch.epoch != entry.epoch {
        if batch.first_seq != 0 {
            return Err(StorageError::OutOfOrderSequence(format!(
                "producer {} starts epoch {} at sequence {} instead of 0",
                batch.producer_id, batch.epoch, batch.first_seq
            )));
        }
        return Ok(());
    }
    let last = entry.last_seq().unwrap_or(-1);
    if !in_sequence(last, batch.first_seq) {
        return Err(StorageError::OutOfOrderSequence(format!(
            "producer {} epoch {}: sequence {} does not follow {last}",
            batch.producer_id, batch.epoch, batch.first_seq
        )));
    }
    Ok(())
}

fn append_data(entry: &mut ProducerEntry, batch: &DataBatch) -> Result<(), StorageError> {
    match (entry.txn_first_offset, batch.transactional) {
        (Some(first), false) => {
            return Err(StorageError::InvalidTxnState(format!(
                "producer {} wrote a non-transactional batch while its transaction from offset {first} is open",
                batch.producer_id
            )))
        }
        (None, true) => entry.txn_first_offset = Some(batch.first_offset),
        _ => {}
    }
    entry.add_batch(batch.epoch, batch.meta());
    Ok(())
}

/// Ends the producer's open transaction, if any, returning it when it was aborted. The
/// marker's epoch becomes the current one: that is how the coordinator fences zombies.
fn end_txn(entry: &mut ProducerEntry, marker: &Marker) -> Option<AbortedTxn> {
    let aborted = match (entry.txn_first_offset.take(), marker.control) {
        (Some(first_offset), ControlType::Abort) => Some(AbortedTxn {
            producer_id: marker.producer_id,
            first_offset,
            last_offset: marker.offset,
        }),
        _ => None,
    };
    entry.bump_epoch(marker.epoch);
    entry.coordinator_epoch = marker.coordinator_epoch;
    entry.last_timestamp = marker.timestamp;
    aborted
}

/// The producer view of client batches, with the offsets they will get. Like Kafka, clients
/// may not write control batches, and a batch with a producer id needs a sequence.
pub(crate) fn client_batches(
    headers: &[BatchHeader],
    base_offset: i64,
    log_append_time: Option<i64>,
) -> Result<Vec<DataBatch>, StorageError> {
    let mut next_offset = base_offset;
    let mut batches = Vec::new();
    for header in headers {
        if header.is_control() {
            return Err(StorageError::InvalidRecord(
                "clients are not allowed to write control records".into(),
            ));
        }
        if header.producer_id >= 0 && header.base_sequence < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "invalid sequence number {} in a batch of producer {}",
                header.base_sequence, header.producer_id
            )));
        }
        let max_timestamp = log_append_time.unwrap_or(header.max_timestamp);
        batches.extend(DataBatch::of(header, next_offset, max_timestamp));
        next_offset += i64::from(header.last_offset_delta.max(0)) + 1;
    }
    Ok(batches)
}

/// Sequences wrap from `i32::MAX` to 0.
fn in_sequence(last: i32, next: i32) -> bool {
    (last < i32::MAX && next == last + 1) || (last == i32::MAX && next == 0)
}

/// The sequence `delta` records after `first`, wrapping past `i32::MAX` to 0.
pub(crate) fn sequence_after(first: i32, delta: i32) -> i32 {
    if first < 0 {
        return first;
    }
    let delta = delta.max(0);
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}
