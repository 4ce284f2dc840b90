//! The `__consumer_offsets` records of share groups (KIP-932), in Kafka 4.4's format
//! (`GroupCoordinatorRecordHelpers`; schemas `ShareGroup*Key`/`*Value` of the
//! group-coordinator jar). As for consumer groups, every key is the `i16` record type, then
//! the key's fields (never flexible); every value is the `i16` version 0, then a flexible
//! schema:
//!
//! | type | key fields | value (version 0) |
//! |---|---|---|
//! | 9 `ShareGroupPartitionMetadata` | group | Kafka 4.0 only; read and ignored |
//! | 10 `ShareGroupMemberMetadata` | group, member | rack id?, client id, client host, topic names |
//! | 11 `ShareGroupMetadata` | group | `i32` epoch, `i64` metadata hash |
//! | 12 `ShareGroupTargetAssignmentMetadata` | group | `i32` assignment epoch; tag 0: `i64` timestamp |
//! | 13 `ShareGroupTargetAssignmentMember` | group, member | topic partitions |
//! | 14 `ShareGroupCurrentMemberAssignment` | group, member | `i32` epoch, `i32` previous epoch, `i8` state, topic partitions |
//! | 15 `ShareGroupStatePartitionMetadata` | group | initializing and initialized (topic id, name, partitions), deleting (topic id, name) |
//!
//! Topic partitions are an array of (uuid topic id, `i32` array of partitions). A null value
//! is a tombstone; `?` marks a nullable field.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{Assignment, TopicId};
use crate::group::records::{encode_group_key, epoch_and_tag};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

pub const PARTITION_METADATA: i16 = 9;
pub const MEMBER_METADATA: i16 = 10;
pub const METADATA: i16 = 11;
pub const TARGET_METADATA: i16 = 12;
pub const TARGET_MEMBER: i16 = 13;
pub const CURRENT_ASSIGNMENT: i16 = 14;
pub const STATE_PARTITION_METADATA: i16 = 15;

/// The record types of share groups, which [`decode_key`] reads.
pub const TYPES: &[i16] = &[
    PARTITION_METADATA,
    MEMBER_METADATA,
    METADATA,
    TARGET_METADATA,
    TARGET_MEMBER,
    CURRENT_ASSIGNMENT,
    STATE_PARTITION_METADATA,
];

/// What a share-group record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareKey {
    PartitionMetadata(String),
    Member(String, String),
    Metadata(String),
    TargetMetadata(String),
    TargetMember(String, String),
    CurrentAssignment(String, String),
    StatePartitionMetadata(String),
}

/// A member's identity and subscription (`ShareGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberValue {
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
}

/// `ShareGroupCurrentMemberAssignmentValue`: a share member is always Stable (state 0).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
}

/// A topic's name and partitions, as the state partition metadata keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    pub name: String,
    pub partitions: std::collections::BTreeSet<i32>,
}

/// `ShareGroupStatePartitionMetadataValue`: which share-partitions' state the share
/// coordinator is initializing, has initialized, or is deleting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatePartitions {
    pub initializing: BTreeMap<TopicId, TopicPartitions>,
    pub initialized: BTreeMap<TopicId, TopicPartitions>,
    /// Topic id → name.
    pub deleting: BTreeMap<TopicId, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShareValue {
    /// Kafka 4.0's subscription metadata; nothing of it is used.
    PartitionMetadata,
    Member(MemberValue),
    Metadata {
        epoch: i32,
        metadata_hash: i64,
    },
    TargetMetadata {
        assignment_epoch: i32,
        timestamp: i64,
    },
    TargetMember(Assignment),
    CurrentAssignment(CurrentValue),
    StatePartitionMetadata(StatePartitions),
}

impl ShareKey {
    pub fn group(&self) -> &str {
        match self {
            ShareKey::PartitionMetadata(g)
            | ShareKey::Metadata(g)
            | ShareKey::TargetMetadata(g)
            | ShareKey::StatePartitionMetadata(g)
            | ShareKey::Member(g, _)
            | ShareKey::TargetMember(g, _)
            | ShareKey::CurrentAssignment(g, _) => g,
        }
    }

    fn kind(&self) -> i16 {
        match self {
            ShareKey::PartitionMetadata(_) => PARTITION_METADATA,
            ShareKey::Member(..) => MEMBER_METADATA,
            ShareKey::Metadata(_) => METADATA,
            ShareKey::TargetMetadata(_) => TARGET_METADATA,
            ShareKey::TargetMember(..) => TARGET_MEMBER,
            ShareKey::CurrentAssignment(..) => CURRENT_ASSIGNMENT,
            ShareKey::StatePartitionMetadata(_) => STATE_PARTITION_METADATA,
        }
    }

    pub fn encode(&self) -> Bytes {
        let second = match self {
            ShareKey::Member(_, m)
            | ShareKey::TargetMember(_, m)
            | ShareKey::CurrentAssignment(_, m) => Some(m.as_str()),
            _ => None,
        };
        encode_group_key(self.kind(), self.group(), second)
    }
}

/// The key of record type `kind` (one of [`TYPES`]) from its fields.
pub fn decode_key(kind: i16, r: &mut FieldReader) -> Result<ShareKey, SchemaError> {
    let group = r.string("group")?;
    let mut member = || r.string("member id");
    Ok(match kind {
        PARTITION_METADATA => ShareKey::PartitionMetadata(group),
        METADATA => ShareKey::Metadata(group),
        TARGET_METADATA => ShareKey::TargetMetadata(group),
        STATE_PARTITION_METADATA => ShareKey::StatePartitionMetadata(group),
        MEMBER_METADATA => ShareKey::Member(group, member()?),
        TARGET_MEMBER => ShareKey::TargetMember(group, member()?),
        CURRENT_ASSIGNMENT => ShareKey::CurrentAssignment(group, member()?),
        other => return Err(format!("record type {other} is not a share group's")),
    })
}

fn write_partitions(w: &mut FieldWriter, assignment: &Assignment) {
    w.array_len(Some(assignment.len()));
    for (topic, partitions) in assignment {
        w.uuid(*topic);
        w.array_len(Some(partitions.len()));
        for p in partitions {
            w.i32(*p);
        }
        w.tagged_fields(&[]);
    }
}

fn read_partitions(r: &mut FieldReader) -> Result<Assignment, SchemaError> {
    let mut assignment = Assignment::new();
    for _ in 0..r.array_len("topic partitions")?.unwrap_or(0) {
        let topic = r.uuid("topic id")?;
        let partitions = assignment.entry(topic).or_default();
        for _ in 0..r.array_len("partitions")?.unwrap_or(0) {
            partitions.insert(r.i32("partition")?);
        }
        r.tagged_fields()?;
    }
    Ok(assignment)
}

fn write_topics(w: &mut FieldWriter, topics: &BTreeMap<TopicId, TopicPartitions>) {
    w.array_len(Some(topics.len()));
    for (id, t) in topics {
        w.uuid(*id);
        w.string(&t.name);
        w.array_len(Some(t.partitions.len()));
        for p in &t.partitions {
            w.i32(*p);
        }
        w.tagged_fields(&[]);
    }
}

fn read_topics(r: &mut FieldReader) -> Result<BTreeMap<TopicId, TopicPartitions>, SchemaError> {
    let mut topics = BTreeMap::new();
    for _ in 0..r.array_len("topics")?.unwrap_or(0) {
        let id = r.uuid("topic id")?;
        let name = r.string("topic name")?;
        let mut partitions = std::collections::BTreeSet::new();
        for _ in 0..r.array_len("partitions")?.unwrap_or(0) {
            partitions.insert(r.i32("partition")?);
        }
        r.tagged_fields()?;
        topics.insert(id, TopicPartitions { name, partitions });
    }
    Ok(topics)
}

pub fn encode_value(value: &ShareValue) -> Bytes {
    let mut w = FieldWriter::prefixed(0, true);
    let mut tags = Vec::new();
    match value {
        ShareValue::PartitionMetadata => w.array_len(Some(0)),
        ShareValue::Member(m) => {
            w.nullable_string(m.rack_id.as_deref());
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.array_len(Some(m.subscribed_topic_names.len()));
            for name in &m.subscribed_topic_names {
                w.string(name);
            }
        }
        ShareValue::Metadata {
            epoch,
            metadata_hash,
        } => {
            w.i32(*epoch);
            w.i64(*metadata_hash);
        }
        ShareValue::TargetMetadata {
            assignment_epoch,
            timestamp,
        } => {
            w.i32(*assignment_epoch);
            if *timestamp != 0 {
                let mut body = FieldWriter::tag_body();
                body.i64(*timestamp);
                tags.push((0, body.finish()));
            }
        }
        ShareValue::TargetMember(assignment) => write_partitions(&mut w, assignment),
        ShareValue::CurrentAssignment(c) => {
            w.i32(c.member_epoch);
            w.i32(c.previous_member_epoch);
            w.i8(c.state);
            write_partitions(&mut w, &c.assigned);
        }
        ShareValue::StatePartitionMetadata(s) => {
            write_topics(&mut w, &s.initializing);
            write_topics(&mut w, &s.initialized);
            w.array_len(Some(s.deleting.len()));
            for (id, name) in &s.deleting {
                w.uuid(*id);
                w.string(name);
                w.tagged_fields(&[]);
            }
        }
    }
    w.tagged_fields(&tags);
    w.finish()
}

pub fn decode_value(key: &ShareKey, bytes: &Bytes) -> Result<ShareValue, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if version != 0 {
        return Err(format!("unknown version {version} of a share group record"));
    }
    let mut r = FieldReader::new(rest, true);
    let value = match key {
        // Not used: skipped whole, tags and all.
        ShareKey::PartitionMetadata(_) => return Ok(ShareValue::PartitionMetadata),
        ShareKey::Member(..) => {
            let mut m = MemberValue {
                rack_id: r.nullable_string("rack id")?,
                client_id: r.string("client id")?,
                client_host: r.string("client host")?,
                ..MemberValue::default()
            };
            for _ in 0..r.array_len("subscribed topic names")?.unwrap_or(0) {
                m.subscribed_topic_names.push(r.string("topic name")?);
            }
            ShareValue::Member(m)
        }
        ShareKey::Metadata(_) => ShareValue::Metadata {
            epoch: r.i32("epoch")?,
            metadata_hash: r.i64("metadata hash")?,
        },
        ShareKey::TargetMetadata(_) => {
            let (assignment_epoch, timestamp) =
                epoch_and_tag(r, "assignment epoch", "assignment timestamp")?;
            return Ok(ShareValue::TargetMetadata {
                assignment_epoch,
                timestamp,
            });
        }
        ShareKey::TargetMember(..) => ShareValue::TargetMember(read_partitions(&mut r)?),
        ShareKey::CurrentAssignment(..) => ShareValue::CurrentAssignment(CurrentValue {
            member_epoch: r.i32("member epoch")?,
            previous_member_epoch: r.i32("previous member epoch")?,
            state: r.i8("state")?,
            assigned: read_partitions(&mut r)?,
        }),
        ShareKey::StatePartitionMetadata(_) => {
            let initializing = read_topics(&mut r)?;
            let initialized = read_topics(&mut r)?;
            let mut deleting = BTreeMap::new();
            for _ in 0..r.array_len("deleting topics")?.unwrap_or(0) {
                let id = r.uuid("topic id")?;
                deleting.insert(id, r.string("topic name")?);
                r.tagged_fields()?;
            }
            ShareValue::StatePartitionMetadata(StatePartitions {
                initializing,
                initialized,
                deleting,
            })
        }
    };
    r.tagged_fields()?;
    r.finish("share group record")?;
    Ok(value)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
