//! Coordinator state on disk: the internal compacted topic `__transaction_state`, written
//! and replayed through the ordinary partition logs, as Kafka keeps it.
//!
//! A transactional id lives in partition `abs(java_hash(id)) % partitions` (the rule that
//! places groups), so its records keep their order. Each record, in a RecordBatch v2:
//!
//! - key: `i16` big-endian key version (`1`), then the transactional id in UTF-8;
//! - value: `i16` big-endian value version (`1`), then a JSON [`TxnMetadata`]; a null
//!   value is a tombstone: the id expired.
//!
//! Replay applies records in log order; the last value of an id wins.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Record, RecordBatchDecoder,
};
use samsa_storage::BatchHeader;

use super::state::TxnMetadata;
use crate::error::Result;
use crate::topics::internal::partition_for;
use crate::topics::internal;
use crate::topics::{Isolation, Partition, TopicRegistry};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 1;
/// How much of a partition one replay read takes.
const REPLAY_CHUNK: usize = 1024 * 1024;

pub struct TxnLog {
    topics: Arc<TopicRegistry>,
    num_partitions: i32,
    partitions: OnceLock<Vec<Arc<Partition>>>,
}

impl TxnLog {
    pub fn new(topics: Arc<TopicRegistry>, num_partitions: i32) -> TxnLog {
        let partitions = OnceLock::new();
        if let Some(topic) = topics.get(TRANSACTION_STATE_TOPIC) {
            let _ = partitions.set(topic.partitions.clone());
        }
        TxnLog {
            topics,
            num_partitions,
            partitions,
        }
    }

    pub fn topics(&self) -> Arc<TopicRegistry> {
        self.topics.clone()
    }

    /// The topic's partitions, created compacted on first use like Kafka's.
    fn partitions(&self) -> Result<&[Arc<Partition>]> {
        if let Some(partitions) = self.partitions.get() {
            return Ok(partitions);
        }
        let topic = self.topics.internal_compacted(TRANSACTION_STATE_TOPIC, self.num_partitions)?;
        Ok(self.partitions.get_or_init(|| topic.partitions.clone()))
    }

    /// Appends `id`'s new state (`None`: a tombstone); returns once the log has it.
    pub fn write(&self, id: &str, metadata: Option<&TxnMetadata>, now_ms: i64) -> Result<()> {
        let mut key = BytesMut::new();
        key.put_i16(KEY_VERSION);
        key.put_slice(id.as_bytes());
        let value = metadata
            .map(|m| internal::versioned_json(VALUE_VERSION, m, "transaction state"))
            .transpose()?;
        let record = internal::record(key.freeze(), value, 0, now_ms);
        let batch = internal::encode_batch(&[record], "transaction state")?;
        let partitions = self.partitions()?;
        partitions[partition_for(id, partitions.len())].append(batch, now_ms)?;
        Ok(())
    }

    /// The last state of every id that has not expired.
    pub fn replay(&self) -> Result<HashMap<String, TxnMetadata>> {
        let mut txns = HashMap::new();
        for partition in self.partitions.get().map(Vec::as_slice).unwrap_or_default() {
            let mut offset = partition.offsets()?.log_start;
            loop {
                let read = partition.read(offset, REPLAY_CHUNK, Isolation::ReadUncommitted)?;
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
                        Err(err) => tracing::warn!(offset = header.base_offset, "skipping transaction state batch: {err}"),
                    }
                }
                if offset == before {
                    break;
                }
            }
        }
        Ok(txns)
    }
}

fn apply(txns: &mut HashMap<String, TxnMetadata>, record: &Record) {
    let Some(key) = record.key.as_ref().and_then(|k| versioned(k, KEY_VERSION)) else {
        tracing::warn!(offset = record.offset, "skipping transaction state record with an unknown key");
        return;
    };
    let id = String::from_utf8_lossy(key).into_owned();
    match record.value.as_ref() {
        None => {
            txns.remove(&id);
        }
        Some(value) => match versioned(value, VALUE_VERSION).map(serde_json::from_slice::<TxnMetadata>) {
            Some(Ok(metadata)) => {
                txns.insert(id, metadata);
            }
            _ => tracing::warn!(offset = record.offset, "skipping undecodable transaction state of {id}"),
        },
    }
}

/// The bytes after a big-endian `i16` version, if it is `version`.
fn versioned(bytes: &Bytes, version: i16) -> Option<&[u8]> {
    let (head, rest) = bytes.split_at_checked(2)?;
    (i16::from_be_bytes([head[0], head[1]]) == version).then_some(rest)
}
