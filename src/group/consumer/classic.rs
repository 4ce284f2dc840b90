//! Members that speak the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
//! inside a consumer group, as Kafka's `GroupMetadataManager.classicGroup*ToConsumerGroup`:
//! a JoinGroup is a heartbeat that brings the member's subscription (from its embedded
//! consumer protocol) and its owned partitions; the answer's generation is the member's
//! epoch; SyncGroup hands out the member's assigned partitions; Heartbeat answers
//! REBALANCE_IN_PROGRESS when the member must rejoin to move on. Such members come from an
//! online upgrade of a classic group ([`ConsumerGroup::from_classic`]) or join one later.
//!
//! A classic member has no say in its partitions beyond what it owns when it rejoins, so a
//! partition still moves only once its owner has given it up: no partition has two owners.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::records::ClassicMember;
use super::*;
use crate::error::BrokerError;

/// The versions of the embedded consumer protocol this decoder reads.
const MAX_EMBEDDED_VERSION: i16 = 3;

/// A JoinGroup of a classic member, its id already chosen.
#[derive(Debug, Clone)]
pub struct ClassicJoin {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub client_id: String,
    pub client_host: String,
}

/// What JoinGroup answers a classic member of a consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicJoined {
    pub member_id: String,
    pub generation: i32,
    pub protocol: String,
}

/// A member's subscription as its embedded consumer protocol carries it.
pub struct EmbeddedSubscription {
    pub topics: Vec<String>,
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

/// Decodes a `ConsumerProtocolSubscription` (a version, then the body).
pub fn decode_subscription(metadata: &Bytes) -> Option<EmbeddedSubscription> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    let sub =
        ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, MAX_EMBEDDED_VERSION))
            .ok()?;
    Some(EmbeddedSubscription {
        topics: sub.topics.into_iter().map(|t| t.to_string()).collect(),
        owned: sub
            .owned_partitions
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        rack_id: sub.rack_id.map(|r| r.to_string()).filter(|r| !r.is_empty()),
    })
}

/// Decodes a `ConsumerProtocolAssignment` into partitions by topic id (topics unknown to
/// `topics` are left out, as Kafka's `toTopicPartitionMap`).
pub fn decode_assignment(assignment: &Bytes, topics: &TopicImage) -> Option<Assignment> {
    let mut buf = assignment.clone();
    if buf.remaining() == 0 {
        return Some(Assignment::new());
    }
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    let decoded =
        ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, MAX_EMBEDDED_VERSION))
            .ok()?;
    let mut out = Assignment::new();
    for t in decoded.assigned_partitions {
        if let Some(meta) = topics.get(t.topic.as_str()) {
            out.entry(meta.id).or_default().extend(t.partitions);
        }
    }
    Some(out)
}

/// Partitions by topic name turned into partitions by topic id.
fn owned_by_id(owned: &[(String, Vec<i32>)], topics: &TopicImage) -> Assignment {
    let mut out = Assignment::new();
    for (name, partitions) in owned {
        if let Some(meta) = topics.get(name) {
            out.entry(meta.id)
                .or_default()
                .extend(partitions.iter().copied());
        }
    }
    out
}

/// `partitions` in the embedded protocol, at the version of the member's first protocol's
/// subscription (Kafka's `prepareAssignment`).
fn encode_assignment(
    member: &ConsumerMember,
    partitions: &Assignment,
    topics: &TopicImage,
) -> Bytes {
    let version = member
        .classic
        .as_ref()
        .and_then(|c| c.protocols.first())
        .filter(|(_, m)| m.len() >= 2)
        .map_or(0, |(_, m)| i16::from_be_bytes([m[0], m[1]]))
        .clamp(0, MAX_EMBEDDED_VERSION);
    let names: HashMap<TopicId, &str> = topics
        .iter()
        .map(|(name, meta)| (meta.id, name.as_str()))
        .collect();
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .filter_map(|(id, partitions)| {
                let name = names.get(id)?;
                Some(
                    AssignedTopic::default()
                        .with_topic(StrBytes::from_string((*name).to_owned()).into())
                        .with_partitions(partitions.iter().copied().collect()),
                )
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Encoding a well-formed message at a supported version cannot fail.
    let _ = assignment.encode(&mut buf, version);
    buf.freeze()
}

impl ConsumerMember {
    pub fn uses_classic_protocol(&self) -> bool {
        self.classic.is_some()
    }

    /// The protocol its JoinGroup answer named: its first.
    fn classic_protocol(&self) -> &str {
        self.classic
            .as_ref()
            .and_then(|c| c.protocols.first())
            .map_or("", |(name, _)| name.as_str())
    }

    fn classic_session_timeout(&self) -> Option<Duration> {
        self.classic
            .as_ref()
            .map(|c| Duration::from_millis(c.session_timeout_ms.max(0) as u64))
    }
}

impl ConsumerGroup {
    fn classic_members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values().filter(|m| m.uses_classic_protocol())
    }

    /// Whether a classic member with these protocols may join (Kafka's
    /// `supportsClassicProtocols`): of the consumer type, and sharing a protocol with every
    /// classic member already in.
    pub fn supports_classic(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type != PROTOCOL_TYPE {
            return false;
        }
        if self.is_empty() {
            return !protocols.is_empty();
        }
        protocols.iter().any(|(name, _)| {
            self.classic_members().all(|m| {
                m.classic
                    .as_ref()
                    .is_some_and(|c| c.protocols.iter().any(|(n, _)| n == name))
            })
        })
    }

    /// Whether every member but `member_id` uses the classic protocol, and `member_id` does
    /// not (Kafka's `allMembersUseClassicProtocolExcept`).
    pub fn all_classic_except(&self, member_id: &str) -> bool {
        self.members
            .get(member_id)
            .is_some_and(|m| !m.uses_classic_protocol())
            && self
                .members
                .values()
                .filter(|m| m.id != member_id)
                .all(|m| m.uses_classic_protocol())
    }

    /// A JoinGroup of a classic member (Kafka's `classicGroupJoinToConsumerGroup` from the
    /// member's creation on). The member then has its rebalance timeout to SyncGroup.
    pub fn classic_join(
        &mut self,
        req: ClassicJoin,
        topics: &TopicImage,
        settings: &ConsumerSettings,
        now: Instant,
    ) -> Result<ClassicJoined, BrokerError> {
        let subscription = req
            .protocols
            .first()
            .and_then(|(_, metadata)| decode_subscription(metadata))
            .ok_or(BrokerError::InconsistentGroupProtocol)?;
        let heartbeat = Heartbeat {
            member_id: req.member_id.clone(),
            member_epoch: 0,
            instance_id: req.instance_id.clone(),
            rack_id: subscription.rack_id.clone(),
            rebalance_timeout_ms: Some(
                i32::try_from(req.rebalance_timeout.as_millis()).unwrap_or(i32::MAX),
            ),
            subscribed_topic_names: Some(subscription.topics.clone()),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(owned_by_id(&subscription.owned, topics)),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
        };
        // A static classic member rejoining under a new id takes its old self's place at
        // once (Kafka checks that the old one left only between consumer-protocol members).
        if let Some(instance) = &req.instance_id {
            let replaced = self
                .static_member(instance)
                .filter(|old| old.id != req.member_id)
                .cloned();
            if let Some(mut old) = replaced {
                old.epoch = LEAVE_STATIC_EPOCH;
                old.pending_revocation.clear();
                self.update_member(old);
            }
        }
        let id = req.member_id.clone();
        self.heartbeat(heartbeat, topics, settings, now, || id)?;
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("the heartbeat put the member in");
        member.classic = Some(ClassicMember {
            session_timeout_ms: i32::try_from(req.session_timeout.as_millis()).unwrap_or(i32::MAX),
            protocols: req.protocols,
        });
        member.session_deadline = now + req.session_timeout;
        // Joined: the join deadline ends, the sync deadline starts.
        member.classic_deadline = Some(now + req.rebalance_timeout);
        Ok(ClassicJoined {
            member_id: member.id.clone(),
            generation: member.epoch,
            protocol: member.classic_protocol().to_owned(),
        })
    }

    /// The classic member a request names (Kafka's `validateConsumerGroupMember` and
    /// `throwIfMemberDoesNotUseClassicProtocol`).
    fn classic_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&ConsumerMember, BrokerError> {
        let member = match instance_id {
            None => self.members.get(member_id),
            Some(instance) => {
                let member = self.static_member(instance);
                if member.is_some_and(|m| m.id != member_id) {
                    return Err(BrokerError::FencedInstanceId);
                }
                member
            }
        };
        member
            .filter(|m| m.uses_classic_protocol())
            .ok_or(BrokerError::UnknownMemberId)
    }

    /// Whether a classic member must rejoin to move on: the group moved past its epoch, it
    /// has partitions to give up, or partitions it waited for are free now.
    fn classic_must_rejoin(&self, member: &ConsumerMember) -> bool {
        member.epoch < self.group_epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions
                && !self.waiting_on_unreleased(member))
    }

    /// Whether a partition of the member's target that it does not have yet is still
    /// owned by another member (Kafka's `waitingOnUnreleasedPartition`).
    fn waiting_on_unreleased(&self, member: &ConsumerMember) -> bool {
        let Some(target) = self.target.get(&member.id) else {
            return false;
        };
        target.iter().any(|(topic, partitions)| {
            partitions.iter().any(|p| {
                !member.assigned.get(topic).is_some_and(|a| a.contains(p))
                    && self.owner_epoch(*topic, *p).is_some()
            })
        })
    }

    /// Starts the member's join deadline unless one runs already.
    fn expect_rejoin(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            if member.classic_deadline.is_none() {
                member.classic_deadline = Some(now + member.rebalance_timeout);
            }
        }
    }

    /// SyncGroup of a classic member (Kafka's `classicGroupSyncToConsumerGroup`): its
    /// assignment, in the embedded protocol.
    #[allow(clippy::too_many_arguments)]
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        topics: &TopicImage,
        now: Instant,
    ) -> Result<Bytes, BrokerError> {
        let member = self.classic_member(member_id, instance_id)?;
        if generation != member.epoch {
            return Err(BrokerError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| t != PROTOCOL_TYPE)
            || protocol.is_some_and(|p| p != member.classic_protocol())
        {
            return Err(BrokerError::InconsistentGroupProtocol);
        }
        if self.group_epoch > member.epoch && member.state != MemberState::UnrevokedPartitions {
            let id = member.id.clone();
            self.expect_rejoin(&id, now);
            return Err(BrokerError::RebalanceInProgress);
        }
        let assignment = encode_assignment(member, &member.assigned, topics);
        let session = member.classic_session_timeout().unwrap_or_default();
        let member = self.members.get_mut(member_id).expect("found above");
        member.classic_deadline = None;
        member.session_deadline = now + session;
        Ok(assignment)
    }

    /// Heartbeat of a classic member (Kafka's `classicGroupHeartbeatToConsumerGroup`).
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        let member = self.classic_member(member_id, instance_id)?;
        if generation != member.epoch {
            return Err(BrokerError::IllegalGeneration);
        }
        let rejoin = self.classic_must_rejoin(member);
        let session = member.classic_session_timeout().unwrap_or_default();
        let id = member.id.clone();
        self.members
            .get_mut(&id)
            .expect("found above")
            .session_deadline = now + session;
        if rejoin {
            self.expect_rejoin(&id, now);
            return Err(BrokerError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup of one classic member (by member id, or by instance id for a static one);
    /// the group moves to a new epoch without it. Returns the member id that left.
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        settings: &ConsumerSettings,
    ) -> Result<String, BrokerError> {
        let id = match instance_id {
            None => self.classic_member(member_id, None)?.id.clone(),
            Some(instance) => {
                let member = self
                    .static_member(instance)
                    .ok_or(BrokerError::UnknownMemberId)?;
                // An administrator removes static members by instance id alone.
                if !member_id.is_empty() && member.id != member_id {
                    return Err(BrokerError::FencedInstanceId);
                }
                if !member.uses_classic_protocol() {
                    return Err(BrokerError::UnknownMemberId);
                }
                member.id.clone()
            }
        };
        self.fence(&id, settings);
        Ok(id)
    }

    /// A consumer group made of a classic group's members, in place (Kafka's
    /// `ConsumerGroup.fromClassicGroup`): the group epoch is the generation, and each member
    /// is Stable at it, its target its last assignment. `None` when a member's embedded
    /// protocol does not decode.
    pub fn from_classic(
        id: &str,
        generation: i32,
        protocol: Option<&str>,
        members: Vec<ClassicSource>,
        topics: &TopicImage,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        let mut group = ConsumerGroup::new(id);
        group.group_epoch = generation;
        group.assignment_epoch = generation;
        for source in members {
            // Its metadata for the group's protocol (its first while none was chosen).
            let metadata = source
                .protocols
                .iter()
                .find(|(name, _)| Some(name.as_str()) == protocol)
                .or(source.protocols.first())
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            let subscription = decode_subscription(&metadata)?;
            let assigned = decode_assignment(&source.assignment, topics)?;
            let mut member = ConsumerMember::new(source.member_id.clone(), now);
            member.epoch = generation;
            member.previous_epoch = generation;
            member.instance_id = source.instance_id;
            member.rack_id = subscription.rack_id;
            member.rebalance_timeout = source.rebalance_timeout;
            member.client_id = source.client_id;
            member.client_host = source.client_host;
            let mut names = subscription.topics;
            names.sort();
            names.dedup();
            member.subscribed_topic_names = names;
            member.assigned = assigned.clone();
            member.session_deadline = now + source.session_timeout;
            member.classic = Some(ClassicMember {
                session_timeout_ms: i32::try_from(source.session_timeout.as_millis())
                    .unwrap_or(i32::MAX),
                protocols: source.protocols,
            });
            group.target.insert(member.id.clone(), assigned);
            group.update_member(member);
        }
        group.subscribed_topics = group.subscribed_topics_in(topics);
        Some(group)
    }
}

impl ConsumerGroup {
    /// When `leaving` is the last member using the consumer protocol and others remain:
    /// the generation and members of the classic group a downgrade makes (Kafka's
    /// `validateOnlineDowngradeWithFencedMembers` less the policy, and
    /// `ClassicGroup.fromConsumerGroup`: the group epoch, and each member's target).
    pub fn downgrade_plan(&self, leaving: &str) -> Option<(i32, Vec<ClassicSource>)> {
        if !self.all_classic_except(leaving) || self.members.len() <= 1 {
            return None;
        }
        let empty = Assignment::new();
        let members =
            self.members
                .values()
                .filter(|m| m.id != leaving)
                .map(|m| {
                    let classic = m.classic.clone().unwrap_or_default();
                    let target = self.target.get(&m.id).unwrap_or(&empty);
                    ClassicSource {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        session_timeout: Duration::from_millis(
                            classic.session_timeout_ms.max(0) as u64
                        ),
                        rebalance_timeout: m.rebalance_timeout,
                        assignment: encode_assignment(m, target, &self.subscribed_topics),
                        protocols: classic.protocols,
                    }
                })
                .collect();
        Some((self.group_epoch, members))
    }
}

/// A classic member as it passes between a classic group and a consumer group: what an
/// online upgrade takes over, and what a downgrade hands back (then `assignment` is its
/// target).
pub struct ClassicSource {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    /// In the embedded consumer protocol.
    pub assignment: Bytes,
}
