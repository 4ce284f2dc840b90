//! One share group (KIP-932), as Kafka 4.4's `ShareGroup` and the share half of its
//! `GroupMetadataManager`: members heartbeat (ShareGroupHeartbeat) with the topics they
//! subscribe to; the coordinator computes the target assignment with the [`assignor`]
//! whenever the group epoch moves past the assignment epoch, and a member takes its target
//! at once: share groups have no revocation, since a partition may have several members
//! and records, not partitions, are what is handed out (by the share-partition leader).
//!
//! A partition is assigned only once its share state exists: before that, the coordinator
//! asks the share coordinator to initialize it ([`ShareGroup::to_initialize`]) and records
//! which partitions are initializing and initialized (`ShareGroupStatePartitionMetadata`).
//! A heartbeat that finds initialized partitions missing from the target moves the group to
//! a new epoch, so they are assigned.
//!
//! The machine is pure: time comes in as an argument and the topics as a [`TopicImage`];
//! the caller holds the group's lock around every call.

pub mod assignor;
pub mod coordinator;
mod image;
pub mod offsets;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

pub use super::consumer::{TopicImage, TopicMeta};
use crate::error::BrokerError;
pub use image::Persisted;
use records::{StatePartitions, TopicPartitions};

pub type TopicId = Uuid;
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The protocol type ListGroups shows for share groups.
pub const PROTOCOL_TYPE: &str = "share";
/// The epoch of a member leaving.
pub const LEAVE_EPOCH: i32 = -1;
/// How long Kafka waits before it asks again to initialize partitions whose initialization
/// did not complete (`group.share.initialize.retry.interval.ms`).
pub const INITIALIZE_RETRY_MS: i64 = 30_000;

/// Broker-wide settings of share groups (Kafka's `group.share.*`).
#[derive(Debug, Clone)]
pub struct ShareSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
    /// Least time between two target assignments (`group.share.assignment.interval.ms`).
    pub assignment_interval: Duration,
}

/// The group's state as ShareGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareGroupState {
    Empty,
    Stable,
}

impl ShareGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ShareGroupState::Empty => "Empty",
            ShareGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShareMember {
    pub id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub assigned: Assignment,
    session_deadline: Instant,
}

impl ShareMember {
    fn new(id: &str, now: Instant) -> ShareMember {
        ShareMember {
            id: id.to_owned(),
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            epoch: 0,
            previous_epoch: 0,
            assigned: Assignment::new(),
            session_deadline: now,
        }
    }
}

/// What a ShareGroupHeartbeat brings.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member joins or its assignment changed.
    pub assignment: Option<Assignment>,
}

/// Share-partitions whose state the share coordinator must initialize, at the group's
/// epoch: per topic, the start offset (-1: `share.auto.offset.reset` decides when the
/// share-partition leader first reads it; 0: partitions added to a topic the group already
/// reads start at their beginning) and the partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Initialize {
    pub state_epoch: i32,
    pub topics: BTreeMap<TopicId, (i64, BTreeSet<i32>)>,
}

/// Kafka's `throwIfShareGroupHeartbeatRequestIsInvalid`.
pub fn validate(group_id: &str, req: &Heartbeat) -> Result<(), BrokerError> {
    let invalid = |m: &str| Err(BrokerError::InvalidRequest(m.to_owned()));
    if group_id.trim().is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.rack_id.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return invalid("RackId can't be empty.");
    }
    if req.member_id.trim().is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if req.member_epoch == 0 {
        if req
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|t| t.is_empty())
        {
            return invalid("SubscribedTopicNames must be set in first request.");
        }
    } else if req.member_epoch < 0 && req.member_epoch != LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    Ok(())
}

fn unknown_member(member_id: &str, group_id: &str) -> BrokerError {
    BrokerError::UnknownMember(format!(
        "Member {member_id} is not a member of group {group_id}."
    ))
}

#[derive(Debug)]
pub struct ShareGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// When the target assignment was last computed (ms; 0: never).
    pub assignment_timestamp: i64,
    pub members: BTreeMap<String, ShareMember>,
    /// Each member's target assignment at the assignment epoch.
    pub target: BTreeMap<String, Assignment>,
    /// The hash of the subscribed topics the group epoch was moved for.
    pub metadata_hash: i64,
    /// Which share-partitions' state exists (or is being made, or deleted).
    pub state_partitions: StatePartitions,
    /// When each initializing topic was last asked for (ms), to ask again after a while.
    initializing_since: BTreeMap<TopicId, i64>,
    /// The subscribed topics as the last heartbeat saw them, for fencing between heartbeats.
    topics: TopicImage,
    persisted: Persisted,
}

impl ShareGroup {
    /// A new group. Kafka 4.4 starts a new share group at epoch 1, so its first member
    /// joins at epoch 2 (as a differential test against it pins down).
    pub fn new(id: &str) -> ShareGroup {
        ShareGroup {
            id: id.to_owned(),
            group_epoch: 1,
            assignment_epoch: 1,
            assignment_timestamp: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            metadata_hash: 0,
            state_partitions: StatePartitions::default(),
            initializing_since: BTreeMap::new(),
            topics: TopicImage::new(),
            persisted: Persisted::default(),
        }
    }

    pub fn state(&self) -> ShareGroupState {
        match self.members.is_empty() {
            true => ShareGroupState::Empty,
            false => ShareGroupState::Stable,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The topic names any member subscribes to.
    pub fn subscribed_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect()
    }

    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|m| m.subscribed_topic_names.iter().any(|t| t == topic))
    }

    /// Every share-partition with state (initialized or initializing), for deletion.
    pub fn share_partitions(&self) -> BTreeMap<TopicId, BTreeSet<i32>> {
        let mut all: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
        let sp = &self.state_partitions;
        for (id, t) in sp.initialized.iter().chain(&sp.initializing) {
            all.entry(*id).or_default().extend(&t.partitions);
        }
        all
    }

    fn subscribed_image(&self, topics: &TopicImage) -> TopicImage {
        let names = self.subscribed_names();
        topics
            .iter()
            .filter(|(name, _)| names.contains(*name))
            .map(|(n, m)| (n.clone(), *m))
            .collect()
    }

    /// Kafka's `initializedAssignmentPending`: initialized partitions of subscribed topics
    /// that the target does not hold yet.
    fn initialized_assignment_pending(&self) -> bool {
        if self.members.is_empty() || self.state_partitions.initialized.is_empty() {
            return false;
        }
        let names = self.subscribed_names();
        let mut targeted: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
        for a in self.target.values() {
            for (t, ps) in a {
                targeted.entry(*t).or_default().extend(ps);
            }
        }
        self.state_partitions
            .initialized
            .iter()
            .filter(|(_, t)| names.contains(&t.name))
            .any(|(id, t)| targeted.get(id) != Some(&t.partitions))
    }

    /// Computes the target assignment at the group epoch, over the partitions whose state
    /// is initialized.
    fn compute_target(&mut self, topics: &TopicImage) {
        let empty = Assignment::new();
        let assignable: BTreeMap<TopicId, BTreeSet<i32>> = self
            .state_partitions
            .initialized
            .iter()
            .filter(|(id, t)| topics.get(&t.name).is_some_and(|m| m.id == **id))
            .map(|(id, t)| (*id, t.partitions.clone()))
            .collect();
        let members: Vec<assignor::AssignorMember> = self
            .members
            .values()
            .map(|m| assignor::AssignorMember {
                member_id: &m.id,
                subscribed: m
                    .subscribed_topic_names
                    .iter()
                    .filter_map(|n| topics.get(n).map(|t| t.id))
                    .collect(),
                current: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        self.target = assignor::assign(&members, &assignable);
        self.assignment_epoch = self.group_epoch;
    }

    /// Kafka's `ShareGroupAssignmentBuilder`: the member takes its target, within the topics
    /// it subscribes to.
    fn reconcile(&self, member: &mut ShareMember, topics: &TopicImage) {
        let subscribed: BTreeSet<TopicId> = member
            .subscribed_topic_names
            .iter()
            .filter_map(|n| topics.get(n).map(|t| t.id))
            .collect();
        let within = |a: &Assignment| -> Assignment {
            a.iter()
                .filter(|(t, _)| subscribed.contains(*t))
                .map(|(t, p)| (*t, p.clone()))
                .collect()
        };
        if member.epoch != self.assignment_epoch {
            let empty = Assignment::new();
            member.assigned = within(self.target.get(&member.id).unwrap_or(&empty));
            member.previous_epoch = member.epoch;
            member.epoch = self.assignment_epoch;
        } else {
            member.assigned = within(&member.assigned);
        }
    }

    /// A heartbeat of a joining (epoch 0) or joined member; leaving is [`Self::leave`].
    /// `now_ms` is the wall clock the target assignment's time is kept in.
    pub fn heartbeat(
        &mut self,
        req: Heartbeat,
        topics: &TopicImage,
        settings: &ShareSettings,
        now: Instant,
        now_ms: i64,
    ) -> Result<HeartbeatResult, BrokerError> {
        let joining = req.member_epoch == 0;
        if self.members.len() >= settings.max_size && !self.members.contains_key(&req.member_id) {
            return Err(BrokerError::GroupMaxSizeReached(format!(
                "The share group has reached its maximum capacity of {} members.",
                settings.max_size
            )));
        }
        let before = match self.members.get(&req.member_id) {
            // A member that joins again (its process restarted) carries on as it was.
            Some(member) if joining => member.clone(),
            Some(member) => {
                check_epoch(member, req.member_epoch)?;
                member.clone()
            }
            None if joining => ShareMember::new(&req.member_id, now),
            None => return Err(unknown_member(&req.member_id, &self.id)),
        };
        let mut member = before.clone();
        if let Some(rack) = &req.rack_id {
            member.rack_id = Some(rack.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            member.subscribed_topic_names = names;
        }
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_deadline = now + settings.session_timeout;

        let mut bump = before.subscribed_topic_names != member.subscribed_topic_names;
        if self.group_epoch <= self.assignment_epoch {
            bump |= self.initialized_assignment_pending();
        }
        self.members.insert(member.id.clone(), member.clone());
        self.topics = self.subscribed_image(topics);
        let hash = super::consumer::metadata_hash(&self.topics);
        if hash != self.metadata_hash {
            self.metadata_hash = hash;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        // Kafka computes a new target at most once per assignment interval; until then
        // members reconcile to the last one.
        let interval = settings.assignment_interval.as_millis() as i64;
        let last = self.assignment_timestamp;
        let may_assign = last == 0 || interval == 0 || now_ms >= last + interval;
        if self.group_epoch > self.assignment_epoch && may_assign {
            self.compute_target(topics);
            self.assignment_timestamp = now_ms;
        }
        self.reconcile(&mut member, topics);
        let changed = member.assigned != before.assigned;
        self.members.insert(member.id.clone(), member.clone());
        Ok(HeartbeatResult {
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as i32,
            assignment: (joining || changed).then(|| member.assigned.clone()),
        })
    }

    /// A member leaves (epoch -1): it is fenced, and the answer carries epoch -1.
    pub fn leave(&mut self, member_id: &str) -> Result<HeartbeatResult, BrokerError> {
        if !self.members.contains_key(member_id) {
            return Err(unknown_member(member_id, &self.id));
        }
        self.fence(member_id);
        Ok(HeartbeatResult {
            member_id: member_id.to_owned(),
            member_epoch: LEAVE_EPOCH,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Removes a member (it left, or its session timed out) and moves the group to a new
    /// epoch without it (Kafka's `shareGroupFenceMember`); the next heartbeat computes the
    /// target without it.
    pub fn fence(&mut self, member_id: &str) -> Option<ShareMember> {
        let member = self.members.remove(member_id)?;
        self.target.remove(member_id);
        self.topics = self.subscribed_image(&self.topics);
        self.metadata_hash = super::consumer::metadata_hash(&self.topics);
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.target.clear();
            self.assignment_epoch = self.group_epoch;
        }
        Some(member)
    }

    /// The members whose session expired.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect()
    }

    /// Kafka's `subscribedTopicsChangeMap` and `maybeCreateInitializeShareGroupStateRequest`:
    /// the partitions of subscribed topics whose state is neither initialized nor being
    /// initialized (or was asked for more than [`INITIALIZE_RETRY_MS`] ago); they are
    /// recorded as initializing.
    pub fn to_initialize(&mut self, topics: &TopicImage, now_ms: i64) -> Option<Initialize> {
        let mut wanted: BTreeMap<TopicId, (i64, BTreeSet<i32>)> = BTreeMap::new();
        for name in self.subscribed_names() {
            let Some(meta) = topics.get(&name) else {
                continue;
            };
            let sp = &self.state_partitions;
            let fresh = self
                .initializing_since
                .get(&meta.id)
                .is_some_and(|at| now_ms - at < INITIALIZE_RETRY_MS);
            let mut known: BTreeSet<i32> = BTreeSet::new();
            if let Some(t) = sp.initialized.get(&meta.id) {
                known.extend(&t.partitions);
            }
            let started = known.len();
            if let (Some(t), true) = (sp.initializing.get(&meta.id), fresh) {
                known.extend(&t.partitions);
            }
            let missing: BTreeSet<i32> = (0..meta.partitions)
                .filter(|p| !known.contains(p))
                .collect();
            if missing.is_empty() {
                continue;
            }
            // Partitions added to a topic the group already reads start at the beginning.
            let already = started > 0 || sp.initializing.contains_key(&meta.id);
            wanted.insert(meta.id, (if already { 0 } else { -1 }, missing));
        }
        if wanted.is_empty() {
            return None;
        }
        for (id, (_, partitions)) in &wanted {
            let name = topics
                .iter()
                .find(|(_, m)| m.id == *id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            let entry = self
                .state_partitions
                .initializing
                .entry(*id)
                .or_insert_with(|| TopicPartitions {
                    name,
                    partitions: BTreeSet::new(),
                });
            entry.partitions.extend(partitions);
            self.initializing_since.insert(*id, now_ms);
        }
        Some(Initialize {
            state_epoch: self.group_epoch,
            topics: wanted,
        })
    }

    /// The share coordinator initialized these partitions (Kafka's
    /// `initializeShareGroupState`): they move from initializing to initialized.
    pub fn initialized(&mut self, done: &BTreeMap<TopicId, BTreeSet<i32>>, topics: &TopicImage) {
        for (id, partitions) in done {
            let Some(name) = topics
                .iter()
                .find(|(_, m)| m.id == *id)
                .map(|(n, _)| n.clone())
            else {
                continue;
            };
            self.forget_initializing(*id, partitions);
            self.state_partitions
                .initialized
                .entry(*id)
                .or_insert_with(|| TopicPartitions {
                    name,
                    partitions: BTreeSet::new(),
                })
                .partitions
                .extend(partitions);
        }
    }

    /// The initialization failed (Kafka's `uninitializeShareGroupState`): the partitions are
    /// no longer initializing, and a later heartbeat asks again.
    pub fn uninitialized(&mut self, failed: &BTreeMap<TopicId, BTreeSet<i32>>) {
        for (id, partitions) in failed {
            self.forget_initializing(*id, partitions);
        }
    }

    fn forget_initializing(&mut self, id: TopicId, partitions: &BTreeSet<i32>) {
        if let Some(t) = self.state_partitions.initializing.get_mut(&id) {
            t.partitions.retain(|p| !partitions.contains(p));
            if t.partitions.is_empty() {
                self.state_partitions.initializing.remove(&id);
                self.initializing_since.remove(&id);
            }
        }
    }
}

/// Kafka's `throwIfShareGroupMemberEpochIsInvalid`: an epoch ahead is fenced; one behind
/// only as the previous epoch (the answer that moved the member on may have been lost).
fn check_epoch(member: &ShareMember, received: i32) -> Result<(), BrokerError> {
    let known = member.epoch;
    if received > known {
        return Err(BrokerError::FencedMemberEpoch(format!(
            "The share group member has a greater member epoch ({received}) than the one known \
             by the group coordinator ({known}). The member must abandon all its partitions and \
             rejoin."
        )));
    }
    if received < known && received != member.previous_epoch {
        return Err(BrokerError::FencedMemberEpoch(format!(
            "The share group member has a smaller member epoch ({received}) than the one known \
             by the group coordinator ({known}), and it does not match the previous member \
             epoch ({}). The member must abandon all its partitions and rejoin.",
            member.previous_epoch
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
