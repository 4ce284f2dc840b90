//! One topic-partition served by this broker: its log, its leadership (the leader epoch and
//! the replicas' progress, which decide the high watermark), and a signal that wakes
//! long-polling fetches when the high watermark moves.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use samsa_storage::{
    storage_threads, AbortedTxn, AppendInfo, CleanStats, ControlType, FileRange, LogConfig,
    PartitionLog, ProducerInfo,
};
use tokio::sync::watch;

#[cfg(test)]
use crate::clock::now_ms;
use crate::error::{BrokerError, Result};
use crate::lock_order::{level, OrderedMutex, OrderedRwLock};

mod group_sync;
mod mirror;
mod replicas;
mod role;

use group_sync::GroupSync;
#[cfg(test)]
use replicas::LeaderReplicas;
use role::Role;
pub use role::{Assignment, IsrProposal, RoleChange};

/// The leader epoch [`Partition::open`] leads at, in tests of a partition alone.
#[cfg(test)]
const TEST_LEADER_EPOCH: i32 = 0;

/// Offsets of a partition at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    /// Below the first open transaction; the high watermark when none is open.
    pub last_stable: i64,
    pub log_end: i64,
}

impl Offsets {
    /// Where reading stops for `isolation`.
    pub fn readable_end(&self, isolation: Isolation) -> i64 {
        match isolation {
            Isolation::ReadUncommitted => self.high_watermark,
            Isolation::ReadCommitted => self.last_stable,
            Isolation::LogEnd => self.log_end,
        }
    }
}

/// A partition's offsets and footprint, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PartitionStats {
    pub offsets: Offsets,
    pub size_bytes: u64,
    pub segments: usize,
}

/// Which records a fetch may see (Kafka's isolation level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark, open and aborted transactions included.
    ReadUncommitted,
    /// Up to the last stable offset, with the aborted transactions in that range listed.
    ReadCommitted,
    /// Up to the log end: a follower replicates what the leader has, committed or not.
    LogEnd,
}

/// What a read returns: whole batches plus the offsets they were read against. The batches
/// are read into memory (`Bytes`) or left in their file ([`Partition::locate`]).
#[derive(Debug, Clone)]
pub struct ReadResult<R = Bytes> {
    pub records: R,
    pub offsets: Offsets,
    /// With [`Isolation::ReadCommitted`], the aborted transactions the records overlap.
    pub aborted: Vec<AbortedTxn>,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    dir: PathBuf,
    /// `None` once the partition is closed at shutdown or deleted with its topic.
    log: OrderedRwLock<level::PartitionLog, Option<PartitionLog>>,
    /// Locked after `log` when both are needed.
    role: OrderedMutex<level::PartitionRole, Role>,
    /// The high watermark, sent again whenever the log grows, for long-polling fetches.
    progress: watch::Sender<i64>,
    /// Set for a whole cleaning, so two can never overlap on one partition. A flag, not a
    /// lock: a cleaning fsyncs, and no lock is held across an fsync; a second cleaning
    /// finds the flag set and leaves the partition to the first.
    cleaning: std::sync::atomic::AtomicBool,
    /// With `flush_messages`: how far the log is known synced, and the fsync in progress,
    /// so that appends arriving meanwhile share the next one (group commit) instead of one
    /// fsync each under the log's lock.
    sync: GroupSync,
    /// Fsyncs done for `flush_messages`, to see group commit at work.
    #[cfg(test)]
    syncs: std::sync::atomic::AtomicUsize,
    /// Test-only fault: how many of the next marker writes fail as a failing disk would.
    #[cfg(test)]
    failing_markers: std::sync::atomic::AtomicUsize,
}

impl Partition {
    /// For tests of a partition alone: opens it led by this broker (`node_id`) alone.
    #[cfg(test)]
    pub fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        node_id: i32,
        min_insync_replicas: usize,
    ) -> Result<Partition> {
        crate::lock_order::check_fsyncs();
        let mut log = PartitionLog::open(&dir, config)?;
        let end = log.log_end_offset();
        let mut replicas = LeaderReplicas::new(
            node_id,
            &[node_id],
            &[node_id],
            end,
            log.high_watermark(),
            min_insync_replicas,
            now_ms(),
        );
        // A leader records its epoch before it writes (Kafka's makeLeader), so OffsetForLeaderEpoch
        // can answer for it on a log still empty.
        log.assign_leader_epoch(TEST_LEADER_EPOCH)?;
        // One node is the whole ISR: whatever survived recovery is committed.
        replicas.advance_high_watermark(end);
        log.set_high_watermark(replicas.high_watermark());
        let (progress, _) = watch::channel(log.high_watermark());
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            dir,
            log: OrderedRwLock::new(Some(log)),
            role: OrderedMutex::new(Role {
                local: node_id,
                leader: node_id,
                epoch: TEST_LEADER_EPOCH,
                partition_epoch: 0,
                leading: Some(replicas),
            }),
            progress,
            cleaning: Default::default(),
            sync: GroupSync::new(end),
            #[cfg(test)]
            syncs: Default::default(),
            #[cfg(test)]
            failing_markers: Default::default(),
        })
    }

    /// A partition of a cluster topic on broker `node_id`, leaderless until the cluster
    /// metadata gives it a role. Its log is opened only if this broker holds a replica
    /// (`config` given); otherwise it is there to tell clients where the leader is.
    pub fn open_replica(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: Option<LogConfig>,
        node_id: i32,
    ) -> Result<Partition> {
        crate::lock_order::check_fsyncs();
        let partition = Partition {
            topic: topic.to_owned(),
            index,
            dir,
            log: OrderedRwLock::new(None),
            role: OrderedMutex::new(Role {
                local: node_id,
                leader: -1,
                epoch: -1,
                partition_epoch: -1,
                leading: None,
            }),
            progress: watch::channel(0).0,
            cleaning: Default::default(),
            sync: GroupSync::new(0),
            #[cfg(test)]
            syncs: Default::default(),
            #[cfg(test)]
            failing_markers: Default::default(),
        };
        if let Some(config) = config {
            partition.host(config)?;
        }
        Ok(partition)
    }

    /// Whether this broker holds a replica, i.e. the log is open.
    pub fn is_hosted(&self) -> bool {
        self.log.read().is_some()
    }

    /// Opens (recovering) the log of a replica this broker now holds; nothing if it is open.
    /// Opened with the log unlocked, as recovery can take long and readers of the partition
    /// (metadata, `is_hosted`) must not wait for it: the reconciler, the only caller, hosts
    /// and unhosts one partition at a time under the registry's change lock.
    pub fn host(&self, config: LogConfig) -> Result<()> {
        if self.is_hosted() {
            return Ok(());
        }
        let log = PartitionLog::open(&self.dir, config)?;
        let mut guard = self.log.write();
        if guard.is_some() {
            return Ok(());
        }
        self.sync.reset(log.log_end_offset());
        self.progress.send_replace(log.high_watermark());
        *guard = Some(log);
        Ok(())
    }

    /// This broker no longer holds a replica: the log is deleted. Waiting requests learn it
    /// as NOT_LEADER_OR_FOLLOWER.
    pub fn unhost(&self) -> Result<()> {
        self.become_follower(-1, self.leader_epoch());
        let log = self.log.write().take();
        if let Some(log) = log {
            log.delete()?;
        }
        Ok(())
    }

    /// Appends validated batches on a storage thread; on one node the high watermark follows
    /// the log end at once. With `flush_messages`, returns once the records are on disk: the
    /// caller waits for the (shared) fsync without holding a thread.
    pub async fn append(self: &Arc<Self>, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        let partition = self.clone();
        let (info, sync_due) = storage_threads()
            .run(move || partition.append_unsynced(records, now_ms))
            .await?;
        self.sync_through(sync_due).await?;
        Ok(info)
    }

    /// As [`Self::append`], on the caller's thread: for coordinators that write their
    /// internal topics from blocking code, on tokio's blocking pool
    /// (`event_loop::off_event_loop`) or in a load. Never on the event loop, whose other
    /// connections it would hold up; never on a storage thread: with `flush_messages` it
    /// may wait for an fsync queued on them. Debug builds check both.
    pub fn append_blocking(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        debug_assert!(
            !std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("storage-")),
            "append_blocking on a storage thread"
        );
        #[cfg(debug_assertions)]
        crate::event_loop::assert_not_on_worker("append_blocking");
        let (info, sync_due) = self.append_unsynced(records, now_ms)?;
        self.sync_through_blocking(sync_due)?;
        Ok(info)
    }

    /// The write itself, with what `flush_messages` wants synced before it is acknowledged
    /// (see [`Self::sync_through`]). Blocking: for a storage thread.
    pub fn append_unsynced(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<i64>)> {
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        let mut role = self.role.lock();
        if role.leading.is_none() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let info = log.append(records, role.epoch, now_ms)?;
        self.advance_high_watermark(log, &mut role);
        Ok((info, log.take_sync_due()))
    }

    /// Writes a transaction's commit or abort marker; it moves the high watermark (and the
    /// last stable offset) like any append. `transaction_version` is the coordinator's for
    /// the transaction (see `PartitionLog::append_control`). Blocking: for a storage thread;
    /// with `flush_messages`, what to sync before it is acknowledged (see
    /// [`Self::sync_through`]).
    pub fn write_marker_unsynced(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
        transaction_version: i16,
    ) -> Result<(AppendInfo, Option<i64>)> {
        #[cfg(test)]
        self.injected_marker_fault()?;
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        let mut role = self.role.lock();
        if role.leading.is_none() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        let info = log.append_control(
            producer_id,
            producer_epoch,
            control,
            coordinator_epoch,
            role.epoch,
            now_ms,
            transaction_version,
        )?;
        self.advance_high_watermark(log, &mut role);
        Ok((info, log.take_sync_due()))
    }

    /// Test-only: the next `count` marker writes fail before touching the log, as an append
    /// to a failing disk does (KAFKA_STORAGE_ERROR).
    #[cfg(test)]
    pub fn fail_next_markers(&self, count: usize) {
        self.failing_markers
            .store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Test-only: how many injected marker failures are still to come.
    #[cfg(test)]
    pub fn failing_markers_left(&self) -> usize {
        self.failing_markers
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    #[cfg(test)]
    fn injected_marker_fault(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let failing =
            self.failing_markers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
        match failing {
            Ok(_) => Err(samsa_storage::StorageError::Io(std::io::Error::other(
                "injected marker write failure",
            ))
            .into()),
            Err(_) => Ok(()),
        }
    }

    /// Makes the log durable below `end` when `flush_messages` asked for it, after the log's
    /// lock is released: whoever appended while another append was syncing finds its records
    /// covered by the next fsync, or by the one it waited for. The fsync runs on a storage
    /// thread; waiting for it holds none.
    pub(crate) async fn sync_through(self: &Arc<Self>, end: Option<i64>) -> Result<()> {
        let Some(end) = end else { return Ok(()) };
        let _ran = self
            .sync
            .through_async(end, |from| {
                let partition = self.clone();
                storage_threads().run(move || partition.sync_from(from))
            })
            .await?;
        self.count_sync(_ran);
        Ok(())
    }

    /// As [`Self::sync_through`], on the caller's thread.
    fn sync_through_blocking(&self, end: Option<i64>) -> Result<()> {
        let Some(end) = end else { return Ok(()) };
        let ran = self.sync.through(end, |from| self.sync_from(from))?;
        self.count_sync(ran);
        Ok(())
    }

    /// Fsyncs from `from` to the log end; the log is locked only to find the files.
    fn sync_from(&self, from: i64) -> Result<i64> {
        let sync = self.with_log_mut(|log| Ok(log.sync_from(from)?))?;
        Ok(sync.run()?)
    }

    fn count_sync(&self, _ran: bool) {
        #[cfg(test)]
        if _ran {
            self.syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Reads whole batches from `offset`, never past the high watermark (the last stable
    /// offset for read_committed).
    pub fn read(&self, offset: i64, max_bytes: usize, isolation: Isolation) -> Result<ReadResult> {
        let located = self.locate(offset, max_bytes, isolation)?;
        let records = match &located.records {
            Some(range) => range.read().map_err(samsa_storage::StorageError::from)?,
            None => Bytes::new(),
        };
        Ok(ReadResult {
            records,
            offsets: located.offsets,
            aborted: located.aborted,
        })
    }

    /// What [`Self::read`] answers, with the batches left in their file (`None`: no batch).
    pub fn locate(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult<Option<FileRange>>> {
        self.ensure_leader()?;
        let guard = self.log.read();
        let log = guard.as_ref().ok_or(BrokerError::NotLeaderOrFollower)?;
        let offsets = offsets_of(log);
        let upper = offsets.readable_end(isolation);
        let committed = isolation == Isolation::ReadCommitted;
        let records = log.locate(offset, max_bytes, upper)?;
        let aborted = if committed && records.is_some() {
            log.aborted_transactions(offset, upper)
        } else {
            Vec::new()
        };
        Ok(ReadResult {
            records,
            offsets,
            aborted,
        })
    }

    /// Whether a [`Self::read`] at `offset` would return records or an error, rather than
    /// nothing: from the offsets in memory, so a long poll can tell whether a wake-up concerns
    /// it without reading. A stale `leader_epoch` (-1: none claimed) counts as news too.
    pub fn has_news(&self, offset: i64, leader_epoch: i32, isolation: Isolation) -> bool {
        if self.ensure_leader().is_err() || self.check_leader_epoch(leader_epoch).is_err() {
            return true;
        }
        let Ok(offsets) = self.offsets() else {
            return true;
        };
        let upper = offsets.readable_end(isolation);
        offset < offsets.log_start || offset > offsets.log_end || offset < upper
    }

    /// Whole batches from `offset` up to the high watermark of this broker's replica, leader
    /// or follower: for the broker's own readers of state every replica holds (the schema
    /// registry replays `_schemas` on every node), never for clients, who read leaders.
    pub fn read_replica(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        let guard = self.log.read();
        let log = guard.as_ref().ok_or(BrokerError::NotLeaderOrFollower)?;
        let high_watermark = offsets_of(log).high_watermark;
        Ok(log.read(offset, max_bytes, high_watermark)?)
    }

    /// Every producer's state here (DescribeProducers).
    pub fn producers(&self) -> Result<Vec<ProducerInfo>> {
        self.with_log(|log| Ok(log.producers()))
    }

    pub fn offsets(&self) -> Result<Offsets> {
        self.with_log(|log| Ok(offsets_of(log)))
    }

    /// First record with a timestamp at or after `timestamp`: (offset, timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.with_log(|log| Ok(log.offset_for_timestamp(timestamp)?))
    }

    /// The record with the largest timestamp: (offset, timestamp).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        self.with_log(|log| Ok(log.max_timestamp()?))
    }

    /// A receiver that changes whenever the log grows or the high watermark moves.
    pub fn watch_progress(&self) -> watch::Receiver<i64> {
        self.progress.subscribe()
    }

    pub fn stats(&self) -> Result<PartitionStats> {
        self.with_log(|log| {
            Ok(PartitionStats {
                offsets: offsets_of(log),
                size_bytes: log.size_bytes(),
                segments: log.segment_count(),
            })
        })
    }

    /// fsyncs when the flush interval has passed with data unflushed, and checkpoints rolled
    /// segments whose background sync has finished. Blocking: for a storage thread. The log
    /// is locked only to take what to sync and to record what was: the fsyncs and the
    /// checkpoint's write can wait for the filesystem journal, and producers must not wait
    /// with them.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<()> {
        let flush = {
            let mut guard = self.log.write();
            match guard.as_mut() {
                Some(log) if log.needs_flush(now_ms) => Ok(log.begin_flush()?),
                Some(log) => Err(log.checkpoint_synced_segments()?),
                None => Err(None),
            }
        };
        let pending = match flush {
            Ok(sync) => {
                let through = sync.through();
                sync.run()?;
                let mut guard = self.log.write();
                match guard.as_mut() {
                    Some(log) => Some(log.flushed_through(through)?),
                    None => None,
                }
            }
            Err(pending) => pending,
        };
        if let Some(checkpoint) = pending {
            checkpoint.write()?;
        }
        Ok(())
    }

    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let mut guard = self.log.write();
        match guard.as_mut() {
            Some(log) => {
                // Producer expiry rides on the periodic retention pass, as Kafka checks it
                // on a timer of its own.
                log.expire_producers(now_ms);
                Ok(log.apply_retention(now_ms)?)
            }
            None => Ok(0),
        }
    }

    /// Compacts the log if a cleaning is due. The plan is taken under the read lock and the
    /// cleaning runs with no lock held, so fetches and produces carry on; only the swap of
    /// the cleaned segments takes the write lock.
    pub fn clean(&self, now_ms: i64) -> Result<Option<CleanStats>> {
        use std::sync::atomic::{AtomicBool, Ordering};
        if self.cleaning.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        // Cleared however the cleaning ends, a panic included.
        struct Cleaning<'a>(&'a AtomicBool);
        impl Drop for Cleaning<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _cleaning = Cleaning(&self.cleaning);
        self.clean_now(now_ms)
    }

    fn clean_now(&self, now_ms: i64) -> Result<Option<CleanStats>> {
        let plan = match self.log.read().as_ref() {
            Some(log) => log.compaction_plan(now_ms)?,
            None => None,
        };
        let Some(plan) = plan else { return Ok(None) };
        let cleaned = plan.run()?;
        let mut guard = self.log.write();
        match guard.as_mut() {
            Some(log) => Ok(log.install_cleaned(cleaned)?),
            None => {
                // Closed or deleted meanwhile; with the directory gone there is nothing to remove.
                let _ = cleaned.discard();
                Ok(None)
            }
        }
    }

    /// Applies changed topic configs to the open log and the leader's bookkeeping.
    pub fn set_config(&self, config: LogConfig, min_insync_replicas: usize) {
        let mut guard = self.log.write();
        let mut role = self.role.lock();
        if let Some(leading) = role.leading.as_mut() {
            leading.set_min_isr(min_insync_replicas);
        }
        if let Some(log) = guard.as_mut() {
            log.set_config(config);
            self.advance_high_watermark(log, &mut role);
        }
    }

    /// DeleteRecords: moves the log start to `offset` (the high watermark for -1) and
    /// returns the new log start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.ensure_leader()?;
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        let offset = if offset == -1 {
            log.high_watermark()
        } else {
            offset
        };
        if offset < 0 {
            return Err(samsa_storage::StorageError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
            }
            .into());
        }
        log.advance_log_start_offset(offset)?;
        Ok(log.log_start_offset())
    }

    /// Flushes and closes the log with a clean-shutdown marker; later calls see the partition gone.
    pub fn close(&self) -> Result<()> {
        // Taken out first: closing syncs, which must not happen under the lock.
        let log = self.log.write().take();
        if let Some(log) = log {
            log.close()?;
        }
        Ok(())
    }

    /// Removes the log from disk; readers holding this partition get NOT_LEADER_OR_FOLLOWER.
    pub fn delete(&self) -> Result<()> {
        let log = self.log.write().take();
        match log {
            Some(log) => log.delete()?,
            None => {
                if self.dir.exists() {
                    std::fs::remove_dir_all(&self.dir)
                        .map_err(samsa_storage::StorageError::from)?;
                }
            }
        }
        self.progress.send_replace(-1);
        Ok(())
    }

    fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> Result<T>) -> Result<T> {
        let guard = self.log.read();
        let log = guard.as_ref().ok_or(BrokerError::NotLeaderOrFollower)?;
        f(log)
    }

    fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> Result<T>) -> Result<T> {
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        f(log)
    }
}

fn offsets_of(log: &PartitionLog) -> Offsets {
    Offsets {
        log_start: log.log_start_offset(),
        high_watermark: log.high_watermark(),
        last_stable: log.last_stable_offset(),
        log_end: log.log_end_offset(),
    }
}

#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
