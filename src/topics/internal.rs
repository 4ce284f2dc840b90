//! The coordinators' internal topics (`__consumer_offsets`, `__transaction_state`): where
//! their partitions are, who creates them, and their records: keyed, uncompressed, written by
//! the broker itself as one RecordBatch v2 per append, their values a version prefix and JSON.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;
use tokio::time::Instant;

use super::{Partition, Topic, TopicRegistry};
use crate::error::{BrokerError, Result};

/// A coordinator's internal topic. Looked up in the registry at each use rather than kept,
/// since another broker may create it and leadership changes may reopen its partitions.
pub struct InternalTopic {
    topics: Arc<TopicRegistry>,
    name: &'static str,
    /// The partition count the topic is created with; an existing topic's own count wins.
    configured_partitions: i32,
}

impl InternalTopic {
    pub fn new(topics: Arc<TopicRegistry>, name: &'static str, partitions: i32) -> InternalTopic {
        InternalTopic {
            topics,
            name,
            configured_partitions: partitions.max(1),
        }
    }

    pub fn registry(&self) -> &Arc<TopicRegistry> {
        &self.topics
    }

    /// The topic, if it exists yet.
    pub fn existing(&self) -> Option<Arc<Topic>> {
        self.topics.get(self.name)
    }

    /// How many partitions the topic has, or will have when it is created.
    pub fn partition_count(&self) -> i32 {
        self.existing()
            .map_or(self.configured_partitions, |t| t.partitions.len() as i32)
    }

    /// The partition that holds `key` (a group or transactional id).
    pub fn partition_for(&self, key: &str) -> i32 {
        partition_for(key, self.partition_count() as usize) as i32
    }

    /// The partition a write of `key` goes to. The controller creates the topic (FindCoordinator
    /// asks it to); writes before then get COORDINATOR_NOT_AVAILABLE.
    pub fn partition_to_write(&self, key: &str) -> Result<Arc<Partition>> {
        let topic = self
            .existing()
            .ok_or(BrokerError::CoordinatorNotAvailable)?;
        let index = partition_for(key, topic.partitions.len());
        Ok(topic.partitions[index].clone())
    }

    /// Ok when `partition` is loaded in `loads`. A broker without a load of it
    /// may be about to coordinate it: it leads the partition and the load has not begun, or
    /// it has not yet applied the topic that another broker found it leading. Both answer
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry here; NOT_COORDINATOR would end
    /// librdkafka's `committed()` with that error instead of finding the coordinator again.
    pub fn check_loaded<T: Default>(
        &self,
        loads: &PartitionLoads<T>,
        partition: i32,
    ) -> Result<()> {
        match loads.check(partition) {
            Err(BrokerError::NotCoordinator) if self.about_to_coordinate(partition) => {
                Err(BrokerError::CoordinatorLoadInProgress)
            }
            checked => checked,
        }
    }

    fn about_to_coordinate(&self, partition: i32) -> bool {
        match self.existing() {
            None => true,
            Some(topic) => topic
                .partition(partition)
                .is_some_and(|p| p.ensure_leader().is_ok()),
        }
    }

    /// Partition `index`'s local log, to replay it.
    pub fn partition(&self, index: i32) -> Result<Arc<Partition>> {
        self.topics.partition(self.name, index)
    }
}

/// Where a coordinator stands with each partition of its internal topic. A partition it holds
/// nothing for is coordinated by another broker (NOT_COORDINATOR); one being replayed answers
/// COORDINATOR_LOAD_IN_PROGRESS. A loading partition carries `T`: what the coordinator must
/// apply once the replay is done.
pub struct PartitionLoads<T> {
    partitions: HashMap<i32, Load<T>>,
    /// Tells one partition's loads apart, so a load outlived by an unload is dropped.
    next_load: u64,
}

enum Load<T> {
    Loading { id: u64, pending: T },
    Loaded,
}

impl<T: Default> Default for PartitionLoads<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default> PartitionLoads<T> {
    /// No partition is this broker's until it leads one.
    pub fn new() -> PartitionLoads<T> {
        PartitionLoads {
            partitions: HashMap::new(),
            next_load: 1,
        }
    }

    /// Ok when `partition` is loaded here.
    pub fn check(&self, partition: i32) -> Result<()> {
        match self.partitions.get(&partition) {
            Some(Load::Loaded) => Ok(()),
            Some(Load::Loading { .. }) => Err(BrokerError::CoordinatorLoadInProgress),
            None => Err(BrokerError::NotCoordinator),
        }
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        matches!(self.partitions.get(&partition), Some(Load::Loaded))
    }

    /// Whether some partition is still loading.
    pub fn any_loading(&self) -> bool {
        self.partitions
            .values()
            .any(|l| matches!(l, Load::Loading { .. }))
    }

    /// What a partition still loading must apply afterwards.
    pub fn pending_mut(&mut self, partition: i32) -> Option<&mut T> {
        match self.partitions.get_mut(&partition) {
            Some(Load::Loading { pending, .. }) => Some(pending),
            _ => None,
        }
    }

    /// Starts a load of `partition` and returns its id; `None` when it is loaded already.
    pub fn start(&mut self, partition: i32) -> Option<u64> {
        let id = self.next_load;
        self.next_load += 1;
        let pending = match self.partitions.remove(&partition) {
            Some(Load::Loaded) => {
                self.partitions.insert(partition, Load::Loaded);
                return None;
            }
            Some(Load::Loading { pending, .. }) => pending,
            None => T::default(),
        };
        self.partitions
            .insert(partition, Load::Loading { id, pending });
        Some(id)
    }

    /// Ends load `id` of `partition`, which is loaded from now on, and returns what it must
    /// apply; `None` if the partition was unloaded or loaded again meanwhile.
    pub fn finish(&mut self, partition: i32, id: u64) -> Option<T> {
        match self.partitions.get(&partition) {
            Some(Load::Loading { id: current, .. }) if *current == id => {}
            _ => return None,
        }
        match self.partitions.insert(partition, Load::Loaded) {
            Some(Load::Loading { pending, .. }) => Some(pending),
            _ => None,
        }
    }

    pub fn unload(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

/// How much of a partition one replay read takes.
const REPLAY_CHUNK: usize = 1024 * 1024;

/// Every record of `partition`'s local log in order, from its start up to its log end (a
/// new leader's high watermark may still be behind records its predecessor committed), to
/// `each`; `what` names the topic in the log line of a batch that does not decode.
pub fn replay(partition: &Partition, what: &str, mut each: impl FnMut(&Record)) -> Result<()> {
    let mut offset = partition.offsets()?.log_start;
    loop {
        let read = partition.read(offset, REPLAY_CHUNK, super::Isolation::LogEnd)?;
        let mut rest = read.records;
        let before = offset;
        // Batch by batch: compaction leaves batches whose last offset is past their last
        // record, and the next read must start after the batch, not the record.
        while let Ok(header) = samsa_storage::BatchHeader::parse(&rest) {
            if rest.len() < header.total_size() {
                break;
            }
            let mut one = rest.split_to(header.total_size());
            offset = header.next_offset();
            match kafka_protocol::records::RecordBatchDecoder::decode(&mut one) {
                Ok(set) => set.records.iter().for_each(&mut each),
                Err(err) => {
                    tracing::warn!(offset = header.base_offset, "skipping {what} batch: {err}")
                }
            }
        }
        if offset == before {
            return Ok(());
        }
    }
}

/// Kafka's `Utils.abs(key.hashCode()) % partitions`, so groups and transactional ids land
/// where Kafka puts them.
pub fn partition_for(key: &str, partitions: usize) -> usize {
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    ((hash & 0x7fff_ffff) as usize) % partitions.max(1)
}

/// A coordinator's record in the leader's log. It is acknowledged to the client only once the
/// in-sync replicas hold it, as Kafka appends these with acks=-1; on a single node that is at
/// once, since the high watermark follows the log end.
#[derive(Clone)]
pub struct Appended {
    partition: Arc<Partition>,
    pub base_offset: i64,
    end_offset: i64,
}

impl std::fmt::Debug for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{} [{}, {})",
            self.partition.topic, self.partition.index, self.base_offset, self.end_offset
        )
    }
}

impl Appended {
    pub fn new(partition: Arc<Partition>, base_offset: i64, end_offset: i64) -> Appended {
        Appended {
            partition,
            base_offset,
            end_offset,
        }
    }

    /// Waits until the high watermark passes the record, or `deadline` (REQUEST_TIMED_OUT).
    pub async fn replicated(&self, deadline: Instant) -> Result<()> {
        self.partition
            .wait_until_replicated(self.end_offset, deadline)
            .await
    }
}

/// A plain (non-transactional) record at `offset` within its batch.
pub fn record(key: Bytes, value: Option<Bytes>, offset: i64, now_ms: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key),
        value,
        headers: Default::default(),
    }
}

/// Where a v2 batch header keeps its CRC, the start of what the CRC covers (attributes
/// onwards), and the base sequence.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const BASE_SEQUENCE_AT: usize = 53;

/// `records` as one uncompressed batch; `what` names them in the error.
///
/// kafka-protocol's encoder starts a new batch wherever a record's offset minus its sequence
/// changes, so records without a producer (sequence -1) would each get a batch of their own
/// and a commit of several offsets would no longer be one atomic append. They are encoded
/// with sequences following their offsets, and the batch's base sequence is then set back
/// to -1 (no producer) with its CRC recomputed.
pub fn encode_batch(records: &[Record], what: &str) -> Result<Bytes> {
    let without_producer = records.iter().all(|r| r.producer_id < 0);
    let mut owned;
    let records = if without_producer {
        owned = records.to_vec();
        for record in &mut owned {
            record.sequence = record.offset as i32;
        }
        &owned[..]
    } else {
        records
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| BrokerError::InvalidRecord(format!("cannot encode {what}: {e}")))?;
    if without_producer && buf.len() > BASE_SEQUENCE_AT + 4 {
        buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(buf.freeze())
}

/// The offset after the last whole batch in `bytes`, -1 if there is none. Compaction leaves
/// batches whose last offset is past their last record, so replay advances by batch.
pub fn end_of_batches(bytes: &[u8]) -> i64 {
    let mut rest = bytes;
    let mut end = -1;
    while let Ok(header) = samsa_storage::BatchHeader::parse(rest) {
        let Some(after) = rest.get(header.total_size()..) else {
            break;
        };
        end = header.next_offset();
        rest = after;
    }
    end
}

/// `body` as JSON behind a big-endian `version`; `what` names it in the error.
pub fn versioned_json(version: i16, body: &impl Serialize, what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    serde_json::to_writer((&mut buf).writer(), body)
        .map_err(|e| BrokerError::InvalidRecord(format!("cannot encode {what}: {e}")))?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_where_kafka_puts_them() {
        // Java's String.hashCode: h = 31 * h + char, wrapping.
        let java_hash = |s: &str| {
            s.encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
        };
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("anything", 1), 0);
        // A hash that wraps negative still lands in range: Kafka masks the sign bit.
        let long = "a-group-name-long-enough-to-overflow";
        assert!(java_hash(long) < 0 || java_hash(long) > 0);
        assert_eq!(
            partition_for(long, 50),
            ((java_hash(long) & 0x7fff_ffff) % 50) as usize
        );
    }

    #[test]
    fn records_without_a_producer_are_one_valid_batch() {
        let records: Vec<_> = (0..3)
            .map(|i| {
                record(
                    Bytes::from(format!("k{i}")),
                    Some(Bytes::from_static(b"v")),
                    i,
                    7,
                )
            })
            .collect();
        let batch = encode_batch(&records, "test").unwrap();
        let headers = samsa_storage::validate_batches(&batch, usize::MAX).unwrap();
        assert_eq!(headers.len(), 1, "one batch, so one atomic append");
        let header = headers[0];
        assert_eq!(
            (
                header.record_count,
                header.base_sequence,
                header.producer_id
            ),
            (3, -1, -1)
        );
        assert_eq!(header.total_size(), batch.len());
    }
}
