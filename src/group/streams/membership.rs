//! Who a heartbeat is from (dynamic or static members, their epochs), the topology a joining
//! member brings, the target assignment, members leaving or timing out, and the member
//! epochs OffsetCommit and OffsetFetch are checked against: Kafka's
//! `getOrMaybeCreate{Dynamic,Static}StreamsGroupMember`, `maybeUpdateTopology`,
//! `maybeUpdateStreamsTargetAssignment`, `streamsGroupLeave` and `StreamsGroup`'s offset
//! validation.

use std::collections::BTreeMap;

use super::assignor::{self, AssignorMember, AssignorSubtopology};
use super::heartbeat::{EndpointPartitions, HeartbeatResult};
use super::topology::{ConfiguredSubtopology, TopicPartitions};
use super::*;
use crate::error::BrokerError;

/// OffsetCommit v9 carries the member epoch.
const MEMBER_EPOCH_COMMIT_VERSION: i16 = 9;

fn unknown_member(member_id: &str, group_id: &str) -> BrokerError {
    BrokerError::UnknownMember(format!(
        "Member {member_id} is not a member of group {group_id}."
    ))
}

fn fenced_instance(member_id: &str, instance: &str, by: &str) -> BrokerError {
    BrokerError::FencedInstance(format!(
        "Static member {member_id} with instance id {instance} was fenced by member {by}."
    ))
}

/// Task ids the member claims must exist in the topology (Kafka's
/// `throwIfRequestContainsInvalidTasks`).
pub(super) fn check_tasks(
    subtopologies: Option<&BTreeMap<String, ConfiguredSubtopology>>,
    tasks: &TaskSet,
) -> Result<(), BrokerError> {
    let Some(subs) = subtopologies else {
        return Ok(());
    };
    for (id, partitions) in tasks {
        let sub = subs.get(id).ok_or_else(|| {
            BrokerError::InvalidRequest(format!("Subtopology {id} does not exist in the topology."))
        })?;
        if let Some(p) = partitions.iter().find(|p| **p < 0 || **p >= sub.tasks) {
            return Err(BrokerError::InvalidRequest(format!(
                "Task {p} for subtopology {id} is invalid. Number of tasks for this subtopology: {}",
                sub.tasks
            )));
        }
    }
    Ok(())
}

impl StreamsGroup {
    /// The member the heartbeat is about; a static member coming back under a new member id
    /// takes the place (and the tasks) of the one that left for now.
    pub(super) fn member_for(
        &mut self,
        req: &heartbeat::Heartbeat,
        joining: bool,
        now: Instant,
    ) -> Result<StreamsMember, BrokerError> {
        let id = req.member_id.as_str();
        let Some(instance) = &req.instance_id else {
            let member = match self.members.get(id) {
                Some(m) => m.clone(),
                None if joining => StreamsMember::new(id, now),
                None => return Err(unknown_member(id, &self.id)),
            };
            check_epoch(&member, req.member_epoch, req.owned.as_ref())?;
            return Ok(member);
        };
        let existing = self.static_member(instance).cloned();
        match existing {
            None if joining => Ok(self
                .members
                .get(id)
                .cloned()
                .unwrap_or_else(|| StreamsMember::new(id, now))),
            None => Err(BrokerError::UnknownMember(format!(
                "Instance id {instance} is unknown."
            ))),
            Some(existing) if joining => {
                if existing.id == id {
                    return Ok(existing);
                }
                if existing.epoch != LEAVE_STATIC_EPOCH {
                    return Err(BrokerError::UnreleasedInstanceId(format!(
                        "Static member {id} with instance id {instance} cannot join the group \
                         because the instance id is owned by {} member.",
                        existing.id
                    )));
                }
                // The new process takes the old one's place, its target included.
                let target = self.target.remove(&existing.id);
                self.remove_member(&existing.id);
                let mut replacement = existing;
                replacement.id = id.to_owned();
                replacement.epoch = 0;
                replacement.previous_epoch = 0;
                if let Some(target) = target {
                    self.target.insert(id.to_owned(), target);
                }
                self.update_member(replacement.clone());
                Ok(replacement)
            }
            Some(existing) => {
                if existing.id != id {
                    return Err(fenced_instance(id, instance, &existing.id));
                }
                check_epoch(&existing, req.member_epoch, req.owned.as_ref())?;
                Ok(existing)
            }
        }
    }

    /// The topology after a heartbeat: a joining member's initializes the group's; one with
    /// an older epoch is ignored; a different one at the same or a newer epoch is refused.
    pub(super) fn maybe_update_topology(
        &self,
        sent: Option<&Topology>,
    ) -> Result<Topology, BrokerError> {
        match (sent, &self.topology) {
            (Some(sent), None) => Ok(sent.clone()),
            (Some(sent), Some(current)) if current.epoch > sent.epoch => Ok(current.clone()),
            (Some(sent), Some(current)) if current != sent => Err(BrokerError::InvalidRequest(
                "Topology updates are not supported yet.".to_owned(),
            )),
            (_, Some(current)) => Ok(current.clone()),
            (None, None) => Err(BrokerError::InvalidRequest(
                "The topology is null and the group topology is also null.".to_owned(),
            )),
        }
    }

    /// Computes the target at the group epoch when it moved past the assignment epoch,
    /// unless the first assignment or the assignment interval holds it back
    /// (ASSIGNMENT_DELAYED, status code 5, when `statuses` is given).
    pub(super) fn maybe_update_target(
        &mut self,
        settings: &StreamsSettings,
        now: Instant,
        statuses: Option<&mut Vec<Status>>,
    ) {
        let delayed = |statuses: Option<&mut Vec<Status>>, why: &str| {
            if let Some(s) = statuses {
                s.push(Status {
                    code: StatusCode::AssignmentDelayed,
                    detail: format!("Assignment delayed due to the configured {why}."),
                });
            }
        };
        if self.initial_delay_until.is_some_and(|until| now < until) {
            delayed(statuses, "initial rebalance delay");
            return;
        }
        self.initial_delay_until = None;
        if self.assignment_epoch >= self.group_epoch {
            return;
        }
        let interval = settings.assignment_interval;
        if self
            .assignment_time
            .is_some_and(|at| !interval.is_zero() && now < at + interval)
        {
            delayed(statuses, "assignment interval");
            return;
        }
        let ready = self.configured.as_ref().filter(|c| c.is_ready());
        let target = match ready.and_then(|c| c.subtopologies.as_ref()) {
            Some(subs) => {
                let subs: BTreeMap<String, AssignorSubtopology> = subs
                    .iter()
                    .map(|(id, s)| {
                        let sub = AssignorSubtopology {
                            tasks: s.tasks,
                            stateful: s.stateful,
                        };
                        (id.clone(), sub)
                    })
                    .collect();
                let empty = Tasks::default();
                let members: Vec<AssignorMember> = self
                    .members
                    .values()
                    .map(|m| {
                        let current = self.target.get(&m.id).unwrap_or(&empty);
                        AssignorMember {
                            member_id: &m.id,
                            process_id: &m.process_id,
                            active: &current.active,
                            standby: &current.standby,
                        }
                    })
                    .collect();
                assignor::assign(&members, &subs, settings.num_standby_replicas)
                    .into_iter()
                    .map(|(id, t)| {
                        let tasks = Tasks {
                            active: t.active,
                            standby: t.standby,
                            warmup: TaskSet::new(),
                        };
                        (id, tasks)
                    })
                    .collect()
            }
            None => self
                .members
                .keys()
                .map(|id| (id.clone(), Tasks::default()))
                .collect(),
        };
        tracing::info!(group = %self.id, epoch = self.group_epoch, "computed a new target assignment of tasks");
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        self.assignment_time = Some(now);
    }

    /// Every member's endpoint with the partitions of its tasks (Kafka's
    /// `buildEndpointToPartitions`).
    pub(super) fn endpoints(&self, topics: &TopicPartitions) -> Vec<EndpointPartitions> {
        let subs = self
            .configured
            .as_ref()
            .and_then(|c| c.subtopologies.as_ref());
        let partitions = |tasks: &[&TaskSet]| {
            let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for set in tasks {
                for (sub, ps) in *set {
                    let Some(sub) = subs.and_then(|s| s.get(sub)) else {
                        continue;
                    };
                    for topic in sub.input_topics() {
                        let count = topics.get(topic).copied().unwrap_or(0);
                        let entry = out.entry(topic.to_owned()).or_default();
                        entry.extend(ps.iter().filter(|p| **p < count));
                        entry.sort_unstable();
                        entry.dedup();
                    }
                }
            }
            out.retain(|_, ps| !ps.is_empty());
            out
        };
        self.members
            .values()
            .filter_map(|m| {
                let endpoint = m.user_endpoint.clone()?;
                Some(EndpointPartitions {
                    endpoint,
                    active: partitions(&[&m.assigned.active]),
                    standby: partitions(&[&m.assigned.standby, &m.assigned.warmup]),
                })
            })
            .collect()
    }

    /// A member leaves: for good with epoch -1, or (a static member) for now with -2.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
        shutdown_application: bool,
    ) -> Result<HeartbeatResult, BrokerError> {
        if shutdown_application {
            self.shutdown_requested_by = Some(member_id.to_owned());
        }
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
                    return Err(fenced_instance(member_id, instance, &member.id));
                }
                member.id.clone()
            }
        };
        if epoch == LEAVE_STATIC_EPOCH {
            let mut member = self.members[&id].clone();
            member.epoch = LEAVE_STATIC_EPOCH;
            member.pending_revocation = Tasks::default();
            member.revocation_deadline = None;
            self.update_member(member);
            return Ok(HeartbeatResult::left(&id, LEAVE_STATIC_EPOCH));
        }
        self.fence(&id);
        Ok(HeartbeatResult::left(member_id, epoch))
    }

    /// Removes a member and moves the group to a new epoch; the target is computed again at
    /// the next heartbeat (or at once when the group is left empty).
    fn fence(&mut self, member_id: &str) {
        if self.remove_member(member_id).is_none() {
            return;
        }
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.target.clear();
            self.assignment_epoch = self.group_epoch;
            self.assignment_time = None;
            self.shutdown_requested_by = None;
        }
    }

    /// Fences members whose session expired or who did not revoke in time, and computes a
    /// delayed first assignment once its delay is over. Returns the fenced member ids.
    pub fn tick(&mut self, now: Instant, settings: &StreamsSettings) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.revocation_deadline
                        .is_some_and(|(epoch, at)| epoch == m.epoch && at <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "streams group member fenced: session or rebalance timeout");
            self.fence(id);
        }
        // As Kafka's delayed assignment, which skips a group whose topology is not
        // configured against ready topics: its target waits for the next heartbeat.
        let ready = self.configured.as_ref().is_some_and(|c| c.is_ready());
        let delay_over = self.initial_delay_until.is_some_and(|until| until <= now);
        if delay_over && ready && !self.members.is_empty() {
            self.maybe_update_target(settings, now, None);
        }
        expired
    }

    /// OffsetCommit in a streams group (`StreamsGroup.validateOffsetCommit`).
    pub fn validate_commit(
        &self,
        member_id: &str,
        epoch: i32,
        version: i16,
    ) -> Result<(), BrokerError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| unknown_member(member_id, &self.id))?;
        if version < MEMBER_EPOCH_COMMIT_VERSION {
            return Err(BrokerError::UnsupportedVersion(
                "OffsetCommit version 9 or above must be used by members using the streams \
                 group protocol"
                    .to_owned(),
            ));
        }
        if epoch > member.epoch {
            return Err(BrokerError::StaleMemberEpoch(format!(
                "Received member epoch {epoch} is newer than current member epoch {}.",
                member.epoch
            )));
        }
        // An older epoch: Kafka accepts offsets of tasks the member was given by then; the
        // tasks' epochs are not kept here, so the previous epoch stands for them.
        if epoch < member.epoch && epoch != member.previous_epoch {
            return Err(BrokerError::StaleMemberEpoch(format!(
                "The received member epoch {epoch} is older than the assignment epoch of the member."
            )));
        }
        Ok(())
    }

    /// OffsetFetch v9+ (`StreamsGroup.validateOffsetFetch`).
    pub fn validate_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), BrokerError> {
        if member_id.is_none() && epoch < 0 {
            return Ok(());
        }
        let id = member_id.unwrap_or_default();
        let member = self
            .members
            .get(id)
            .ok_or_else(|| unknown_member(id, &self.id))?;
        if epoch != member.epoch {
            return Err(BrokerError::StaleMemberEpoch(format!(
                "The received member epoch {epoch} does not match the expected member epoch {}.",
                member.epoch
            )));
        }
        Ok(())
    }
}

/// Kafka's `throwIfStreamsGroupMemberEpochIsInvalid`: an epoch ahead is fenced; one behind is
/// accepted only as the previous epoch with tasks within the current assignment.
fn check_epoch(
    member: &StreamsMember,
    received: i32,
    owned: Option<&Tasks>,
) -> Result<(), BrokerError> {
    if received == 0 {
        return Ok(());
    }
    let fenced = |relation: &str| {
        Err(BrokerError::FencedMemberEpoch(format!(
            "The streams group member has a {relation} member epoch ({received}) than the one \
             known by the group coordinator ({}). The member must abandon all its partitions \
             and rejoin.",
            member.epoch
        )))
    };
    if received > member.epoch {
        return fenced("greater");
    }
    if received < member.epoch {
        let within = |owned: &TaskSet, assigned: &TaskSet| {
            owned
                .iter()
                .all(|(s, ps)| assigned.get(s).is_some_and(|a| ps.is_subset(a)))
        };
        let ok = owned.is_some_and(|o| {
            within(&o.active, &member.assigned.active)
                && within(&o.standby, &member.assigned.standby)
                && within(&o.warmup, &member.assigned.warmup)
        });
        if received != member.previous_epoch || !ok {
            return fenced("smaller");
        }
    }
    Ok(())
}
