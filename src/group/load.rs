//! Which offsets partitions this broker coordinates: loading one replays its groups from the
//! log, unloading it forgets them. The broker loads the partitions it becomes leader of and
//! unloads those it loses, as Kafka's GroupMetadataManager does.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::consumer::records::ConsumerKey;
use super::consumer::ConsumerGroup;
use super::legacy::{LegacyKey, LegacyKeys};
use super::share::records::ShareKey;
use super::share::ShareGroup;
use super::state::{self, Group, GroupState};
use super::store::{Entry, Replayed, ReplayedRecord};
use super::streams::records::StreamsKey;
use super::streams::StreamsGroup;
use super::txn_offsets::{self, OpenTransactions};
use super::GroupCoordinator;
use crate::clock::now_ms;
use crate::error::{BrokerError, Result};
use crate::lock_order::{level, OrderedArcMutex};
use crate::topics::internal::PartitionLoads;

/// Transaction ends (producer id, commit) seen while a partition loads, applied after its
/// replay, which may or may not have read their markers (ending twice is harmless).
type EndedWhileLoading = Vec<(i64, bool)>;

/// One group behind its own lock, shared by the map and whoever has looked it up.
pub(super) type SharedGroup = OrderedArcMutex<level::Group, Group>;

/// The groups of the loaded partitions, and the partitions' states.
pub(super) struct Groups {
    by_id: HashMap<String, SharedGroup>,
    pub(super) loads: PartitionLoads<EndedWhileLoading>,
}

impl Groups {
    pub(super) fn new() -> Groups {
        Groups {
            by_id: HashMap::new(),
            loads: PartitionLoads::new(),
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<SharedGroup> {
        self.by_id.get(id).cloned()
    }

    pub(super) fn get_or_create(&mut self, id: &str) -> SharedGroup {
        self.by_id
            .entry(id.to_owned())
            .or_insert_with(|| SharedGroup::new(Group::new(id, now_ms())))
            .clone()
    }

    /// Removes `group` from the map, unless a reload has put another group there since.
    pub(super) fn remove(&mut self, id: &str, group: &SharedGroup) {
        if self
            .by_id
            .get(id)
            .is_some_and(|g| SharedGroup::ptr_eq(g, group))
        {
            self.by_id.remove(id);
        }
    }

    pub(super) fn all(&self) -> Vec<SharedGroup> {
        self.by_id.values().cloned().collect()
    }

    /// A transaction ended in `partition`: `true` when the caller should apply it now (the
    /// partition is loaded), `false` when it is kept for the load underway or is not ours
    /// (its coordinator replays the marker).
    pub(super) fn defer_transaction_end(
        &mut self,
        partition: i32,
        producer_id: i64,
        commit: bool,
    ) -> bool {
        if self.loads.is_loaded(partition) {
            return true;
        }
        if let Some(ended) = self.loads.pending_mut(partition) {
            ended.push((producer_id, commit));
        }
        false
    }
}

impl GroupCoordinator {
    /// Replays offsets partition `partition`, whose local log must exist and be led here,
    /// and starts coordinating its groups; meanwhile they answer
    /// COORDINATOR_LOAD_IN_PROGRESS. Loading a loaded partition does nothing. If the replay
    /// fails the partition stays loading, until it is loaded again or unloaded.
    pub fn load_partition(&self, partition: i32) -> Result<()> {
        let started = std::time::Instant::now();
        let Some(id) = self.groups.write().loads.start(partition) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut loaded: HashMap<String, Group> = HashMap::new();
        let mut open = OpenTransactions::new();
        let mut legacy = LegacyKeys::default();
        // Every group replayed here lives in this partition.
        let count = self.store.replay(partition, |record| {
            legacy.note(&record);
            replay(&mut loaded, &mut open, record, now, |_| partition)
        })?;
        // Before the groups are served, so no commit can come between.
        self.rewrite_legacy(partition, &loaded, &legacy);
        let mut groups = self.groups.write();
        // Unloaded, or loaded again, while this load ran: its result is not wanted.
        let Some(ended) = groups.loads.finish(partition, id) else {
            return Ok(());
        };
        for (producer_id, commit) in ended {
            end_transaction(
                &mut loaded,
                &mut open,
                partition,
                producer_id,
                commit,
                |_| partition,
            );
        }
        let count_groups = loaded.len();
        // Sessions start when the groups are served, not when the replay began.
        let served = Instant::now();
        for group in loaded.values_mut() {
            if let Some(consumer) = group.consumer.as_mut() {
                consumer.loaded(served, &self.consumer_settings);
            }
            if let Some(streams) = group.streams.as_mut() {
                streams.loaded(served, &super::streams::streams_settings(&self.config));
            }
            if let Some(share) = group.share.as_mut() {
                let settings = super::share::coordinator::share_settings(&self.config);
                share.loaded(served, now_ms(), &settings);
            }
        }
        for (group_id, group) in loaded {
            groups.by_id.insert(group_id, SharedGroup::new(group));
        }
        // Transactions without a marker yet stay pending: their coordinator ends them.
        let mut open_txns = self.open_txns.lock();
        for (producer_id, ids) in open {
            open_txns.entry(producer_id).or_default().extend(ids);
        }
        tracing::info!(partition, groups = count_groups, records = count, elapsed = ?started.elapsed(), "loaded consumer groups");
        Ok(())
    }

    /// Writes the state that records of the earlier JSON format hold again in Kafka's format,
    /// and tombstones their keys, so that compaction leaves one format. Each group's batch
    /// is atomic and puts the tombstones first: replayed, they delete what the records after
    /// them restore. Offsets of a transaction still open keep their JSON record until a
    /// later load (a tombstone would drop them). A failure is logged: the JSON records are
    /// still read, and the next load tries again.
    fn rewrite_legacy(&self, partition: i32, loaded: &HashMap<String, Group>, legacy: &LegacyKeys) {
        if legacy.is_empty() {
            return;
        }
        let (mut rewritten, mut left) = (0, 0);
        for (group_id, keys) in legacy.by_group() {
            let group = loaded.get(&group_id);
            let mut tombstones = Vec::new();
            let mut current = Vec::new();
            for key in keys {
                match &key {
                    LegacyKey::Offset(k) => {
                        if group.is_some_and(|g| g.pending.contains(&k.t, k.p)) {
                            left += 1;
                            continue;
                        }
                        let committed = group.and_then(|g| g.offsets.get(&(k.t.clone(), k.p)));
                        if let Some(offset) = committed {
                            current.push(Entry::Offset(k.clone(), Some(offset.clone())));
                        }
                    }
                    LegacyKey::Group(g) => {
                        if let Some(group) = group.filter(|_| legacy.group_live(g)) {
                            current.push(Entry::Group(g.clone(), Some(super::group_record(group))));
                        }
                    }
                }
                tombstones.push(Entry::LegacyTombstone(key));
            }
            rewritten += tombstones.len();
            tombstones.extend(current);
            if let Err(err) = self.store.append(&group_id, &tombstones, now_ms()) {
                tracing::warn!(partition, group = %group_id, "cannot rewrite JSON offsets records in Kafka's format: {err}");
            }
        }
        tracing::info!(
            partition,
            rewritten,
            left_for_open_transactions = left,
            "rewrote JSON offsets records in Kafka's format"
        );
    }

    /// Stops coordinating the groups of offsets partition `partition` (its leadership moved):
    /// they are forgotten, and their members' parked JoinGroup and SyncGroup requests answer
    /// NOT_COORDINATOR, so they find the new coordinator. A load underway is abandoned.
    pub fn unload_partition(&self, partition: i32) {
        let removed: Vec<SharedGroup> = {
            let mut groups = self.groups.write();
            groups.loads.unload(partition);
            let ids: Vec<String> = groups
                .by_id
                .keys()
                .filter(|id| self.partition_of(id) == partition)
                .cloned()
                .collect();
            ids.iter()
                .filter_map(|id| groups.by_id.remove(id))
                .collect()
        };
        for group in &removed {
            let mut group = group.lock();
            group.abandon_waiters(|| BrokerError::NotCoordinator);
            // Whoever still holds it looks it up again and learns it is not ours.
            group.state = GroupState::Dead;
        }
        let mut open = self.open_txns.lock();
        for ids in open.values_mut() {
            ids.retain(|id| self.partition_of(id) != partition);
        }
        open.retain(|_, ids| !ids.is_empty());
        tracing::info!(
            partition,
            groups = removed.len(),
            "unloaded consumer groups"
        );
    }
}

/// `producer_id`'s transaction ended in `partition`: its pending offsets there become
/// committed ones, or go.
pub(super) fn end_transaction(
    groups: &mut HashMap<String, Group>,
    open: &mut OpenTransactions,
    partition: i32,
    producer_id: i64,
    commit: bool,
    partition_of: impl Fn(&str) -> i32,
) {
    for id in txn_offsets::take_ended(open, producer_id, partition, partition_of) {
        if let Some(group) = groups.get_mut(&id) {
            group.pending.end(producer_id, commit, &mut group.offsets);
        }
    }
}

/// A modern group's metadata tombstone: the consumer, streams or share group (`clear`
/// drops it) is deleted; its offsets stay, and a group left with none goes.
fn forget_kind(groups: &mut HashMap<String, Group>, id: &str, clear: impl FnOnce(&mut Group)) {
    if let Some(group) = groups.get_mut(id) {
        clear(group);
        if group.offsets.is_empty() && group.pending.is_empty() {
            groups.remove(id);
        }
    }
}

/// Applies one record of the offsets topic to the groups it rebuilds.
pub(super) fn replay(
    groups: &mut HashMap<String, Group>,
    open: &mut OpenTransactions,
    record: ReplayedRecord,
    now: Instant,
    partition_of: impl Fn(&str) -> i32,
) {
    match record.entry {
        Replayed::Offset(key, value) => {
            let group = groups
                .entry(key.g.clone())
                .or_insert_with(|| Group::new(&key.g, now_ms()));
            match (value, record.producer_id) {
                (Some(mut offset), Some(producer_id)) => {
                    offset.record_offset = record.offset;
                    group.pending.add(producer_id, key.t, key.p, offset);
                    open.entry(producer_id).or_default().insert(key.g);
                }
                (Some(mut offset), None) => {
                    offset.record_offset = record.offset;
                    group.offsets.insert((key.t, key.p), offset);
                }
                (None, _) => {
                    group.pending.remove_partition(&key.t, key.p);
                    group.offsets.remove(&(key.t, key.p));
                }
            }
        }
        Replayed::TxnEnd {
            producer_id,
            commit,
        } => {
            end_transaction(
                groups,
                open,
                record.partition,
                producer_id,
                commit,
                partition_of,
            );
        }
        Replayed::Group(id, None) => {
            if let Some(group) = groups.remove(&id) {
                // A deleted group's offsets were tombstoned before its metadata.
                if !group.offsets.is_empty() || !group.pending.is_empty() {
                    let mut fresh = Group::new(&id, group.state_timestamp);
                    fresh.offsets = group.offsets;
                    fresh.pending = group.pending;
                    groups.insert(id, fresh);
                }
            }
        }
        Replayed::Consumer(ConsumerKey::Metadata(id), None) => {
            // The consumer group is deleted (or turned classic).
            forget_kind(groups, &id, |g| g.consumer = None);
        }
        Replayed::Consumer(ConsumerKey::PartitionMetadata(_), _) => {}
        Replayed::Consumer(key, value) => {
            let id = key.group().to_owned();
            let group = groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now_ms()));
            group
                .consumer
                .get_or_insert_with(|| ConsumerGroup::new(&id))
                .replay(key, value, now);
        }
        Replayed::Streams(StreamsKey::Metadata(id), None) => {
            forget_kind(groups, &id, |g| g.streams = None);
        }
        Replayed::Share(ShareKey::Metadata(id), None) => {
            forget_kind(groups, &id, |g| g.share = None);
        }
        Replayed::Share(ShareKey::PartitionMetadata(_), _) => {}
        Replayed::Share(key, value) => {
            let id = key.group().to_owned();
            // Tombstones after the group's own bring nothing back.
            let known = groups.get(&id).is_some_and(|g| g.share.is_some());
            if value.is_none() && !known {
                return;
            }
            let group = groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now_ms()));
            group
                .share
                .get_or_insert_with(|| ShareGroup::new(&id))
                .replay(key, value, now);
        }
        Replayed::Streams(key, value) => {
            let id = key.group().to_owned();
            // Kafka tombstones the topology after the group epoch: a tombstone of a group
            // already gone brings nothing back.
            let known = groups.get(&id).is_some_and(|g| g.streams.is_some());
            if value.is_none() && !known {
                return;
            }
            let group = groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now_ms()));
            group
                .streams
                .get_or_insert_with(|| StreamsGroup::new(&id))
                .replay(key, value, now);
        }
        Replayed::Group(id, Some(record)) => {
            let (offsets, pending) = groups
                .remove(&id)
                .map(|g| (g.offsets, g.pending))
                .unwrap_or_default();
            let mut group = Group::new(&id, record.state_timestamp);
            group.offsets = offsets;
            group.pending = pending;
            group.generation = record.generation;
            group.protocol_type = record.protocol_type.clone();
            group.protocol = record.protocol.clone();
            group.leader = record.leader.clone();
            let protocol = record.protocol.clone().unwrap_or_default();
            for m in record.members {
                group.restore_member(state::restored_member(
                    m.member_id,
                    m.instance_id,
                    m.client_id,
                    m.client_host,
                    Duration::from_millis(m.session_timeout_ms),
                    Duration::from_millis(m.rebalance_timeout_ms),
                    record.protocol_type.clone().unwrap_or_default(),
                    vec![(protocol.clone(), Bytes::from(m.subscription))],
                    Bytes::from(m.assignment),
                    now,
                ));
            }
            group.state = if group.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            groups.insert(id, group);
        }
    }
}
