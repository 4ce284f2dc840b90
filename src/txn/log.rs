//! Coordinator state on disk: the internal compacted topic `__transaction_state`, written
//! and replayed through the ordinary partition logs, as Kafka keeps it.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % partitions` (the rule that
//! places groups), so its records keep their order, and the leader of that partition is its
//! coordinator. Each record, in a RecordBatch v2, is in Kafka's own format
//! ([`super::records`]): `TransactionLogKey`, `TransactionLogValue`; a null value is a
//! tombstone: the id expired.
//!
//! Earlier samsa wrote another format, still read: key `i16` version 1 then the id in UTF-8,
//! value `i16` version 1 then a JSON [`TxnMetadata`]. A load rewrites such ids in Kafka's
//! format and tombstones their old keys (see `load.rs`).
//!
//! Replay applies records in log order; the last value of an id wins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::Record;

use super::records;
use super::state::TxnMetadata;
use crate::error::Result;
use crate::topics::internal::{self, Appended, InternalTopic};
use crate::topics::TopicRegistry;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The key and value version of the earlier JSON records.
const LEGACY_VERSION: i16 = 1;

pub struct TxnLog {
    topic: InternalTopic,
}

/// What a replay of one partition found.
#[derive(Default)]
pub struct Replayed {
    /// The last state of every id that has not expired.
    pub txns: HashMap<String, TxnMetadata>,
    /// The ids whose last record in the earlier JSON format is a value: their key needs a
    /// tombstone.
    pub legacy: HashSet<String>,
}

impl TxnLog {
    pub fn new(topics: Arc<TopicRegistry>, num_partitions: i32) -> TxnLog {
        TxnLog {
            topic: InternalTopic::new(topics, TRANSACTION_STATE_TOPIC, num_partitions),
        }
    }

    /// Where the topic is, and which of its partitions holds a transactional id.
    pub fn topic(&self) -> &InternalTopic {
        &self.topic
    }

    /// Appends `id`'s new state (`None`: a tombstone), in the leader's log from now on.
    pub fn write(&self, id: &str, metadata: Option<&TxnMetadata>, now_ms: i64) -> Result<Appended> {
        self.append(id, &[record_of(id, metadata, 0, now_ms)], now_ms)
    }

    /// Writes `id`'s state (`None`: it has expired) in Kafka's format after a tombstone of
    /// its key in the earlier format, in one batch: replayed, the tombstone deletes what the
    /// record after it restores.
    pub fn rewrite_legacy(
        &self,
        id: &str,
        metadata: Option<&TxnMetadata>,
        now_ms: i64,
    ) -> Result<Appended> {
        let mut records = vec![internal::record(legacy_key(id), None, 0, now_ms)];
        if metadata.is_some() {
            records.push(record_of(id, metadata, 1, now_ms));
        }
        self.append(id, &records, now_ms)
    }

    fn append(&self, id: &str, records: &[Record], now_ms: i64) -> Result<Appended> {
        let batch = internal::encode_batch(records, "transaction state")?;
        let partition = self.topic.partition_to_write(id)?;
        let info = partition.append_blocking(batch, now_ms)?;
        Ok(Appended::new(
            partition,
            info.base_offset,
            info.last_offset + 1,
        ))
    }

    /// The last state of every id in partition `index` that has not expired, read up to the
    /// log end: a new leader's high watermark may still be behind records its predecessor
    /// committed.
    pub fn replay(&self, index: i32) -> Result<Replayed> {
        let mut txns = Replayed::default();
        let partition = self.topic.partition(index)?;
        internal::replay(&partition, "transaction state", |r| apply(&mut txns, r))?;
        Ok(txns)
    }
}

/// `id`'s record in Kafka's format at `offset` in its batch.
fn record_of(id: &str, metadata: Option<&TxnMetadata>, offset: i64, now_ms: i64) -> Record {
    let value = metadata.map(|m| records::encode_value(&records::value_of(m)));
    internal::record(records::encode_key(id), value, offset, now_ms)
}

/// `id`'s key in the earlier format.
fn legacy_key(id: &str) -> Bytes {
    let mut key = BytesMut::new();
    key.put_i16(LEGACY_VERSION);
    key.put_slice(id.as_bytes());
    key.freeze()
}

fn apply(replayed: &mut Replayed, record: &Record) {
    let Some(key) = record.key.as_ref() else {
        return;
    };
    let (id, value) = match records::decode_key(key) {
        Ok(id) => {
            let value = record
                .value
                .as_ref()
                .map(|v| records::decode_value(v).and_then(|v| records::metadata_of(&v)));
            (id, value)
        }
        Err(err) => {
            let Some(id) = versioned(key, LEGACY_VERSION) else {
                tracing::warn!(
                    offset = record.offset,
                    "skipping transaction state record with an unknown key: {err}"
                );
                return;
            };
            let id = String::from_utf8_lossy(id).into_owned();
            let value = record.value.as_ref().map(|v| {
                versioned(v, LEGACY_VERSION)
                    .ok_or_else(|| "unknown value version".to_owned())
                    .and_then(|json| {
                        serde_json::from_slice::<TxnMetadata>(json).map_err(|e| e.to_string())
                    })
            });
            if value.is_some() {
                replayed.legacy.insert(id.clone());
            } else {
                replayed.legacy.remove(&id);
            }
            (id, value)
        }
    };
    match value {
        None => {
            replayed.txns.remove(&id);
        }
        Some(Ok(metadata)) => {
            replayed.txns.insert(id, metadata);
        }
        Some(Err(err)) => tracing::warn!(
            offset = record.offset,
            "skipping undecodable transaction state of {id}: {err}"
        ),
    }
}

/// The bytes after a big-endian `i16` version, if it is `version`.
fn versioned(bytes: &Bytes, version: i16) -> Option<&[u8]> {
    let (head, rest) = bytes.split_at_checked(2)?;
    (i16::from_be_bytes([head[0], head[1]]) == version).then_some(rest)
}
