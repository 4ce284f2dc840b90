//! The group coordinator: the consumer groups this broker coordinates, their rebalances and
//! their committed offsets. A group lives in one partition of `__consumer_offsets`, and a
//! broker coordinates the groups of the partitions it has loaded
//! ([`GroupCoordinator::load_partition`]): the partitions it leads (all of them on a single
//! node). Groups of a partition being loaded answer
//! COORDINATOR_LOAD_IN_PROGRESS; groups of a partition not loaded here answer
//! NOT_COORDINATOR, which sends clients to look their coordinator up again.
//!
//! Each group sits behind its own lock; the map of groups is only write-locked to add or
//! drop a group or a partition. Offsets and group metadata are appended to the offsets topic
//! (see [`store`]); a commit, and a SyncGroup's assignment, take effect for their clients only
//! once the write is replicated (see [`PendingCommit`]).

mod acknowledge;
pub mod config;
pub mod consumer;
mod consumer_groups;
mod legacy;
mod load;
mod migration;
pub mod records;
pub mod share;
pub mod state;
mod stats;
pub mod store;
pub mod streams;
mod timers;
pub mod txn_offsets;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::config::{Config, TopologyDescriptionStore};
use crate::error::{BrokerError, Result};
use crate::lock_order::{level, OrderedArcMutexGuard, OrderedRwLock};
use crate::topics::internal::Appended;
use crate::topics::TopicRegistry;
pub use acknowledge::PendingCommit;
pub use consumer_groups::{ConsumerGroupSummary, ConsumerMemberSummary};
use load::Groups;
pub use state::{
    CommittedOffset, Group, GroupSettings, GroupState, JoinOutcome, JoinRequest, JoinResult,
    SyncOutcome,
};
pub use stats::GroupStats;
use store::{Entry, GroupRecord, MemberRecord, OffsetKey, OffsetsStore};
use txn_offsets::OpenTransactions;
pub use txn_offsets::{TransactionCheck, TxnCommit};

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

/// ListGroups: the groups loaded here, and COORDINATOR_LOAD_IN_PROGRESS while a partition is
/// still loading (Kafka answers both).
pub struct GroupListing {
    pub groups: Vec<ListedGroup>,
    pub error: Option<BrokerError>,
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic", "consumer" (KIP-848), "streams" (KIP-1071) or "share" (KIP-932).
    pub group_type: &'static str,
}

type LockedGroup = OrderedArcMutexGuard<level::Group, Group>;

pub struct GroupCoordinator {
    config: Arc<Config>,
    settings: GroupSettings,
    consumer_settings: consumer::ConsumerSettings,
    store: OffsetsStore,
    groups: OrderedRwLock<level::Groups, Groups>,
    /// Set by the transaction coordinator, to verify TxnOffsetCommit producers.
    txn_check: OnceLock<Arc<dyn TransactionCheck>>,
    open_txns: Mutex<OpenTransactions>,
    /// Streams topology descriptions members pushed, if a store is configured
    /// (`group_streams_topology_description_store`).
    descriptions: Option<streams::description::TopologyDescriptions>,
    /// Groups' own configs, which the server sets from the metadata.
    pub overrides: config::GroupOverrides,
}

impl GroupCoordinator {
    /// A coordinator over `topics`' offsets topic, coordinating none of its partitions until
    /// [`Self::load_partition`].
    pub fn new(config: Arc<Config>, topics: Arc<TopicRegistry>) -> GroupCoordinator {
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
        };
        let store = OffsetsStore::new(topics, config.offsets_topic_num_partitions);
        let groups = Groups::new();
        let descriptions = (config.group_streams_topology_description_store
            == TopologyDescriptionStore::Memory)
            .then(Default::default);
        GroupCoordinator {
            consumer_settings: consumer_groups::consumer_settings(&config),
            config,
            settings,
            store,
            groups: OrderedRwLock::new(groups),
            txn_check: OnceLock::new(),
            open_txns: Mutex::new(OpenTransactions::new()),
            descriptions,
            overrides: Default::default(),
        }
    }

    /// The offsets partition of `group`, whose leader coordinates it: Kafka's rule over the
    /// topic's partition count, or the configured one until the topic exists.
    pub fn partition_of(&self, group: &str) -> i32 {
        self.store.topic().partition_for(group)
    }

    /// Ok when this broker coordinates `group`'s partition and has loaded it.
    fn coordinating(&self, group: &str) -> Result<()> {
        self.store
            .topic()
            .check_loaded(&self.groups.read().loads, self.partition_of(group))
    }

    /// The group if it exists, locked and alive. The expiry (or an unload) may drop a group
    /// between our lookup and our lock; it does so under the group's lock, marking it Dead, so
    /// a Dead group seen here is already gone from the map and the next lookup says why.
    fn existing(&self, id: &str) -> Result<Option<LockedGroup>> {
        let partition = self.partition_of(id);
        loop {
            let group = {
                let groups = self.groups.read();
                self.store.topic().check_loaded(&groups.loads, partition)?;
                groups.get(id)
            };
            let Some(group) = group else { return Ok(None) };
            let locked = group.lock_arc();
            if locked.state != GroupState::Dead {
                return Ok(Some(locked));
            }
        }
    }

    /// The group, locked and alive. When it does not exist, `may_create` decides: `Ok`
    /// creates it, an error is returned as it is.
    fn lock_live(&self, id: &str, may_create: impl Fn() -> Result<()>) -> Result<LockedGroup> {
        let partition = self.partition_of(id);
        loop {
            if let Some(group) = self.existing(id)? {
                return Ok(group);
            }
            may_create()?;
            let group = {
                let mut groups = self.groups.write();
                // Checked again under the write lock: the partition may have gone meanwhile.
                self.store.topic().check_loaded(&groups.loads, partition)?;
                groups.get_or_create(id)
            };
            let locked = group.lock_arc();
            if locked.state != GroupState::Dead {
                return Ok(locked);
            }
        }
    }

    /// Writes the group's membership if the last operation changed it; `None` if it did not.
    fn persist_if_dirty(&self, group: &mut Group) -> Option<Result<Appended>> {
        if !group.take_dirty() {
            return None;
        }
        let record = group_record(group);
        let written = self
            .store
            .append(
                &group.id,
                &[Entry::Group(group.id.clone(), Some(record))],
                now_ms(),
            )
            .transpose();
        if let Some(Err(err)) = &written {
            tracing::error!(group = %group.id, "cannot persist group metadata: {err}");
        }
        written
    }

    /// JoinGroup. Errors found before the group is touched come back at once; the rest,
    /// and the result, arrive on `reply`.
    pub fn join(
        &self,
        group_id: &str,
        mut req: JoinRequest,
        topics: &consumer::TopicImage,
        reply: oneshot::Sender<JoinOutcome>,
    ) -> Result<()> {
        self.coordinating(group_id)?;
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
        // Kafka's classic join refuses a share group's id.
        if group.share.is_some() {
            return Err(BrokerError::InconsistentGroupProtocol);
        }
        // An empty streams group becomes a classic group, its records deleted.
        if let Some(streams) = &group.streams {
            if !streams.is_empty() {
                return Err(BrokerError::InconsistentGroupProtocol);
            }
            let tombstones: Vec<Entry> = streams
                .tombstones()
                .into_iter()
                .map(|(k, v)| Entry::Streams(k, v))
                .collect();
            self.store.append(&group.id, &tombstones, now_ms())?;
            group.streams = None;
        }
        // A consumer group with members takes classic members in (see `migration`); an
        // empty one becomes a classic group again, as in Kafka, its records deleted.
        if let Some(consumer) = &group.consumer {
            if !consumer.is_empty() {
                self.join_consumer_group(group, req, topics, reply);
                return Ok(());
            }
            let tombstones: Vec<Entry> = consumer
                .tombstones()
                .into_iter()
                .map(|(k, v)| Entry::Consumer(k, v))
                .collect();
            self.store.append(&group.id, &tombstones, now_ms())?;
            group.consumer = None;
        }
        let prefix = req
            .instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        if group.is_untouched() {
            // A group this join creates: Kafka writes its empty metadata first.
            let empty = Entry::Group(group.id.clone(), Some(group_record(&group)));
            if let Err(err) = self.store.append(&group.id, &[empty], now_ms()) {
                tracing::error!(group = %group.id, "cannot persist group metadata: {err}");
            }
        }
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
        topics: &consumer::TopicImage,
        reply: oneshot::Sender<SyncOutcome>,
    ) -> Result<()> {
        let mut group = self
            .existing(group_id)?
            .ok_or(BrokerError::UnknownMemberId)?;
        if group.consumer.is_some() {
            self.sync_consumer_group(
                &mut group,
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol,
                topics,
                reply,
            );
            return Ok(());
        }
        group.sync(
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol,
            assignments,
            reply,
        );
        // Only the leader's assignment makes the group dirty here.
        if let Some(written) = self.persist_if_dirty(&mut group) {
            self.acknowledge_assignment(group, written);
        }
        Ok(())
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<()> {
        let mut group = self
            .existing(group_id)?
            .ok_or(BrokerError::UnknownMemberId)?;
        if let Some(consumer) = group.consumer.as_mut() {
            return consumer.classic_heartbeat(member_id, instance_id, generation, Instant::now());
        }
        group.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup for each (member id, group.instance.id); one result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<()>>> {
        let mut group = self
            .existing(group_id)?
            .ok_or(BrokerError::UnknownMemberId)?;
        if group.consumer.is_some() {
            return Ok(self.leave_consumer_group(&mut group, members));
        }
        let (now, ms) = (Instant::now(), now_ms());
        let results = members
            .iter()
            .map(|(member, instance)| {
                group.leave(member, instance.as_deref(), now, ms, &self.settings)
            })
            .collect();
        self.persist_if_dirty(&mut group);
        Ok(results)
    }

    /// Stores offsets after checking the member and generation (OffsetCommit `version`). Partition-level checks
    /// (unknown topics, metadata size) are the caller's; `offsets` holds only good ones. The
    /// offsets count from their append on (as the log order says); the client may be told
    /// only once [`PendingCommit::acknowledged`].
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
        version: i16,
    ) -> Result<PendingCommit> {
        self.coordinating(group_id)?;
        if group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let simple = generation < 0 && member_id.is_empty();
        let mut group = self.lock_live(group_id, || match simple {
            true => Ok(()),
            false => Err(BrokerError::UnknownMemberId),
        })?;
        group.validate_commit(member_id, instance_id, generation, version)?;
        let entries: Vec<Entry> = offsets
            .iter()
            .map(|(t, p, o)| Entry::Offset(offset_key(group_id, t, *p), Some(o.clone())))
            .collect();
        let appended = self.append_offsets(group_id, &entries, None)?;
        if let Some(appended) = &appended {
            for (i, (topic, partition, mut offset)) in offsets.into_iter().enumerate() {
                offset.record_offset = appended.base_offset + i as i64;
                group.offsets.insert((topic, partition), offset);
            }
        }
        Ok(self.pending_commit(appended))
    }

    /// Committed offsets of `wanted` (topic, partitions), or of every partition when `None`.
    /// With `require_stable`, partitions with offsets in an open transaction are unstable,
    /// as in Kafka (OffsetFetch v7+); otherwise those offsets are simply not there yet.
    /// `member` (OffsetFetch v9+: member id, member epoch) is checked in a consumer group.
    pub fn fetch(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
        member: Option<(Option<&str>, i32)>,
    ) -> Result<Vec<FetchedOffset>> {
        // A share group holds no offsets: Kafka answers it as a group without any.
        let group = self.existing(group_id)?;
        let consumer = group.as_ref().and_then(|g| g.consumer.as_ref());
        if let (Some(consumer), Some((member_id, epoch))) = (consumer, member) {
            consumer.validate_fetch(member_id, epoch)?;
        }
        let streams = group.as_ref().and_then(|g| g.streams.as_ref());
        if let (Some(streams), Some((member_id, epoch))) = (streams, member) {
            streams.validate_fetch(member_id, epoch)?;
        }
        let fetched = |topic: &str, partition: i32| {
            let offset = group
                .as_ref()
                .and_then(|g| g.offsets.get(&(topic.to_owned(), partition)))
                .cloned();
            let unstable = require_stable
                && group
                    .as_ref()
                    .is_some_and(|g| g.pending.contains(topic, partition));
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
        let Some(group) = self.existing(group_id)? else {
            return Ok(None);
        };
        if group.consumer.is_some() || group.streams.is_some() || group.share.is_some() {
            return Err(BrokerError::NoSuchGroup(format!(
                "Group {group_id} is not a classic group."
            )));
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
                // Kafka shows subscriptions only once they are settled, and each member's
                // last assignment always (`describeNoMetadata`): a rebalance that began from
                // Stable still shows the one before.
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: m.assignment.clone(),
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

    /// Every group loaded here: (id, protocol type, state).
    pub fn list(&self) -> GroupListing {
        let (groups, error) = {
            let groups = self.groups.read();
            (
                groups.all(),
                groups
                    .loads
                    .any_loading()
                    .then_some(BrokerError::CoordinatorLoadInProgress),
            )
        };
        let mut listed: Vec<_> = groups
            .iter()
            .filter_map(|g| {
                let g = g.lock();
                if g.state == GroupState::Dead {
                    return None;
                }
                if let Some(share) = &g.share {
                    return Some(ListedGroup {
                        id: g.id.clone(),
                        protocol_type: share::PROTOCOL_TYPE.to_owned(),
                        state: share.state().name(),
                        group_type: "share",
                    });
                }
                Some(match (&g.consumer, &g.streams) {
                    (Some(consumer), _) => ListedGroup {
                        id: g.id.clone(),
                        protocol_type: consumer::PROTOCOL_TYPE.to_owned(),
                        state: consumer.state().name(),
                        group_type: "consumer",
                    },
                    (None, Some(streams)) => ListedGroup {
                        id: g.id.clone(),
                        protocol_type: streams::PROTOCOL_TYPE.to_owned(),
                        state: streams.state().name(),
                        group_type: "streams",
                    },
                    (None, None) => ListedGroup {
                        id: g.id.clone(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        state: g.state.name(),
                        group_type: "classic",
                    },
                })
            })
            .collect();
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        GroupListing {
            groups: listed,
            error,
        }
    }

    /// DeleteGroups: an empty group and all its offsets go.
    pub fn delete(&self, group_id: &str) -> Result<()> {
        let mut group = self
            .existing(group_id)?
            .ok_or(BrokerError::GroupIdNotFound)?;
        if !group.is_empty() {
            return Err(BrokerError::NonEmptyGroup);
        }
        self.drop_group(&mut group)
    }

    /// OffsetDelete: per partition, deleted or why not.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Result<()>)>> {
        let mut group = self
            .existing(group_id)?
            .ok_or(BrokerError::GroupIdNotFound)?;
        if group.share.is_some() {
            return Err(state::not_consumer_group(group_id));
        }
        let subscribed = match group.state {
            GroupState::Empty => Vec::new(),
            _ => group
                .subscribed_topics()
                .ok_or(BrokerError::NonEmptyGroup)?,
        };
        let mut results = Vec::new();
        let mut entries = Vec::new();
        for (topic, partition) in partitions {
            let consumer_subscribed = group
                .consumer
                .as_ref()
                .is_some_and(|c| c.is_subscribed_to(&topic));
            let streams_subscribed = group
                .streams
                .as_ref()
                .is_some_and(|s| s.is_subscribed_to(&topic));
            if subscribed.contains(&topic) || consumer_subscribed || streams_subscribed {
                results.push((topic, partition, Err(BrokerError::GroupSubscribedToTopic)));
                continue;
            }
            if group.offsets.contains_key(&(topic.clone(), partition))
                || group.pending.contains(&topic, partition)
            {
                entries.push(Entry::Offset(offset_key(group_id, &topic, partition), None));
            }
            results.push((topic, partition, Ok(())));
        }
        // Kafka writes tombstones without waiting for the replicas: nothing is acknowledged
        // that a lost tombstone would undo.
        self.store.append(group_id, &entries, now_ms())?;
        for entry in entries {
            if let Entry::Offset(key, _) = entry {
                group.pending.remove_partition(&key.t, key.p);
                group.offsets.remove(&(key.t, key.p));
            }
        }
        Ok(results)
    }

    /// Deletes the group with its offsets, pending transactional ones included (as Kafka
    /// does, a tombstone per partition, so a later commit marker brings nothing back).
    fn drop_group(&self, group: &mut LockedGroup) -> Result<()> {
        let mut partitions: BTreeSet<(String, i32)> = group.offsets.keys().cloned().collect();
        partitions.extend(group.pending.partitions());
        let mut entries: Vec<Entry> = partitions
            .iter()
            .map(|(t, p)| Entry::Offset(offset_key(&group.id, t, *p), None))
            .collect();
        match modern_tombstones(group) {
            tombstones if tombstones.is_empty() => {
                entries.push(Entry::Group(group.id.clone(), None))
            }
            tombstones => entries.extend(tombstones),
        }
        self.store.append(&group.id, &entries, now_ms())?;
        if let (Some(descriptions), Some(_)) = (&self.descriptions, &group.streams) {
            descriptions.delete(&group.id);
        }
        group.offsets.clear();
        group.pending.clear();
        group.state = GroupState::Dead;
        self.groups
            .write()
            .remove(&group.id, &LockedGroup::mutex(group));
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

pub(super) fn group_record(group: &Group) -> GroupRecord {
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

/// The tombstones of a KIP-848 consumer group's, a streams group's or a share group's
/// records (none for a classic group): the group is deleted, or turns into another type.
fn modern_tombstones(group: &Group) -> Vec<Entry> {
    let consumer = group.consumer.iter().flat_map(|c| c.tombstones());
    let streams = group.streams.iter().flat_map(|s| s.tombstones());
    let share = group.share.iter().flat_map(|s| s.tombstones());
    consumer
        .map(|(k, v)| Entry::Consumer(k, v))
        .chain(streams.map(|(k, v)| Entry::Streams(k, v)))
        .chain(share.map(|(k, v)| Entry::Share(k, v)))
        .collect()
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
