//! ConsumerGroupHeartbeat on one group: validation of the request's fields, joining,
//! heartbeating and leaving, and the session and revocation deadlines, in the order and with
//! the errors of Kafka's `GroupMetadataManager.consumerGroupHeartbeat`.

use super::*;
use crate::error::BrokerError;

/// OffsetCommit v9 carries the member epoch (KIP-848).
const MEMBER_EPOCH_COMMIT_VERSION: i16 = 9;

/// ConsumerGroupHeartbeat v1 requires the client to choose its member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// One heartbeat as the member sent it; `None` is a field the member left out (null, or
/// `-1` for the rebalance timeout).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: Option<i32>,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member asked in full or its assignment changed.
    pub assignment: Option<Assignment>,
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, before the group is looked up.
pub fn validate(
    group_id: &str,
    req: &Heartbeat,
    version: i16,
    assignors: &[String],
) -> Result<(), BrokerError> {
    let invalid = |msg: &str| Err(BrokerError::InvalidRequest(msg.to_owned()));
    if (version >= CLIENT_MEMBER_ID_VERSION
        || req.member_epoch > 0
        || req.member_epoch == LEAVE_EPOCH)
        && req.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if req.member_epoch == 0 {
        if req.rebalance_timeout_ms.is_none() {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if req.member_epoch == LEAVE_STATIC_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if req.member_epoch < LEAVE_STATIC_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = &req.server_assignor {
        if !assignors.contains(name) {
            return Err(BrokerError::UnsupportedAssignor(format!(
                "ServerAssignor {name} is not supported. Supported assignors: {}.",
                assignors.join(", ")
            )));
        }
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        if !regex.is_empty() {
            TopicRegex::new(regex)?;
        }
    }
    Ok(())
}

fn unknown_member(member_id: &str, group_id: &str) -> BrokerError {
    BrokerError::UnknownMember(format!(
        "Member {member_id} is not a member of group {group_id}."
    ))
}

impl ConsumerGroup {
    /// A heartbeat of a joining (epoch 0) or joined member; leaving is [`Self::leave`].
    /// `new_member_id` names a member that joins without an id (v0).
    pub fn heartbeat(
        &mut self,
        req: Heartbeat,
        topics: &TopicImage,
        settings: &ConsumerSettings,
        now: Instant,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<HeartbeatResult, BrokerError> {
        let joining = req.member_epoch == 0;
        if self.members.len() >= settings.max_size
            && (req.member_id.is_empty() || !self.members.contains_key(&req.member_id))
        {
            return Err(BrokerError::GroupMaxSizeReached(format!(
                "The consumer group has reached its maximum capacity of {} members.",
                settings.max_size
            )));
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let member = self.member_for(&req, &member_id, joining, now)?;
        let before = member.clone();
        let mut member = member;
        if let Some(instance) = &req.instance_id {
            member.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &req.rack_id {
            member.rack_id = Some(rack.clone());
        }
        if let Some(ms) = req.rebalance_timeout_ms {
            member.rebalance_timeout = Duration::from_millis(ms.max(0) as u64);
        }
        if let Some(name) = &req.server_assignor {
            member.server_assignor = Some(name.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            member.subscribed_topic_names = names;
        }
        if let Some(regex) = &req.subscribed_topic_regex {
            member.subscribed_topic_regex = match regex.as_str() {
                "" => None,
                source => Some(TopicRegex::new(source)?),
            };
        }
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        // A heartbeat speaks the consumer protocol (a classic join sets its metadata after).
        member.classic = None;
        member.session_deadline = now + settings.session_timeout;

        let is_new = !self.members.contains_key(&member_id);
        // A change of names moves the group on now; a new expression once it is resolved,
        // after this heartbeat (as Kafka, even when another member uses it already).
        let mut bump = before.subscribed_topic_names != member.subscribed_topic_names;
        let mut resolving = None;
        if before.subscribed_topic_regex != member.subscribed_topic_regex {
            match &member.subscribed_topic_regex {
                Some(r) => resolving = Some(r.as_str().to_owned()),
                None => bump = true,
            }
        }
        // The member takes its place before the subscribed topics are computed, with its
        // ownership as it was (a new member owns nothing).
        self.update_member(member);
        bump |= self.refresh_subscribed_topics(topics);
        if bump {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(settings);
        }
        let mut member = self.members[&member_id].clone();
        self.reconcile(&mut member, req.owned.as_ref(), now);
        let changed = member.assigned != before.assigned;
        self.update_member(member);
        if let Some(regex) = resolving {
            self.resolved_regexes.insert(regex);
            self.refresh_subscribed_topics(topics);
            self.group_epoch += 1;
        }
        let member = &self.members[&member_id];
        let full = joining
            || (req.rebalance_timeout_ms.is_some()
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        Ok(HeartbeatResult {
            member_id: member_id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as i32,
            assignment: (full || changed || is_new).then(|| member.assigned.clone()),
        })
    }

    /// The member the heartbeat is about, created or replacing a static member when it joins
    /// (Kafka's `getOrMaybeSubscribe{Dynamic,Static}ConsumerGroupMember`).
    fn member_for(
        &mut self,
        req: &Heartbeat,
        member_id: &str,
        joining: bool,
        now: Instant,
    ) -> Result<ConsumerMember, BrokerError> {
        let Some(instance) = &req.instance_id else {
            return match self.members.get(member_id) {
                Some(member) if joining => Ok(member.clone()),
                Some(member) => {
                    check_epoch(member, req.member_epoch, req.owned.as_ref())?;
                    Ok(member.clone())
                }
                None if joining => Ok(ConsumerMember::new(member_id.to_owned(), now)),
                None => Err(unknown_member(member_id, &self.id)),
            };
        };
        let existing = self.static_member(instance).cloned();
        match existing {
            None if joining => Ok(self
                .members
                .get(member_id)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(member_id.to_owned(), now))),
            None => Err(BrokerError::UnknownMember(format!(
                "Instance id {instance} is unknown."
            ))),
            Some(existing) if joining => {
                if existing.id == member_id {
                    return Ok(existing);
                }
                // A member of either protocol takes a classic member's place at once.
                if existing.epoch != LEAVE_STATIC_EPOCH && existing.classic.is_none() {
                    return Err(BrokerError::UnreleasedInstanceId(format!(
                        "Static member {member_id} with instance id {instance} cannot join the \
                         group because the instance id is owned by {} member.",
                        existing.id
                    )));
                }
                // The new process takes the old one's place, assignment and target included.
                let old_id = existing.id.clone();
                let target = self.target.remove(&old_id);
                self.remove_member(&old_id);
                let mut replacement = existing;
                replacement.id = member_id.to_owned();
                replacement.epoch = 0;
                replacement.previous_epoch = 0;
                replacement.pending_revocation.clear();
                replacement.state = MemberState::Stable;
                if let Some(target) = target {
                    self.target.insert(member_id.to_owned(), target);
                }
                self.update_member(replacement.clone());
                Ok(replacement)
            }
            Some(existing) => {
                if existing.id != member_id {
                    return Err(BrokerError::FencedInstance(format!(
                        "Static member {member_id} with instance id {instance} was fenced by member {}.",
                        existing.id
                    )));
                }
                check_epoch(&existing, req.member_epoch, req.owned.as_ref())?;
                Ok(existing)
            }
        }
    }

    /// A member leaves: for good with epoch -1, or (a static member) for now with -2,
    /// keeping its assignment until its session times out.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
        settings: &ConsumerSettings,
    ) -> Result<HeartbeatResult, BrokerError> {
        let id = match instance_id {
            None => {
                if !self.members.contains_key(member_id) {
                    return Err(unknown_member(member_id, &self.id));
                }
                member_id.to_owned()
            }
            Some(instance) => {
                let member = self.static_member(instance).ok_or_else(|| {
                    BrokerError::UnknownMember(format!("Instance id {instance} is unknown."))
                })?;
                if member.id != member_id {
                    return Err(BrokerError::FencedInstance(format!(
                        "Static member {member_id} with instance id {instance} was fenced by member {}.",
                        member.id
                    )));
                }
                member.id.clone()
            }
        };
        let result = HeartbeatResult {
            member_id: id.clone(),
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        if epoch == LEAVE_STATIC_EPOCH {
            let mut member = self.members[&id].clone();
            member.epoch = LEAVE_STATIC_EPOCH;
            member.pending_revocation.clear();
            member.revocation_deadline = None;
            self.update_member(member);
        } else {
            self.fence(&id, settings);
        }
        Ok(result)
    }

    /// Removes a member (it left, or its session or revocation timed out) and moves the
    /// group to a new epoch without it.
    pub(super) fn fence(&mut self, member_id: &str, settings: &ConsumerSettings) {
        if self.remove_member(member_id).is_none() {
            return;
        }
        let topics = self.subscribed_topics.clone();
        self.subscribed_topics = self.subscribed_topics_in(&topics);
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.target.clear();
            self.assignment_epoch = self.group_epoch;
        } else {
            self.compute_target(settings);
        }
    }

    /// Fences the members whose session expired, or which did not revoke in time. Returns
    /// the fenced member ids.
    pub fn tick(&mut self, now: Instant, settings: &ConsumerSettings) -> Vec<String> {
        let expired = self.expired(now);
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "consumer group member fenced: session or rebalance timeout");
            self.fence(id, settings);
        }
        expired
    }

    /// The members whose session expired, or which did not revoke, rejoin or sync in time.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.classic_deadline.is_some_and(|at| at <= now)
                    || m.revocation_deadline
                        .is_some_and(|(epoch, at)| epoch == m.epoch && at <= now)
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// OffsetCommit (and TxnOffsetCommit) in a consumer group (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): anyone may commit to an empty group with a
    /// negative epoch; otherwise a member, at its current epoch.
    /// OffsetCommit before v9 cannot carry a member epoch, so a member must use v9 or later.
    pub fn validate_commit(
        &self,
        member_id: &str,
        epoch: i32,
        version: i16,
    ) -> Result<(), BrokerError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(unknown_member(member_id, &self.id));
        };
        // A classic member commits with its generation, which is its epoch.
        if member.uses_classic_protocol() {
            return match epoch == member.epoch {
                true => Ok(()),
                false => Err(BrokerError::IllegalGeneration),
            };
        }
        if version < MEMBER_EPOCH_COMMIT_VERSION {
            return Err(BrokerError::UnsupportedVersion(
                "OffsetCommit version 9 or above must be used by members using the modern \
                 group protocol"
                    .to_owned(),
            ));
        }
        self.check_member_epoch(member_id, epoch)
    }

    /// OffsetFetch v9+ (`ConsumerGroup.validateOffsetFetch`): a request naming no member
    /// with a negative epoch (an admin client) is accepted; a member must be at its epoch.
    pub fn validate_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), BrokerError> {
        match member_id {
            None if epoch < 0 => Ok(()),
            member_id => self.check_member_epoch(member_id.unwrap_or_default(), epoch),
        }
    }

    fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), BrokerError> {
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| unknown_member(member_id, &self.id))?;
        if epoch != member.epoch {
            return Err(BrokerError::StaleMemberEpoch(format!(
                "The received member epoch {epoch} does not match the expected member epoch {}.",
                member.epoch
            )));
        }
        Ok(())
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: an epoch ahead is fenced; one behind
/// is accepted only as the previous epoch with partitions within the current assignment
/// (the answer that moved the member on may have been lost).
fn check_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), BrokerError> {
    let fenced = |relation: &str| {
        Err(BrokerError::FencedMemberEpoch(format!(
            "The consumer group member has a {relation} member epoch ({received}) than the one \
             known by the group coordinator ({}). The member must abandon all its partitions \
             and rejoin.",
            member.epoch
        )))
    };
    if received > member.epoch {
        return fenced("greater");
    }
    if received < member.epoch {
        let within = owned.is_some_and(|owned| {
            owned.iter().all(|(topic, partitions)| {
                member
                    .assigned
                    .get(topic)
                    .is_some_and(|assigned| partitions.is_subset(assigned))
            })
        });
        if received != member.previous_epoch || !within {
            return fenced("smaller");
        }
    }
    Ok(())
}
