//! StreamsGroupHeartbeat on one group: validation of the request, joining (with the
//! topology), heartbeating, leaving, the session and revocation deadlines, and the target
//! assignment, in the order and with the errors of Kafka's
//! `GroupMetadataManager.streamsGroupHeartbeat`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use super::membership::check_tasks;
use super::topology::{self, InternalTopic, TopicPartitions};
use super::*;
use crate::error::BrokerError;

/// One heartbeat as the member sent it; `None` is a field left out (unchanged).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub endpoint_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: Option<i32>,
    pub topology: Option<Topology>,
    /// All three or none (checked by [`validate`]).
    pub owned: Option<Tasks>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<BTreeMap<String, String>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
    /// Whether the topology names source topic expressions (not supported, as in Kafka).
    pub uses_regex: bool,
    /// The changelog topics whose partition count the topology sets (not allowed).
    pub changelog_partitions: Vec<(String, i32)>,
}

/// One member's endpoint and the partitions behind its tasks (interactive queries).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    pub active: BTreeMap<String, Vec<i32>>,
    pub standby: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub task_offset_interval_ms: i32,
    pub acceptable_recovery_lag: i64,
    pub statuses: Vec<Status>,
    pub assignment: Option<Tasks>,
    pub endpoint_epoch: i32,
    pub endpoints: Option<Vec<EndpointPartitions>>,
    /// Internal topics the broker must create (Kafka's `creatableTopics`).
    pub to_create: Vec<InternalTopic>,
    /// The member is asked to push the topology's description (KIP-1331).
    pub topology_description_required: bool,
}

impl HeartbeatResult {
    pub(super) fn left(member_id: &str, epoch: i32) -> HeartbeatResult {
        HeartbeatResult {
            member_id: member_id.to_owned(),
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            task_offset_interval_ms: 0,
            // Not set in a leave's answer: the field's default.
            acceptable_recovery_lag: -1,
            statuses: Vec::new(),
            assignment: None,
            endpoint_epoch: 0,
            endpoints: None,
            to_create: Vec::new(),
            topology_description_required: false,
        }
    }
}

/// Kafka's `GroupCoordinatorService.throwIfStreamsGroupHeartbeatRequestIsInvalid` (and the
/// unsupported-feature check before it).
pub fn validate(group_id: &str, req: &Heartbeat) -> Result<(), BrokerError> {
    let invalid = |m: &str| Err(BrokerError::InvalidRequest(m.to_owned()));
    if req.uses_regex {
        return invalid("Regular expressions for source topics are not supported yet.");
    }
    let blank = |s: &str| s.trim().is_empty();
    if blank(&req.member_id) {
        return invalid("MemberId can't be empty.");
    }
    if blank(group_id) {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref().is_some_and(blank) {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref().is_some_and(blank) {
        return invalid("RackId can't be empty.");
    }
    if req.member_epoch == 0 {
        if req.rebalance_timeout_ms.is_none() {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.owned.as_ref().is_none_or(|o| !o.active.is_empty()) {
            return invalid("ActiveTasks must be empty when (re-)joining.");
        }
        if req.owned.as_ref().is_some_and(|o| !o.standby.is_empty()) {
            return invalid("StandbyTasks must be empty when (re-)joining.");
        }
        if req.owned.as_ref().is_some_and(|o| !o.warmup.is_empty()) {
            return invalid("WarmupTasks must be empty when (re-)joining.");
        }
        if req.topology.is_none() {
            return invalid("Topology must be non-null when (re-)joining.");
        }
        if let Some((name, n)) = req.changelog_partitions.first() {
            return Err(BrokerError::StreamsInvalidTopology(format!(
                "Changelog topic {name} must have an undefined partition count, but it is set to {n}."
            )));
        }
    } else if req.member_epoch == LEAVE_STATIC_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if req.member_epoch < LEAVE_STATIC_EPOCH {
        return invalid(&format!(
            "MemberEpoch is {}, but must be greater than or equal to -2.",
            req.member_epoch
        ));
    }
    if req.member_epoch != 0 && req.topology.is_some() {
        return invalid("Topology can only be provided when (re-)joining.");
    }
    Ok(())
}

/// A digest of the partition counts of the topics `topology` needs (Kafka hashes the topic
/// metadata; any change of a needed topic reconfigures the topology and moves the group on).
fn metadata_hash(topology: &Topology, topics: &TopicPartitions) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in topology.required_topics() {
        if let Some(n) = topics.get(&t) {
            (t, *n).hash(&mut h);
        }
    }
    h.finish()
}

impl StreamsGroup {
    /// A heartbeat of a joining (epoch 0) or joined member; leaving is [`Self::leave`].
    pub fn heartbeat(
        &mut self,
        req: Heartbeat,
        topics: &TopicPartitions,
        settings: &StreamsSettings,
        now: Instant,
    ) -> Result<HeartbeatResult, BrokerError> {
        let joining = req.member_epoch == 0;
        let member_id = req.member_id.clone();
        if joining {
            let known_static = req
                .instance_id
                .as_deref()
                .is_some_and(|i| self.static_members.contains_key(i));
            if !known_static
                && self.members.len() >= settings.max_size
                && !self.members.contains_key(&member_id)
            {
                return Err(BrokerError::GroupMaxSizeReached(format!(
                    "The streams group has reached its maximum capacity of {} members.",
                    settings.max_size
                )));
            }
        }
        let was_empty = self.members.is_empty();
        let member = self.member_for(&req, joining, now)?;
        let original = member.clone();
        let mut updated = member.clone();
        if let Some(i) = &req.instance_id {
            updated.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            updated.rack_id = Some(r.clone());
        }
        if let Some(ms) = req.rebalance_timeout_ms {
            updated.rebalance_timeout = Duration::from_millis(ms.max(0) as u64);
        }
        if let Some(t) = &req.topology {
            updated.topology_epoch = t.epoch;
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        if let Some(p) = &req.process_id {
            updated.process_id = p.clone();
        }
        if let Some(tags) = &req.client_tags {
            updated.client_tags = tags.clone();
        }
        if joining || req.user_endpoint.is_some() {
            updated.user_endpoint = req.user_endpoint.clone();
        }
        let metadata_changed = updated.instance_id != member.instance_id
            || updated.rack_id != member.rack_id
            || updated.rebalance_timeout != member.rebalance_timeout
            || updated.topology_epoch != member.topology_epoch
            || updated.client_id != member.client_id
            || updated.client_host != member.client_host
            || updated.process_id != member.process_id
            || updated.client_tags != member.client_tags
            || updated.user_endpoint != member.user_endpoint
            || !self.members.contains_key(&member_id);
        let epoch_relevant = updated.topology_epoch != member.topology_epoch
            || updated.rack_id != member.rack_id
            || updated.client_tags != member.client_tags
            || updated.process_id != member.process_id;
        let mut recompute = metadata_changed && (req.instance_id.is_none() || epoch_relevant);

        let topology = self.maybe_update_topology(req.topology.as_ref())?;
        let mut statuses = Vec::new();
        if updated.topology_epoch < topology.epoch {
            statuses.push(Status {
                code: StatusCode::StaleTopology,
                detail: format!(
                    "The member's topology epoch {} is behind the group's topology epoch {}.",
                    updated.topology_epoch, topology.epoch
                ),
            });
        }
        let hash = metadata_hash(&topology, topics);
        let configured = match &self.configured {
            Some(c) if hash == self.metadata_hash && c.epoch == topology.epoch => c.clone(),
            _ => {
                if hash != self.metadata_hash {
                    recompute = true;
                }
                topology::configure(&topology, topics)?
            }
        };
        self.metadata_hash = hash;
        self.configured = Some(configured.clone());
        self.topology = Some(topology.clone());
        let validated = if configured.is_ready() {
            let subs = configured.subtopologies.as_ref();
            if let Some(owned) = &req.owned {
                for tasks in [&owned.active, &owned.standby, &owned.warmup] {
                    check_tasks(subs, tasks)?;
                }
            }
            topology.epoch
        } else {
            -1
        };
        if validated != self.validated_topology_epoch {
            recompute = true;
        }
        if recompute {
            self.group_epoch += 1;
            self.validated_topology_epoch = validated;
        }
        if was_empty && !settings.initial_rebalance_delay.is_zero() {
            self.initial_delay_until
                .get_or_insert(now + settings.initial_rebalance_delay);
        }
        updated.session_deadline = now + settings.session_timeout;
        self.update_member(updated);
        self.maybe_update_target(settings, now, Some(&mut statuses));

        let mut member = self.members[&member_id].clone();
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        if !member.is_reconciled_to(self.assignment_epoch) {
            if let Some(next) =
                self.reconcile_step(&member, self.assignment_epoch, &target, req.owned.as_ref())
            {
                if next.epoch != member.epoch {
                    member.previous_epoch = member.epoch;
                }
                member.epoch = next.epoch;
                member.state = next.state;
                member.assigned = next.assigned;
                member.pending_revocation = next.pending_revocation;
                member.revocation_deadline = (member.state == MemberState::UnrevokedTasks)
                    .then(|| (member.epoch, now + member.rebalance_timeout));
            }
        }
        self.update_member(member.clone());
        if req.shutdown_application {
            self.shutdown_requested_by = Some(member_id.clone());
        }

        let tasks_changed = original.assigned != member.assigned;
        let endpoint_changed = original.user_endpoint != member.user_endpoint;
        if endpoint_changed || (tasks_changed && member.user_endpoint.is_some()) {
            self.endpoint_epoch += 1;
        }
        let endpoints = (self.endpoint_epoch != req.endpoint_epoch).then(|| self.endpoints(topics));
        let mut to_create = Vec::new();
        if let Some(status) = &configured.status {
            to_create = configured.to_create.values().cloned().collect();
            statuses.push(status.clone());
        }
        if let Some(by) = &self.shutdown_requested_by {
            statuses.push(Status {
                code: StatusCode::ShutdownApplication,
                detail: format!(
                    "Streams group member {by} encountered a fatal error and requested a shutdown for the entire application."
                ),
            });
        }
        Ok(HeartbeatResult {
            member_id: member_id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as i32,
            task_offset_interval_ms: settings.task_offset_interval.as_millis() as i32,
            acceptable_recovery_lag: settings.acceptable_recovery_lag,
            statuses,
            assignment: (joining || tasks_changed).then(|| member.assigned.clone()),
            endpoint_epoch: self.endpoint_epoch,
            endpoints,
            to_create,
            topology_description_required: false,
        })
    }
}
