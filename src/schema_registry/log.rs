//! The `_schemas` topic as the registry's store: one partition, compacted, written only by
//! the broker that leads it and replayed into [`State`] by a tailer, as Confluent's
//! `KafkaStore` writes through its leader and reads its own writes back before answering.
//!
//! A write on a node that does not lead partition 0 is refused here with the leader's id
//! ([`RegistryError::NotLeader`]), which never lets two nodes hand out the same id; the
//! HTTP layer then forwards the request to the leader (`forward`). The tailer reads the
//! local replica, leader or follower, up to its high watermark, so every node holding a
//! replica serves reads; the data survives restarts because it is the topic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::RegistryError;
use super::records::{Entry, Key};
use super::state::State;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::topics::internal::{self, Appended};

/// How much of the log one read brings in.
const READ_CHUNK: usize = 1 << 20;
/// How long a write waits to be replicated and read back (Confluent's
/// `kafkastore.timeout.ms` is 500 ms; replication in a cluster can take longer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the tailer looks again when the partition is not readable here.
const RETRY: Duration = Duration::from_millis(500);

pub struct SchemaLog {
    broker: Arc<Broker>,
    topic: String,
    state: Arc<RwLock<State>>,
    /// The offset up to which `state` has applied the log.
    applied: watch::Sender<i64>,
    /// Set once the log has been replayed to its end after start: until then the state may
    /// lack what was registered before, and requests wait (Confluent does not serve either).
    caught_up: watch::Sender<bool>,
}

fn store(err: BrokerError) -> RegistryError {
    RegistryError::Store(err.to_string())
}

impl SchemaLog {
    pub fn new(broker: Arc<Broker>, topic: String) -> SchemaLog {
        SchemaLog {
            broker,
            topic,
            state: Arc::new(RwLock::new(State::default())),
            applied: watch::channel(0).0,
            caught_up: watch::channel(false).0,
        }
    }

    pub fn state(&self) -> &RwLock<State> {
        &self.state
    }

    /// Applies the topic's records as they come until `shutdown`. The topic is created by
    /// the first write, not here: a broker starting before the others would create it with
    /// itself as the only replica. Until it exists there is nothing to read.
    pub async fn tail(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Whether the topic exists is known once this broker has caught up with the metadata.
        tokio::select! {
            () = self.broker.cluster.serving() => {}
            _ = shutdown.changed() => return,
        }
        let mut next = 0;
        let mut failing = false;
        while !*shutdown.borrow() {
            let exists = self
                .broker
                .cluster
                .published()
                .topics
                .contains_key(&self.topic);
            if !exists {
                self.caught_up
                    .send_if_modified(|c| !std::mem::replace(c, true));
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let wait = match self.catch_up(&mut next) {
                Ok(mut progress) => {
                    failing = false;
                    self.caught_up
                        .send_if_modified(|c| !std::mem::replace(c, true));
                    tokio::select! {
                        _ = progress.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
                Err(err) => err,
            };
            if !failing {
                tracing::info!("schema registry: cannot read {} yet: {wait}", self.topic);
                failing = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Changes each time the state applies more of the topic.
    pub fn applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// Whether the state holds what the topic held at start (see `caught_up`).
    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Waits until the state has replayed the log after start, up to `timeout`.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), RegistryError> {
        let mut caught_up = self.caught_up.subscribe();
        let waited = tokio::time::timeout(timeout, caught_up.wait_for(|c| *c)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(RegistryError::NotReady),
        }
    }

    async fn ensure_topic(&self) -> Result<(), RegistryError> {
        if self
            .broker
            .cluster
            .published()
            .topics
            .contains_key(&self.topic)
        {
            return Ok(());
        }
        self.broker
            .cluster
            .internal_topic(
                &self.topic,
                1,
                self.broker.config.offsets_topic_replication_factor,
                self.broker.topics.internal_configs(),
            )
            .await
            .map(|_| ())
            .map_err(store)
    }

    /// Applies what the local log has past `next`; returns a receiver that changes when it
    /// grows. Reads up to the high watermark: only what the replicas hold is served.
    fn catch_up(&self, next: &mut i64) -> Result<watch::Receiver<i64>, RegistryError> {
        let partition = self
            .broker
            .topics
            .partition(&self.topic, 0)
            .map_err(store)?;
        let progress = partition.watch_progress();
        let offsets = partition.offsets().map_err(store)?;
        *next = (*next).max(offsets.log_start);
        loop {
            let records = partition.read_replica(*next, READ_CHUNK).map_err(store)?;
            if records.is_empty() {
                break;
            }
            let end = internal::end_of_batches(&records);
            let mut bytes = records;
            let sets = RecordBatchDecoder::decode_all(&mut bytes)
                .map_err(|e| RegistryError::Store(format!("cannot decode a schemas batch: {e}")))?;
            let mut state = self.state.write();
            for record in sets.into_iter().flat_map(|s| s.records) {
                if record.offset < *next || record.control {
                    continue;
                }
                *next = record.offset + 1;
                let Some(key) = record.key else { continue };
                match Key::decode(&key) {
                    Ok(Some(key)) => state.apply(&Entry {
                        key,
                        value: record.value.map(|v| v.to_vec()),
                    }),
                    Ok(None) => {}
                    Err(err) => tracing::warn!("schema registry: skipping a record: {err}"),
                }
            }
            drop(state);
            *next = (*next).max(end);
        }
        self.applied.send_if_modified(|applied| {
            let moved = *applied != *next;
            *applied = *next;
            moved
        });
        Ok(progress)
    }

    /// The broker leading partition 0, creating the topic if need be.
    async fn leader(&self) -> Result<i32, RegistryError> {
        self.ensure_topic().await?;
        self.broker
            .cluster
            .published()
            .topics
            .get(&self.topic)
            .and_then(|t| t.partitions.first())
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(RegistryError::UnknownLeader)
    }

    /// Appends `entries` as one batch through the leader of partition 0, waits until the
    /// in-sync replicas hold it and the state has applied it.
    pub async fn write(&self, entries: Vec<(Key, Option<Vec<u8>>)>) -> Result<(), RegistryError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        // Just after start the topic may not be created yet (the broker registers first) or
        // may have no leader for a moment: both pass, so they are waited out.
        loop {
            match self.leader().await {
                Ok(leader) if leader == self.broker.config.node_id => break,
                Ok(leader) => return Err(RegistryError::NotLeader(leader)),
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let partition = self
            .broker
            .topics
            .partition(&self.topic, 0)
            .map_err(store)?;
        let now = now_ms();
        let records: Vec<_> = entries
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| {
                internal::record(
                    Bytes::from(key.encode()),
                    value.map(Bytes::from),
                    i as i64,
                    now,
                )
            })
            .collect();
        let batch = internal::encode_batch(&records, "schemas batch").map_err(store)?;
        let info = partition.append(batch, now).await.map_err(store)?;
        let end = info.last_offset + 1;
        Appended::new(partition, info.base_offset, end)
            .replicated(deadline)
            .await
            .map_err(store)?;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= end))
            .await
            .map_err(|_| RegistryError::Timeout)?
            .map_err(|_| RegistryError::Timeout)?;
        Ok(())
    }
}
