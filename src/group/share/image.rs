//! A share group on disk: the records ([`super::records`]) that bring what
//! `__consumer_offsets` holds to the group's state, and the state rebuilt from them when the
//! coordinator loads the partition. As for consumer groups, the group remembers what it last
//! wrote and writes only the difference, in Kafka's order: a leaving member's tombstones
//! (current assignment, target, subscription) first, then subscriptions, the group epoch,
//! the target assignment, the members' current assignments, and the state partitions.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::records::{CurrentValue, MemberValue, ShareKey, ShareValue, StatePartitions};
use super::*;
use crate::group::records::changes;

/// One record to write: a key, and its value or `None` for a tombstone.
pub type Record = (ShareKey, Option<ShareValue>);

/// What of a group is on disk, record by record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    /// (group epoch, metadata hash); `None` before the group's first record.
    metadata: Option<(i32, i64)>,
    members: BTreeMap<String, MemberValue>,
    /// (assignment epoch, when it was computed).
    target_epoch: Option<(i32, i64)>,
    target: BTreeMap<String, Assignment>,
    current: BTreeMap<String, CurrentValue>,
    state_partitions: Option<StatePartitions>,
}

fn member_value(m: &ShareMember) -> MemberValue {
    MemberValue {
        rack_id: m.rack_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        subscribed_topic_names: m.subscribed_topic_names.clone(),
    }
}

fn current_value(m: &ShareMember) -> CurrentValue {
    CurrentValue {
        member_epoch: m.epoch,
        previous_member_epoch: m.previous_epoch,
        state: 0,
        assigned: m.assigned.clone(),
    }
}

impl ShareGroup {
    fn image(&self) -> Persisted {
        let written_partitions = self.persisted.state_partitions.is_some();
        let has_partitions = self.state_partitions != StatePartitions::default();
        Persisted {
            metadata: Some((self.group_epoch, self.metadata_hash)),
            members: self
                .members
                .values()
                .map(|m| (m.id.clone(), member_value(m)))
                .collect(),
            target_epoch: Some((self.assignment_epoch, self.assignment_timestamp)),
            target: self.target.clone(),
            current: self
                .members
                .values()
                .map(|m| (m.id.clone(), current_value(m)))
                .collect(),
            state_partitions: (written_partitions || has_partitions)
                .then(|| self.state_partitions.clone()),
        }
    }

    /// The records that bring the group on disk to its state now, and that state, to hand
    /// to [`Self::written`] once they are appended.
    pub fn unwritten_records(&self) -> (Vec<Record>, Persisted) {
        let new = self.image();
        (diff(&self.id, &self.persisted, &new), new)
    }

    pub fn written(&mut self, image: Persisted) {
        self.persisted = image;
    }

    /// Whether a `ShareGroupStatePartitionMetadata` record of the group was written.
    pub(super) fn persisted_state_partitions(&self) -> bool {
        self.persisted.state_partitions.is_some()
    }

    /// Every record deleting the group (Kafka's `ShareGroup.createGroupTombstoneRecords`,
    /// with the state partition metadata's after the members').
    pub fn tombstones(&self) -> Vec<Record> {
        let g = || self.id.clone();
        let mut records: Vec<Record> = Vec::new();
        for id in self.persisted.current.keys() {
            records.push((ShareKey::CurrentAssignment(g(), id.clone()), None));
        }
        for id in self.persisted.target.keys() {
            records.push((ShareKey::TargetMember(g(), id.clone()), None));
        }
        records.push((ShareKey::TargetMetadata(g()), None));
        for id in self.persisted.members.keys() {
            records.push((ShareKey::Member(g(), id.clone()), None));
        }
        records.push((ShareKey::StatePartitionMetadata(g()), None));
        records.push((ShareKey::Metadata(g()), None));
        records
    }

    /// Applies one replayed record of this group (not the group's own tombstone, which the
    /// caller handles by dropping the group).
    pub fn replay(&mut self, key: ShareKey, value: Option<ShareValue>, now: Instant) {
        let member = |group: &mut ShareGroup, id: &str| -> ShareMember {
            group
                .members
                .remove(id)
                .unwrap_or_else(|| ShareMember::new(id, now))
        };
        match (key, value) {
            (
                ShareKey::Metadata(_),
                Some(ShareValue::Metadata {
                    epoch,
                    metadata_hash,
                }),
            ) => {
                self.group_epoch = epoch;
                self.metadata_hash = metadata_hash;
            }
            (ShareKey::Member(_, id), Some(ShareValue::Member(v))) => {
                let mut m = member(self, &id);
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.subscribed_topic_names = v.subscribed_topic_names;
                self.members.insert(id, m);
            }
            (ShareKey::Member(_, id), None) => {
                self.members.remove(&id);
            }
            (ShareKey::CurrentAssignment(_, id), Some(ShareValue::CurrentAssignment(v))) => {
                let mut m = member(self, &id);
                m.epoch = v.member_epoch;
                m.previous_epoch = v.previous_member_epoch;
                m.assigned = v.assigned;
                self.members.insert(id, m);
            }
            (ShareKey::CurrentAssignment(_, id), None) => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.epoch = LEAVE_EPOCH;
                    m.previous_epoch = LEAVE_EPOCH;
                    m.assigned.clear();
                }
            }
            (
                ShareKey::TargetMetadata(_),
                Some(ShareValue::TargetMetadata {
                    assignment_epoch,
                    timestamp,
                }),
            ) => {
                self.assignment_epoch = assignment_epoch;
                self.assignment_timestamp = timestamp;
            }
            (ShareKey::TargetMember(_, id), Some(ShareValue::TargetMember(a))) => {
                self.target.insert(id, a);
            }
            (ShareKey::TargetMember(_, id), None) => {
                self.target.remove(&id);
            }
            (ShareKey::StatePartitionMetadata(_), Some(ShareValue::StatePartitionMetadata(s))) => {
                self.state_partitions = s;
            }
            (ShareKey::StatePartitionMetadata(_), None) => {
                self.state_partitions = StatePartitions::default();
            }
            _ => {}
        }
    }

    /// The group is replayed: what it holds counts as written, every member's session
    /// starts now, and initializing partitions count as asked for now.
    pub fn loaded(&mut self, now: Instant, now_ms: i64, settings: &ShareSettings) {
        for m in self.members.values_mut() {
            m.session_deadline = now + settings.session_timeout;
        }
        self.initializing_since = self
            .state_partitions
            .initializing
            .keys()
            .map(|id| (*id, now_ms))
            .collect();
        self.persisted = self.image();
    }
}

/// The records from `old` to `new`, in Kafka's order.
fn diff(group: &str, old: &Persisted, new: &Persisted) -> Vec<Record> {
    let g = group.to_owned();
    let (members, gone_members) = changes(
        &old.members,
        &new.members,
        |id| ShareKey::Member(g.clone(), id.to_owned()),
        |v| ShareValue::Member(v.clone()),
    );
    let (targets, gone_targets) = changes(
        &old.target,
        &new.target,
        |id| ShareKey::TargetMember(g.clone(), id.to_owned()),
        |a| ShareValue::TargetMember(a.clone()),
    );
    let (currents, gone_currents) = changes(
        &old.current,
        &new.current,
        |id| ShareKey::CurrentAssignment(g.clone(), id.to_owned()),
        |v| ShareValue::CurrentAssignment(v.clone()),
    );
    let mut records = Vec::new();
    records.extend(gone_currents);
    records.extend(gone_targets);
    records.extend(gone_members);
    records.extend(members);
    if new.metadata != old.metadata {
        if let Some((epoch, metadata_hash)) = new.metadata {
            let value = ShareValue::Metadata {
                epoch,
                metadata_hash,
            };
            records.push((ShareKey::Metadata(g.clone()), Some(value)));
        }
    }
    records.extend(targets);
    if new.target_epoch != old.target_epoch {
        if let Some((assignment_epoch, timestamp)) = new.target_epoch {
            let value = ShareValue::TargetMetadata {
                assignment_epoch,
                timestamp,
            };
            records.push((ShareKey::TargetMetadata(g.clone()), Some(value)));
        }
    }
    records.extend(currents);
    if new.state_partitions != old.state_partitions {
        if let Some(s) = &new.state_partitions {
            let value = ShareValue::StatePartitionMetadata(s.clone());
            records.push((ShareKey::StatePartitionMetadata(g.clone()), Some(value)));
        }
    }
    records
}
