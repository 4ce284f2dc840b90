//! The transaction coordinator: producer ids, and the transactional ids this broker
//! coordinates, as Kafka's `TransactionCoordinator`. Each transaction follows the
//! transaction.version of its client's requests: 1 (AddPartitionsToTxn from the producer,
//! EndTxn up to v4), or 2 (KIP-890 part 2: partition leaders add partitions when the producer
//! first writes to them, see [`cluster_adds`]; EndTxn v5 bumps the epoch at every end). The
//! transactions the coordinator ends itself (timeouts, InitProducerId fencing an open one)
//! follow the cluster's finalized transaction.version. An id lives in one partition of
//! `__transaction_state`, and a broker coordinates the ids of the partitions it has loaded
//! ([`TransactionCoordinator::load_partition`]): the partitions it leads (all of them on a
//! single node). Ids of a partition being loaded answer
//! COORDINATOR_LOAD_IN_PROGRESS, the others NOT_COORDINATOR.
//!
//! Each state change is appended to `__transaction_state` (see [`log`]) and acknowledged once
//! replicated; one whose replication fails is undone in memory. Ending a transaction writes
//! its markers (see [`markers`]) only once its PrepareCommit or PrepareAbort is replicated,
//! so a transaction is only ever found half-ended in one of those states; loading its
//! partition finishes it. The markers carry the coordinator epoch: the leader epoch of the
//! id's `__transaction_state` partition when this broker loaded it.
//!
//! The partitions of a transaction may be led by other brokers, where the coordinator of a
//! producer's id is not at hand: there, for a transaction.version 1 producer, as in Kafka
//! without transaction verification (KIP-890 part 1), a transactional batch or offset commit
//! is taken when the partition's own producer state allows it.

mod cluster_adds;
mod cluster_markers;
mod end;
mod load;
pub mod log;
pub mod markers;
pub mod producer_ids;
pub mod records;
pub mod state;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::now_ms;
use crate::config::Config;
pub use crate::error::TxnError;
use crate::error::{BrokerError, Result};
use crate::event_loop::off_event_loop;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::txn_offsets::TransactionCheck;
use crate::group::GroupCoordinator;
use crate::lock_order::{level, OrderedMutex, OrderedMutexGuard, OrderedRwLock};
use crate::topics::TopicRegistry;
pub use cluster_adds::ClusterAdds;
pub use cluster_markers::ClusterMarkers;
use end::StateWrite;
use load::Txns;
use log::TxnLog;
use markers::MarkerWriter;
use producer_ids::ProducerIds;
pub use producer_ids::BLOCK_SIZE as PRODUCER_ID_BLOCK;
use state::{InitAction, TxnMetadata, TxnState, NO_PRODUCER_ID, TV_EPOCH_BUMP};

/// The cluster's finalized transaction.version, as the coordinator reads it when it ends a
/// transaction itself.
pub type TransactionVersionLevel = Arc<dyn Fn() -> i16 + Send + Sync>;
/// Reads the cluster's producer id floor (see `RaiseProducerIdFloor`).
pub type ProducerIdFloor = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long a partition leader keeps asking a coordinator that answers
/// CONCURRENT_TRANSACTIONS (the previous end's markers are still being written) before it
/// passes the error on, and how long it waits between attempts (Kafka's
/// `add.partitions.to.txn.retry.backoff.max.ms` and `.backoff.ms`).
const ADD_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(100);
const ADD_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// One transactional id as ListTransactions and DescribeTransactions show it.
pub type TxnListing = (String, TxnMetadata);

/// What InitProducerId does once it has decided.
enum InitStep {
    /// A retry: the epoch it got before.
    Answer((i64, i16)),
    /// The new epoch, answered once stored.
    Store(StateWrite),
    /// An open transaction to abort first.
    Abort(StateWrite),
}

pub struct TransactionCoordinator {
    config: Arc<Config>,
    ids: ProducerIds,
    log: TxnLog,
    /// Read-held by a transactional append (Produce, TxnOffsetCommit) from its check through
    /// its write, write-held by every change that can take a transaction out of Ongoing or
    /// move its epoch (EndTxn, InitProducerId, the timeout abort) and by unloading: so no
    /// transaction ends between an append's check and its write, while appends for different
    /// transactions, or different partitions of one, write side by side rather than one at a
    /// time under `txns`.
    ends: OrderedRwLock<level::TxnEnds, ()>,
    txns: OrderedMutex<level::Txns, Txns>,
    /// Replaced once, when the broker runs, by `ClusterMarkers`, once its metadata is at hand.
    markers: RwLock<Arc<dyn MarkerWriter>>,
    /// Set with the markers: how this broker asks other coordinators to add partitions.
    adds: RwLock<Option<Arc<ClusterAdds>>>,
    tv_level: RwLock<TransactionVersionLevel>,
    id_floor: RwLock<ProducerIdFloor>,
}

impl TransactionCoordinator {
    /// A coordinator over `topics`' `__transaction_state`, coordinating none of its
    /// partitions until [`Self::load_partition`]. Producer ids come in blocks from the
    /// controller ([`Self::add_producer_ids`]).
    pub fn new(config: Arc<Config>, topics: Arc<TopicRegistry>) -> TransactionCoordinator {
        let log = TxnLog::new(topics, config.transaction_state_num_partitions);
        TransactionCoordinator {
            ids: ProducerIds::from_controller(),
            ends: OrderedRwLock::new(()),
            txns: OrderedMutex::new(Txns::new()),
            log,
            config,
            markers: RwLock::new(Arc::new(markers::Unwired)),
            adds: RwLock::new(None),
            // Until the broker reads the finalized level (see `server::start`).
            tv_level: RwLock::new(Arc::new(|| 1)),
            id_floor: RwLock::new(Arc::new(|| 0)),
        }
    }

    /// Where to send AddPartitionsToTxn for ids coordinated elsewhere.
    pub fn set_adds(&self, adds: Arc<ClusterAdds>) {
        *self.adds.write() = Some(adds);
    }

    /// How to read the cluster's finalized transaction.version.
    pub fn set_transaction_version_level(&self, level: TransactionVersionLevel) {
        *self.tv_level.write() = level;
    }

    /// How to read the cluster's producer id floor.
    pub fn set_producer_id_floor(&self, floor: ProducerIdFloor) {
        *self.id_floor.write() = floor;
    }

    /// Drops the ids held below the cluster's floor, which may have risen since.
    fn apply_producer_id_floor(&self) {
        let floor = self.id_floor.read().clone();
        self.ids.raise_floor(floor());
    }

    fn transaction_version_level(&self) -> i16 {
        let level = self.tv_level.read().clone();
        level()
    }

    /// Sends the markers elsewhere: to each partition's leader ([`ClusterMarkers`]), or to a
    /// test's own writer.
    pub fn set_markers(&self, markers: Arc<dyn MarkerWriter>) {
        *self.markers.write() = markers;
    }

    fn markers(&self) -> Arc<dyn MarkerWriter> {
        self.markers.read().clone()
    }

    /// The `__transaction_state` partition of `id`, whose leader coordinates it.
    pub fn partition_of(&self, id: &str) -> i32 {
        self.log.topic().partition_for(id)
    }

    /// The coordinator's state, once it is known that this broker coordinates `id`.
    fn locked_for(&self, id: &str) -> Result<OrderedMutexGuard<'_, level::Txns, Txns>> {
        let partition = self.partition_of(id);
        let txns = self.txns.lock();
        self.log.topic().check_loaded(&txns.loads, partition)?;
        Ok(txns)
    }

    /// The coordinator's state if `id`'s partition is loaded here; NOT_COORDINATOR for any
    /// other broker's id, including one this broker is about to load: a produce or offset
    /// commit then leaves the checks to the partition's producer state.
    fn locked_if_loaded(&self, id: &str) -> Result<OrderedMutexGuard<'_, level::Txns, Txns>> {
        let partition = self.partition_of(id);
        let txns = self.txns.lock();
        txns.loads.check(partition)?;
        Ok(txns)
    }

    /// A producer id for an idempotent producer without a transactional id.
    pub fn new_producer_id(&self) -> Result<i64> {
        self.apply_producer_id_floor();
        self.ids.allocate()
    }

    /// Whether the controller should be asked for more producer ids now.
    pub fn wants_producer_ids(&self) -> bool {
        self.apply_producer_id_floor();
        self.ids.wants_block()
    }

    /// Producer ids `first..first + count`, reserved for this broker by the controller.
    pub fn add_producer_ids(&self, first: i64, count: u32) {
        self.ids.add_block(first, count);
    }

    /// InitProducerId with a transactional id: its producer id and new epoch, once stored.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        groups: &GroupCoordinator,
    ) -> Result<(i64, i16)> {
        let (this, owned) = (self.clone(), id.to_owned());
        let step = off_event_loop(move || this.init_step(&owned, timeout_ms, expected)).await?;
        match step {
            InitStep::Answer(answer) => Ok(answer),
            InitStep::Store(write) => {
                let answer = (write.written().producer_id, write.written().producer_epoch);
                self.acknowledged(write).await?;
                Ok(answer)
            }
            // The producer retries once the open transaction is aborted, as Kafka has it.
            InitStep::Abort(prepare) => {
                self.finish_end(groups, id, prepare, false).await?;
                Err(TxnError::ConcurrentTransactions.into())
            }
        }
    }

    /// InitProducerId's decision and its write, under the coordinator's lock.
    fn init_step(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<InitStep> {
        let _ending = self.ends.write();
        let mut txns = self.locked_for(id)?;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout.into());
        }
        let now = now_ms();
        let mut next = match txns.get(id) {
            Some(existing) => existing.clone(),
            None => TxnMetadata::new(self.new_producer_id()?, timeout_ms, now),
        };
        match next.init_action(expected)? {
            InitAction::Retry => {
                return Ok(InitStep::Answer((next.producer_id, next.producer_epoch)))
            }
            InitAction::FenceAndAbort => {
                return Ok(InitStep::Abort(self.fence_and_abort(&mut txns, id, next)?));
            }
            InitAction::Bump => {
                let expected_epoch = expected.map(|(_, epoch)| epoch);
                if next.bump(expected_epoch, timeout_ms, now).is_none() {
                    next.rotate(self.new_producer_id()?, expected_epoch, timeout_ms, now);
                }
            }
        }
        Ok(InitStep::Store(self.write_locked(&mut txns, id, next)?))
    }

    /// Fences the producer of `next`'s open transaction and prepares its abort at a bumped
    /// epoch, which the old producer cannot use. Under transaction.version 2 (the cluster's
    /// level, as Kafka's coordinator decides for the ends it starts itself) that is version
    /// 2's end: the same one-step bump, recorded as a version 2 end (the epoch before it
    /// kept, markers checked strictly), and a new producer id when the epoch is spent.
    fn fence_and_abort(
        &self,
        txns: &mut Txns,
        id: &str,
        mut next: TxnMetadata,
    ) -> Result<StateWrite> {
        if self.transaction_version_level() < TV_EPOCH_BUMP {
            next.fence();
            return self.prepare_end(txns, id, next, false);
        }
        let next_producer_id = match next.epoch_exhausted() {
            true => self.new_producer_id()?,
            false => NO_PRODUCER_ID,
        };
        next.prepare_v2(false, next_producer_id, false, now_ms());
        self.write_locked(txns, id, next)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition);
    /// `client_tv` is the request's transaction.version (2 from a partition leader adding for
    /// a KIP-890 producer).
    pub async fn add_partitions(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_tv: i16,
    ) -> Result<()> {
        let (this, owned, partitions) = (self.clone(), id.to_owned(), partitions.to_vec());
        let step = off_event_loop(move || {
            this.add_step(&owned, producer_id, epoch, &partitions, client_tv)
        });
        match step.await? {
            Some(write) => self.acknowledged(write).await,
            None => Ok(()),
        }
    }

    /// AddPartitionsToTxn's write, if anything changes.
    fn add_step(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_tv: i16,
    ) -> Result<Option<StateWrite>> {
        let mut txns = self.locked_for(id)?;
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        metadata.check_producer(producer_id, epoch)?;
        let mut next = metadata.clone();
        if !next.add_partitions(partitions, now_ms(), client_tv)? {
            return Ok(None);
        }
        self.write_locked(&mut txns, id, next).map(Some)
    }

    /// A transaction.version 2 producer writes to `partitions` (or commits offsets to a
    /// group's offsets partition) it never added: this broker, their leader, has them added
    /// to its transaction, by its own coordinator or by the one coordinating `id` elsewhere.
    /// CONCURRENT_TRANSACTIONS (the last end is still writing its markers) is retried for a
    /// moment before it is passed on, as Kafka's ReplicaManager does.
    pub async fn add_implicitly(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            let added = self.add_once(id, (producer_id, epoch), partitions).await;
            let concurrent = matches!(
                &added,
                Err(err) if err.response_error() == kafka_protocol::error::ResponseError::ConcurrentTransactions
            );
            if !concurrent || started.elapsed() + ADD_RETRY_BACKOFF > ADD_RETRY_MAX {
                return added;
            }
            tokio::time::sleep(ADD_RETRY_BACKOFF).await;
        }
    }

    async fn add_once(
        self: &Arc<Self>,
        id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let here = match self.locked_if_loaded(id) {
            Ok(_) => true,
            Err(BrokerError::NotCoordinator) => false,
            Err(err) => return Err(err),
        };
        if here {
            tracing::debug!(
                transactional_id = id,
                ?partitions,
                "adding partitions for a transaction.version 2 producer"
            );
            return self
                .add_partitions(id, producer_id, epoch, partitions, TV_EPOCH_BUMP)
                .await;
        }
        let adds = self.adds.read().clone();
        let adds = adds.ok_or(BrokerError::CoordinatorNotAvailable)?;
        tracing::debug!(
            transactional_id = id,
            ?partitions,
            "asking the coordinator to add partitions for a transaction.version 2 producer"
        );
        adds.add(self.partition_of(id), id, (producer_id, epoch), partitions)
            .await
    }

    /// Whether each partition is in the producer's open transaction (AddPartitionsToTxn
    /// `verify_only`, and Produce's check of a transactional batch).
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>> {
        let txns = self.locked_for(id)?;
        let metadata = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        metadata.check_producer(producer_id, epoch)?;
        let open = metadata.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| open && metadata.partitions.contains(p))
            .collect())
    }

    /// Produce of a transactional batch: `append` runs only if the batch belongs to an open
    /// transaction that includes its partition (Kafka's transaction.partition.verification).
    /// No EndTxn can move the transaction on between the check and the append (see `ends`): a
    /// batch landing after the marker would open a transaction in the log that no marker ever
    /// closes, holding read_committed consumers back for good. An id coordinated by another
    /// broker is not checked here: `append` runs, and the partition's producer state refuses
    /// stale epochs and sequences.
    pub fn append_in_transaction<T>(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        (topic, partition): (&str, i32),
        append: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _appending = self.ends.read();
        match self.check_member(id, producer_id, epoch, (topic, partition)) {
            Ok(()) | Err(BrokerError::NotCoordinator) => append(),
            Err(err) => Err(err),
        }
    }

    /// Whether the batch of `producer_id` at `epoch` may go to `topic`'s `partition`: its
    /// open transaction has the partition. NOT_COORDINATOR when another broker has the id.
    fn check_member(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        (topic, partition): (&str, i32),
    ) -> Result<()> {
        let txns = self.locked_if_loaded(id)?;
        let Some(metadata) = txns.get(id) else {
            return Err(TxnError::NotInTransaction.into());
        };
        if metadata.producer_id == producer_id && epoch < metadata.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch.into());
        }
        let member = metadata.producer_id == producer_id
            && metadata.producer_epoch == epoch
            && metadata.state == TxnState::Ongoing
            && metadata.partitions.contains(&(topic.to_owned(), partition));
        match member {
            true => Ok(()),
            false => Err(TxnError::NotInTransaction.into()),
        }
    }

    /// Every transactional id loaded here; COORDINATOR_LOAD_IN_PROGRESS while a partition
    /// is loading, as Kafka answers ListTransactions.
    pub fn list(&self) -> Result<Vec<TxnListing>> {
        let txns = self.txns.lock();
        if txns.loads.any_loading() {
            return Err(BrokerError::CoordinatorLoadInProgress);
        }
        Ok(txns.all())
    }

    pub fn describe(&self, id: &str) -> Result<TxnMetadata> {
        self.locked_for(id)?
            .get(id)
            .cloned()
            .ok_or(TxnError::TransactionalIdNotFound.into())
    }

    /// Whether `topic` exists (AddPartitionsToTxn refuses unknown partitions).
    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.log
            .topic()
            .registry()
            .get(topic)
            .is_some_and(|t| t.partition(partition).is_some())
    }
}

/// TxnOffsetCommit's producer check: Kafka answers a stale epoch there with
/// INVALID_PRODUCER_EPOCH rather than PRODUCER_FENCED, and a group's offsets partition
/// missing from the transaction (no AddOffsetsToTxn) with INVALID_TXN_STATE. An id
/// coordinated by another broker is not checked here: the commit is written, and the offsets
/// partition's producer state refuses a stale epoch.
impl TransactionCheck for TransactionCoordinator {
    fn verify_then(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
        then: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let _appending = self.ends.read();
        let checked = (|| {
            let txns = self.locked_if_loaded(transactional_id)?;
            let metadata = txns
                .get(transactional_id)
                .ok_or(TxnError::InvalidProducerIdMapping)?;
            match metadata.check_producer(producer_id, producer_epoch) {
                Err(TxnError::ProducerFenced) => return Err(TxnError::InvalidProducerEpoch.into()),
                other => other?,
            }
            let added = metadata.state == TxnState::Ongoing
                && metadata
                    .partitions
                    .contains(&(OFFSETS_TOPIC.to_owned(), offsets_partition));
            match added {
                true => Ok(()),
                false => Err(BrokerError::from(TxnError::InvalidTxnState)),
            }
        })();
        match checked {
            Ok(()) | Err(BrokerError::NotCoordinator) => then(),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests;
