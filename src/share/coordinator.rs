//! The share coordinator (Kafka's `ShareCoordinatorService` over its runtime): the durable
//! state of every share-partition, kept in `__share_group_state`. A share-partition's key
//! (`group:topicId:partition`, the topic id in Kafka's base64 form) is hashed to a partition
//! of that topic as Kafka hashes it, and the leader of that partition coordinates it: it
//! replays the partition's records into a [`Shard`] when it becomes the leader and drops
//! them when leadership moves (see `server::CoordinatorLeadership`).
//!
//! A partition not loaded here answers NOT_COORDINATOR, one loading
//! COORDINATOR_LOAD_IN_PROGRESS, as Kafka's runtime answers; nothing here creates the topic
//! (FindCoordinator and the persister do).
//!
//! Requests on one partition run one at a time, as a Kafka shard's events do: the shard
//! decides a record, the record is appended and waited for until the in-sync replicas hold
//! it (acks=all, `share_coordinator_write_timeout_ms`), and only then replayed and
//! answered. So the state a request sees is always durable, and an acknowledged write
//! survives the loss of the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::records::{self, ShareOffsets};
use super::shard::{Shard, ShareRecord, WriteData};
use super::state::{SharePartitionKey, ShareState, StateSummary};
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::event_loop::off_event_loop;
use crate::metrics::share_coordinator::ShareCoordinatorMetrics;
use crate::topics::internal::{self, InternalTopic, PartitionLoads};
use crate::topics::TopicRegistry;

pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

/// The key Kafka hashes to place a share-partition (`SharePartitionKey.asCoordinatorKey`).
pub fn coordinator_key(key: &SharePartitionKey) -> String {
    use base64::Engine;
    let topic = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.topic_id.as_bytes());
    format!("{}:{}:{}", key.group_id, topic, key.partition)
}

struct Partitions {
    loads: PartitionLoads<()>,
    shards: HashMap<i32, Shard>,
    /// Where each partition's log start was last moved to by pruning.
    pruned: HashMap<i32, i64>,
}

pub struct ShareCoordinator {
    config: Arc<Config>,
    topic: InternalTopic,
    partitions: Mutex<Partitions>,
    /// One request at a time per partition; taken before `partitions`, never held while
    /// waiting for anything but the request's own append.
    turns: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
    metrics: ShareCoordinatorMetrics,
}

impl ShareCoordinator {
    pub fn new(
        config: Arc<Config>,
        topics: Arc<TopicRegistry>,
        metrics: ShareCoordinatorMetrics,
    ) -> ShareCoordinator {
        let partitions = config.share_coordinator_state_topic_num_partitions;
        ShareCoordinator {
            topic: InternalTopic::new(topics, SHARE_STATE_TOPIC, partitions),
            config,
            partitions: Mutex::new(Partitions {
                loads: PartitionLoads::new(),
                shards: HashMap::new(),
                pruned: HashMap::new(),
            }),
            turns: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub fn topic(&self) -> &InternalTopic {
        &self.topic
    }

    /// The partition of `__share_group_state` that holds `key`.
    pub fn partition_of(&self, key: &SharePartitionKey) -> i32 {
        self.topic.partition_for(&coordinator_key(key))
    }

    /// Whether this broker has loaded the partition of `key`.
    pub fn coordinates(&self, key: &SharePartitionKey) -> bool {
        let partition = self.partition_of(key);
        self.partitions.lock().loads.is_loaded(partition)
    }

    /// The topic's configs, as Kafka's `shareGroupStateTopicConfigs`: records are kept until
    /// deleted ([`Self::prune`] drops what later snapshots made redundant), not compacted.
    pub fn topic_configs(&self) -> std::collections::BTreeMap<String, String> {
        let c = &self.config;
        [
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", "-1".to_owned()),
            ("compression.type", "producer".to_owned()),
            (
                "segment.bytes",
                c.share_coordinator_state_topic_segment_bytes.to_string(),
            ),
            (
                "min.insync.replicas",
                c.share_coordinator_state_topic_min_isr.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub async fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
        known: bool,
    ) -> Result<()> {
        self.run(key, |shard, now| {
            let record = shard.initialize(key, state_epoch, start_offset, known, now)?;
            Ok(((), Some(record)))
        })
        .await
    }

    pub async fn write(
        &self,
        key: &SharePartitionKey,
        data: &WriteData,
        known: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let written = self
            .run(key, |shard, now| {
                Ok(((), Some(shard.write(key, data, known, now)?)))
            })
            .await;
        self.metrics.writes.inc();
        self.metrics
            .write_latency
            .observe(started.elapsed().as_secs_f64());
        if written.is_err() {
            self.metrics.write_errors.inc();
        }
        written
    }

    pub async fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
        known: bool,
    ) -> Result<ShareState> {
        self.metrics.reads.inc();
        self.run(key, |shard, now| shard.read(key, leader_epoch, known, now))
            .await
    }

    pub fn summary(&self, key: &SharePartitionKey, known: bool) -> Result<StateSummary> {
        let partition = self.partition_of(key);
        let partitions = self.partitions.lock();
        partitions.loads.check(partition)?;
        match partitions.shards.get(&partition) {
            Some(shard) => shard.summary(key, known),
            None => Err(BrokerError::NotCoordinator),
        }
    }

    pub async fn delete(&self, key: &SharePartitionKey, known: bool) -> Result<()> {
        self.run(key, |shard, _| Ok(((), shard.delete(key, known)?)))
            .await
    }

    /// Topics were deleted: the state of their share-partitions coordinated here is deleted
    /// too (Kafka's `maybeCleanupShareState`), tombstoned in `__share_group_state`. A failure
    /// is logged; the state of a deleted topic is never read again.
    pub async fn topics_deleted(&self, ids: &std::collections::BTreeSet<uuid::Uuid>) {
        let keys: Vec<SharePartitionKey> = {
            let partitions = self.partitions.lock();
            partitions
                .shards
                .values()
                .flat_map(|shard| shard.keys_of_topics(ids))
                .collect()
        };
        for key in keys {
            // The topic is gone from the metadata: the deletion is allowed all the same.
            let deleted = self
                .run(&key, |shard, _| Ok(((), shard.delete(&key, true)?)))
                .await;
            if let Err(err) = deleted {
                tracing::warn!(group = %key.group_id, topic = %key.topic_id, partition = key.partition,
                    "cannot delete the share state of a deleted topic: {err}");
            }
        }
    }

    /// Runs `decide` on the shard of `key`'s partition in that partition's turn, writes the
    /// record it asks for and replays it once the in-sync replicas hold it.
    async fn run<T>(
        &self,
        key: &SharePartitionKey,
        decide: impl FnOnce(&Shard, i64) -> Result<(T, Option<ShareRecord>)>,
    ) -> Result<T> {
        let partition = self.partition_of(key);
        let turn = self.turns.lock().entry(partition).or_default().clone();
        let _turn = turn.lock().await;
        let (answer, record) = {
            let partitions = self.partitions.lock();
            partitions.loads.check(partition)?;
            let shard = partitions
                .shards
                .get(&partition)
                .ok_or(BrokerError::NotCoordinator)?;
            decide(shard, now_ms())?
        };
        let Some(record) = record else {
            return Ok(answer);
        };
        let timeout = Duration::from_millis(self.config.share_coordinator_write_timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let (appended, offset) = self
            .append(partition, &record)
            .await
            .map_err(|e| e.for_coordinator_write(CoordinatorWrite::ShareState))?;
        appended
            .replicated(deadline)
            .await
            .map_err(|e| e.for_coordinator_write(CoordinatorWrite::ShareState))?;
        if let Some(shard) = self.partitions.lock().shards.get_mut(&partition) {
            shard.replay(record, offset);
        }
        Ok(answer)
    }

    /// Appends `record`, on the blocking pool (the partition's turn is held, no lock); its
    /// offset, and what to wait on for the replicas.
    async fn append(
        &self,
        partition: i32,
        record: &ShareRecord,
    ) -> Result<(internal::Appended, i64)> {
        let key = records::encode_key(record.kind, &record.key);
        let value = record
            .value
            .as_ref()
            .map(|v| records::encode_value(record.kind, v));
        let now = now_ms();
        let batch = internal::encode_batch(&[internal::record(key, value, 0, now)], "share state")?;
        let partition = self.topic.partition(partition)?;
        let writer = partition.clone();
        let info = off_event_loop(move || writer.append_blocking(batch, now)).await?;
        let appended = internal::Appended::new(partition, info.base_offset, info.last_offset + 1);
        Ok((appended, info.base_offset))
    }

    /// Replays `__share_group_state` partition `partition`, led here, and starts serving
    /// its share-partitions (COORDINATOR_LOAD_IN_PROGRESS meanwhile). Blocking.
    pub fn load_partition(&self, partition: i32) -> Result<()> {
        let Some(load) = self.partitions.lock().loads.start(partition) else {
            return Ok(());
        };
        let shard = self.replay(partition)?;
        let keys = shard.len();
        let mut partitions = self.partitions.lock();
        if partitions.loads.finish(partition, load).is_none() {
            return Ok(());
        }
        partitions.shards.insert(partition, shard);
        drop(partitions);
        self.metrics.partitions_loaded.inc();
        tracing::info!(
            partition,
            share_partitions = keys,
            "loaded share group state"
        );
        Ok(())
    }

    /// Forgets the share-partitions of `partition`, whose leadership moved.
    pub fn unload_partition(&self, partition: i32) {
        let mut partitions = self.partitions.lock();
        let was_loaded = partitions.loads.is_loaded(partition);
        partitions.loads.unload(partition);
        partitions.shards.remove(&partition);
        partitions.pruned.remove(&partition);
        if was_loaded {
            self.metrics.partitions_loaded.dec();
        }
        tracing::info!(partition, "unloaded share group state");
    }

    /// Kafka's prune job (`share.coordinator.state.topic.prune.interval.ms`): on each
    /// partition led here, moves the log start up to the shard's last redundant offset, the
    /// earliest of its share-partitions' latest snapshots, as DeleteRecords does, on this
    /// replica (a next leader prunes its own once it has loaded). Nothing before it is
    /// needed to rebuild the state.
    pub async fn prune(&self) {
        let due: Vec<(i32, i64)> = {
            let partitions = self.partitions.lock();
            partitions
                .shards
                .iter()
                .filter(|(p, _)| partitions.loads.is_loaded(**p))
                .filter_map(|(p, shard)| shard.last_redundant_offset().map(|o| (*p, o)))
                .filter(|(p, o)| partitions.pruned.get(p) != Some(o))
                .collect()
        };
        for (index, offset) in due {
            let partition = match self.topic.partition(index) {
                Ok(partition) => partition,
                Err(err) => {
                    tracing::warn!(partition = index, "cannot prune share group state: {err}");
                    continue;
                }
            };
            // Segments may be deleted: disk work, on a storage thread.
            let moved =
                crate::topics::on_storage_thread(move || partition.delete_records_before(offset))
                    .await;
            match moved {
                Ok(log_start) => {
                    tracing::debug!(partition = index, log_start, "pruned share group state");
                    self.partitions.lock().pruned.insert(index, offset);
                }
                Err(err) => {
                    tracing::warn!(
                        partition = index,
                        offset,
                        "cannot prune share group state: {err}"
                    )
                }
            }
        }
    }

    /// The shard of every record of the partition, in log order.
    fn replay(&self, index: i32) -> Result<Shard> {
        let mut shard = Shard::new(
            self.config
                .share_coordinator_snapshot_update_records_per_snapshot,
        );
        let partition = self.topic.partition(index)?;
        internal::replay(&partition, "share group state", |r| {
            let Some(key) = r.key.as_ref() else {
                return;
            };
            if let Some(record) = decoded(key, r.value.as_ref(), r.offset) {
                shard.replay(record, r.offset);
            }
        })?;
        Ok(shard)
    }
}

/// A record read back, or `None` (logged) when it is not one of ours.
fn decoded(key: &bytes::Bytes, value: Option<&bytes::Bytes>, offset: i64) -> Option<ShareRecord> {
    let decode = || -> std::result::Result<ShareRecord, String> {
        let (kind, key) = records::decode_key(key)?;
        let value: Option<ShareOffsets> =
            value.map(|v| records::decode_value(kind, v)).transpose()?;
        Ok(ShareRecord { kind, key, value })
    };
    decode()
        .map_err(|err| tracing::warn!(offset, "skipping share group state record: {err}"))
        .ok()
}
