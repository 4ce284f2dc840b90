//! Streams groups (KIP-1071): Kafka Streams applications with `group.protocol=streams`, as
//! Kafka 4.4's `StreamsGroup` and the streams half of its `GroupMetadataManager`. The first
//! member to join brings the topology (subtopologies, their source, repartition and
//! changelog topics); the coordinator configures it against the topics that exist
//! ([`topology`]), tells members which topics are missing and has the broker create the
//! internal ones, and once every topic is there computes the target assignment of tasks
//! (one per input partition of each subtopology) with the sticky task assignor
//! ([`assignor`]). Each member is then reconciled towards its target ([`reconcile`]): a task
//! moves only after its previous owner has revoked it.
//!
//! Epochs as in consumer groups: the group epoch counts changes (a member came or went, its
//! process or topology epoch changed, the topics changed), the assignment epoch is the group
//! epoch the target was computed at, a member's epoch the assignment epoch it reached.
//!
//! The machine is pure: time and the topics come in as arguments; the caller holds the
//! group's lock around every call.

pub mod assignor;
mod coordinator;
pub mod description;
mod heartbeat;
mod image;
mod membership;
mod reconcile;
pub mod records;
pub mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

pub use coordinator::{
    no_description_store, streams_settings, DescribedDescription, StreamsGroupSummary,
    StreamsMemberSummary,
};
pub use heartbeat::{validate, Heartbeat, HeartbeatResult};
pub use topology::{ConfiguredTopology, Status, StatusCode, Topology};

/// Partitions (task ids) by subtopology id.
pub type TaskSet = BTreeMap<String, BTreeSet<i32>>;

/// The protocol type ListGroups and DescribeGroups show for streams groups.
pub const PROTOCOL_TYPE: &str = "streams";

pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// A member's active, standby and warm-up tasks (Kafka's `TasksTuple`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tasks {
    pub active: TaskSet,
    pub standby: TaskSet,
    pub warmup: TaskSet,
}

impl Tasks {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.standby.is_empty() && self.warmup.is_empty()
    }

    /// Whether any task of `other` is among these, kind by kind.
    fn contains_any(&self, other: &Tasks) -> bool {
        let any = |a: &TaskSet, b: &TaskSet| {
            b.iter()
                .any(|(s, ps)| a.get(s).is_some_and(|mine| !mine.is_disjoint(ps)))
        };
        any(&self.active, &other.active)
            || any(&self.standby, &other.standby)
            || any(&self.warmup, &other.warmup)
    }
}

/// Where a member is in its reconciliation (Kafka's streams `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedTasks,
    UnreleasedTasks,
}

/// The group's state as ListGroups and StreamsGroupDescribe name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsGroupState {
    Empty,
    NotReady,
    Assigning,
    Reconciling,
    Stable,
}

impl StreamsGroupState {
    pub fn name(self) -> &'static str {
        match self {
            StreamsGroupState::Empty => "Empty",
            StreamsGroupState::NotReady => "NotReady",
            StreamsGroupState::Assigning => "Assigning",
            StreamsGroupState::Reconciling => "Reconciling",
            StreamsGroupState::Stable => "Stable",
        }
    }
}

/// Broker-wide settings of streams groups (Kafka's `group.streams.*`).
#[derive(Debug, Clone)]
pub struct StreamsSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
    pub num_standby_replicas: usize,
    pub initial_rebalance_delay: Duration,
    pub assignment_interval: Duration,
    pub task_offset_interval: Duration,
    pub acceptable_recovery_lag: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct StreamsMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Tasks,
    pub pending_revocation: Tasks,
    session_deadline: Instant,
    /// Set while the member must revoke: (its epoch then, deadline).
    revocation_deadline: Option<(i32, Instant)>,
}

impl StreamsMember {
    fn new(id: &str, now: Instant) -> StreamsMember {
        StreamsMember {
            id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::ZERO,
            topology_epoch: -1,
            process_id: String::new(),
            user_endpoint: None,
            client_tags: BTreeMap::new(),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Tasks::default(),
            pending_revocation: Tasks::default(),
            session_deadline: now,
            revocation_deadline: None,
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.epoch == epoch
    }
}

#[derive(Debug)]
pub struct StreamsGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// When the target was last computed (the assignment interval counts from it).
    assignment_time: Option<Instant>,
    pub topology: Option<Topology>,
    pub configured: Option<ConfiguredTopology>,
    /// A digest of the topics the topology needs, as they were when last configured.
    metadata_hash: u64,
    /// The topology epoch the topics were last found good for, -1 if none.
    validated_topology_epoch: i32,
    pub members: BTreeMap<String, StreamsMember>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Each member's target tasks at the assignment epoch.
    pub target: BTreeMap<String, Tasks>,
    /// Counts changes to the members' endpoints or the tasks behind them.
    endpoint_epoch: i32,
    /// A member asked the whole application to shut down.
    shutdown_requested_by: Option<String>,
    /// The first assignment of a new group waits for more members until then.
    initial_delay_until: Option<Instant>,
    /// The topology epoch whose description the store holds ([`description::NOT_STORED`]
    /// if none, [`description::UNCERTAIN`] while a push is being stored).
    stored_description_epoch: i32,
    /// The topology epoch whose description the store refused for good, -1 if none: no
    /// member is asked to push it again.
    failed_description_epoch: i32,
    /// What the group's records in `__consumer_offsets` hold.
    persisted: image::Persisted,
}

impl StreamsGroup {
    pub fn new(id: &str) -> StreamsGroup {
        StreamsGroup {
            id: id.to_owned(),
            // As Kafka's: a new group (and its empty target) starts at epoch 1, so its
            // first member joins at epoch 2, or 1 while the first assignment is delayed.
            group_epoch: 1,
            assignment_epoch: 1,
            assignment_time: None,
            topology: None,
            configured: None,
            metadata_hash: 0,
            validated_topology_epoch: -1,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            endpoint_epoch: 0,
            shutdown_requested_by: None,
            initial_delay_until: None,
            stored_description_epoch: description::NOT_STORED,
            failed_description_epoch: -1,
            persisted: image::Persisted::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> StreamsGroupState {
        if self.members.is_empty() {
            StreamsGroupState::Empty
        } else if self
            .topology
            .as_ref()
            .is_none_or(|t| t.epoch != self.validated_topology_epoch)
        {
            StreamsGroupState::NotReady
        } else if self.group_epoch > self.assignment_epoch {
            StreamsGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            StreamsGroupState::Reconciling
        } else {
            StreamsGroupState::Stable
        }
    }

    /// Whether the group reads `topic` while it has members (OffsetDelete refuses).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        !self.members.is_empty() && self.topology.as_ref().is_some_and(|t| t.reads(topic))
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&StreamsMember> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    fn update_member(&mut self, member: StreamsMember) {
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    fn remove_member(&mut self, member_id: &str) -> Option<StreamsMember> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance) == Some(&member.id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        Some(member)
    }

    /// The process whose member runs active task (`sub`, `p`), if any.
    fn active_owner(&self, sub: &str, p: i32, except: &str) -> Option<&str> {
        self.members
            .values()
            .filter(|m| m.id != except)
            .find(|m| {
                let holds = |t: &TaskSet| t.get(sub).is_some_and(|ps| ps.contains(&p));
                holds(&m.assigned.active) || holds(&m.pending_revocation.active)
            })
            .map(|m| m.process_id.as_str())
    }

    /// The processes of other members holding (`sub`, `p`) as a standby or warm-up.
    fn replica_processes(&self, sub: &str, p: i32, except: &str) -> BTreeSet<&str> {
        self.members
            .values()
            .filter(|m| m.id != except)
            .filter(|m| {
                let holds = |t: &TaskSet| t.get(sub).is_some_and(|ps| ps.contains(&p));
                let (a, r) = (&m.assigned, &m.pending_revocation);
                holds(&a.standby) || holds(&a.warmup) || holds(&r.standby) || holds(&r.warmup)
            })
            .map(|m| m.process_id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests;
