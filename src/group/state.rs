//! One consumer group's classic rebalance state machine (Kafka's "classic" protocol):
//! Empty → PreparingRebalance → CompletingRebalance → Stable, and back to
//! PreparingRebalance whenever membership or subscriptions change.
//!
//! The machine is pure: time comes in as an argument and parked JoinGroup / SyncGroup
//! requests are `oneshot` senders it answers when the rebalance moves on. The caller holds
//! the group's lock around every call and persists what [`Group::take_dirty`] reports; the
//! leader's assignment takes effect only once the caller reports it stored
//! ([`Group::assignment_stored`]), as Kafka answers SyncGroup only after its write.

mod membership;
mod migration;
mod rebalance;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::consumer::ConsumerGroup;
use super::share::ShareGroup;
use super::streams::StreamsGroup;
use super::txn_offsets::PendingOffsets;
use crate::error::BrokerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a member sent in JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first be given an id (KIP-394).
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member for the leader, empty for the others.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoining a stable group must not assign again (KIP-345).
    pub skip_assignment: bool,
}

/// A failed join still tells the member its id (MEMBER_ID_REQUIRED hands one out).
#[derive(Debug)]
pub struct JoinError {
    pub error: BrokerError,
    pub member_id: String,
}

pub type JoinOutcome = Result<JoinResult, JoinError>;

#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

pub type SyncOutcome = Result<SyncResult, BrokerError>;

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    /// Order of arrival; the longest-standing member becomes leader when one is needed.
    order: u64,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn is_waiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

/// A committed offset of one partition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
    /// Set by OffsetCommit v2-4 `retention_time_ms`; otherwise the group's retention applies.
    pub expire_timestamp: Option<i64>,
    /// Where the commit's record sits in `__consumer_offsets` (not stored: it is the record's
    /// own offset). A transaction's offsets only replace a commit written before them.
    #[serde(skip)]
    pub record_offset: i64,
}

/// Broker-wide settings the machine needs.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: HashMap<String, Member>,
    /// group.instance.id → member id of the static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they lapse.
    pub pending_members: HashMap<String, Instant>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// TxnOffsetCommit offsets waiting for their transaction to end.
    pub pending: PendingOffsets,
    /// Wall-clock ms of the last state change, for offset retention of empty groups.
    pub state_timestamp: i64,
    /// Set while the group is a KIP-848 consumer group: then its members, epochs and
    /// assignments are there, and the classic part above holds only the offsets (its
    /// state stays Empty, with no members).
    pub consumer: Option<ConsumerGroup>,
    /// Set while the group is a streams group (KIP-1071), as `consumer` is for consumer
    /// groups.
    pub streams: Option<StreamsGroup>,
    /// Set while the group is a share group (KIP-932). A share group never holds committed
    /// offsets: its progress is the share-partitions' state, kept by the share coordinator.
    pub share: Option<ShareGroup>,
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits for more members (KIP-134): (cap).
    initial_join_cap: Option<Instant>,
    next_order: u64,
    dirty: bool,
    /// The leader's assignment is being written; any state change ends the wait.
    storing_assignment: bool,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending: PendingOffsets::default(),
            state_timestamp: now_ms,
            consumer: None,
            streams: None,
            share: None,
            rebalance_deadline: None,
            initial_join_cap: None,
            next_order: 0,
            dirty: false,
            storing_assignment: false,
        }
    }

    /// Nothing has happened to the group yet: no generation, member, join underway or
    /// offset. It exists because a request is creating it.
    pub fn is_untouched(&self) -> bool {
        self.generation == 0
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.protocol_type.is_none()
            && self.offsets.is_empty()
            && self.pending.is_empty()
    }

    /// Whether the group metadata changed in a way that must be written to the offsets log.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Restores a member from the offsets log after a restart, as if it had just heartbeated.
    pub fn restore_member(&mut self, mut member: Member) {
        member.order = self.next_order;
        self.next_order += 1;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Without members, of either protocol.
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
            && self.consumer.as_ref().is_none_or(|c| c.is_empty())
            && self.streams.as_ref().is_none_or(|s| s.is_empty())
            && self.share.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Handles a JoinGroup; `reply` is answered now or when the rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
        new_member_id: String,
    ) {
        let fail = |reply: oneshot::Sender<JoinOutcome>, error, member_id: &str| {
            let _ = reply.send(Err(JoinError {
                error,
                member_id: member_id.to_owned(),
            }));
        };
        if self.state == GroupState::Dead {
            return fail(reply, BrokerError::CoordinatorNotAvailable, &req.member_id);
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return fail(
                reply,
                BrokerError::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        if req.member_id.is_empty() {
            if let Some(instance) = &req.instance_id {
                if let Some(old) = self.static_members.get(instance).cloned() {
                    return self.replace_static_member(
                        &old,
                        req,
                        reply,
                        now,
                        now_ms,
                        settings,
                        new_member_id,
                    );
                }
            } else if req.require_known_member_id {
                self.pending_members
                    .insert(new_member_id.clone(), now + req.session_timeout);
                return fail(reply, BrokerError::MemberIdRequired, &new_member_id);
            }
            return self.add_member(new_member_id, req, reply, now, now_ms, settings);
        }
        if self.pending_members.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, reply, now, now_ms, settings);
        }
        if let Err(error) = self.check_member(&req.member_id, req.instance_id.as_deref()) {
            return fail(reply, error, &req.member_id);
        }
        let member = self.members.get_mut(&req.member_id).expect("checked above");
        let changed = member.protocols != req.protocols;
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.last_heartbeat = now;
        // A stable group's leader rejoining means it wants to assign again.
        let leader_of_stable = self.state == GroupState::Stable && self.is_leader(&req.member_id);
        match self.state {
            GroupState::PreparingRebalance => {
                self.park_join(&req.member_id, reply);
                self.maybe_complete_join(now, now_ms);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if !changed && !leader_of_stable =>
            {
                // Nothing changed: tell the member what it already should know. A leader
                // still to assign (its first answer may have been lost) needs the members.
                let leader_to_assign =
                    self.state == GroupState::CompletingRebalance && self.is_leader(&req.member_id);
                let result = self.join_result(&req.member_id, leader_to_assign);
                let _ = reply.send(Ok(result));
            }
            _ => {
                self.park_join(&req.member_id, reply);
                self.prepare_rebalance(now, now_ms, settings);
                self.maybe_complete_join(now, now_ms);
            }
        }
    }

    /// Handles a SyncGroup; `reply` is answered now or when the leader's assignment arrives.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        reply: oneshot::Sender<SyncOutcome>,
    ) {
        if let Err(err) = self.check_member(member_id, instance_id) {
            let _ = reply.send(Err(err));
            return;
        }
        if generation != self.generation {
            let _ = reply.send(Err(BrokerError::IllegalGeneration));
            return;
        }
        let mismatch = |given: Option<&str>, ours: &Option<String>| {
            given.is_some_and(|g| ours.as_deref() != Some(g))
        };
        if mismatch(protocol_type, &self.protocol_type) || mismatch(protocol, &self.protocol) {
            let _ = reply.send(Err(BrokerError::InconsistentGroupProtocol));
            return;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(Err(BrokerError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(Err(BrokerError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let result = self.sync_result(member_id);
                let _ = reply.send(Ok(result));
            }
            GroupState::CompletingRebalance => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .sync_waiter = Some(reply);
                if self.is_leader(member_id) && !self.storing_assignment {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = given.remove(&member.id).unwrap_or_default();
                    }
                    // The group is Stable, and the members hear their assignments, once the
                    // caller has stored it: see `assignment_stored`.
                    self.storing_assignment = true;
                    self.dirty = true;
                }
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if self.state == GroupState::Empty {
            return Err(BrokerError::UnknownMemberId);
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration);
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_heartbeat = now;
        match self.state {
            GroupState::PreparingRebalance => Err(BrokerError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes one member that asked to leave (by member id, or by instance id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) -> Result<(), BrokerError> {
        let id = match instance_id {
            Some(instance) => {
                let known = self
                    .static_members
                    .get(instance)
                    .ok_or(BrokerError::UnknownMemberId)?;
                if !member_id.is_empty() && known != member_id {
                    return Err(BrokerError::FencedInstanceId);
                }
                known.clone()
            }
            None => member_id.to_owned(),
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now, now_ms);
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(BrokerError::UnknownMemberId);
        }
        self.remove_member(&id, now, now_ms, settings);
        Ok(())
    }

    /// Checks an OffsetCommit against the group; `Ok` means the offsets may be stored.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: i16,
    ) -> Result<(), BrokerError> {
        if let Some(consumer) = &self.consumer {
            return consumer.validate_commit(member_id, generation, version);
        }
        if let Some(streams) = &self.streams {
            return streams.validate_commit(member_id, generation, version);
        }
        if self.share.is_some() {
            return Err(not_consumer_group(&self.id));
        }
        match self.state {
            GroupState::Dead => return Err(BrokerError::CoordinatorNotAvailable),
            // A group used only to store offsets (simple commits, KIP-? "standalone" consumers).
            GroupState::Empty if generation < 0 => return Ok(()),
            _ => {}
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(BrokerError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Advances time: completes a rebalance whose deadline passed, expires members and
    /// pending member ids whose sessions lapsed.
    pub fn tick(&mut self, now: Instant, now_ms: i64, settings: &GroupSettings) {
        let lapsed: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            self.pending_members.remove(&id);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_waiting() && m.last_heartbeat + m.session_timeout <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, now, now_ms, settings);
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            self.complete_join(now, now_ms);
        } else {
            self.maybe_complete_join(now, now_ms);
        }
    }

    /// Answers every parked request with `error` (the coordinator is going away).
    pub fn abandon_waiters(&mut self, error: fn() -> BrokerError) {
        for member in self.members.values_mut() {
            if let Some(w) = member.join_waiter.take() {
                let _ = w.send(Err(JoinError {
                    error: error(),
                    member_id: member.id.clone(),
                }));
            }
            if let Some(w) = member.sync_waiter.take() {
                let _ = w.send(Err(error()));
            }
        }
    }

    /// Members' metadata and assignments are only meaningful once the group is Stable.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = Vec::new();
        for member in self.members.values() {
            let mut buf = member.metadata(protocol);
            if buf.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([buf[0], buf[1]]);
            bytes::Buf::advance(&mut buf, 2);
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)) {
                topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
            }
        }
        Some(topics)
    }

    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), BrokerError> {
        if let Some(instance) = instance_id {
            if let Some(known) = self.static_members.get(instance) {
                if known != member_id {
                    return Err(BrokerError::FencedInstanceId);
                }
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(BrokerError::UnknownMemberId)
        }
    }

    /// A group accepts a member whose protocol type matches and which shares at least one
    /// protocol with every current member.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type
            .as_deref()
            .is_none_or(|t| t == protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }
}

/// Builds a member restored from the offsets log.
#[allow(clippy::too_many_arguments)]
pub fn restored_member(
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    now: Instant,
) -> Member {
    Member {
        id,
        instance_id,
        client_id,
        client_host,
        session_timeout,
        rebalance_timeout,
        protocol_type,
        protocols,
        assignment,
        last_heartbeat: now,
        order: 0,
        join_waiter: None,
        sync_waiter: None,
    }
}

/// What Kafka answers an offsets request about a share group (`ShareGroup.validateOffset*`).
pub fn not_consumer_group(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Group {group_id} is not a consumer group."))
}
