//! Group state on disk: the internal topic `__consumer_offsets`, written and replayed
//! through the ordinary partition logs.
//!
//! A group lives in partition `abs(java_hash(group_id)) % partitions`, as in Kafka, so its
//! records keep their order. Each record is a key/value pair in a RecordBatch v2, in Kafka's
//! own format ([`super::records`]): `OffsetCommitKey`/`OffsetCommitValue` for a committed
//! offset, `GroupMetadataKey`/`GroupMetadataValue` for a group's membership; a null value is a
//! tombstone (the offset, or the group's membership, is deleted). KIP-848 consumer groups have
//! records of their own ([`super::consumer::records`]), as do streams
//! ([`super::streams::records`]) and share groups ([`super::share::records`]). Records of
//! the JSON format earlier samsa wrote are still read ([`super::legacy`]).
//!
//! Replay applies records in log order; the last value of a key wins. Batches are checked by
//! the storage layer's CRC like every other partition's.
//!
//! TxnOffsetCommit offsets are offset records in a transactional batch (the producer's id,
//! epoch and next sequence in the batch header). They only count once the transaction
//! coordinator's commit marker follows in the same partition: a control batch whose one
//! record has the key `i16` version (0), `i16` type (0 abort, 1 commit).

use std::sync::Arc;

use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::consumer::records::{self as consumer_records, ConsumerKey, ConsumerValue};
use super::legacy::{self, LegacyKey, LegacyRecord};
use super::records::{self, RecordKey};
use super::share::records::{self as share_records, ShareKey, ShareValue};
use super::state::CommittedOffset;
use super::streams::records::{self as streams_records, StreamsKey, StreamsValue};
use crate::error::{BrokerError, Result};
use crate::lock_order::{level, OrderedMutex};
use crate::topics::internal::{self, Appended, InternalTopic};
use crate::topics::{Isolation, Partition, TopicRegistry};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Control record types (Kafka's `ControlRecordType`).
const ABORT_MARKER: i16 = 0;
const COMMIT_MARKER: i16 = 1;
/// How much of the log one replay read takes.
const REPLAY_CHUNK: usize = 1024 * 1024;

/// Which offset a record is of (short field names: they were the earlier JSON keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetKey {
    pub g: String,
    pub t: String,
    pub p: i32,
}

/// A group's membership after a completed rebalance (or its emptiness), enough to let
/// members carry on after a restart without rebalancing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// The member's metadata for the group's protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// One record to write: a key and a value, or a tombstone.
pub enum Entry {
    Offset(OffsetKey, Option<CommittedOffset>),
    Group(String, Option<GroupRecord>),
    /// A KIP-848 consumer group's record.
    Consumer(ConsumerKey, Option<ConsumerValue>),
    /// A KIP-1071 streams group's record.
    Streams(StreamsKey, Option<StreamsValue>),
    /// A KIP-932 share group's record.
    Share(ShareKey, Option<ShareValue>),
    /// The tombstone of a key in the earlier JSON format, once its state is rewritten.
    LegacyTombstone(LegacyKey),
}

/// One record read back.
pub enum Replayed {
    Offset(OffsetKey, Option<CommittedOffset>),
    Group(String, Option<GroupRecord>),
    Consumer(ConsumerKey, Option<ConsumerValue>),
    Streams(StreamsKey, Option<StreamsValue>),
    Share(ShareKey, Option<ShareValue>),
    /// The end of `producer_id`'s transaction in this partition.
    TxnEnd {
        producer_id: i64,
        commit: bool,
    },
}

/// A replayed record and where it was.
pub struct ReplayedRecord {
    pub partition: i32,
    /// Its offset in the partition: a later commit of the same key supersedes an earlier one.
    pub offset: i64,
    /// The producer of a transactional record, whose marker decides whether it counts.
    pub producer_id: Option<i64>,
    pub entry: Replayed,
    /// Written by earlier samsa, in JSON: to be rewritten in Kafka's format.
    pub legacy: bool,
}

/// The producer a transactional batch is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The offsets topic, as the group coordinator writes and replays it.
pub struct OffsetsStore {
    topic: InternalTopic,
    /// Transactional appends read the producer's last sequence and then write the next one;
    /// this keeps two of them from picking the same.
    txn_append: OrderedMutex<level::TxnAppend, ()>,
}

impl OffsetsStore {
    pub fn new(topics: Arc<TopicRegistry>, num_partitions: i32) -> OffsetsStore {
        OffsetsStore {
            topic: InternalTopic::new(topics, OFFSETS_TOPIC, num_partitions),
            txn_append: OrderedMutex::new(()),
        }
    }

    /// Where the topic is, and which of its partitions holds a group.
    pub fn topic(&self) -> &InternalTopic {
        &self.topic
    }

    /// Appends `entries` of one group as one batch; `None` when there is nothing to write.
    pub fn append(&self, group: &str, entries: &[Entry], now_ms: i64) -> Result<Option<Appended>> {
        self.append_batch(group, entries, None, now_ms)
    }

    /// Appends `entries` as one batch of `producer`'s open transaction.
    pub fn append_transactional(
        &self,
        group: &str,
        entries: &[Entry],
        producer: TxnProducer,
        now_ms: i64,
    ) -> Result<Option<Appended>> {
        self.append_batch(group, entries, Some(producer), now_ms)
    }

    fn append_batch(
        &self,
        group: &str,
        entries: &[Entry],
        producer: Option<TxnProducer>,
        now_ms: i64,
    ) -> Result<Option<Appended>> {
        if entries.is_empty() {
            return Ok(None);
        }
        let partition = self.topic.partition_to_write(group)?;
        let _serial = producer.map(|_| self.txn_append.lock());
        let (sequence, producer) = match producer {
            Some(p) => (next_sequence(&partition, p)?, p),
            None => (
                -1,
                TxnProducer {
                    producer_id: -1,
                    producer_epoch: -1,
                },
            ),
        };
        let topic_id = |name: &str| {
            self.topic
                .registry()
                .get(name)
                .map_or(Uuid::nil(), |t| t.id)
        };
        let records = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut record = encode_entry(entry, i as i64, now_ms, topic_id)?;
                if producer.producer_id >= 0 {
                    record.transactional = true;
                    record.producer_id = producer.producer_id;
                    record.producer_epoch = producer.producer_epoch;
                    record.sequence = sequence.wrapping_add(i as i32);
                }
                Ok(record)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = internal::encode_batch(&records, "offsets batch")?;
        let info = partition.append_blocking(batch, now_ms)?;
        Ok(Some(Appended::new(
            partition,
            info.base_offset,
            info.last_offset + 1,
        )))
    }

    /// Every record of partition `index`, in log order, up to the log end: a new leader's
    /// high watermark may still be behind records its predecessor committed (Kafka loads to
    /// the log end too).
    pub fn replay(&self, index: i32, mut apply: impl FnMut(ReplayedRecord)) -> Result<usize> {
        let mut count = 0;
        let partition = self.topic.partition(index)?;
        let mut offset = partition.offsets()?.log_start;
        loop {
            let read = partition.read(offset, REPLAY_CHUNK, Isolation::LogEnd)?;
            if read.records.is_empty() {
                break;
            }
            let mut next = offset.max(internal::end_of_batches(&read.records));
            let mut bytes = read.records;
            let sets = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| {
                BrokerError::InvalidRecord(format!("cannot decode offsets batch: {e}"))
            })?;
            for record in sets.into_iter().flat_map(|s| s.records) {
                next = next.max(record.offset + 1);
                if record.offset < offset {
                    continue;
                }
                let decoded = if record.control {
                    decode_marker(&record).map(|m| m.map(|entry| (entry, false)))
                } else {
                    decode_entry(&record)
                };
                match decoded {
                    Ok(Some((entry, legacy))) => {
                        apply(ReplayedRecord {
                            partition: index,
                            offset: record.offset,
                            producer_id: record.transactional.then_some(record.producer_id),
                            entry,
                            legacy,
                        });
                        count += 1;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(offset = record.offset, "skipping offsets record: {err}")
                    }
                }
            }
            if next == offset {
                break;
            }
            offset = next;
        }
        Ok(count)
    }
}

/// The sequence `producer`'s next batch in `partition` starts at: one past its last, or 0
/// for a producer (or epoch) the partition has not seen, as the storage expects.
fn next_sequence(partition: &Partition, producer: TxnProducer) -> Result<i32> {
    let known = partition.producers()?.into_iter().find(|p| {
        p.producer_id == producer.producer_id && p.producer_epoch == producer.producer_epoch
    });
    Ok(match known {
        Some(p) if p.last_sequence >= 0 => p.last_sequence.wrapping_add(1) & i32::MAX,
        _ => 0,
    })
}

/// `entry` as a record in Kafka's format; `topic_id` names a topic's id (nil if unknown),
/// which Kafka 4.4 writes with each offset.
fn encode_entry(
    entry: &Entry,
    offset: i64,
    now_ms: i64,
    topic_id: impl Fn(&str) -> Uuid,
) -> Result<Record> {
    let (key, value) = match entry {
        Entry::Offset(key, value) => (
            records::encode_key(&RecordKey::Offset {
                group: key.g.clone(),
                topic: key.t.clone(),
                partition: key.p,
            }),
            value
                .as_ref()
                .map(|v| records::encode_offset_value(v, topic_id(&key.t))),
        ),
        Entry::Group(group, value) => (
            records::encode_key(&RecordKey::Group(group.clone())),
            value.as_ref().map(records::encode_group_value),
        ),
        Entry::Consumer(key, value) => (
            key.encode(),
            value.as_ref().map(consumer_records::encode_value),
        ),
        Entry::Streams(key, value) => (
            key.encode(),
            value.as_ref().map(streams_records::encode_value),
        ),
        Entry::Share(key, value) => (
            key.encode(),
            value.as_ref().map(share_records::encode_value),
        ),
        Entry::LegacyTombstone(key) => (key.encode()?, None),
    };
    Ok(internal::record(key, value, offset, now_ms))
}

/// A control record: a transaction's commit or abort marker. Other control types (none
/// are written to this topic today) are skipped.
fn decode_marker(record: &Record) -> std::result::Result<Option<Replayed>, String> {
    let key = record.key.as_ref().ok_or("control record without a key")?;
    if key.len() < 4 {
        return Err("control record key shorter than version and type".into());
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        COMMIT_MARKER => true,
        ABORT_MARKER => false,
        _ => return Ok(None),
    };
    Ok(Some(Replayed::TxnEnd {
        producer_id: record.producer_id,
        commit,
    }))
}

/// A record and whether it is in the earlier JSON format; `None` for a record of a type this
/// coordinator does not read (logged).
fn decode_entry(record: &Record) -> std::result::Result<Option<(Replayed, bool)>, String> {
    let Some(key) = &record.key else {
        return Ok(None);
    };
    let value = record.value.as_ref();
    match records::decode_key(key) {
        Ok(RecordKey::Offset {
            group,
            topic,
            partition,
        }) => {
            let value = value
                .map(records::decode_offset_value)
                .transpose()?
                .map(|(v, _topic_id)| v);
            let key = OffsetKey {
                g: group,
                t: topic,
                p: partition,
            };
            Ok(Some((Replayed::Offset(key, value), false)))
        }
        Ok(RecordKey::Group(group)) => {
            let value = value.map(records::decode_group_value).transpose()?;
            Ok(Some((Replayed::Group(group, value), false)))
        }
        Ok(RecordKey::Consumer(key)) => {
            let value = value
                .map(|v| consumer_records::decode_value(&key, v))
                .transpose()?;
            Ok(Some((Replayed::Consumer(key, value), false)))
        }
        Ok(RecordKey::Streams(key)) => {
            let value = value
                .map(|v| streams_records::decode_value(&key, v))
                .transpose()?;
            Ok(Some((Replayed::Streams(key, value), false)))
        }
        Ok(RecordKey::Share(key)) => {
            let value = value
                .map(|v| share_records::decode_value(&key, v))
                .transpose()?;
            Ok(Some((Replayed::Share(key, value), false)))
        }
        Ok(RecordKey::Other(kind)) => {
            tracing::info!(
                offset = record.offset,
                record_type = kind,
                "skipping an offsets record of a type this coordinator does not read"
            );
            Ok(None)
        }
        Err(kafka_err) => match legacy::decode(key, value) {
            Ok(LegacyRecord::Offset(key, value)) => Ok(Some((Replayed::Offset(key, value), true))),
            Ok(LegacyRecord::Group(group, value)) => {
                Ok(Some((Replayed::Group(group, value), true)))
            }
            Err(json_err) => Err(format!("{kafka_err}; nor a JSON record: {json_err}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn entries_round_trip_through_a_batch() {
        let key = OffsetKey {
            g: "g".into(),
            t: "t".into(),
            p: 3,
        };
        let value = CommittedOffset {
            offset: 42,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_timestamp: 7,
            expire_timestamp: None,
            record_offset: 0,
        };
        let entries = [
            Entry::Offset(key.clone(), Some(value.clone())),
            Entry::Offset(key.clone(), None),
            Entry::Group("g".into(), None),
        ];
        let records: Vec<Record> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| encode_entry(e, i as i64, 1, |_| Uuid::nil()).unwrap())
            .collect();
        let decoded: Vec<Replayed> = records
            .iter()
            .map(|r| {
                let (entry, legacy) = decode_entry(r).unwrap().unwrap();
                assert!(!legacy);
                entry
            })
            .collect();
        assert!(matches!(&decoded[0], Replayed::Offset(k, Some(v)) if *k == key && *v == value));
        assert!(matches!(&decoded[1], Replayed::Offset(k, None) if *k == key));
        assert!(matches!(&decoded[2], Replayed::Group(g, None) if g == "g"));
    }

    #[test]
    fn records_of_other_types_are_skipped_and_json_ones_read() {
        // A record type no coordinator of Kafka 4.4 writes: not read, no error.
        let key = Bytes::from_static(&[0, 99, 0, 1, b'g']);
        let record = internal::record(key, Some(Bytes::from_static(&[0, 0, 1])), 0, 0);
        assert!(matches!(decode_entry(&record), Ok(None)));
        // Earlier samsa's JSON offset, read and flagged for rewriting.
        let json = legacy::encode(&LegacyRecord::Offset(
            OffsetKey {
                g: "g".into(),
                t: "t".into(),
                p: 1,
            },
            None,
        ));
        let record = internal::record(json.0, json.1, 0, 0);
        assert!(matches!(
            decode_entry(&record),
            Ok(Some((Replayed::Offset(k, None), true))) if k.p == 1
        ));
        // Neither format: an error the replay logs and skips.
        let record = internal::record(Bytes::from_static(&[0, 1, 0]), None, 0, 0);
        assert!(decode_entry(&record).is_err());
    }

    #[test]
    fn markers_are_read_from_control_records() {
        let marker = |kind: i16| {
            let mut key = bytes::BytesMut::new();
            bytes::BufMut::put_i16(&mut key, 0);
            bytes::BufMut::put_i16(&mut key, kind);
            let mut record = internal::record(key.freeze(), None, 4, 0);
            record.transactional = true;
            record.control = true;
            record.producer_id = 9;
            record.producer_epoch = 1;
            record
        };
        let ends = |kind| match decode_marker(&marker(kind)) {
            Ok(Some(Replayed::TxnEnd {
                producer_id: 9,
                commit,
            })) => Some(commit),
            _ => None,
        };
        assert_eq!(ends(COMMIT_MARKER), Some(true));
        assert_eq!(ends(ABORT_MARKER), Some(false));
        assert_eq!(ends(7), None);
    }
}
