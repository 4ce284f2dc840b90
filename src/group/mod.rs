//! The group coordinator: every consumer group this broker coordinates (all of them, on a
//! single node), their rebalances and their committed offsets.
//!
//! Each group sits behind its own lock; the map of groups is only write-locked to add or
//! drop a group. Offsets and group metadata are appended to the internal topic
//! `__consumer_offsets` (see [`store`]) before a commit is acknowledged, and replayed by
//! [`GroupCoordinator::load`] at start-up; until that finishes every group API answers
//! COORDINATOR_LOAD_IN_PROGRESS.

pub mod state;
mod stats;
pub mod store;
pub mod txn_offsets;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{ArcMutexGuard, Mutex, RawMutex, RwLock};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::topics::TopicRegistry;
pub use state::{
    CommittedOffset, Group, GroupSettings, GroupState, JoinOutcome, JoinRequest, JoinResult, SyncOutcome,
};
pub use stats::GroupStats;
use store::{Entry, GroupRecord, MemberRecord, OffsetKey, OffsetsStore, Replayed, ReplayedRecord};
pub use txn_offsets::{TransactionCheck, TxnCommit};
use txn_offsets::OpenTransactions;

/// How often sessions and rebalance deadlines are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// What DescribeGroups shows of a group.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A partition's committed offset as OffsetFetch reports it.
#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// `None`: nothing committed.
    pub offset: Option<CommittedOffset>,
    /// An open transaction committed an offset of the partition, and the caller asked for
    /// stable offsets only (UNSTABLE_OFFSET_COMMIT).
    pub unstable: bool,
}

pub struct GroupCoordinator {
    config: Arc<Config>,
    settings: GroupSettings,
    groups: RwLock<HashMap<String, Arc<Mutex<Group>>>>,
    /// Set once the offsets topic has been replayed.
    store: OnceLock<OffsetsStore>,
    /// Set by the transaction coordinator, to verify TxnOffsetCommit producers.
    txn_check: OnceLock<Arc<dyn TransactionCheck>>,
    open_txns: Mutex<OpenTransactions>,
}

impl GroupCoordinator {
    pub fn new(config: Arc<Config>) -> GroupCoordinator {
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
        };
        GroupCoordinator {
            config,
            settings,
            groups: RwLock::new(HashMap::new()),
            store: OnceLock::new(),
            txn_check: OnceLock::new(),
            open_txns: Mutex::new(OpenTransactions::new()),
        }
    }

    /// Replays `__consumer_offsets` into memory. Like Kafka, the topic itself is only
    /// created when a group first writes to it, so a broker without groups lists no extra topic.
    pub fn load(&self, topics: Arc<TopicRegistry>) -> Result<()> {
        let store = OffsetsStore::new(topics, self.config.offsets_topic_num_partitions);
        let started = std::time::Instant::now();
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut open = OpenTransactions::new();
        let partition_of = |group: &str| store.partition_of(group);
        let count = store.replay(|record| replay(&mut groups, &mut open, record, now, partition_of))?;
        // Transactions without a marker yet stay pending: the transaction coordinator ends
        // them once it has replayed its own log.
        *self.open_txns.lock() = open;
        let mut map = self.groups.write();
        for (id, group) in groups {
            map.insert(id, Arc::new(Mutex::new(group)));
        }
        tracing::info!(groups = map.len(), records = count, elapsed = ?started.elapsed(), "loaded consumer groups");
        drop(map);
        let _ = self.store.set(store);
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        self.store.get().is_some()
    }

    fn store(&self) -> Result<&OffsetsStore> {
        self.store.get().ok_or(BrokerError::CoordinatorLoadInProgress)
    }

    fn group(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.read().get(id).cloned()
    }

    /// The group, locked and alive. When it does not exist, `may_create` decides: `Ok`
    /// creates it, an error is returned as it is. The expiry may drop an empty group
    /// between our lookup and our lock (a group it just created for us, too); it removes
    /// a group from the map under the group's lock, so a Dead group seen here is already
    /// gone from the map and the next lookup finds or creates a live one.
    fn lock_live(&self, id: &str, may_create: impl Fn() -> Result<()>) -> Result<ArcMutexGuard<RawMutex, Group>> {
        loop {
            let group = match self.group(id) {
                Some(group) => group,
                None => {
                    may_create()?;
                    self.groups
                        .write()
                        .entry(id.to_owned())
                        .or_insert_with(|| Arc::new(Mutex::new(Group::new(id, now_ms()))))
                        .clone()
                }
            };
            let locked = group.lock_arc();
            if locked.state != GroupState::Dead {
                return Ok(locked);
            }
        }
    }

    /// Writes the group's membership if the last operation changed it.
    fn persist_if_dirty(&self, group: &mut Group) {
        if !group.take_dirty() {
            return;
        }
        let Ok(store) = self.store() else { return };
        let record = group_record(group);
        if let Err(err) = store.append(&group.id, &[Entry::Group(group.id.clone(), Some(record))], now_ms()) {
            tracing::error!(group = %group.id, "cannot persist group metadata: {err}");
        }
    }

    /// JoinGroup. Errors found before the group is touched come back at once; the rest,
    /// and the result, arrive on `reply`.
    pub fn join(&self, group_id: &str, mut req: JoinRequest, reply: oneshot::Sender<JoinOutcome>) -> Result<()> {
        self.store()?;
        if group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let session = req.session_timeout.as_millis() as i64;
        if session < i64::from(self.config.group_min_session_timeout_ms)
            || session > i64::from(self.config.group_max_session_timeout_ms)
        {
            return Err(BrokerError::InvalidSessionTimeout);
        }
        let known_member = !req.member_id.is_empty();
        let mut group = self.lock_live(group_id, || match known_member {
            true => Err(BrokerError::UnknownMemberId),
            false => Ok(()),
        })?;
        if req.rebalance_timeout.is_zero() {
            req.rebalance_timeout = req.session_timeout;
        }
        let prefix = req.instance_id.clone().unwrap_or_else(|| req.client_id.clone());
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        group.join(req, reply, Instant::now(), now_ms(), &self.settings, new_id);
        self.persist_if_dirty(&mut group);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        reply: oneshot::Sender<SyncOutcome>,
    ) -> Result<()> {
        self.store()?;
        let group = self.group(group_id).ok_or(BrokerError::UnknownMemberId)?;
        let mut group = group.lock();
        group.sync(member_id, instance_id, generation, protocol_type, protocol, assignments, reply);
        self.persist_if_dirty(&mut group);
        Ok(())
    }

    pub fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<()> {
        self.store()?;
        let group = self.group(group_id).ok_or(BrokerError::UnknownMemberId)?;
        let mut group = group.lock();
        group.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup for each (member id, group.instance.id); one result per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<Result<()>>> {
        self.store()?;
        let group = self.group(group_id).ok_or(BrokerError::UnknownMemberId)?;
        let mut group = group.lock();
        let (now, ms) = (Instant::now(), now_ms());
        let results = members
            .iter()
            .map(|(member, instance)| group.leave(member, instance.as_deref(), now, ms, &self.settings))
            .collect();
        self.persist_if_dirty(&mut group);
        Ok(results)
    }

    /// Stores offsets after checking the member and generation. Partition-level checks
    /// (unknown topics, metadata size) are the caller's; `offsets` holds only good ones.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<()> {
        let store = self.store()?;
        if group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let simple = generation < 0 && member_id.is_empty();
        let mut group = self.lock_live(group_id, || match simple {
            true => Ok(()),
            false => Err(BrokerError::UnknownMemberId),
        })?;
        group.validate_commit(member_id, instance_id, generation)?;
        let entries: Vec<Entry> = offsets
            .iter()
            .map(|(t, p, o)| Entry::Offset(offset_key(group_id, t, *p), Some(o.clone())))
            .collect();
        let base = store.append(group_id, &entries, now_ms())?;
        for (i, (topic, partition, mut offset)) in offsets.into_iter().enumerate() {
            offset.record_offset = base + i as i64;
            group.offsets.insert((topic, partition), offset);
        }
        Ok(())
    }

    /// Committed offsets of `wanted` (topic, partitions), or of every partition when `None`.
    /// With `require_stable`, partitions with offsets in an open transaction are unstable,
    /// as in Kafka (OffsetFetch v7+); otherwise those offsets are simply not there yet.
    pub fn fetch(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>> {
        self.store()?;
        let group = self.group(group_id);
        let group = group.as_ref().map(|g| g.lock());
        let fetched = |topic: &str, partition: i32| {
            let offset = group.as_ref().and_then(|g| g.offsets.get(&(topic.to_owned(), partition))).cloned();
            let unstable = require_stable && group.as_ref().is_some_and(|g| g.pending.contains(topic, partition));
            FetchedOffset {
                topic: topic.to_owned(),
                partition,
                offset: if unstable { None } else { offset },
                unstable,
            }
        };
        Ok(match wanted {
            None => group
                .as_ref()
                .map(|g| g.offsets.keys().map(|(t, p)| fetched(t, *p)).collect())
                .unwrap_or_default(),
            Some(wanted) => wanted
                .iter()
                .flat_map(|(topic, partitions)| partitions.iter().map(|p| fetched(topic, *p)))
                .collect(),
        })
    }

    /// DescribeGroups; `None` for a group that does not exist.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>> {
        self.store()?;
        let Some(group) = self.group(group_id) else { return Ok(None) };
        let group = group.lock();
        if group.state == GroupState::Dead {
            return Ok(None);
        }
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol.clone().unwrap_or_default();
        let mut members: Vec<MemberSummary> = group
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                // Kafka shows subscriptions and assignments only once they are settled.
                metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                assignment: if stable { m.assignment.clone() } else { Bytes::new() },
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(Some(GroupSummary {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }))
    }

    /// Every group: (id, protocol type, state).
    pub fn list(&self) -> Result<Vec<(String, String, GroupState)>> {
        self.store()?;
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let mut listed: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = g.lock();
                (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state)
            })
            .filter(|(_, _, state)| *state != GroupState::Dead)
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }

    /// DeleteGroups: an empty group and all its offsets go.
    pub fn delete(&self, group_id: &str) -> Result<()> {
        let store = self.store()?;
        let group = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let mut group = group.lock();
        match group.state {
            GroupState::Dead => return Err(BrokerError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(BrokerError::NonEmptyGroup),
        }
        self.drop_group(store, &mut group)
    }

    /// OffsetDelete: per partition, deleted or why not.
    pub fn delete_offsets(&self, group_id: &str, partitions: Vec<(String, i32)>) -> Result<Vec<(String, i32, Result<()>)>> {
        let store = self.store()?;
        let group = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let mut group = group.lock();
        if group.state == GroupState::Dead {
            return Err(BrokerError::GroupIdNotFound);
        }
        let subscribed = match group.state {
            GroupState::Empty => Vec::new(),
            _ => group.subscribed_topics().ok_or(BrokerError::NonEmptyGroup)?,
        };
        let mut results = Vec::new();
        let mut entries = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                results.push((topic, partition, Err(BrokerError::GroupSubscribedToTopic)));
                continue;
            }
            if group.offsets.contains_key(&(topic.clone(), partition)) || group.pending.contains(&topic, partition) {
                entries.push(Entry::Offset(offset_key(group_id, &topic, partition), None));
            }
            results.push((topic, partition, Ok(())));
        }
        store.append(group_id, &entries, now_ms())?;
        for entry in entries {
            if let Entry::Offset(key, _) = entry {
                group.pending.remove_partition(&key.t, key.p);
                group.offsets.remove(&(key.t, key.p));
            }
        }
        Ok(results)
    }

    /// Moves every group's clock: session expiry, rebalance deadlines.
    pub fn tick(&self) {
        if !self.is_loaded() {
            return;
        }
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let (now, ms) = (Instant::now(), now_ms());
        for group in groups {
            let mut group = group.lock();
            group.tick(now, ms, &self.settings);
            self.persist_if_dirty(&mut group);
        }
    }

    /// Deletes offsets past retention, and groups left with neither members nor offsets.
    pub fn expire_offsets(&self) {
        let Ok(store) = self.store() else { return };
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let now = now_ms();
        for group in groups {
            let mut group = group.lock();
            let empty = group.state == GroupState::Empty;
            let base = group.state_timestamp;
            // Kafka keeps an offset an open transaction is about to replace.
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|((t, p), _)| !group.pending.contains(t, *p))
                .filter(|(_, o)| match o.expire_timestamp {
                    Some(at) => at <= now,
                    None => empty && o.commit_timestamp.max(base).saturating_add(retention_ms) <= now,
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !expired.is_empty() {
                let entries: Vec<Entry> = expired
                    .iter()
                    .map(|(t, p)| Entry::Offset(offset_key(&group.id, t, *p), None))
                    .collect();
                if let Err(err) = store.append(&group.id, &entries, now) {
                    tracing::error!(group = %group.id, "cannot expire offsets: {err}");
                    continue;
                }
                for key in &expired {
                    group.offsets.remove(key);
                }
                tracing::info!(group = %group.id, partitions = expired.len(), "expired committed offsets");
            }
            // A member between MEMBER_ID_REQUIRED and its second JoinGroup keeps the group.
            let joining = !group.pending_members.is_empty();
            if empty && !joining && group.offsets.is_empty() && group.pending.is_empty() {
                if let Err(err) = self.drop_group(store, &mut group) {
                    tracing::error!(group = %group.id, "cannot remove empty group: {err}");
                }
            }
        }
    }

    /// Answers every parked JoinGroup and SyncGroup: this broker stops coordinating.
    pub fn shutdown(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        for group in groups {
            group.lock().abandon_waiters(|| BrokerError::NotCoordinator);
        }
    }

    /// Deletes the group with its offsets, pending transactional ones included (as Kafka
    /// does, a tombstone per partition, so a later commit marker brings nothing back).
    fn drop_group(&self, store: &OffsetsStore, group: &mut Group) -> Result<()> {
        let mut partitions: BTreeSet<(String, i32)> = group.offsets.keys().cloned().collect();
        partitions.extend(group.pending.partitions());
        let mut entries: Vec<Entry> = partitions
            .iter()
            .map(|(t, p)| Entry::Offset(offset_key(&group.id, t, *p), None))
            .collect();
        entries.push(Entry::Group(group.id.clone(), None));
        store.append(&group.id, &entries, now_ms())?;
        group.offsets.clear();
        group.pending.clear();
        group.state = GroupState::Dead;
        self.groups.write().remove(&group.id);
        Ok(())
    }
}

fn offset_key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    OffsetKey {
        g: group.to_owned(),
        t: topic.to_owned(),
        p: partition,
    }
}

fn group_record(group: &Group) -> GroupRecord {
    let protocol = group.protocol.clone().unwrap_or_default();
    let mut members: Vec<MemberRecord> = group
        .members
        .values()
        .map(|m| MemberRecord {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            session_timeout_ms: m.session_timeout.as_millis() as u64,
            rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
            subscription: m.metadata(&protocol).to_vec(),
            assignment: m.assignment.to_vec(),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    GroupRecord {
        protocol_type: group.protocol_type.clone(),
        generation: group.generation,
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        state_timestamp: group.state_timestamp,
        members,
    }
}

fn replay(
    groups: &mut HashMap<String, Group>,
    open: &mut OpenTransactions,
    record: ReplayedRecord,
    now: Instant,
    partition_of: impl Fn(&str) -> i32,
) {
    match record.entry {
        Replayed::Offset(key, value) => {
            let group = groups.entry(key.g.clone()).or_insert_with(|| Group::new(&key.g, now_ms()));
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
        Replayed::TxnEnd { producer_id, commit } => {
            for id in txn_offsets::take_ended(open, producer_id, record.partition, &partition_of) {
                if let Some(group) = groups.get_mut(&id) {
                    group.pending.end(producer_id, commit, &mut group.offsets);
                }
            }
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
        Replayed::Group(id, Some(record)) => {
            let (offsets, pending) = groups.remove(&id).map(|g| (g.offsets, g.pending)).unwrap_or_default();
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

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
