//! A streams group on disk: the records ([`super::records`]) that bring what
//! `__consumer_offsets` holds to the group's state, and the group rebuilt from them when the
//! coordinator loads the partition (Kafka's `GroupCoordinatorShard.replay` for the streams
//! record types, and `onLoaded`).
//!
//! As for consumer groups, the group remembers what it last wrote ([`Persisted`]) and is
//! asked for the difference after each operation, so a heartbeat that changes nothing
//! writes nothing. Records come in Kafka's order (as the fixture of Kafka's own records
//! shows): a leaving member's tombstones (current assignment, target, member) first, then
//! members, the topology, the group epoch, the target assignment and the members' current
//! assignments.
//!
//! What is not kept, as in Kafka: the configured topology (computed again against the
//! topics), the initial-delay and assignment-interval timers, a shutdown request, and the
//! endpoint epoch. Sessions restart when the group is loaded.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::records::{
    self as rec, CurrentValue, MemberValue, MetadataValue, StreamsKey, StreamsValue, TaskIds,
    TaskLists,
};
use super::topology::{CopartitionGroup, Subtopology, TopicInfo};
use super::*;

/// One record to write: a key, and its value or `None` for a tombstone.
pub type Record = (StreamsKey, Option<StreamsValue>);

/// What of a group is on disk, record by record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    metadata: Option<MetadataValue>,
    topology: Option<(i32, Vec<rec::Subtopology>)>,
    members: BTreeMap<String, MemberValue>,
    target_epoch: Option<i32>,
    target: BTreeMap<String, TaskLists>,
    current: BTreeMap<String, CurrentValue>,
}

/// Kafka's streams `MemberState` bytes.
fn state_byte(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 1,
        MemberState::UnrevokedTasks => 2,
        MemberState::UnreleasedTasks => 3,
    }
}

fn state_of(byte: i8) -> MemberState {
    match byte {
        2 => MemberState::UnrevokedTasks,
        3 => MemberState::UnreleasedTasks,
        // UNKNOWN (127) and anything else: the next heartbeat reconciles the member.
        _ => MemberState::Stable,
    }
}

fn task_ids(set: &TaskSet) -> Vec<TaskIds> {
    set.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(sub, ps)| TaskIds {
            subtopology: sub.clone(),
            partitions: ps.iter().copied().collect(),
            assignment_epochs: None,
        })
        .collect()
}

fn task_set(ids: &[TaskIds]) -> TaskSet {
    let mut set = TaskSet::new();
    for t in ids {
        set.entry(t.subtopology.clone())
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    set
}

fn task_lists(tasks: &Tasks) -> TaskLists {
    TaskLists {
        active: task_ids(&tasks.active),
        standby: task_ids(&tasks.standby),
        warmup: task_ids(&tasks.warmup),
    }
}

fn tasks_of(lists: &TaskLists) -> Tasks {
    Tasks {
        active: task_set(&lists.active),
        standby: task_set(&lists.standby),
        warmup: task_set(&lists.warmup),
    }
}

fn topic_info_value(t: &TopicInfo) -> rec::TopicInfo {
    rec::TopicInfo {
        name: t.name.clone(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t.configs.clone().into_iter().collect(),
    }
}

fn topic_info_of(t: &rec::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name.clone(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t.configs.iter().cloned().collect(),
    }
}

fn topology_value(t: &Topology) -> (i32, Vec<rec::Subtopology>) {
    let subtopologies = t
        .subtopologies
        .values()
        .map(|s| rec::Subtopology {
            id: s.id.clone(),
            source_topics: s.source_topics.clone(),
            source_topic_regex: Vec::new(),
            state_changelog_topics: s
                .state_changelog_topics
                .iter()
                .map(topic_info_value)
                .collect(),
            repartition_sink_topics: s.repartition_sink_topics.clone(),
            repartition_source_topics: s
                .repartition_source_topics
                .iter()
                .map(topic_info_value)
                .collect(),
            copartition_groups: s
                .copartition_groups
                .iter()
                .map(|g| rec::CopartitionGroup {
                    source_topics: g.source_topics.clone(),
                    source_topic_regex: Vec::new(),
                    repartition_source_topics: g.repartition_source_topics.clone(),
                })
                .collect(),
        })
        .collect();
    (t.epoch, subtopologies)
}

fn topology_of(epoch: i32, subtopologies: &[rec::Subtopology]) -> Topology {
    let subtopologies = subtopologies
        .iter()
        .map(|s| {
            let sub = Subtopology {
                id: s.id.clone(),
                source_topics: s.source_topics.clone(),
                repartition_sink_topics: s.repartition_sink_topics.clone(),
                state_changelog_topics: s
                    .state_changelog_topics
                    .iter()
                    .map(topic_info_of)
                    .collect(),
                repartition_source_topics: s
                    .repartition_source_topics
                    .iter()
                    .map(topic_info_of)
                    .collect(),
                copartition_groups: s
                    .copartition_groups
                    .iter()
                    .map(|g| CopartitionGroup {
                        source_topics: g.source_topics.clone(),
                        repartition_source_topics: g.repartition_source_topics.clone(),
                    })
                    .collect(),
            };
            (s.id.clone(), sub)
        })
        .collect();
    Topology {
        epoch,
        subtopologies,
    }
}

fn member_value(m: &StreamsMember) -> MemberValue {
    MemberValue {
        instance_id: m.instance_id.clone(),
        rack_id: m.rack_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis()).unwrap_or(i32::MAX),
        topology_epoch: m.topology_epoch,
        process_id: m.process_id.clone(),
        user_endpoint: m.user_endpoint.as_ref().map(|e| (e.host.clone(), e.port)),
        client_tags: m.client_tags.clone().into_iter().collect(),
    }
}

fn current_value(m: &StreamsMember) -> CurrentValue {
    CurrentValue {
        member_epoch: m.epoch,
        previous_member_epoch: m.previous_epoch,
        state: state_byte(m.state),
        assigned: task_lists(&m.assigned),
        pending_revocation: task_lists(&m.pending_revocation),
    }
}

/// Upserts and tombstones that turn `old` into `new`, keyed by `key`.
fn changes<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    key: impl Fn(String) -> StreamsKey,
    value: impl Fn(V) -> StreamsValue,
) -> (Vec<Record>, Vec<Record>) {
    let upserts = new
        .iter()
        .filter(|(id, v)| old.get(*id) != Some(*v))
        .map(|(id, v)| (key(id.clone()), Some(value(v.clone()))))
        .collect();
    let tombstones = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .map(|id| (key(id.clone()), None))
        .collect();
    (upserts, tombstones)
}

impl StreamsGroup {
    /// The group as its records would hold it now.
    fn image(&self) -> Persisted {
        Persisted {
            metadata: Some(MetadataValue {
                epoch: self.group_epoch,
                metadata_hash: self.metadata_hash as i64,
                validated_topology_epoch: self.validated_topology_epoch,
                stored_description_topology_epoch: self.stored_description_epoch,
                failed_description_topology_epoch: self.failed_description_epoch,
                // What samsa does not track is kept as it was read.
                ..self.persisted.metadata.clone().unwrap_or(MetadataValue {
                    epoch: 0,
                    metadata_hash: 0,
                    validated_topology_epoch: -1,
                    last_assignment_configs: None,
                    stored_description_topology_epoch: -1,
                    failed_description_topology_epoch: -1,
                })
            }),
            topology: self.topology.as_ref().map(topology_value),
            members: self
                .members
                .values()
                .map(|m| (m.id.clone(), member_value(m)))
                .collect(),
            target_epoch: Some(self.assignment_epoch),
            target: self
                .target
                .iter()
                .map(|(id, t)| (id.clone(), task_lists(t)))
                .collect(),
            current: self
                .members
                .values()
                .map(|m| (m.id.clone(), current_value(m)))
                .collect(),
        }
    }

    /// The records that bring the group on disk to its state now, and that state, to hand
    /// to [`Self::written`] once they are appended.
    pub fn unwritten_records(&self, now_ms: i64) -> (Vec<Record>, Persisted) {
        let new = self.image();
        (diff(&self.id, &self.persisted, &new, now_ms), new)
    }

    /// The records of [`Self::unwritten_records`] are in the log.
    pub fn written(&mut self, image: Persisted) {
        self.persisted = image;
    }

    /// Every record deleting the group, as Kafka's `StreamsGroup.createGroupTombstoneRecords`.
    pub fn tombstones(&self) -> Vec<Record> {
        let g = || self.id.clone();
        let mut records: Vec<Record> = Vec::new();
        for id in self.persisted.current.keys() {
            records.push((StreamsKey::CurrentAssignment(g(), id.clone()), None));
        }
        for id in self.persisted.target.keys() {
            records.push((StreamsKey::TargetMember(g(), id.clone()), None));
        }
        for id in self.persisted.members.keys() {
            records.push((StreamsKey::Member(g(), id.clone()), None));
        }
        records.push((StreamsKey::TargetMetadata(g()), None));
        records.push((StreamsKey::Metadata(g()), None));
        records.push((StreamsKey::Topology(g()), None));
        records
    }

    /// Applies one replayed record of this group (not the group's own tombstone, which the
    /// caller handles by dropping the group).
    pub fn replay(&mut self, key: StreamsKey, value: Option<StreamsValue>, now: Instant) {
        let take = |group: &mut StreamsGroup, id: &str| -> StreamsMember {
            group
                .members
                .remove(id)
                .unwrap_or_else(|| StreamsMember::new(id, now))
        };
        match (key, value) {
            (StreamsKey::Metadata(_), Some(StreamsValue::Metadata(v))) => {
                self.group_epoch = v.epoch;
                self.metadata_hash = v.metadata_hash as u64;
                self.validated_topology_epoch = v.validated_topology_epoch;
                self.stored_description_epoch = v.stored_description_topology_epoch;
                self.failed_description_epoch = v.failed_description_topology_epoch;
                self.persisted.metadata = Some(v);
            }
            (
                StreamsKey::Topology(_),
                Some(StreamsValue::Topology {
                    epoch,
                    subtopologies,
                }),
            ) => {
                self.topology = Some(topology_of(epoch, &subtopologies));
                self.configured = None;
            }
            (StreamsKey::Topology(_), None) => {
                self.topology = None;
                self.configured = None;
            }
            (StreamsKey::Member(_, id), Some(StreamsValue::Member(v))) => {
                let mut m = take(self, &id);
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.rebalance_timeout = Duration::from_millis(v.rebalance_timeout_ms.max(0) as u64);
                m.topology_epoch = v.topology_epoch;
                m.process_id = v.process_id;
                m.user_endpoint = v.user_endpoint.map(|(host, port)| Endpoint { host, port });
                m.client_tags = v.client_tags.into_iter().collect();
                self.members.insert(id, m);
            }
            (StreamsKey::Member(_, id), None) => {
                self.members.remove(&id);
            }
            (StreamsKey::CurrentAssignment(_, id), value) => {
                let mut m = take(self, &id);
                match value {
                    Some(StreamsValue::CurrentAssignment(v)) => {
                        m.epoch = v.member_epoch;
                        m.previous_epoch = v.previous_member_epoch;
                        m.state = state_of(v.state);
                        m.assigned = tasks_of(&v.assigned);
                        m.pending_revocation = tasks_of(&v.pending_revocation);
                    }
                    // A tombstone leaves the member without tasks until its own goes.
                    _ => {
                        m.epoch = LEAVE_EPOCH;
                        m.previous_epoch = LEAVE_EPOCH;
                        m.state = MemberState::Stable;
                        m.assigned = Tasks::default();
                        m.pending_revocation = Tasks::default();
                    }
                }
                self.members.insert(id, m);
            }
            (
                StreamsKey::TargetMetadata(_),
                Some(StreamsValue::TargetMetadata {
                    assignment_epoch, ..
                }),
            ) => {
                self.assignment_epoch = assignment_epoch;
            }
            (StreamsKey::TargetMember(_, id), Some(StreamsValue::TargetMember(t))) => {
                self.target.insert(id, tasks_of(&t));
            }
            (StreamsKey::TargetMember(_, id), None) => {
                self.target.remove(&id);
            }
            _ => {}
        }
    }

    /// The group is replayed: its indexes are rebuilt, what it holds counts as written, and
    /// every member's session starts now, as Kafka's `onLoaded` schedules them (with the
    /// rebalance timeout of a member that still has tasks to revoke).
    pub fn loaded(&mut self, now: Instant, settings: &StreamsSettings) {
        let members = std::mem::take(&mut self.members);
        self.static_members.clear();
        for (_, mut m) in members {
            m.session_deadline = now + settings.session_timeout;
            m.revocation_deadline = (m.state == MemberState::UnrevokedTasks)
                .then(|| (m.epoch, now + m.rebalance_timeout));
            self.update_member(m);
        }
        self.persisted = self.image();
    }
}

/// The records from `old` to `new`, in Kafka's order.
fn diff(group: &str, old: &Persisted, new: &Persisted, now_ms: i64) -> Vec<Record> {
    let g = group.to_owned();
    let (members, gone_members) = changes(
        &old.members,
        &new.members,
        |id| StreamsKey::Member(g.clone(), id),
        StreamsValue::Member,
    );
    let (targets, gone_targets) = changes(
        &old.target,
        &new.target,
        |id| StreamsKey::TargetMember(g.clone(), id),
        StreamsValue::TargetMember,
    );
    let (currents, gone_currents) = changes(
        &old.current,
        &new.current,
        |id| StreamsKey::CurrentAssignment(g.clone(), id),
        StreamsValue::CurrentAssignment,
    );
    let mut records = Vec::new();
    records.extend(gone_currents);
    records.extend(gone_targets);
    records.extend(gone_members);
    records.extend(members);
    if new.topology != old.topology {
        let value = new
            .topology
            .clone()
            .map(|(epoch, subtopologies)| StreamsValue::Topology {
                epoch,
                subtopologies,
            });
        records.push((StreamsKey::Topology(g.clone()), value));
    }
    if new.metadata != old.metadata {
        let value = new.metadata.clone().map(StreamsValue::Metadata);
        records.push((StreamsKey::Metadata(g.clone()), value));
    }
    records.extend(targets);
    if new.target_epoch != old.target_epoch {
        if let Some(assignment_epoch) = new.target_epoch {
            records.push((
                StreamsKey::TargetMetadata(g.clone()),
                Some(StreamsValue::TargetMetadata {
                    assignment_epoch,
                    timestamp: now_ms,
                }),
            ));
        }
    }
    records.extend(currents);
    records
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
