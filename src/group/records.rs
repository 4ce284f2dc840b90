//! `__consumer_offsets` records in Kafka's own format, as Kafka 4.4's group coordinator
//! writes them (`GroupCoordinatorRecordHelpers`, framed by `CoordinatorRecordSerde`), so
//! Kafka's tools (`OffsetsMessageFormatter`, `GroupMetadataMessageFormatter`) read them.
//!
//! Key: `i16` record type, then the key schema (version 0, never flexible):
//! - type 1 `OffsetCommitKey` (type 0, the legacy one, has the same fields): string group,
//!   string topic, `i32` partition;
//! - type 2 `GroupMetadataKey`: string group;
//! - types 3-8 and 16, KIP-848 consumer groups' records: see [`super::consumer::records`];
//! - types 17 and 19-23, KIP-1071 streams groups' records: see [`super::streams::records`];
//! - types 9-15, KIP-932 share groups' records: see [`super::share::records`].
//!
//! Value: `i16` schema version, then the schema; null is a tombstone (the offset, or the
//! group, is deleted).
//! - `OffsetCommitValue`: Kafka writes version 4 (flexible: `i64` offset, `i32` leader
//!   epoch, compact string metadata, `i64` commit timestamp, tagged field 0 the topic id),
//!   or version 1 when the commit carries an expiry (`i64` offset, string metadata, `i64`
//!   commit and expire timestamps). Versions 0-4 are read.
//! - `GroupMetadataValue`: Kafka writes version 3 (string protocol type, `i32` generation,
//!   nullable string protocol and leader, `i64` current state timestamp, then the members:
//!   member id, nullable group instance id, client id, client host, `i32` rebalance and
//!   session timeouts, subscription and assignment bytes). Versions 0-4 are read.

use bytes::Bytes;
use uuid::Uuid;

use super::consumer::records::{self as consumer_records, ConsumerKey};
use super::share::records::{self as share_records, ShareKey};
use super::state::CommittedOffset;
use super::store::{GroupRecord, MemberRecord};
use super::streams::records::{self as streams_records, StreamsKey};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

/// Record types (`CoordinatorRecordType`) of the group coordinator's keys.
pub const LEGACY_OFFSET_COMMIT: i16 = 0;
pub const OFFSET_COMMIT: i16 = 1;
pub const GROUP_METADATA: i16 = 2;

/// The value versions Kafka 4.4 writes.
const OFFSET_VALUE: i16 = 4;
const OFFSET_VALUE_WITH_EXPIRY: i16 = 1;
const GROUP_VALUE: i16 = 3;
/// `OffsetCommitValue`'s tag for the topic id.
const TOPIC_ID_TAG: u32 = 0;

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group(String),
    /// A KIP-848 consumer group's record.
    Consumer(ConsumerKey),
    /// A KIP-1071 streams group's record.
    Streams(StreamsKey),
    /// A share group's record (KIP-932).
    Share(ShareKey),
    /// A record type this coordinator does not read (yet).
    Other(i16),
}

pub fn encode_key(key: &RecordKey) -> Bytes {
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            let mut w = FieldWriter::prefixed(OFFSET_COMMIT, false);
            w.string(group);
            w.string(topic);
            w.i32(*partition);
            w.finish()
        }
        RecordKey::Group(group) => {
            let mut w = FieldWriter::prefixed(GROUP_METADATA, false);
            w.string(group);
            w.finish()
        }
        RecordKey::Consumer(key) => key.encode(),
        RecordKey::Streams(key) => key.encode(),
        RecordKey::Share(key) => key.encode(),
        RecordKey::Other(kind) => FieldWriter::prefixed(*kind, false).finish(),
    }
}

/// The key of a group's own record: type, group id, and for a member's (or a regular
/// expression's) record that second string; shared by consumer and streams groups.
pub(super) fn encode_group_key(kind: i16, group: &str, second: Option<&str>) -> Bytes {
    let mut w = FieldWriter::prefixed(kind, false);
    w.string(group);
    if let Some(second) = second {
        w.string(second);
    }
    w.finish()
}

/// The records that turn a group's per-member (or per-expression) records `old` into
/// `new`: an upsert for each entry new or changed, a tombstone for each one gone.
pub(super) type Changes<K, W> = (Vec<(K, Option<W>)>, Vec<(K, Option<W>)>);

pub(super) fn changes<K, V: PartialEq, W>(
    old: &std::collections::BTreeMap<String, V>,
    new: &std::collections::BTreeMap<String, V>,
    key: impl Fn(&str) -> K,
    value: impl Fn(&V) -> W,
) -> Changes<K, W> {
    let upserts = new
        .iter()
        .filter(|(id, v)| old.get(*id) != Some(*v))
        .map(|(id, v)| (key(id), Some(value(v))))
        .collect();
    let tombstones = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .map(|id| (key(id), None))
        .collect();
    (upserts, tombstones)
}

/// A reader over the body of tag `tag` among a flexible value's tagged fields.
pub(super) fn tagged(tags: &[(u32, Bytes)], tag: u32) -> Option<FieldReader> {
    tags.iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, body)| FieldReader::new(body.clone(), true))
}

/// An `i32` epoch and the `i64` of tag 0 (0 when absent): the whole of a group epoch's
/// (consumer groups) and of a target assignment's values.
pub(super) fn epoch_and_tag(
    mut r: FieldReader,
    epoch: &str,
    tag_name: &str,
) -> Result<(i32, i64), SchemaError> {
    let value = r.i32(epoch)?;
    let tags = r.tagged_fields()?;
    let tag = match tagged(&tags, 0) {
        Some(mut t) => t.i64(tag_name)?,
        None => 0,
    };
    r.finish(epoch)?;
    Ok((value, tag))
}

/// The key's record type and fields. Only the whole key is accepted: a key that does not
/// end where its schema does is not this format (samsa's earlier JSON keys share the
/// type numbers 1 and 2).
pub fn decode_key(bytes: &Bytes) -> Result<RecordKey, SchemaError> {
    let (kind, rest) = FieldReader::prefixed(bytes)?;
    let mut r = FieldReader::new(rest, false);
    let key = match kind {
        LEGACY_OFFSET_COMMIT | OFFSET_COMMIT => RecordKey::Offset {
            group: r.string("group")?,
            topic: r.string("topic")?,
            partition: r.i32("partition")?,
        },
        GROUP_METADATA => RecordKey::Group(r.string("group")?),
        kind if consumer_records::TYPES.contains(&kind) => {
            RecordKey::Consumer(consumer_records::decode_key(kind, &mut r)?)
        }
        kind if share_records::TYPES.contains(&kind) => {
            RecordKey::Share(share_records::decode_key(kind, &mut r)?)
        }
        kind if streams_records::TYPES.contains(&kind) => {
            RecordKey::Streams(streams_records::decode_key(kind, &mut r)?)
        }
        other => return Ok(RecordKey::Other(other)),
    };
    r.finish("key")?;
    Ok(key)
}

/// A committed offset's value; `topic_id` is written when known (nil otherwise), as Kafka
/// 4.4 does.
pub fn encode_offset_value(offset: &CommittedOffset, topic_id: Uuid) -> Bytes {
    let metadata = offset.metadata.as_deref().unwrap_or("");
    if let Some(expire) = offset.expire_timestamp {
        let mut w = FieldWriter::prefixed(OFFSET_VALUE_WITH_EXPIRY, false);
        w.i64(offset.offset);
        w.string(metadata);
        w.i64(offset.commit_timestamp);
        w.i64(expire);
        return w.finish();
    }
    let mut w = FieldWriter::prefixed(OFFSET_VALUE, true);
    w.i64(offset.offset);
    w.i32(offset.leader_epoch);
    w.string(metadata);
    w.i64(offset.commit_timestamp);
    let mut tags = Vec::new();
    if !topic_id.is_nil() {
        tags.push((TOPIC_ID_TAG, Bytes::copy_from_slice(topic_id.as_bytes())));
    }
    w.tagged_fields(&tags);
    w.finish()
}

/// A committed offset and the topic id it names (nil when the record has none).
pub fn decode_offset_value(bytes: &Bytes) -> Result<(CommittedOffset, Uuid), SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if !(0..=4).contains(&version) {
        return Err(format!("unknown OffsetCommitValue version {version}"));
    }
    let mut r = FieldReader::new(rest, version >= 4);
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commit timestamp")?;
    let expire_timestamp = if version == 1 {
        Some(r.i64("expire timestamp")?).filter(|t| *t != -1)
    } else {
        None
    };
    let mut topic_id = Uuid::nil();
    for (tag, body) in r.tagged_fields()? {
        if tag == TOPIC_ID_TAG {
            let raw: [u8; 16] = body[..]
                .try_into()
                .map_err(|_| "topic id of the wrong size".to_owned())?;
            topic_id = Uuid::from_bytes(raw);
        }
    }
    r.finish("OffsetCommitValue")?;
    let value = CommittedOffset {
        offset,
        leader_epoch,
        metadata: Some(metadata),
        commit_timestamp,
        expire_timestamp,
        record_offset: 0,
    };
    Ok((value, topic_id))
}

pub fn encode_group_value(group: &GroupRecord) -> Bytes {
    let mut w = FieldWriter::prefixed(GROUP_VALUE, false);
    w.string(group.protocol_type.as_deref().unwrap_or(""));
    w.i32(group.generation);
    w.nullable_string(group.protocol.as_deref());
    w.nullable_string(group.leader.as_deref());
    w.i64(group.state_timestamp);
    w.array_len(Some(group.members.len()));
    for m in &group.members {
        w.string(&m.member_id);
        w.nullable_string(m.instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(millis_i32(m.rebalance_timeout_ms));
        w.i32(millis_i32(m.session_timeout_ms));
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.finish()
}

pub fn decode_group_value(bytes: &Bytes) -> Result<GroupRecord, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if !(0..=4).contains(&version) {
        return Err(format!("unknown GroupMetadataValue version {version}"));
    }
    let mut r = FieldReader::new(rest, version >= 4);
    let protocol_type = Some(r.string("protocol type")?).filter(|t| !t.is_empty());
    let generation = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let state_timestamp = if version >= 2 {
        r.i64("current state timestamp")?
    } else {
        -1
    };
    let count = r.array_len("members")?.unwrap_or(0);
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.string("member id")?;
        let instance_id = if version >= 3 {
            r.nullable_string("group instance id")?
        } else {
            None
        };
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let rebalance = if version >= 1 {
            r.i32("rebalance timeout")?
        } else {
            -1
        };
        let session = r.i32("session timeout")?;
        let subscription = r.bytes("subscription")?.to_vec();
        let assignment = r.bytes("assignment")?.to_vec();
        r.tagged_fields()?;
        members.push(MemberRecord {
            member_id,
            instance_id,
            client_id,
            client_host,
            // Before version 1 the rebalance timeout was the session timeout.
            rebalance_timeout_ms: u64::try_from(if rebalance < 0 { session } else { rebalance })
                .unwrap_or(0),
            session_timeout_ms: u64::try_from(session).unwrap_or(0),
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    r.finish("GroupMetadataValue")?;
    Ok(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

fn millis_i32(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
