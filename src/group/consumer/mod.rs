//! One consumer group of KIP-848's "consumer" rebalance protocol, as Kafka's `ConsumerGroup`
//! and the consumer half of its `GroupMetadataManager`: members heartbeat
//! (ConsumerGroupHeartbeat) with their subscriptions; the coordinator computes the target
//! assignment with a server-side assignor whenever the group epoch moves past the
//! assignment epoch (a subscription or a subscribed topic changed, a member came or went),
//! and reconciles each member towards its target ([`reconcile`]).
//!
//! Epochs: the group epoch counts changes to who subscribes to what; the assignment epoch is
//! the group epoch the target assignment was computed at; a member's epoch is the assignment
//! epoch it has reconciled to. A partition moves between members only through a revocation
//! the giving member acknowledges, so no partition ever has two owners at once.
//!
//! The machine is pure: time comes in as an argument and the topics as a [`TopicImage`];
//! the caller holds the group's lock around every call.

pub mod assignor;
mod classic;
mod heartbeat;
mod image;
mod reconcile;
pub mod records;
pub mod subscription;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

pub use classic::{decode_subscription, ClassicJoin, ClassicJoined, ClassicSource};
pub use heartbeat::{validate, Heartbeat, HeartbeatResult};
pub use image::{metadata_hash, Persisted, Record};
pub use subscription::{TopicImage, TopicMeta, TopicRegex};

pub type TopicId = Uuid;
/// The protocol type ListGroups and DescribeGroups show for consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// Kafka's epoch of a member leaving for good, and of a static member leaving for now.
pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// Where a member is in its reconciliation (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Reconciled to its epoch's target, or as far as it can go.
    Stable,
    /// Must revoke partitions before it moves to the next epoch.
    UnrevokedPartitions,
    /// Reached the target epoch, but partitions of its target are still owned by others.
    UnreleasedPartitions,
}

/// The group's state as DescribeGroups, ListGroups and ConsumerGroupDescribe name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Broker-wide settings of consumer groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
    /// The assignors members may name, the default first.
    pub assignors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<TopicRegex>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Set while the member uses the classic protocol (JoinGroup and co.).
    pub classic: Option<records::ClassicMember>,
    session_deadline: Instant,
    /// A classic member's deadline to rejoin, or to sync after joining (Kafka's join and
    /// sync timeouts, each the member's rebalance timeout).
    classic_deadline: Option<Instant>,
    /// Set while the member must revoke: (its epoch then, deadline).
    revocation_deadline: Option<(i32, Instant)>,
}

impl ConsumerMember {
    fn new(id: String, now: Instant) -> ConsumerMember {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::ZERO,
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            classic: None,
            session_deadline: now,
            classic_deadline: None,
            revocation_deadline: None,
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.epoch == epoch
    }

    /// Whether the member subscribes to `topic`, by name or by an expression already
    /// resolved (one of `resolved`).
    fn subscribes(&self, topic: &str, resolved: &BTreeSet<String>) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic)
            || self
                .resolved_regex(resolved)
                .is_some_and(|r| r.matches(topic))
    }

    /// The subscription expression's source text.
    pub fn regex_source(&self) -> Option<String> {
        self.subscribed_topic_regex
            .as_ref()
            .map(|r| r.as_str().to_owned())
    }

    fn resolved_regex<'a>(&'a self, resolved: &BTreeSet<String>) -> Option<&'a TopicRegex> {
        self.subscribed_topic_regex
            .as_ref()
            .filter(|r| resolved.contains(r.as_str()))
    }
}

#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Each member's target assignment at the assignment epoch.
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics (name → id, partitions) the target was computed from.
    subscribed_topics: TopicImage,
    /// The epoch of the member owning each partition (assigned or pending revocation).
    partition_epochs: HashMap<(TopicId, i32), i32>,
    /// The subscription expressions resolved. Kafka resolves a new expression after the
    /// heartbeat that brought it, then moves the group to a new epoch; until then the
    /// member subscribes to nothing by it.
    resolved_regexes: BTreeSet<String>,
    /// The hash of the subscribed topics a loaded group was written with, until the first
    /// look at the topics decides whether they changed meanwhile.
    restored_hash: Option<i64>,
    /// What the group's records on disk hold.
    persisted: image::Persisted,
}

impl ConsumerGroup {
    /// A new group. Kafka 4.4 starts a new group at epoch 1, so its first member joins at
    /// epoch 2 (as a differential test against it pins down).
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_owned(),
            group_epoch: 1,
            assignment_epoch: 1,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: TopicImage::new(),
            partition_epochs: HashMap::new(),
            resolved_regexes: BTreeSet::new(),
            restored_hash: None,
            persisted: image::Persisted::default(),
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch != self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    /// Whether any member subscribes to `topic` (OffsetDelete refuses its offsets).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        let resolved = &self.resolved_regexes;
        self.members.values().any(|m| m.subscribes(topic, resolved))
    }

    /// The assignor the group uses: the one most members name, else the default (Kafka's
    /// `computePreferredServerAssignor`; ties go to the name first in order).
    pub fn assignor(&self, settings: &ConsumerSettings) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = &member.server_assignor {
                *counts.entry(name).or_default() += 1;
            }
        }
        let best = counts.values().copied().max();
        counts
            .into_iter()
            .find(|(_, c)| Some(*c) == best)
            .map(|(name, _)| name.to_owned())
            .or_else(|| settings.assignors.first().cloned())
            .unwrap_or_else(|| assignor::UNIFORM.to_owned())
    }

    /// The epoch of the member owning the partition, if any.
    fn owner_epoch(&self, topic: TopicId, partition: i32) -> Option<i32> {
        self.partition_epochs.get(&(topic, partition)).copied()
    }

    /// Puts `member` in the group in place of its previous version, keeping the partition
    /// owners' epochs and the static members' index up to date.
    fn update_member(&mut self, member: ConsumerMember) {
        if let Some(old) = self.members.remove(&member.id) {
            self.forget_ownership(&old);
        }
        for (topic, partitions) in member.assigned.iter().chain(&member.pending_revocation) {
            for p in partitions {
                self.partition_epochs.insert((*topic, *p), member.epoch);
            }
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    fn forget_ownership(&mut self, member: &ConsumerMember) {
        for (topic, partitions) in member.assigned.iter().chain(&member.pending_revocation) {
            for p in partitions {
                if self.partition_epochs.get(&(*topic, *p)) == Some(&member.epoch) {
                    self.partition_epochs.remove(&(*topic, *p));
                }
            }
        }
    }

    /// Takes a member out of the group: its partitions are free and its target goes.
    fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        self.forget_ownership(&member);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance) == Some(&member.id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        Some(member)
    }

    /// The topics the members subscribe to, as they exist in `topics`.
    fn subscribed_topics_in(&self, topics: &TopicImage) -> TopicImage {
        topics
            .iter()
            .filter(|(name, _)| self.is_subscribed_to(name))
            .map(|(name, meta)| (name.clone(), *meta))
            .collect()
    }

    /// Recomputes the subscribed topics; a change (a subscribed topic created, deleted or
    /// grown) bumps the group epoch.
    fn refresh_subscribed_topics(&mut self, topics: &TopicImage) -> bool {
        let members = &self.members;
        self.resolved_regexes.retain(|r| {
            members.values().any(|m| {
                m.subscribed_topic_regex
                    .as_ref()
                    .is_some_and(|m| m.as_str() == r)
            })
        });
        let subscribed = self.subscribed_topics_in(topics);
        if subscribed == self.subscribed_topics {
            return false;
        }
        // A loaded group knows its topics only by their hash.
        let unchanged = self.restored_hash.take() == Some(image::metadata_hash(&subscribed));
        self.subscribed_topics = subscribed;
        !unchanged
    }

    /// Computes the target assignment at the group epoch (Kafka's `TargetAssignmentBuilder`).
    fn compute_target(&mut self, settings: &ConsumerSettings) {
        let name = self.assignor(settings);
        let empty = Assignment::new();
        let members: Vec<assignor::AssignorMember> = self
            .members
            .values()
            .map(|m| assignor::AssignorMember {
                member_id: &m.id,
                instance_id: m.instance_id.as_deref(),
                subscribed: subscription::resolve_ids(
                    &m.subscribed_topic_names,
                    m.resolved_regex(&self.resolved_regexes),
                    &self.subscribed_topics,
                ),
                current: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        let partitions: BTreeMap<TopicId, i32> = self
            .subscribed_topics
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        let target = assignor::assign(&name, &members, &partitions);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves `member` one step towards its target (Kafka's `maybeReconcile`).
    fn reconcile(&self, member: &mut ConsumerMember, owned: Option<&Assignment>, now: Instant) {
        if member.is_reconciled_to(self.assignment_epoch) {
            return;
        }
        let empty = Assignment::new();
        let owner_epoch = |t, p| self.owner_epoch(t, p);
        let step = reconcile::Reconciliation {
            target_epoch: self.assignment_epoch,
            target: self.target.get(&member.id).unwrap_or(&empty),
            owner_epoch: &owner_epoch,
            owned,
        };
        let Some(next) = step.step(
            member.state,
            member.epoch,
            &member.assigned,
            &member.pending_revocation,
        ) else {
            return;
        };
        if next.epoch != member.epoch {
            member.previous_epoch = member.epoch;
        }
        member.epoch = next.epoch;
        member.state = next.state;
        member.assigned = next.assigned;
        member.pending_revocation = next.pending_revocation;
        member.revocation_deadline = match member.state {
            MemberState::UnrevokedPartitions => {
                Some((member.epoch, now + member.rebalance_timeout))
            }
            _ => None,
        };
    }
}

#[cfg(test)]
mod classic_tests;
#[cfg(test)]
mod tests;
