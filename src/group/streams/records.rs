//! The `__consumer_offsets` records of KIP-1071 streams groups, in Kafka 4.4's format
//! (`StreamsCoordinatorRecordHelpers`; schemas `StreamsGroup*Key`/`*Value` of the
//! group-coordinator jar). As for consumer groups, every key is the `i16` record type, then
//! the key's fields (never flexible); every value is the `i16` version 0, then a flexible
//! schema:
//!
//! | type | key fields | value (version 0) |
//! |---|---|---|
//! | 17 `StreamsGroupMetadata` | group | `i32` epoch, `i64` metadata hash; tags 0: `i32` validated topology epoch, 1: last assignment configs?, 2/3: `i32` stored/failed description topology epochs (all -1 when absent) |
//! | 19 `StreamsGroupMemberMetadata` | group, member | instance id?, rack id?, client id, client host, `i32` rebalance timeout, `i32` topology epoch, process id, endpoint? (`i8` -1 or 1, host, `u16` port), client tags |
//! | 20 `StreamsGroupTargetAssignmentMetadata` | group | `i32` assignment epoch; tag 0: `i64` timestamp |
//! | 21 `StreamsGroupTargetAssignmentMember` | group, member | active, standby, warm-up tasks |
//! | 22 `StreamsGroupCurrentMemberAssignment` | group, member | `i32` epoch, `i32` previous epoch, `i8` state, active, standby, warm-up tasks, then the same three pending revocation |
//! | 23 `StreamsGroupTopology` | group | `i32` topology epoch, subtopologies |
//!
//! Tasks are an array of (subtopology id, `i32` array of partitions); in the current
//! assignment each entry may carry tag 0, the epochs the partitions were assigned at. Type
//! 18 (partition metadata) is no longer written by Kafka 4.4. A null value is a tombstone;
//! `?` marks a nullable field. Arrays keep Kafka's order, so a record reads back to the
//! same bytes.

use bytes::Bytes;

use crate::group::records::{encode_group_key, epoch_and_tag, tagged};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

pub const METADATA: i16 = 17;
pub const MEMBER_METADATA: i16 = 19;
pub const TARGET_METADATA: i16 = 20;
pub const TARGET_MEMBER: i16 = 21;
pub const CURRENT_ASSIGNMENT: i16 = 22;
pub const TOPOLOGY: i16 = 23;

/// The record types of streams groups, which [`decode_key`] reads.
pub const TYPES: &[i16] = &[
    METADATA,
    MEMBER_METADATA,
    TARGET_METADATA,
    TARGET_MEMBER,
    CURRENT_ASSIGNMENT,
    TOPOLOGY,
];

/// What a streams-group record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamsKey {
    Metadata(String),
    Topology(String),
    Member(String, String),
    TargetMetadata(String),
    TargetMember(String, String),
    CurrentAssignment(String, String),
}

/// `StreamsGroupMetadataValue`; the tagged epochs are -1 when Kafka left them out.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataValue {
    pub epoch: i32,
    pub metadata_hash: i64,
    pub validated_topology_epoch: i32,
    pub last_assignment_configs: Option<Vec<(String, String)>>,
    pub stored_description_topology_epoch: i32,
    pub failed_description_topology_epoch: i32,
}

/// `StreamsGroupMemberMetadataValue`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: Vec<(String, String)>,
}

/// One subtopology's partitions (`TaskIds`); `assignment_epochs` only in a current
/// assignment's active tasks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskIds {
    pub subtopology: String,
    pub partitions: Vec<i32>,
    pub assignment_epochs: Option<Vec<i32>>,
}

/// Active, standby and warm-up tasks, each in Kafka's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskLists {
    pub active: Vec<TaskIds>,
    pub standby: Vec<TaskIds>,
    pub warmup: Vec<TaskIds>,
}

/// `StreamsGroupCurrentMemberAssignmentValue`; `state` is Kafka's `MemberState` byte.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CurrentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: TaskLists,
    pub pending_revocation: TaskLists,
}

/// A source or internal topic of a subtopology (`TopicInfo`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Indexes into the subtopology's arrays of the topics that must be co-partitioned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub source_topic_regex: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub source_topic_regex: Vec<String>,
    pub state_changelog_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<TopicInfo>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamsValue {
    Metadata(MetadataValue),
    Topology {
        epoch: i32,
        subtopologies: Vec<Subtopology>,
    },
    Member(MemberValue),
    TargetMetadata {
        assignment_epoch: i32,
        timestamp: i64,
    },
    TargetMember(TaskLists),
    CurrentAssignment(CurrentValue),
}

impl StreamsKey {
    pub fn group(&self) -> &str {
        match self {
            StreamsKey::Metadata(g)
            | StreamsKey::Topology(g)
            | StreamsKey::TargetMetadata(g)
            | StreamsKey::Member(g, _)
            | StreamsKey::TargetMember(g, _)
            | StreamsKey::CurrentAssignment(g, _) => g,
        }
    }

    fn kind(&self) -> i16 {
        match self {
            StreamsKey::Metadata(_) => METADATA,
            StreamsKey::Topology(_) => TOPOLOGY,
            StreamsKey::Member(..) => MEMBER_METADATA,
            StreamsKey::TargetMetadata(_) => TARGET_METADATA,
            StreamsKey::TargetMember(..) => TARGET_MEMBER,
            StreamsKey::CurrentAssignment(..) => CURRENT_ASSIGNMENT,
        }
    }

    pub fn encode(&self) -> Bytes {
        let member = match self {
            StreamsKey::Member(_, m)
            | StreamsKey::TargetMember(_, m)
            | StreamsKey::CurrentAssignment(_, m) => Some(m.as_str()),
            _ => None,
        };
        encode_group_key(self.kind(), self.group(), member)
    }
}

/// The key of record type `kind` (one of [`TYPES`]) from its fields.
pub fn decode_key(kind: i16, r: &mut FieldReader) -> Result<StreamsKey, SchemaError> {
    let group = r.string("group")?;
    let mut member = || r.string("member id");
    Ok(match kind {
        METADATA => StreamsKey::Metadata(group),
        TOPOLOGY => StreamsKey::Topology(group),
        TARGET_METADATA => StreamsKey::TargetMetadata(group),
        MEMBER_METADATA => StreamsKey::Member(group, member()?),
        TARGET_MEMBER => StreamsKey::TargetMember(group, member()?),
        CURRENT_ASSIGNMENT => StreamsKey::CurrentAssignment(group, member()?),
        other => return Err(format!("record type {other} is not a streams group's")),
    })
}

fn tag_with(tag: u32, write: impl FnOnce(&mut FieldWriter)) -> (u32, Bytes) {
    let mut body = FieldWriter::tag_body();
    write(&mut body);
    (tag, body.finish())
}

/// A tagged `i32` that Kafka writes only when it is not its default of -1.
fn tag_epoch(tags: &mut Vec<(u32, Bytes)>, tag: u32, v: i32) {
    if v != -1 {
        tags.push(tag_with(tag, |w| w.i32(v)));
    }
}

fn write_array<T>(w: &mut FieldWriter, items: &[T], mut each: impl FnMut(&mut FieldWriter, &T)) {
    w.array_len(Some(items.len()));
    for item in items {
        each(w, item);
    }
}

fn write_pairs(w: &mut FieldWriter, pairs: &[(String, String)]) {
    write_array(w, pairs, |w, (k, v)| {
        w.string(k);
        w.string(v);
        w.tagged_fields(&[]);
    });
}

fn write_tasks(w: &mut FieldWriter, tasks: &[TaskIds]) {
    write_array(w, tasks, |w, t| {
        w.string(&t.subtopology);
        write_array(w, &t.partitions, |w, p| w.i32(*p));
        match &t.assignment_epochs {
            None => w.tagged_fields(&[]),
            Some(epochs) => {
                w.tagged_fields(&[tag_with(0, |b| write_array(b, epochs, |b, e| b.i32(*e)))])
            }
        }
    });
}

fn write_task_lists(w: &mut FieldWriter, lists: &TaskLists) {
    write_tasks(w, &lists.active);
    write_tasks(w, &lists.standby);
    write_tasks(w, &lists.warmup);
}

fn write_topic_info(w: &mut FieldWriter, t: &TopicInfo) {
    w.string(&t.name);
    w.i32(t.partitions);
    w.i16(t.replication_factor);
    write_pairs(w, &t.configs);
    w.tagged_fields(&[]);
}

fn write_subtopology(w: &mut FieldWriter, s: &Subtopology) {
    w.string(&s.id);
    write_array(w, &s.source_topics, |w, t| w.string(t));
    write_array(w, &s.source_topic_regex, |w, t| w.string(t));
    write_array(w, &s.state_changelog_topics, write_topic_info);
    write_array(w, &s.repartition_sink_topics, |w, t| w.string(t));
    write_array(w, &s.repartition_source_topics, write_topic_info);
    write_array(w, &s.copartition_groups, |w, g| {
        for indexes in [
            &g.source_topics,
            &g.source_topic_regex,
            &g.repartition_source_topics,
        ] {
            write_array(w, indexes, |w, i| w.i16(*i));
        }
        w.tagged_fields(&[]);
    });
    w.tagged_fields(&[]);
}

pub fn encode_value(value: &StreamsValue) -> Bytes {
    let mut w = FieldWriter::prefixed(0, true);
    let mut tags = Vec::new();
    match value {
        StreamsValue::Metadata(m) => {
            w.i32(m.epoch);
            w.i64(m.metadata_hash);
            tag_epoch(&mut tags, 0, m.validated_topology_epoch);
            if let Some(configs) = &m.last_assignment_configs {
                tags.push(tag_with(1, |b| write_pairs(b, configs)));
            }
            tag_epoch(&mut tags, 2, m.stored_description_topology_epoch);
            tag_epoch(&mut tags, 3, m.failed_description_topology_epoch);
        }
        StreamsValue::Topology {
            epoch,
            subtopologies,
        } => {
            w.i32(*epoch);
            write_array(&mut w, subtopologies, write_subtopology);
        }
        StreamsValue::Member(m) => {
            w.nullable_string(m.instance_id.as_deref());
            w.nullable_string(m.rack_id.as_deref());
            w.string(&m.client_id);
            w.string(&m.client_host);
            w.i32(m.rebalance_timeout_ms);
            w.i32(m.topology_epoch);
            w.string(&m.process_id);
            match &m.user_endpoint {
                None => w.i8(-1),
                Some((host, port)) => {
                    w.i8(1);
                    w.string(host);
                    w.i16(*port as i16);
                    w.tagged_fields(&[]);
                }
            }
            write_pairs(&mut w, &m.client_tags);
        }
        StreamsValue::TargetMetadata {
            assignment_epoch,
            timestamp,
        } => {
            w.i32(*assignment_epoch);
            if *timestamp != 0 {
                tags.push(tag_with(0, |b| b.i64(*timestamp)));
            }
        }
        StreamsValue::TargetMember(lists) => write_task_lists(&mut w, lists),
        StreamsValue::CurrentAssignment(c) => {
            w.i32(c.member_epoch);
            w.i32(c.previous_member_epoch);
            w.i8(c.state);
            write_task_lists(&mut w, &c.assigned);
            write_task_lists(&mut w, &c.pending_revocation);
        }
    }
    w.tagged_fields(&tags);
    w.finish()
}

fn read_array<T>(
    r: &mut FieldReader,
    what: &str,
    mut each: impl FnMut(&mut FieldReader) -> Result<T, SchemaError>,
) -> Result<Vec<T>, SchemaError> {
    let len = r.array_len(what)?.unwrap_or(0);
    let mut items = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        items.push(each(r)?);
    }
    Ok(items)
}

fn read_strings(r: &mut FieldReader, what: &str) -> Result<Vec<String>, SchemaError> {
    read_array(r, what, |r| r.string(what))
}

/// Key-value pairs; each is a struct that ends with (ignored) tagged fields.
fn read_pairs(r: &mut FieldReader, what: &str) -> Result<Vec<(String, String)>, SchemaError> {
    read_array(r, what, |r| {
        let pair = (r.string("key")?, r.string("value")?);
        r.tagged_fields()?;
        Ok(pair)
    })
}

fn tagged_epoch(tags: &[(u32, Bytes)], tag: u32, what: &str) -> Result<i32, SchemaError> {
    match tagged(tags, tag) {
        Some(mut r) => r.i32(what),
        None => Ok(-1),
    }
}

fn read_tasks(r: &mut FieldReader) -> Result<Vec<TaskIds>, SchemaError> {
    read_array(r, "tasks", |r| {
        let subtopology = r.string("subtopology id")?;
        let partitions = read_array(r, "partitions", |r| r.i32("partition"))?;
        let tags = r.tagged_fields()?;
        let assignment_epochs = match tagged(&tags, 0) {
            Some(mut t) => Some(read_array(&mut t, "assignment epochs", |t| {
                t.i32("assignment epoch")
            })?),
            None => None,
        };
        Ok(TaskIds {
            subtopology,
            partitions,
            assignment_epochs,
        })
    })
}

fn read_task_lists(r: &mut FieldReader) -> Result<TaskLists, SchemaError> {
    Ok(TaskLists {
        active: read_tasks(r)?,
        standby: read_tasks(r)?,
        warmup: read_tasks(r)?,
    })
}

fn read_topic_info(r: &mut FieldReader) -> Result<TopicInfo, SchemaError> {
    let info = TopicInfo {
        name: r.string("topic name")?,
        partitions: r.i32("partitions")?,
        replication_factor: r.i16("replication factor")?,
        configs: read_pairs(r, "topic configs")?,
    };
    r.tagged_fields()?;
    Ok(info)
}

fn read_subtopology(r: &mut FieldReader) -> Result<Subtopology, SchemaError> {
    let s = Subtopology {
        id: r.string("subtopology id")?,
        source_topics: read_strings(r, "source topics")?,
        source_topic_regex: read_strings(r, "source topic regex")?,
        state_changelog_topics: read_array(r, "changelog topics", read_topic_info)?,
        repartition_sink_topics: read_strings(r, "repartition sink topics")?,
        repartition_source_topics: read_array(r, "repartition source topics", read_topic_info)?,
        copartition_groups: read_array(r, "copartition groups", |r| {
            let mut indexes = || read_array(r, "copartition indexes", |r| r.i16("index"));
            let group = CopartitionGroup {
                source_topics: indexes()?,
                source_topic_regex: indexes()?,
                repartition_source_topics: indexes()?,
            };
            r.tagged_fields()?;
            Ok(group)
        })?,
    };
    r.tagged_fields()?;
    Ok(s)
}

fn read_member(r: &mut FieldReader) -> Result<MemberValue, SchemaError> {
    Ok(MemberValue {
        instance_id: r.nullable_string("instance id")?,
        rack_id: r.nullable_string("rack id")?,
        client_id: r.string("client id")?,
        client_host: r.string("client host")?,
        rebalance_timeout_ms: r.i32("rebalance timeout")?,
        topology_epoch: r.i32("topology epoch")?,
        process_id: r.string("process id")?,
        user_endpoint: match r.i8("user endpoint")? {
            -1 => None,
            1 => {
                let host = r.string("endpoint host")?;
                let port = r.i16("endpoint port")? as u16;
                r.tagged_fields()?;
                Some((host, port))
            }
            other => return Err(format!("user endpoint marker {other}")),
        },
        client_tags: read_pairs(r, "client tags")?,
    })
}

pub fn decode_value(key: &StreamsKey, bytes: &Bytes) -> Result<StreamsValue, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if version != 0 {
        return Err(format!(
            "unknown version {version} of a streams group record"
        ));
    }
    let mut r = FieldReader::new(rest, true);
    let value = match key {
        StreamsKey::Metadata(_) => {
            let epoch = r.i32("epoch")?;
            let metadata_hash = r.i64("metadata hash")?;
            let tags = r.tagged_fields()?;
            r.finish("StreamsGroupMetadataValue")?;
            let last_assignment_configs = match tagged(&tags, 1) {
                Some(mut t) => Some(read_pairs(&mut t, "last assignment configs")?),
                None => None,
            };
            return Ok(StreamsValue::Metadata(MetadataValue {
                epoch,
                metadata_hash,
                validated_topology_epoch: tagged_epoch(&tags, 0, "validated topology epoch")?,
                last_assignment_configs,
                stored_description_topology_epoch: tagged_epoch(&tags, 2, "stored epoch")?,
                failed_description_topology_epoch: tagged_epoch(&tags, 3, "failed epoch")?,
            }));
        }
        StreamsKey::TargetMetadata(_) => {
            let (assignment_epoch, timestamp) =
                epoch_and_tag(r, "assignment epoch", "assignment timestamp")?;
            return Ok(StreamsValue::TargetMetadata {
                assignment_epoch,
                timestamp,
            });
        }
        StreamsKey::Topology(_) => StreamsValue::Topology {
            epoch: r.i32("topology epoch")?,
            subtopologies: read_array(&mut r, "subtopologies", read_subtopology)?,
        },
        StreamsKey::Member(..) => StreamsValue::Member(read_member(&mut r)?),
        StreamsKey::TargetMember(..) => StreamsValue::TargetMember(read_task_lists(&mut r)?),
        StreamsKey::CurrentAssignment(..) => StreamsValue::CurrentAssignment(CurrentValue {
            member_epoch: r.i32("member epoch")?,
            previous_member_epoch: r.i32("previous member epoch")?,
            state: r.i8("state")?,
            assigned: read_task_lists(&mut r)?,
            pending_revocation: read_task_lists(&mut r)?,
        }),
    };
    r.tagged_fields()?;
    r.finish("streams group record")?;
    Ok(value)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
