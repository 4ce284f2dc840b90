//! The `__consumer_offsets` records of KIP-848 consumer groups, in Kafka 4.4's format
//! (`GroupCoordinatorRecordHelpers`; schemas `ConsumerGroup*Key`/`*Value` of the
//! group-coordinator jar). Every key is the `i16` record type, then the key's fields (never
//! flexible); every value is the `i16` version 0, then a flexible schema:
//!
//! | type | key fields | value (version 0) |
//! |---|---|---|
//! | 3 `ConsumerGroupMetadata` | group | `i32` epoch; tag 0: `i64` metadata hash |
//! | 4 `ConsumerGroupPartitionMetadata` | group | topics (no longer written since 4.1; read and ignored, tombstoned on delete) |
//! | 5 `ConsumerGroupMemberMetadata` | group, member | instance id?, rack id?, client id, client host, topic names, regex?, `i32` rebalance timeout, assignor?; tag 0: classic member metadata? |
//! | 6 `ConsumerGroupTargetAssignmentMetadata` | group | `i32` assignment epoch; tag 0: `i64` timestamp |
//! | 7 `ConsumerGroupTargetAssignmentMember` | group, member | topic partitions |
//! | 8 `ConsumerGroupCurrentMemberAssignment` | group, member | `i32` epoch, `i32` previous epoch, `i8` state, assigned and pending-revocation topic partitions |
//! | 16 `ConsumerGroupRegularExpression` | group, regex | topics, `i64` metadata version, `i64` timestamp |
//!
//! Topic partitions are an array of (uuid topic id, `i32` array of partitions). A null value
//! is a tombstone. `?` marks a nullable field.

use bytes::Bytes;

use std::collections::BTreeMap;

use super::{Assignment, MemberState, TopicId};
use crate::group::records::{encode_group_key, epoch_and_tag, tagged};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

pub const METADATA: i16 = 3;
pub const PARTITION_METADATA: i16 = 4;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_METADATA: i16 = 6;
pub const TARGET_MEMBER: i16 = 7;
pub const CURRENT_ASSIGNMENT: i16 = 8;
pub const REGULAR_EXPRESSION: i16 = 16;

/// The record types of consumer groups, which [`decode_key`] reads.
pub const TYPES: &[i16] = &[
    METADATA,
    PARTITION_METADATA,
    MEMBER_METADATA,
    TARGET_METADATA,
    TARGET_MEMBER,
    CURRENT_ASSIGNMENT,
    REGULAR_EXPRESSION,
];

/// What a consumer-group record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerKey {
    Metadata(String),
    PartitionMetadata(String),
    Member(String, String),
    TargetMetadata(String),
    TargetMember(String, String),
    CurrentAssignment(String, String),
    Regex(String, String),
}

/// A member's subscription and identity (`ConsumerGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// Kafka writes "" for a member without an expression.
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a member that uses the classic protocol in a consumer group (migration).
    pub classic: Option<ClassicMember>,
}

/// A classic member's session timeout and protocols, kept in a consumer group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
}

/// Where a member is in its reconciliation (`ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Tagged fields of each topic's entry, kept as read. Kafka 4.4 writes there (tag 0)
    /// the epoch each partition was assigned at, which samsa does not track; a value samsa
    /// writes has none, and Kafka then goes by the member epoch.
    pub assigned_tags: TopicTags,
    pub pending_tags: TopicTags,
}

/// Raw tagged fields by topic, for topics that have any.
pub type TopicTags = BTreeMap<TopicId, Vec<(u32, Bytes)>>;

#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerValue {
    Metadata {
        epoch: i32,
        metadata_hash: i64,
    },
    /// Kafka before 4.1 wrote the subscribed topics; nothing of it is used.
    PartitionMetadata,
    Member(MemberValue),
    TargetMetadata {
        assignment_epoch: i32,
        timestamp: i64,
    },
    TargetMember(Assignment),
    CurrentAssignment(CurrentValue),
    Regex {
        topics: Vec<String>,
        version: i64,
        timestamp: i64,
    },
}

/// Kafka's `MemberState` values.
fn state_byte(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(byte: i8) -> Result<MemberState, SchemaError> {
    match byte {
        0 => Ok(MemberState::Stable),
        1 => Ok(MemberState::UnrevokedPartitions),
        2 => Ok(MemberState::UnreleasedPartitions),
        other => Err(format!("unknown member state {other}")),
    }
}

impl ConsumerKey {
    pub fn group(&self) -> &str {
        match self {
            ConsumerKey::Metadata(g)
            | ConsumerKey::PartitionMetadata(g)
            | ConsumerKey::TargetMetadata(g)
            | ConsumerKey::Member(g, _)
            | ConsumerKey::TargetMember(g, _)
            | ConsumerKey::CurrentAssignment(g, _)
            | ConsumerKey::Regex(g, _) => g,
        }
    }

    fn kind(&self) -> i16 {
        match self {
            ConsumerKey::Metadata(_) => METADATA,
            ConsumerKey::PartitionMetadata(_) => PARTITION_METADATA,
            ConsumerKey::Member(..) => MEMBER_METADATA,
            ConsumerKey::TargetMetadata(_) => TARGET_METADATA,
            ConsumerKey::TargetMember(..) => TARGET_MEMBER,
            ConsumerKey::CurrentAssignment(..) => CURRENT_ASSIGNMENT,
            ConsumerKey::Regex(..) => REGULAR_EXPRESSION,
        }
    }

    pub fn encode(&self) -> Bytes {
        let second = match self {
            ConsumerKey::Member(_, second)
            | ConsumerKey::TargetMember(_, second)
            | ConsumerKey::CurrentAssignment(_, second)
            | ConsumerKey::Regex(_, second) => Some(second.as_str()),
            _ => None,
        };
        encode_group_key(self.kind(), self.group(), second)
    }
}

/// The key of record type `kind` (one of [`TYPES`]) from its fields.
pub fn decode_key(kind: i16, r: &mut FieldReader) -> Result<ConsumerKey, SchemaError> {
    let group = r.string("group")?;
    let mut second = |what| r.string(what);
    Ok(match kind {
        METADATA => ConsumerKey::Metadata(group),
        PARTITION_METADATA => ConsumerKey::PartitionMetadata(group),
        TARGET_METADATA => ConsumerKey::TargetMetadata(group),
        MEMBER_METADATA => ConsumerKey::Member(group, second("member id")?),
        TARGET_MEMBER => ConsumerKey::TargetMember(group, second("member id")?),
        CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment(group, second("member id")?),
        REGULAR_EXPRESSION => ConsumerKey::Regex(group, second("regular expression")?),
        other => return Err(format!("record type {other} is not a consumer group's")),
    })
}

fn tag_i64(tag: u32, v: i64) -> (u32, Bytes) {
    let mut body = FieldWriter::tag_body();
    body.i64(v);
    (tag, body.finish())
}

fn write_partitions(w: &mut FieldWriter, assignment: &Assignment, tags: &TopicTags) {
    w.array_len(Some(assignment.len()));
    for (topic, partitions) in assignment {
        w.uuid(*topic);
        w.array_len(Some(partitions.len()));
        for p in partitions {
            w.i32(*p);
        }
        w.tagged_fields(tags.get(topic).map_or(&[], |t| &t[..]));
    }
}

fn read_partitions(r: &mut FieldReader) -> Result<(Assignment, TopicTags), SchemaError> {
    let mut assignment = Assignment::new();
    let mut tags = TopicTags::new();
    for _ in 0..r.array_len("topic partitions")?.unwrap_or(0) {
        let topic = r.uuid("topic id")?;
        let count = r.array_len("partitions")?.unwrap_or(0);
        let partitions = assignment.entry(topic).or_default();
        for _ in 0..count {
            partitions.insert(r.i32("partition")?);
        }
        let fields = r.tagged_fields()?;
        if !fields.is_empty() {
            tags.insert(topic, fields);
        }
    }
    Ok((assignment, tags))
}

pub fn encode_value(value: &ConsumerValue) -> Bytes {
    let mut w = FieldWriter::prefixed(0, true);
    let mut tags = Vec::new();
    match value {
        ConsumerValue::Metadata {
            epoch,
            metadata_hash,
        } => {
            w.i32(*epoch);
            if *metadata_hash != 0 {
                tags.push(tag_i64(0, *metadata_hash));
            }
        }
        ConsumerValue::PartitionMetadata => w.array_len(Some(0)),
        ConsumerValue::Member(m) => {
            w.nullable_string(m.instance_id.as_deref());
            w.nullable_string(m.rack_id.as_deref());
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.array_len(Some(m.subscribed_topic_names.len()));
            for name in &m.subscribed_topic_names {
                w.string(name);
            }
            w.nullable_string(Some(m.subscribed_topic_regex.as_deref().unwrap_or("")));
            w.i32(m.rebalance_timeout_ms);
            w.nullable_string(m.server_assignor.as_deref());
            // A nullable struct: varint 0 for null, 1 before its fields. Kafka 4.4 writes
            // the tag even when it is null.
            let mut body = FieldWriter::tag_body();
            match &m.classic {
                None => body.uvarint(0),
                Some(classic) => {
                    body.uvarint(1);
                    body.i32(classic.session_timeout_ms);
                    body.array_len(Some(classic.protocols.len()));
                    for (name, metadata) in &classic.protocols {
                        body.string(name);
                        body.bytes(metadata);
                        body.tagged_fields(&[]);
                    }
                    body.tagged_fields(&[]);
                }
            }
            tags.push((0, body.finish()));
        }
        ConsumerValue::TargetMetadata {
            assignment_epoch,
            timestamp,
        } => {
            w.i32(*assignment_epoch);
            if *timestamp != 0 {
                tags.push(tag_i64(0, *timestamp));
            }
        }
        ConsumerValue::TargetMember(assignment) => {
            write_partitions(&mut w, assignment, &TopicTags::new())
        }
        ConsumerValue::CurrentAssignment(c) => {
            w.i32(c.member_epoch);
            w.i32(c.previous_member_epoch);
            w.i8(state_byte(c.state));
            write_partitions(&mut w, &c.assigned, &c.assigned_tags);
            write_partitions(&mut w, &c.pending_revocation, &c.pending_tags);
        }
        ConsumerValue::Regex {
            topics,
            version,
            timestamp,
        } => {
            w.array_len(Some(topics.len()));
            for t in topics {
                w.string(t);
            }
            w.i64(*version);
            w.i64(*timestamp);
        }
    }
    w.tagged_fields(&tags);
    w.finish()
}

pub fn decode_value(key: &ConsumerKey, bytes: &Bytes) -> Result<ConsumerValue, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if version != 0 {
        return Err(format!(
            "unknown version {version} of a consumer group record"
        ));
    }
    let mut r = FieldReader::new(rest, true);
    let value = match key {
        ConsumerKey::Metadata(_) => {
            let (epoch, metadata_hash) = epoch_and_tag(r, "epoch", "metadata hash")?;
            return Ok(ConsumerValue::Metadata {
                epoch,
                metadata_hash,
            });
        }
        // Not used: skipped whole, tags and all.
        ConsumerKey::PartitionMetadata(_) => return Ok(ConsumerValue::PartitionMetadata),
        ConsumerKey::Member(..) => {
            let mut m = MemberValue {
                instance_id: r.nullable_string("instance id")?,
                rack_id: r.nullable_string("rack id")?,
                client_id: r.string("client id")?,
                client_host: r.string("client host")?,
                ..MemberValue::default()
            };
            for _ in 0..r.array_len("subscribed topic names")?.unwrap_or(0) {
                m.subscribed_topic_names.push(r.string("topic name")?);
            }
            m.subscribed_topic_regex = r
                .nullable_string("subscribed topic regex")?
                .filter(|s| !s.is_empty());
            m.rebalance_timeout_ms = r.i32("rebalance timeout")?;
            m.server_assignor = r.nullable_string("server assignor")?;
            let tags = r.tagged_fields()?;
            if let Some(mut t) = tagged(&tags, 0) {
                m.classic = read_classic(&mut t)?;
            }
            r.finish("ConsumerGroupMemberMetadataValue")?;
            return Ok(ConsumerValue::Member(m));
        }
        ConsumerKey::TargetMetadata(_) => {
            let (assignment_epoch, timestamp) =
                epoch_and_tag(r, "assignment epoch", "assignment timestamp")?;
            return Ok(ConsumerValue::TargetMetadata {
                assignment_epoch,
                timestamp,
            });
        }
        ConsumerKey::TargetMember(..) => ConsumerValue::TargetMember(read_partitions(&mut r)?.0),
        ConsumerKey::CurrentAssignment(..) => {
            let member_epoch = r.i32("member epoch")?;
            let previous_member_epoch = r.i32("previous member epoch")?;
            let state = state_of(r.i8("state")?)?;
            let (assigned, assigned_tags) = read_partitions(&mut r)?;
            let (pending_revocation, pending_tags) = read_partitions(&mut r)?;
            ConsumerValue::CurrentAssignment(CurrentValue {
                member_epoch,
                previous_member_epoch,
                state,
                assigned,
                pending_revocation,
                assigned_tags,
                pending_tags,
            })
        }
        ConsumerKey::Regex(..) => {
            let mut topics = Vec::new();
            for _ in 0..r.array_len("topics")?.unwrap_or(0) {
                topics.push(r.string("topic")?);
            }
            ConsumerValue::Regex {
                topics,
                version: r.i64("version")?,
                timestamp: r.i64("timestamp")?,
            }
        }
    };
    r.tagged_fields()?;
    r.finish("consumer group record")?;
    Ok(value)
}

/// The nullable `ClassicMemberMetadata` struct: varint 0 for null, 1 then the fields.
fn read_classic(r: &mut FieldReader) -> Result<Option<ClassicMember>, SchemaError> {
    if r.uvarint("classic member metadata")? == 0 {
        return Ok(None);
    }
    let session_timeout_ms = r.i32("session timeout")?;
    let mut protocols = Vec::new();
    for _ in 0..r.array_len("supported protocols")?.unwrap_or(0) {
        let name = r.string("protocol name")?;
        let metadata = r.bytes("protocol metadata")?;
        r.tagged_fields()?;
        protocols.push((name, metadata));
    }
    r.tagged_fields()?;
    Ok(Some(ClassicMember {
        session_timeout_ms,
        protocols,
    }))
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
