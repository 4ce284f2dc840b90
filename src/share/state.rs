//! The share-partition state API: what the share-partition leader and the group coordinator
//! ask of the share coordinator (Kafka's `Persister`, as `DefaultStatePersister` serves it),
//! one call per Initialize, Read, Write, ReadSummary and Delete ShareGroupState request.
//!
//! A call goes to the coordinator of its key: this broker's [`ShareCoordinator`] when it
//! leads the key's `__share_group_state` partition, else the leader over the wire
//! ([`super::remote`]). It retries, a bounded number of times, while the coordinator
//! moves or loads (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
//! COORDINATOR_LOAD_IN_PROGRESS), and creates the topic on first use. A write returns once
//! the in-sync replicas of the state partition hold it.
//!
//! Refusals come back as Kafka's coordinator words them ([`BrokerError::ShareState`]):
//! reading or writing a share-partition never initialized is INVALID_REQUEST, an older
//! leader epoch FENCED_LEADER_EPOCH, an older state epoch FENCED_STATE_EPOCH, a partition
//! missing from the metadata UNKNOWN_TOPIC_OR_PARTITION. A read answered by another broker
//! has no delivery complete count (the response carries none): it reads -1.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;
use uuid::Uuid;

use super::coordinator::{coordinator_key, ShareCoordinator, SHARE_STATE_TOPIC};
use super::remote::{Remote, StateRequest};
use super::shard::WriteData;
use crate::error::BrokerError;
use crate::topics::internal::partition_for;

/// One share-partition: a share group reading one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharePartitionKey {
    pub group_id: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// A run of offsets in one delivery state (Kafka's `StateBatch`): 0 available, 2 acknowledged,
/// 4 archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_state: i8,
    pub delivery_count: i16,
}

/// What ReadShareGroupState answers and WriteShareGroupState writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareState {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    /// -1 until the start offset is known (`share.auto.offset.reset` decides it then).
    pub start_offset: i64,
    /// Offsets at or after the start offset whose delivery is complete; -1 when unknown.
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

/// What ReadShareGroupStateSummary answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSummary {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
}

/// Creates `__share_group_state` through the controller (FindCoordinator's way).
pub type CreateTopic =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), BrokerError>> + Send>> + Send + Sync>;

/// What the persister needs of the cluster, given at start (`server::start`).
pub struct ClusterView {
    pub local: i32,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
    pub create_topic: CreateTopic,
    pub remote: Remote,
}

/// How often a call is tried while the coordinator moves or loads, and the pause between.
const ATTEMPTS: u32 = 10;
const BACKOFF: Duration = Duration::from_millis(200);

/// The share coordinator as its callers see it.
pub struct Persister {
    coordinator: Arc<ShareCoordinator>,
    cluster: OnceLock<ClusterView>,
}

/// The answer of one call, whichever coordinator gave it.
pub(super) enum Answer {
    Done,
    State(ShareState),
    Summary(StateSummary),
}

impl Persister {
    pub fn new(coordinator: Arc<ShareCoordinator>) -> Persister {
        Persister {
            coordinator,
            cluster: OnceLock::new(),
        }
    }

    pub fn coordinator(&self) -> &Arc<ShareCoordinator> {
        &self.coordinator
    }

    /// Connects the persister to the cluster; before, only local calls are served.
    pub fn set_cluster(&self, view: ClusterView) {
        let _ = self.cluster.set(view);
    }

    /// InitializeShareGroupState: a new state epoch and start offset, no batches.
    pub async fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), BrokerError> {
        self.call(
            key,
            StateRequest::Initialize {
                state_epoch,
                start_offset,
            },
        )
        .await
        .map(|_| ())
    }

    /// ReadShareGroupState by the share-partition leader at `leader_epoch`.
    pub async fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<ShareState, BrokerError> {
        match self.call(key, StateRequest::Read { leader_epoch }).await? {
            Answer::State(state) => Ok(state),
            _ => Err(BrokerError::CoordinatorNotAvailable),
        }
    }

    /// WriteShareGroupState: the batches fold into the state as Kafka's coordinator folds
    /// them; a start offset of -1 keeps the current one.
    pub async fn write(
        &self,
        key: &SharePartitionKey,
        update: ShareState,
    ) -> Result<(), BrokerError> {
        let data = WriteData {
            state_epoch: update.state_epoch,
            leader_epoch: update.leader_epoch,
            start_offset: update.start_offset,
            delivery_complete_count: update.delivery_complete_count,
            batches: update.batches,
        };
        self.call(key, StateRequest::Write(data)).await.map(|_| ())
    }

    /// ReadShareGroupStateSummary.
    pub async fn read_summary(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<StateSummary, BrokerError> {
        match self
            .call(key, StateRequest::Summary { leader_epoch })
            .await?
        {
            Answer::Summary(summary) => Ok(summary),
            _ => Err(BrokerError::CoordinatorNotAvailable),
        }
    }

    /// DeleteShareGroupState.
    pub async fn delete(&self, key: &SharePartitionKey) -> Result<(), BrokerError> {
        self.call(key, StateRequest::Delete).await.map(|_| ())
    }

    async fn call(
        &self,
        key: &SharePartitionKey,
        request: StateRequest,
    ) -> Result<Answer, BrokerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.call_once(key, &request).await;
            match result {
                Err(err) if attempt < ATTEMPTS && retriable(&err) => {
                    tracing::debug!(attempt, "share state call retried: {err}");
                    tokio::time::sleep(BACKOFF).await;
                }
                done => return done,
            }
        }
    }

    async fn call_once(
        &self,
        key: &SharePartitionKey,
        request: &StateRequest,
    ) -> Result<Answer, BrokerError> {
        let Some(view) = self.cluster.get() else {
            // Not connected to a cluster (unit tests): the local coordinator only.
            return self.local(key, request, true).await;
        };
        let mut metadata = view.metadata.borrow().clone();
        if !metadata.topics.contains_key(SHARE_STATE_TOPIC) {
            (view.create_topic)()
                .await
                .map_err(|_| BrokerError::CoordinatorNotAvailable)?;
            metadata = view.metadata.borrow().clone();
        }
        let known = partition_known(&metadata, key.topic_id, key.partition);
        let Some(topic) = metadata.topics.get(SHARE_STATE_TOPIC) else {
            return Err(BrokerError::CoordinatorNotAvailable);
        };
        let index = partition_for(&coordinator_key(key), topic.partitions.len());
        let leader = topic.partitions[index].leader;
        if leader == view.local {
            return self.local(key, request, known).await;
        }
        match metadata.brokers.get(&leader) {
            Some(b) if !b.fenced => {
                let addr = format!("{}:{}", b.host, b.port);
                view.remote.send(&addr, key, request).await
            }
            _ => Err(BrokerError::CoordinatorNotAvailable),
        }
    }

    /// The call served by this broker's coordinator; `known`: whether the metadata knows
    /// the share-partition's topic partition.
    pub(super) async fn local(
        &self,
        key: &SharePartitionKey,
        request: &StateRequest,
        known: bool,
    ) -> Result<Answer, BrokerError> {
        let c = &self.coordinator;
        Ok(match request {
            StateRequest::Initialize {
                state_epoch,
                start_offset,
            } => {
                c.initialize(key, *state_epoch, *start_offset, known)
                    .await?;
                Answer::Done
            }
            StateRequest::Read { leader_epoch } => {
                Answer::State(c.read(key, *leader_epoch, known).await?)
            }
            StateRequest::Write(data) => {
                c.write(key, data, known).await?;
                Answer::Done
            }
            StateRequest::Summary { .. } => Answer::Summary(c.summary(key, known)?),
            StateRequest::Delete => {
                c.delete(key, known).await?;
                Answer::Done
            }
        })
    }
}

/// Whether the coordinator may come back with another answer: it moved, or is loading.
fn retriable(err: &BrokerError) -> bool {
    use kafka_protocol::error::ResponseError as E;
    matches!(
        err.response_error(),
        E::NotCoordinator | E::CoordinatorNotAvailable | E::CoordinatorLoadInProgress
    )
}

/// Whether topic `topic_id` has partition `partition` in `metadata` (the coordinator's last
/// check of every request, Kafka's metadata image lookup).
pub fn partition_known(metadata: &ClusterMetadata, topic_id: Uuid, partition: i32) -> bool {
    metadata.topics.values().any(|t| {
        t.id == *topic_id.as_bytes() && partition >= 0 && (partition as usize) < t.partitions.len()
    })
}
