//! The records of `__share_group_state` in Kafka 4.4's format (`ShareSnapshotKey`/`Value`,
//! `ShareUpdateKey`/`Value` in `kafka-share-coordinator-4.4.0.jar`), so Kafka's
//! `kafka-dump-log --share-group-state-decoder` reads samsa's segments.
//!
//! Key: `i16` record type (0 snapshot, 1 update), then, not flexible, the group id (`i16`
//! length and UTF-8), the topic id (16 bytes) and the partition (`i32`). A snapshot key with
//! a null value is a tombstone: the share-partition's state was deleted.
//!
//! Value: `i16` version 0, then flexible fields. A snapshot holds the whole state: snapshot
//! epoch, state epoch, leader epoch, start offset, create and write timestamps, the state
//! batches (compact array of first offset `i64`, last offset `i64`, delivery state `i8`,
//! delivery count `i16`, each with empty tagged fields). An update holds the snapshot epoch,
//! the leader epoch, the start offset (-1: unchanged) and the batches it changed. Both carry
//! the delivery complete count (KIP-1226) as tagged field 0, written only when it is not -1.

use bytes::Bytes;

use super::state::{SharePartitionKey, StateBatch};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

/// The record types of `__share_group_state` (Kafka's `CoordinatorRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Snapshot = 0,
    Update = 1,
}

const VALUE_VERSION: i16 = 0;
const DELIVERY_COMPLETE_COUNT_TAG: u32 = 0;

/// A share-partition's state as a record holds it (Kafka's `ShareGroupOffset`). An update
/// has no state epoch nor timestamps: they read as 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareOffsets {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
    pub create_timestamp: i64,
    pub write_timestamp: i64,
}

pub fn encode_key(kind: RecordType, key: &SharePartitionKey) -> Bytes {
    let mut w = FieldWriter::prefixed(kind as i16, false);
    w.string(&key.group_id);
    w.uuid(key.topic_id);
    w.i32(key.partition);
    w.finish()
}

pub fn decode_key(bytes: &Bytes) -> Result<(RecordType, SharePartitionKey), SchemaError> {
    let (kind, rest) = FieldReader::prefixed(bytes)?;
    let kind = match kind {
        0 => RecordType::Snapshot,
        1 => RecordType::Update,
        other => return Err(format!("unknown share state record type {other}")),
    };
    let mut r = FieldReader::new(rest, false);
    let key = SharePartitionKey {
        group_id: r.string("group id")?,
        topic_id: r.uuid("topic id")?,
        partition: r.i32("partition")?,
    };
    r.finish("share state key")?;
    Ok((kind, key))
}

pub fn encode_value(kind: RecordType, v: &ShareOffsets) -> Bytes {
    let mut w = FieldWriter::prefixed(VALUE_VERSION, true);
    w.i32(v.snapshot_epoch);
    if kind == RecordType::Snapshot {
        w.i32(v.state_epoch);
    }
    w.i32(v.leader_epoch);
    w.i64(v.start_offset);
    if kind == RecordType::Snapshot {
        w.i64(v.create_timestamp);
        w.i64(v.write_timestamp);
    }
    w.array_len(Some(v.batches.len()));
    for b in &v.batches {
        w.i64(b.first_offset);
        w.i64(b.last_offset);
        w.i8(b.delivery_state);
        w.i16(b.delivery_count);
        w.tagged_fields(&[]);
    }
    if v.delivery_complete_count == -1 {
        w.tagged_fields(&[]);
    } else {
        let mut body = FieldWriter::tag_body();
        body.i32(v.delivery_complete_count);
        w.tagged_fields(&[(DELIVERY_COMPLETE_COUNT_TAG, body.finish())]);
    }
    w.finish()
}

pub fn decode_value(kind: RecordType, bytes: &Bytes) -> Result<ShareOffsets, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if version != VALUE_VERSION {
        return Err(format!("unknown share state value version {version}"));
    }
    let mut r = FieldReader::new(rest, true);
    let mut v = ShareOffsets {
        snapshot_epoch: r.i32("snapshot epoch")?,
        ..ShareOffsets::default()
    };
    if kind == RecordType::Snapshot {
        v.state_epoch = r.i32("state epoch")?;
    }
    v.leader_epoch = r.i32("leader epoch")?;
    v.start_offset = r.i64("start offset")?;
    if kind == RecordType::Snapshot {
        v.create_timestamp = r.i64("create timestamp")?;
        v.write_timestamp = r.i64("write timestamp")?;
    }
    let count = r.array_len("state batches")?.unwrap_or(0);
    for _ in 0..count {
        v.batches.push(StateBatch {
            first_offset: r.i64("first offset")?,
            last_offset: r.i64("last offset")?,
            delivery_state: r.i8("delivery state")?,
            delivery_count: r.i16("delivery count")?,
        });
        r.tagged_fields()?;
    }
    v.delivery_complete_count = -1;
    for (tag, body) in r.tagged_fields()? {
        if tag == DELIVERY_COMPLETE_COUNT_TAG {
            let mut t = FieldReader::new(body, true);
            v.delivery_complete_count = t.i32("delivery complete count")?;
        }
    }
    r.finish("share state value")?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        Bytes::from(
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>(),
        )
    }

    fn key() -> SharePartitionKey {
        SharePartitionKey {
            group_id: "g1".into(),
            topic_id: uuid::Uuid::from_u128(0x0102030405060708090a0b0c0d0e0f10),
            partition: 3,
        }
    }

    // The bytes Kafka 4.4's own serializer writes for the same records
    // (`ShareCoordinatorRecordSerde.serializeKey`/`serializeValue`, run in jshell over
    // Kafka's jars: `protocol-tests/fixtures/share-state/serde.jsh`).
    const SNAPSHOT_KEY: &str = "0000000267310102030405060708090a0b0c0d0e0f1000000003";
    const SNAPSHOT_VALUE: &str = "0000000000010000000200000005000000000000000a00000000000003e800000000000007d003000000000000000a000000000000000f0200010000000000000000100000000000000014000001000100040000002a";
    const UPDATE_VALUE: &str =
        "00000000000100000005000000000000001402000000000000001400000000000000180400030000";

    #[test]
    fn keys_are_kafkas() {
        let bytes = encode_key(RecordType::Snapshot, &key());
        assert_eq!(bytes, hex(SNAPSHOT_KEY));
        assert_eq!(decode_key(&bytes).unwrap(), (RecordType::Snapshot, key()));
        let update = encode_key(RecordType::Update, &key());
        assert_eq!(&update[..2], &[0, 1]);
        assert_eq!(decode_key(&update).unwrap(), (RecordType::Update, key()));
    }

    #[test]
    fn snapshots_are_kafkas() {
        let value = ShareOffsets {
            snapshot_epoch: 1,
            state_epoch: 2,
            leader_epoch: 5,
            start_offset: 10,
            delivery_complete_count: 42,
            batches: vec![
                StateBatch {
                    first_offset: 10,
                    last_offset: 15,
                    delivery_state: 2,
                    delivery_count: 1,
                },
                StateBatch {
                    first_offset: 16,
                    last_offset: 20,
                    delivery_state: 0,
                    delivery_count: 1,
                },
            ],
            create_timestamp: 1000,
            write_timestamp: 2000,
        };
        let bytes = encode_value(RecordType::Snapshot, &value);
        assert_eq!(bytes, hex(SNAPSHOT_VALUE));
        assert_eq!(decode_value(RecordType::Snapshot, &bytes).unwrap(), value);
    }

    #[test]
    fn updates_are_kafkas_and_leave_out_an_unknown_delivery_complete_count() {
        let value = ShareOffsets {
            snapshot_epoch: 1,
            leader_epoch: 5,
            start_offset: 20,
            delivery_complete_count: -1,
            batches: vec![StateBatch {
                first_offset: 20,
                last_offset: 24,
                delivery_state: 4,
                delivery_count: 3,
            }],
            ..ShareOffsets::default()
        };
        let bytes = encode_value(RecordType::Update, &value);
        assert_eq!(bytes, hex(UPDATE_VALUE));
        assert_eq!(decode_value(RecordType::Update, &bytes).unwrap(), value);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        for junk in ["", "00", "0002", "0000ffff", "000000"] {
            let _ = decode_key(&hex(junk));
            let _ = decode_value(RecordType::Snapshot, &hex(junk));
            let _ = decode_value(RecordType::Update, &hex(junk));
        }
        assert!(decode_key(&hex("0007")).is_err());
    }
}
