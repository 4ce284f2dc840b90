//! Coordinator state on disk: the internal compacted topic `__transaction_state`, written
//! and replayed through the ordinary partition logs, as Kafka keeps it.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % partitions` (the rule that
//! places groups), so its records keep their order, and the leader of that partition is its
//! coordinator. Each record, in a RecordBatch v2:
//!
//! - key: `i16` big-endian key version (`1`), then the transactional id in UTF-8;
//! - value: `i16` big-endian value version (`1`), then a JSON [`TxnMetadata`]; a null
//!   value is a tombstone: the id expired.
//!
//! Replay applies records in log order; the last value of an id wins.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use samsa_storage::BatchHeader;

use super::state::TxnMetadata;
use crate::error::Result;
use crate::topics::internal::{self, Appended, InternalTopic};
use crate::topics::{Isolation, TopicRegistry};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 1;
/// How much of a partition one replay read takes.
const REPLAY_CHUNK: usize = 1024 * 1024;

pub struct TxnLog {
    topic: InternalTopic,
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
        let mut key = BytesMut::new();
        key.put_i16(KEY_VERSION);
        key.put_slice(id.as_bytes());
        let value = metadata
            .map(|m| internal::versioned_json(VALUE_VERSION, m, "transaction state"))
            .transpose()?;
        let record = internal::record(key.freeze(), value, 0, now_ms);
        let batch = internal::encode_batch(&[record], "transaction state")?;
        let partition = self.topic.partition_to_write(id)?;
        let info = partition.append(batch, now_ms)?;
        Ok(Appended::new(
            partition,
            info.base_offset,
            info.last_offset + 1,
        ))
    }

    /// The last state of every id in partition `index` that has not expired, read up to the
    /// log end: a new leader's high watermark may still be behind records its predecessor
    /// committed.
    pub fn replay(&self, index: i32) -> Result<HashMap<String, TxnMetadata>> {
        let mut txns = HashMap::new();
        let partition = self.topic.partition(index)?;
        let mut offset = partition.offsets()?.log_start;
        loop {
            let read = partition.read(offset, REPLAY_CHUNK, Isolation::LogEnd)?;
            let mut rest = read.records;
            let before = offset;
            // Batch by batch: compaction leaves batches whose last offset is past their
            // last record, and the next read must start after the batch, not the record.
            while let Ok(header) = BatchHeader::parse(&rest) {
                if rest.len() < header.total_size() {
                    break;
                }
                let mut one = rest.split_to(header.total_size());
                offset = header.next_offset();
                match RecordBatchDecoder::decode(&mut one) {
                    Ok(set) => set.records.iter().for_each(|r| apply(&mut txns, r)),
                    Err(err) => tracing::warn!(
                        offset = header.base_offset,
                        "skipping transaction state batch: {err}"
                    ),
                }
            }
            if offset == before {
                break;
            }
        }
        Ok(txns)
    }
}

fn apply(txns: &mut HashMap<String, TxnMetadata>, record: &Record) {
    let Some(key) = record.key.as_ref().and_then(|k| versioned(k, KEY_VERSION)) else {
        tracing::warn!(
            offset = record.offset,
            "skipping transaction state record with an unknown key"
        );
        return;
    };
    let id = String::from_utf8_lossy(key).into_owned();
    match record.value.as_ref() {
        None => {
            txns.remove(&id);
        }
        Some(value) => {
            match versioned(value, VALUE_VERSION).map(serde_json::from_slice::<TxnMetadata>) {
                Some(Ok(metadata)) => {
                    txns.insert(id, metadata);
                }
                _ => tracing::warn!(
                    offset = record.offset,
                    "skipping undecodable transaction state of {id}"
                ),
            }
        }
    }
}

/// The bytes after a big-endian `i16` version, if it is `version`.
fn versioned(bytes: &Bytes, version: i16) -> Option<&[u8]> {
    let (head, rest) = bytes.split_at_checked(2)?;
    (i16::from_be_bytes([head[0], head[1]]) == version).then_some(rest)
}
