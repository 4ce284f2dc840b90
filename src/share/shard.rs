//! The state of one `__share_group_state` partition and the decisions on it (Kafka 4.4's
//! `ShareCoordinatorShard`): each request is checked against the state replayed so far and
//! becomes at most one record, which the coordinator appends and, once committed, replays
//! here. Pure: no I/O, the time passed in.
//!
//! A write becomes a `ShareUpdate` holding only the batches it brings, folded into the state
//! on replay, until `share_coordinator_snapshot_update_records_per_snapshot` updates have
//! followed the last snapshot; then it becomes a `ShareSnapshot` of the whole state. An
//! initialization is a snapshot, a deletion a tombstone of the snapshot key.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;

use super::combine::combine;
use super::records::{RecordType, ShareOffsets};
use super::state::{SharePartitionKey, ShareState, StateBatch, StateSummary};
use crate::error::BrokerError;

/// A record the shard asks to be written: its type, key and value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub kind: RecordType,
    pub key: SharePartitionKey,
    pub value: Option<ShareOffsets>,
}

/// What WriteShareGroupState brings for one share-partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteData {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

pub struct Shard {
    states: HashMap<SharePartitionKey, ShareOffsets>,
    leader_epochs: HashMap<SharePartitionKey, i32>,
    state_epochs: HashMap<SharePartitionKey, i32>,
    /// Updates written since the last snapshot of each key.
    updates_since_snapshot: HashMap<SharePartitionKey, i32>,
    updates_per_snapshot: i32,
    /// The offset of each share-partition's latest snapshot (Kafka's
    /// `ShareCoordinatorOffsetsManager`): the records before the earliest of them are
    /// redundant, each key's state being rebuilt from its own latest snapshot on.
    snapshot_offsets: HashMap<SharePartitionKey, i64>,
    last_redundant_offset: i64,
}

fn refused(error: ResponseError, message: &str) -> BrokerError {
    BrokerError::ShareState {
        error,
        message: message.to_owned(),
    }
}

/// Kafka's own words for an error it sends without a message of its own.
fn refused_plainly(error: ResponseError) -> BrokerError {
    refused(error, kafka_words(error))
}

/// `Errors.message()` of the errors the share coordinator answers.
pub fn kafka_words(error: ResponseError) -> &'static str {
    use ResponseError as E;
    match error {
        E::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        E::RequestTimedOut => "The request timed out.",
        E::CoordinatorLoadInProgress => {
            "The coordinator is loading and hence can't process requests."
        }
        E::CoordinatorNotAvailable => "The coordinator is not available.",
        E::NotCoordinator => "This is not the correct coordinator.",
        E::ClusterAuthorizationFailed => "Cluster authorization failed.",
        E::InvalidRequest => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.",
        E::FencedLeaderEpoch => {
            "The leader epoch in the request is older than the epoch on the broker."
        }
        E::FencedStateEpoch => "The share coordinator rejected the request because the share-group state epoch did not match.",
        _ => "The server experienced an unexpected error when processing the request.",
    }
}

const NEGATIVE_PARTITION: &str = "The partition id cannot be a negative number.";
const NEGATIVE_LEADER_EPOCH: &str = "The leader epoch cannot be a negative number.";
const NEGATIVE_STATE_EPOCH: &str = "The state epoch cannot be a negative number.";

/// Whether the partition exists in the metadata: the last check of every request.
fn check_known(known: bool) -> Result<(), BrokerError> {
    if known {
        Ok(())
    } else {
        Err(refused_plainly(ResponseError::UnknownTopicOrPartition))
    }
}

impl Shard {
    pub fn new(updates_per_snapshot: i32) -> Shard {
        Shard {
            states: HashMap::new(),
            leader_epochs: HashMap::new(),
            state_epochs: HashMap::new(),
            updates_since_snapshot: HashMap::new(),
            updates_per_snapshot,
            snapshot_offsets: HashMap::new(),
            last_redundant_offset: i64::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Applies a committed record, at `offset` of the partition, as Kafka's `replay` does.
    pub fn replay(&mut self, record: ShareRecord, offset: i64) {
        if record.kind == RecordType::Snapshot {
            self.snapshot_written(&record.key, offset, record.value.is_none());
        }
        let key = record.key;
        match (record.kind, record.value) {
            (RecordType::Snapshot, None) => {
                self.states.remove(&key);
                self.leader_epochs.remove(&key);
                self.state_epochs.remove(&key);
                self.updates_since_snapshot.remove(&key);
            }
            (RecordType::Snapshot, Some(value)) => {
                raise(&mut self.leader_epochs, &key, value.leader_epoch);
                raise(&mut self.state_epochs, &key, value.state_epoch);
                if let Some(count) = self.updates_since_snapshot.get_mut(&key) {
                    if *count >= self.updates_per_snapshot {
                        *count = 0;
                    }
                }
                self.states.insert(key, value);
            }
            // Kafka never tombstones an update key; nothing to do.
            (RecordType::Update, None) => {}
            (RecordType::Update, Some(update)) => {
                raise(&mut self.leader_epochs, &key, update.leader_epoch);
                let merged = match self.states.remove(&key) {
                    None => update,
                    Some(so_far) => merge(so_far, update),
                };
                self.states.insert(key.clone(), merged);
                self.updates_since_snapshot
                    .entry(key)
                    .and_modify(|n| *n += 1)
                    .or_insert(0);
            }
        }
    }

    /// Kafka's `ShareCoordinatorOffsetsManager.updateState`: a snapshot (or tombstone) of
    /// `key` at `offset`. A deleted key's tombstone counts once, then no longer holds the
    /// redundant offset back.
    fn snapshot_written(&mut self, key: &SharePartitionKey, offset: i64, deleted: bool) {
        self.snapshot_offsets.insert(key.clone(), offset);
        if let Some(earliest) = self.snapshot_offsets.values().min() {
            self.last_redundant_offset = *earliest;
        }
        if deleted {
            self.snapshot_offsets.remove(key);
        }
    }

    /// The offset before which every record of the partition is redundant, if any: the
    /// share coordinator's pruning moves the log start there (Kafka's
    /// `lastRedundantOffset`).
    pub fn last_redundant_offset(&self) -> Option<i64> {
        let offset = self.last_redundant_offset;
        (offset > 0 && offset != i64::MAX).then_some(offset)
    }

    /// InitializeShareGroupState: a snapshot at `state_epoch` with no batches.
    pub fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
        known: bool,
        now_ms: i64,
    ) -> Result<ShareRecord, BrokerError> {
        if key.partition < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_PARTITION));
        }
        if state_epoch < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_STATE_EPOCH));
        }
        if self.state_epochs.get(key).is_some_and(|e| *e > state_epoch) {
            return Err(refused_plainly(ResponseError::FencedStateEpoch));
        }
        check_known(known)?;
        let snapshot_epoch = self.states.get(key).map_or(0, |s| s.snapshot_epoch + 1);
        Ok(ShareRecord {
            kind: RecordType::Snapshot,
            key: key.clone(),
            value: Some(ShareOffsets {
                snapshot_epoch,
                state_epoch,
                leader_epoch: 0,
                start_offset,
                delivery_complete_count: if start_offset == -1 { -1 } else { 0 },
                batches: Vec::new(),
                create_timestamp: now_ms,
                write_timestamp: now_ms,
            }),
        })
    }

    /// WriteShareGroupState: the record to append, or Kafka's refusal.
    pub fn write(
        &self,
        key: &SharePartitionKey,
        data: &WriteData,
        known: bool,
        now_ms: i64,
    ) -> Result<ShareRecord, BrokerError> {
        if key.partition < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_PARTITION));
        }
        if data.leader_epoch < 0 {
            return Err(refused(
                ResponseError::InvalidRequest,
                NEGATIVE_LEADER_EPOCH,
            ));
        }
        if data.state_epoch < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_STATE_EPOCH));
        }
        if !self.states.contains_key(key) {
            return Err(refused(
                ResponseError::InvalidRequest,
                "Write operation on uninitialized share partition not allowed.",
            ));
        }
        if self
            .leader_epochs
            .get(key)
            .is_some_and(|e| *e > data.leader_epoch)
        {
            return Err(refused_plainly(ResponseError::FencedLeaderEpoch));
        }
        if self
            .state_epochs
            .get(key)
            .is_some_and(|e| *e > data.state_epoch)
        {
            return Err(refused_plainly(ResponseError::FencedStateEpoch));
        }
        check_known(known)?;
        Ok(self.state_record(key, data, false, now_ms))
    }

    /// ReadShareGroupState: the state, and a record when the reader's leader epoch is new
    /// (Kafka's `readStateAndMaybeUpdateLeaderEpoch` writes it before answering).
    pub fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
        known: bool,
        now_ms: i64,
    ) -> Result<(ShareState, Option<ShareRecord>), BrokerError> {
        if key.partition < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_PARTITION));
        }
        if leader_epoch < 0 {
            return Err(refused(
                ResponseError::InvalidRequest,
                NEGATIVE_LEADER_EPOCH,
            ));
        }
        let Some(state) = self.states.get(key) else {
            return Err(refused(
                ResponseError::InvalidRequest,
                "Read operation on uninitialized share partition not allowed.",
            ));
        };
        if self
            .leader_epochs
            .get(key)
            .is_some_and(|e| *e > leader_epoch)
        {
            return Err(refused_plainly(ResponseError::FencedLeaderEpoch));
        }
        check_known(known)?;
        let answer = ShareState {
            state_epoch: state.state_epoch,
            leader_epoch,
            start_offset: state.start_offset,
            delivery_complete_count: state.delivery_complete_count,
            batches: state.batches.clone(),
        };
        if self.leader_epochs.get(key) == Some(&leader_epoch) {
            return Ok((answer, None));
        }
        let data = WriteData {
            state_epoch: state.state_epoch,
            leader_epoch,
            start_offset: state.start_offset,
            delivery_complete_count: state.delivery_complete_count,
            batches: Vec::new(),
        };
        let record = self.state_record(key, &data, true, now_ms);
        Ok((answer, Some(record)))
    }

    /// ReadShareGroupStateSummary; an uninitialized share-partition reads as Kafka's
    /// defaults (start offset -1, epochs 0).
    pub fn summary(
        &self,
        key: &SharePartitionKey,
        known: bool,
    ) -> Result<StateSummary, BrokerError> {
        if key.partition < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_PARTITION));
        }
        check_known(known)?;
        Ok(match self.states.get(key) {
            None => StateSummary {
                state_epoch: 0,
                leader_epoch: 0,
                start_offset: -1,
                delivery_complete_count: -1,
            },
            Some(s) => StateSummary {
                state_epoch: s.state_epoch,
                leader_epoch: s.leader_epoch,
                start_offset: s.start_offset,
                delivery_complete_count: s.delivery_complete_count,
            },
        })
    }

    /// DeleteShareGroupState: a tombstone, or nothing for a share-partition never written.
    pub fn delete(
        &self,
        key: &SharePartitionKey,
        known: bool,
    ) -> Result<Option<ShareRecord>, BrokerError> {
        if key.partition < 0 {
            return Err(refused(ResponseError::InvalidRequest, NEGATIVE_PARTITION));
        }
        check_known(known)?;
        Ok(self.states.contains_key(key).then(|| ShareRecord {
            kind: RecordType::Snapshot,
            key: key.clone(),
            value: None,
        }))
    }

    /// Kafka's `generateShareStateRecord` over an initialized key: a snapshot of the whole
    /// state when enough updates followed the last one, else an update of what `data`
    /// brings. The start offset only moves forward; the delivery complete count follows it.
    fn state_record(
        &self,
        key: &SharePartitionKey,
        data: &WriteData,
        new_leader_epoch: bool,
        now_ms: i64,
    ) -> ShareRecord {
        let current = &self.states[key];
        let leader_epoch = if new_leader_epoch {
            data.leader_epoch
        } else {
            current.leader_epoch
        };
        let start_offset = data.start_offset.max(current.start_offset);
        let delivery_complete_count = match data.start_offset.cmp(&current.start_offset) {
            std::cmp::Ordering::Equal => data
                .delivery_complete_count
                .max(current.delivery_complete_count),
            std::cmp::Ordering::Less => current.delivery_complete_count,
            std::cmp::Ordering::Greater => data.delivery_complete_count,
        };
        let updates = self.updates_since_snapshot.get(key).copied().unwrap_or(0);
        if updates >= self.updates_per_snapshot {
            return ShareRecord {
                kind: RecordType::Snapshot,
                key: key.clone(),
                value: Some(ShareOffsets {
                    snapshot_epoch: current.snapshot_epoch + 1,
                    state_epoch: current.state_epoch,
                    leader_epoch,
                    start_offset,
                    delivery_complete_count,
                    batches: combine(&current.batches, &data.batches, start_offset),
                    create_timestamp: now_ms,
                    write_timestamp: now_ms,
                }),
            };
        }
        ShareRecord {
            kind: RecordType::Update,
            key: key.clone(),
            value: Some(ShareOffsets {
                snapshot_epoch: current.snapshot_epoch,
                state_epoch: 0,
                leader_epoch,
                start_offset,
                delivery_complete_count,
                batches: combine(&[], &data.batches, start_offset),
                create_timestamp: 0,
                write_timestamp: 0,
            }),
        }
    }
}

fn raise(epochs: &mut HashMap<SharePartitionKey, i32>, key: &SharePartitionKey, epoch: i32) {
    let e = epochs.entry(key.clone()).or_insert(epoch);
    *e = (*e).max(epoch);
}

/// Kafka's `merge` of an update into the state so far.
fn merge(so_far: ShareOffsets, update: ShareOffsets) -> ShareOffsets {
    let start_offset = if update.start_offset == -1 {
        so_far.start_offset
    } else {
        update.start_offset
    };
    let leader_epoch = if update.leader_epoch == -1 {
        so_far.leader_epoch
    } else {
        update.leader_epoch
    };
    ShareOffsets {
        snapshot_epoch: so_far.snapshot_epoch,
        state_epoch: so_far.state_epoch,
        leader_epoch,
        start_offset,
        delivery_complete_count: update.delivery_complete_count,
        batches: combine(&so_far.batches, &update.batches, start_offset),
        create_timestamp: so_far.create_timestamp,
        write_timestamp: so_far.write_timestamp,
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
