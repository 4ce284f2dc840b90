//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98). They are written to the
//! group's `__consumer_offsets` partition as part of the producer's transaction and held as
//! pending, per producer, until the transaction coordinator ends the transaction there: it
//! writes its marker and calls [`GroupCoordinator::complete_transaction`]. A commit makes
//! them the group's committed offsets, an abort drops them. Until then OffsetFetch does not
//! show them, and reports UNSTABLE_OFFSET_COMMIT to consumers that require stable offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::state::{CommittedOffset, Group, GroupState};
use super::store::{Entry, TxnProducer};
use super::{offset_key, GroupCoordinator, PendingCommit};
use crate::error::{BrokerError, Result};
use crate::topics::internal::Appended;

/// What the transaction coordinator knows of a producer, so a TxnOffsetCommit is checked
/// before its offsets are written, as Kafka's group coordinator asks its transaction
/// coordinator (AddPartitionsToTxn, verify only) for every version of the request.
pub trait TransactionCheck: Send + Sync {
    /// Ok when `transactional_id` belongs to `producer_id` at `producer_epoch` and its
    /// ongoing transaction includes `__consumer_offsets` partition `offsets_partition`
    /// (AddOffsetsToTxn). Otherwise the error Kafka 4.4 answers: INVALID_PRODUCER_ID_MAPPING
    /// for an unknown transactional id or another producer id, INVALID_PRODUCER_EPOCH for
    /// another epoch, INVALID_TXN_STATE when the partition is not in the transaction.
    ///
    /// When the check passes, `then` (the write of the pending offsets) runs before the
    /// transaction can end, so an EndTxn racing the commit cannot complete the transaction
    /// between the check and the write and leave the offsets pending for good.
    fn verify_then(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
        then: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()>;
}

/// One TxnOffsetCommit, as far as the group coordinator is concerned.
pub struct TxnCommit<'a> {
    pub group_id: &'a str,
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
}

/// The groups in which each producer has pending offsets, so the end of a transaction finds
/// them without visiting every group.
pub(super) type OpenTransactions = HashMap<i64, BTreeSet<String>>;

/// A group's transactional offsets, per producer, whose transactions have not ended.
#[derive(Debug, Default)]
pub struct PendingOffsets(BTreeMap<i64, BTreeMap<(String, i32), CommittedOffset>>);

impl PendingOffsets {
    pub fn add(
        &mut self,
        producer_id: i64,
        topic: String,
        partition: i32,
        offset: CommittedOffset,
    ) {
        self.0
            .entry(producer_id)
            .or_default()
            .insert((topic, partition), offset);
    }

    /// Whether an open transaction committed an offset of the partition.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_owned(), partition);
        self.0.values().any(|offsets| offsets.contains_key(&key))
    }

    /// Every partition some open transaction committed.
    pub fn partitions(&self) -> BTreeSet<(String, i32)> {
        self.0
            .values()
            .flat_map(|offsets| offsets.keys().cloned())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A partition's offset was deleted (a tombstone): as in Kafka, what open transactions
    /// committed there goes too, so their end cannot bring it back.
    pub fn remove_partition(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        for offsets in self.0.values_mut() {
            offsets.remove(&key);
        }
        self.0.retain(|_, offsets| !offsets.is_empty());
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Ends `producer_id`'s transaction. On commit its offsets become committed ones, except
    /// where the group holds a commit written after them: like Kafka, the most recent record
    /// wins, so that compacting the offsets topic cannot change which offset is materialised.
    pub fn end(
        &mut self,
        producer_id: i64,
        commit: bool,
        committed: &mut BTreeMap<(String, i32), CommittedOffset>,
    ) {
        let Some(offsets) = self.0.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (key, offset) in offsets {
            if committed
                .get(&key)
                .is_none_or(|c| c.record_offset < offset.record_offset)
            {
                committed.insert(key, offset);
            }
        }
    }
}

/// Kafka's check of a transactional commit against a classic group: unlike OffsetCommit,
/// a commit without member id and generation is accepted from a non-empty group (the
/// request had neither before v3), and a rebalancing group is no reason to refuse.
pub fn validate(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<()> {
    if group.state == GroupState::Dead {
        return Err(BrokerError::CoordinatorNotAvailable);
    }
    if generation < 0 && group.state == GroupState::Empty {
        return Ok(());
    }
    if generation < 0 && member_id.is_empty() && instance_id.is_none() {
        return Ok(());
    }
    match instance_id {
        Some(instance) => match group.static_members.get(instance) {
            None => return Err(BrokerError::UnknownMemberId),
            Some(known) if known != member_id => return Err(BrokerError::FencedInstanceId),
            Some(_) => {}
        },
        None if !group.members.contains_key(member_id) => return Err(BrokerError::UnknownMemberId),
        None => {}
    }
    if generation != group.generation {
        return Err(BrokerError::IllegalGeneration);
    }
    Ok(())
}

/// Removes from `open` the groups of offsets partition `partition` in which `producer_id`
/// has pending offsets, and returns them: its transaction ended there.
pub(super) fn take_ended(
    open: &mut OpenTransactions,
    producer_id: i64,
    partition: i32,
    partition_of: impl Fn(&str) -> i32,
) -> Vec<String> {
    let Some(groups) = open.get_mut(&producer_id) else {
        return Vec::new();
    };
    let ended: Vec<String> = groups
        .iter()
        .filter(|g| partition_of(g) == partition)
        .cloned()
        .collect();
    for group in &ended {
        groups.remove(group);
    }
    if groups.is_empty() {
        open.remove(&producer_id);
    }
    ended
}

impl GroupCoordinator {
    /// Lets the transaction coordinator check TxnOffsetCommit producers. Until one is set
    /// (no transaction coordinator runs) producers are taken at their word.
    pub fn set_transaction_check(&self, check: Arc<dyn TransactionCheck>) {
        let _ = self.txn_check.set(check);
    }

    /// TxnOffsetCommit: checks the producer with the transaction coordinator, then the member
    /// as Kafka does, and writes `offsets` into the producer's transaction as pending.
    /// Partition-level checks are the caller's; `offsets` may be empty, and then only the
    /// checks run. The client is answered once the write is [`PendingCommit::acknowledged`].
    pub fn commit_transactional(
        &self,
        req: &TxnCommit<'_>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<PendingCommit> {
        self.coordinating(req.group_id)?;
        if req.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let partition = self.partition_of(req.group_id);
        let mut offsets = Some(offsets);
        let mut appended = None;
        let mut write = || {
            appended = self.write_pending(req, offsets.take().unwrap_or_default())?;
            Ok(())
        };
        match self.txn_check.get() {
            Some(check) => check.verify_then(
                req.transactional_id,
                req.producer_id,
                req.producer_epoch,
                partition,
                &mut write,
            )?,
            None => write()?,
        }
        Ok(self.pending_commit(appended))
    }

    /// The member checks and the write of TxnOffsetCommit, once the producer is verified.
    fn write_pending(
        &self,
        req: &TxnCommit<'_>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<Appended>> {
        // A missing group is created only to store offsets, as for OffsetCommit.
        let mut group = self.lock_live(req.group_id, || match req.generation >= 0 {
            true => Err(BrokerError::IllegalGeneration),
            false => Ok(()),
        })?;
        validate(&group, req.member_id, req.instance_id, req.generation)?;
        if offsets.is_empty() {
            return Ok(None);
        }
        let entries: Vec<Entry> = offsets
            .iter()
            .map(|(t, p, o)| Entry::Offset(offset_key(req.group_id, t, *p), Some(o.clone())))
            .collect();
        let producer = TxnProducer {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
        };
        let Some(appended) = self.append_offsets(req.group_id, &entries, Some(producer))? else {
            return Ok(None);
        };
        for (i, (topic, partition, mut offset)) in offsets.into_iter().enumerate() {
            offset.record_offset = appended.base_offset + i as i64;
            group.pending.add(req.producer_id, topic, partition, offset);
        }
        self.open_txns
            .lock()
            .entry(req.producer_id)
            .or_default()
            .insert(req.group_id.to_owned());
        Ok(Some(appended))
    }

    /// Called by the transaction coordinator after it wrote `producer_id`'s commit or abort
    /// marker into `__consumer_offsets` partition `offsets_partition`: offsets the producer
    /// committed inside the transaction (TxnOffsetCommit) become visible, or are dropped.
    /// A partition still loading applies the end once loaded; one coordinated elsewhere
    /// learns of it from the marker in its log.
    pub fn complete_transaction(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        if !self
            .groups
            .write()
            .defer_transaction_end(offsets_partition, producer_id, commit)
        {
            return;
        }
        let ended = take_ended(
            &mut self.open_txns.lock(),
            producer_id,
            offsets_partition,
            |g| self.partition_of(g),
        );
        for id in ended {
            let Ok(Some(mut group)) = self.existing(&id) else {
                continue;
            };
            let group = &mut *group;
            group.pending.end(producer_id, commit, &mut group.offsets);
        }
    }
}
