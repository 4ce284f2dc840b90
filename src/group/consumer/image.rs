//! A consumer group on disk: the records ([`super::records`]) that bring what
//! `__consumer_offsets` holds to the group's state, and the state rebuilt from them when the
//! coordinator loads the partition (Kafka's `GroupCoordinatorShard.replay` and `onLoaded`).
//!
//! The group remembers what it last wrote ([`Persisted`]); after each operation the
//! coordinator asks for the difference ([`ConsumerGroup::unwritten_records`]), so a heartbeat that
//! changes nothing writes nothing, as in Kafka. Records come in Kafka's order: a leaving
//! member's tombstones (current assignment, target, subscription) first, then subscriptions,
//! the group epoch, the target assignment and the members' current assignments.
//!
//! Kafka 4.4 keeps, with the group epoch, a hash of the subscribed topics' metadata, and a
//! coordinator that loads the group compares it with the topics it sees to tell whether they
//! changed meanwhile. samsa does the same with its own hash ([`metadata_hash`]: FNV-1a over
//! each topic's name, id and partition count; Kafka's is XXH3 over a different layout), so a
//! group Kafka wrote moves to a new epoch once on samsa, and the other way round.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::records::{ConsumerKey, ConsumerValue, CurrentValue, MemberValue};
use super::*;
use crate::group::records::changes;

/// One record to write: a key, and its value or `None` for a tombstone.
pub type Record = (ConsumerKey, Option<ConsumerValue>);

/// What of a group is on disk, record by record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    /// (group epoch, metadata hash); `None` before the group's first record.
    metadata: Option<(i32, i64)>,
    members: BTreeMap<String, MemberValue>,
    target_epoch: Option<i32>,
    target: BTreeMap<String, Assignment>,
    current: BTreeMap<String, CurrentValue>,
    /// Resolved expressions, with the topics they matched when written.
    regexes: BTreeMap<String, Vec<String>>,
}

/// FNV-1a 64 over the subscribed topics (by name: the image is ordered); 0 for none, as
/// Kafka's hash of no topics.
pub fn metadata_hash(topics: &TopicImage) -> i64 {
    if topics.is_empty() {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, meta) in topics {
        eat(&(name.len() as u32).to_be_bytes());
        eat(name.as_bytes());
        eat(meta.id.as_bytes());
        eat(&meta.partitions.to_be_bytes());
    }
    hash as i64
}

fn member_value(m: &ConsumerMember) -> MemberValue {
    MemberValue {
        instance_id: m.instance_id.clone(),
        rack_id: m.rack_id.clone(),
        client_id: m.client_id.clone(),
        client_host: m.client_host.clone(),
        subscribed_topic_names: m.subscribed_topic_names.clone(),
        subscribed_topic_regex: m.regex_source(),
        rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis()).unwrap_or(i32::MAX),
        server_assignor: m.server_assignor.clone(),
        classic: m.classic.clone(),
    }
}

fn current_value(m: &ConsumerMember) -> CurrentValue {
    CurrentValue {
        member_epoch: m.epoch,
        previous_member_epoch: m.previous_epoch,
        state: m.state,
        assigned: m.assigned.clone(),
        pending_revocation: m.pending_revocation.clone(),
        assigned_tags: Default::default(),
        pending_tags: Default::default(),
    }
}

impl ConsumerGroup {
    /// The group as its records would hold it now.
    fn image(&self) -> Persisted {
        let hash = self
            .restored_hash
            .unwrap_or_else(|| metadata_hash(&self.subscribed_topics));
        Persisted {
            metadata: Some((self.group_epoch, hash)),
            members: self
                .members
                .values()
                .map(|m| (m.id.clone(), member_value(m)))
                .collect(),
            target_epoch: Some(self.assignment_epoch),
            target: self.target.clone(),
            current: self
                .members
                .values()
                .map(|m| (m.id.clone(), current_value(m)))
                .collect(),
            regexes: self
                .resolved_regexes
                .iter()
                .map(|r| {
                    let topics = TopicRegex::new(r)
                        .map(|re| {
                            let matched = self.subscribed_topics.keys();
                            matched.filter(|t| re.matches(t)).cloned().collect()
                        })
                        .unwrap_or_default();
                    (r.clone(), topics)
                })
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

    /// Every record deleting the group and its members (DeleteGroups, or a group turning
    /// classic), as Kafka's `ConsumerGroup.createGroupTombstoneRecords`.
    pub fn tombstones(&self) -> Vec<Record> {
        let g = || self.id.clone();
        let mut records: Vec<Record> = Vec::new();
        for id in self.persisted.current.keys() {
            records.push((ConsumerKey::CurrentAssignment(g(), id.clone()), None));
        }
        for id in self.persisted.target.keys() {
            records.push((ConsumerKey::TargetMember(g(), id.clone()), None));
        }
        records.push((ConsumerKey::TargetMetadata(g()), None));
        for id in self.persisted.members.keys() {
            records.push((ConsumerKey::Member(g(), id.clone()), None));
        }
        for regex in self.persisted.regexes.keys() {
            records.push((ConsumerKey::Regex(g(), regex.clone()), None));
        }
        records.push((ConsumerKey::PartitionMetadata(g()), None));
        records.push((ConsumerKey::Metadata(g()), None));
        records
    }

    /// Applies one replayed record of this group (not the group's own tombstone, which the
    /// caller handles by dropping the group).
    pub fn replay(&mut self, key: ConsumerKey, value: Option<ConsumerValue>, now: Instant) {
        let member = |group: &mut ConsumerGroup, id: &str| -> ConsumerMember {
            group
                .members
                .remove(id)
                .unwrap_or_else(|| ConsumerMember::new(id.to_owned(), now))
        };
        match (key, value) {
            (
                ConsumerKey::Metadata(_),
                Some(ConsumerValue::Metadata {
                    epoch,
                    metadata_hash,
                }),
            ) => {
                self.group_epoch = epoch;
                self.restored_hash = Some(metadata_hash);
            }
            (ConsumerKey::Member(_, id), Some(ConsumerValue::Member(v))) => {
                let mut m = member(self, &id);
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.subscribed_topic_names = v.subscribed_topic_names;
                m.subscribed_topic_regex = v
                    .subscribed_topic_regex
                    .and_then(|r| TopicRegex::new(&r).ok());
                m.rebalance_timeout = Duration::from_millis(v.rebalance_timeout_ms.max(0) as u64);
                m.server_assignor = v.server_assignor;
                m.classic = v.classic;
                self.members.insert(id, m);
            }
            (ConsumerKey::Member(_, id), None) => {
                self.members.remove(&id);
            }
            (ConsumerKey::CurrentAssignment(_, id), value) => {
                let mut m = member(self, &id);
                let v = match value {
                    Some(ConsumerValue::CurrentAssignment(v)) => v,
                    // A tombstone leaves the member without partitions until its own goes.
                    _ => CurrentValue {
                        member_epoch: LEAVE_EPOCH,
                        previous_member_epoch: LEAVE_EPOCH,
                        state: MemberState::Stable,
                        assigned: Assignment::new(),
                        pending_revocation: Assignment::new(),
                        assigned_tags: Default::default(),
                        pending_tags: Default::default(),
                    },
                };
                m.epoch = v.member_epoch;
                m.previous_epoch = v.previous_member_epoch;
                m.state = v.state;
                m.assigned = v.assigned;
                m.pending_revocation = v.pending_revocation;
                self.members.insert(id, m);
            }
            (
                ConsumerKey::TargetMetadata(_),
                Some(ConsumerValue::TargetMetadata {
                    assignment_epoch, ..
                }),
            ) => {
                self.assignment_epoch = assignment_epoch;
            }
            (ConsumerKey::TargetMember(_, id), Some(ConsumerValue::TargetMember(a))) => {
                self.target.insert(id, a);
            }
            (ConsumerKey::TargetMember(_, id), None) => {
                self.target.remove(&id);
            }
            (ConsumerKey::Regex(_, regex), Some(_)) => {
                self.resolved_regexes.insert(regex);
            }
            (ConsumerKey::Regex(_, regex), None) => {
                self.resolved_regexes.remove(&regex);
            }
            _ => {}
        }
    }

    /// The group is replayed: its indexes are rebuilt, what it holds counts as written, and
    /// every member's session starts now, as Kafka's `onLoaded` schedules them (with the
    /// rebalance timeout of a member that still has partitions to revoke).
    pub fn loaded(&mut self, now: Instant, settings: &ConsumerSettings) {
        let members = std::mem::take(&mut self.members);
        self.partition_epochs.clear();
        self.static_members.clear();
        for (_, mut m) in members {
            m.session_deadline = now
                + m.classic.as_ref().map_or(settings.session_timeout, |c| {
                    Duration::from_millis(c.session_timeout_ms.max(0) as u64)
                });
            m.revocation_deadline = (m.state == MemberState::UnrevokedPartitions)
                .then(|| (m.epoch, now + m.rebalance_timeout));
            self.update_member(m);
        }
        // A target of a member that is gone, or a member without a target, is what Kafka
        // would hold too; only the expressions no member uses any more are dropped.
        self.persisted = self.image();
    }
}

/// The records from `old` to `new`, in Kafka's order.
fn diff(group: &str, old: &Persisted, new: &Persisted, now_ms: i64) -> Vec<Record> {
    let g = group.to_owned();
    let member_key = |id: &str| ConsumerKey::Member(g.clone(), id.to_owned());
    let target_key = |id: &str| ConsumerKey::TargetMember(g.clone(), id.to_owned());
    let current_key = |id: &str| ConsumerKey::CurrentAssignment(g.clone(), id.to_owned());
    let regex_key = |r: &str| ConsumerKey::Regex(g.clone(), r.to_owned());
    let (members, gone_members) = changes(&old.members, &new.members, member_key, |v| {
        ConsumerValue::Member(v.clone())
    });
    let (targets, gone_targets) = changes(&old.target, &new.target, target_key, |a| {
        ConsumerValue::TargetMember(a.clone())
    });
    let (currents, gone_currents) = changes(&old.current, &new.current, current_key, |v| {
        ConsumerValue::CurrentAssignment(v.clone())
    });
    // An expression is written once, when resolved, and tombstoned when no member uses it.
    let old_regexes: BTreeMap<String, ()> = old.regexes.keys().map(|r| (r.clone(), ())).collect();
    let new_regexes: BTreeMap<String, ()> = new.regexes.keys().map(|r| (r.clone(), ())).collect();
    let (regexes, gone_regexes) = changes(&old_regexes, &new_regexes, regex_key, |_| {
        ConsumerValue::Regex {
            topics: Vec::new(),
            version: 0,
            timestamp: now_ms,
        }
    });
    let regexes: Vec<Record> = regexes
        .into_iter()
        .map(|(key, _)| {
            let ConsumerKey::Regex(_, r) = &key else {
                unreachable!()
            };
            let value = ConsumerValue::Regex {
                topics: new.regexes[r].clone(),
                version: 0,
                timestamp: now_ms,
            };
            (key, Some(value))
        })
        .collect();

    let mut records = Vec::new();
    records.extend(gone_currents);
    records.extend(gone_targets);
    records.extend(gone_members);
    records.extend(gone_regexes);
    records.extend(members);
    records.extend(regexes);
    if new.metadata != old.metadata {
        if let Some((epoch, metadata_hash)) = new.metadata {
            let value = ConsumerValue::Metadata {
                epoch,
                metadata_hash,
            };
            records.push((ConsumerKey::Metadata(g.clone()), Some(value)));
        }
    }
    records.extend(targets);
    if new.target_epoch != old.target_epoch {
        if let Some(assignment_epoch) = new.target_epoch {
            let value = ConsumerValue::TargetMetadata {
                assignment_epoch,
                timestamp: now_ms,
            };
            records.push((ConsumerKey::TargetMetadata(g.clone()), Some(value)));
        }
    }
    records.extend(currents);
    records
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
