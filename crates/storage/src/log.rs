//! `PartitionLog`: one partition's ordered segments, the offsets that bound them, and the
//! append / read / roll / retention operations over them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{self, validate_batches, BatchHeader, HEADER_SIZE};
use crate::checkpoint::{self, Checkpoint, CheckpointFile, CleanerCheckpoint, PendingCheckpoint};
use crate::compaction::{self, CleanPlan, CleanStats, CleanedSegments};
use crate::durable::StructuralChange;
use crate::epochs::LeaderEpochs;
use crate::flush::{SealedSyncs, SyncJob};
use crate::producers::{client_batches, rebuild, snapshot, Marker, Prepared, ProducerStates};
use crate::recovery;
use crate::retention::{self, SegmentStats};
use crate::segment::Segment;
use crate::{
    AbortedTxn, ControlType, FileRange, LogConfig, ProducerInfo, StorageError, TimestampType,
};

/// Files to fsync so that a log is durable up to `through`, detached from the log so the
/// fsyncs run without its lock. From [`PartitionLog::sync_from`] and
/// [`PartitionLog::begin_flush`].
pub struct LogSync {
    files: Vec<fs::File>,
    dir: PathBuf,
    sync_dir: bool,
    through: i64,
    /// The log's truncation count when taken: a truncation meanwhile voids the sync.
    truncations: u64,
}

impl LogSync {
    /// Fsync point "group commit" (and "flush"): returns the offset everything below which
    /// is now durable.
    pub fn run(self) -> Result<i64, StorageError> {
        for file in &self.files {
            crate::durable::sync_data(file, &self.dir)?;
        }
        if self.sync_dir {
            checkpoint::sync_dir(&self.dir)?;
        }
        Ok(self.through)
    }

    /// What [`Self::run`] will make durable, with the truncation count it is valid for.
    pub fn through(&self) -> (i64, u64) {
        (self.through, self.truncations)
    }
}

/// What an append did, for the produce response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub record_count: u32,
    pub max_timestamp: i64,
    /// The broker time stamped on the batches when the log uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub log_start_offset: i64,
    /// A retried batch an idempotent producer had already written: nothing was appended and
    /// the offsets are those of the original.
    pub duplicate: bool,
}

/// One partition's log. `Send + Sync`: reads take `&self` and use positional I/O, so the
/// broker can serve fetches concurrently under a read lock.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Keyed by base offset; never empty, the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    unflushed_records: u64,
    /// When the oldest not-yet-fsynced append happened, for `flush_ms`.
    oldest_unflushed_ms: Option<i64>,
    /// Everything below this offset is known to be on disk (checkpointed; see `recovery`).
    recovery_point: i64,
    /// Rolled segments still being synced in the background.
    sealed_syncs: SealedSyncs,
    checkpoint_file: Arc<CheckpointFile>,
    /// Sequence number of the last checkpoint taken, so they reach the file in order.
    checkpoint_sequence: u64,
    /// Whether the active segment's directory entry may not be durable yet: a roll leaves
    /// the directory fsync to the background, so an explicit sync does it first.
    active_dir_unsynced: bool,
    /// `flush_messages` was reached by an append: the caller is to sync (`take_sync_due`).
    sync_due: bool,
    /// Where compaction got to; meaningful only with `cleanup.policy` compact.
    cleaner: CleanerCheckpoint,
    /// Idempotent and transactional producers' state, and the aborted transactions.
    producers: ProducerStates,
    /// Whether `producers` changed since the last snapshot: a roll only snapshots then, so
    /// logs without idempotent producers pay nothing for them.
    producers_changed: bool,
    /// Where each leader epoch began, for OffsetForLeaderEpoch and follower truncation.
    epochs: LeaderEpochs,
    /// Truncations so far, so a flush that raced one does not vouch for what it rewrote.
    truncations: u64,
}

impl PartitionLog {
    /// Opens (creating if needed) the partition directory and runs recovery. The high
    /// watermark comes back as last checkpointed, clamped to the recovered log; a single-node
    /// broker may simply set it to the log end offset.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        // Recovery must finish before anyone reads or appends.
        let _structural = StructuralChange::begin();
        fs::create_dir_all(dir)?;
        let clean = checkpoint::take_clean_marker(dir)?;
        let saved = checkpoint::read(dir)?;
        compaction::swap::recover(dir)?;
        let empty_base = saved.map_or(0, |c| c.log_start_offset.max(0));
        // Without a checkpoint nothing is known to be on disk.
        let recovery_point = saved.map_or(i64::MIN, |c| c.recovery_point);
        let segments = recovery::load_segments(
            dir,
            &config,
            clean,
            recovery_point,
            empty_base,
            wall_clock_ms(),
        )?;
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_end = segments
            .values()
            .next_back()
            .map_or(0, Segment::next_offset);
        let log_start_offset = saved
            .map_or(first_base, |c| c.log_start_offset)
            .clamp(first_base, log_end.max(first_base));
        let high_watermark = saved
            .map_or(log_start_offset, |c| c.high_watermark)
            .clamp(log_start_offset, log_end.max(log_start_offset));
        let producers = rebuild::load(dir, &segments, log_start_offset, log_end)?;
        let epochs = LeaderEpochs::load(dir, &segments, log_start_offset, log_end)?;
        // Recovery synced every sealed segment it did not trust.
        let active_base = segments.keys().next_back().copied().unwrap_or(0);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            high_watermark,
            unflushed_records: 0,
            oldest_unflushed_ms: None,
            recovery_point: active_base,
            sealed_syncs: SealedSyncs::default(),
            checkpoint_file: Arc::new(CheckpointFile::new(dir)),
            checkpoint_sequence: 0,
            active_dir_unsynced: false,
            sync_due: false,
            cleaner: checkpoint::read_cleaner(dir)?.unwrap_or(CleanerCheckpoint {
                first_dirty_offset: log_start_offset,
                next_delete_horizon: None,
            }),
            producers,
            producers_changed: false,
            epochs,
            truncations: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies changed topic configs; segment and index settings take effect from the next
    /// append or roll.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Validates first (nothing is written on error), then assigns offsets from the log end
    /// offset, stamps the leader epoch (and LogAppendTime) and appends, rolling if needed.
    pub fn append(
        &mut self,
        records: Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let headers = validate_batches(&records, self.config.max_message_bytes)?;
        let segment_limit = self.config.effective_segment_bytes();
        if records.len() as u64 > segment_limit {
            return Err(StorageError::RecordTooLarge {
                size: records.len(),
                max: segment_limit as usize,
            });
        }
        let mut position = 0;
        for header in &headers {
            let end = position + header.total_size();
            crate::record_rules::check(&records[position..end], &self.config, now_ms)?;
            position = end;
        }
        let log_append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let base_offset = self.log_end_offset();
        let update = match self.producers.prepare(&client_batches(
            &headers,
            base_offset,
            log_append_time,
        )?)? {
            Prepared::Duplicate(original) => {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    record_count: (original.last_offset - original.first_offset + 1) as u32,
                    max_timestamp: original.max_timestamp,
                    log_append_time: None,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                })
            }
            Prepared::Append(update) => update,
        };
        // The stamped fields all sit in each batch's header: headers are stamped apart and
        // written with the producer's bytes in one pwritev, so a batch is copied once.
        let mut next_offset = base_offset;
        let mut position = 0;
        let mut heads = Vec::with_capacity(headers.len());
        let mut stamped = Vec::with_capacity(headers.len());
        let mut record_count = 0u32;
        let mut max_timestamp = -1i64;
        for header in &headers {
            let end = position + header.total_size();
            let (head, rest) = records[position..end].split_at(HEADER_SIZE);
            let mut head: [u8; HEADER_SIZE] = head.try_into().expect("split at HEADER_SIZE");
            batch::assign_offset_and_epoch(&mut head, next_offset, leader_epoch);
            if let Some(now) = log_append_time {
                batch::stamp_log_append_time(&mut head, rest, now);
            } else if header.timestamp_type() == TimestampType::LogAppendTime {
                batch::stamp_create_time(&mut head, rest);
            }
            heads.push(head);
            let header = BatchHeader::parse(&head)?;
            next_offset = header.next_offset();
            max_timestamp = max_timestamp.max(header.max_timestamp);
            record_count = record_count.saturating_add(header.record_count.max(0) as u32);
            stamped.push(header);
            position = end;
        }
        let last_offset = next_offset - 1;

        self.record_epochs(&[(leader_epoch, base_offset)])?;
        self.maybe_roll(records.len() as u64, max_timestamp, last_offset, now_ms)?;
        self.active_mut()
            .append_with_heads(&records, &heads, &stamped)?;
        self.producers_changed |= self.producers.commit(update);
        self.count_unflushed(record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            record_count,
            max_timestamp,
            log_append_time,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Counts appended records towards `flush_messages` and `flush_ms`. A sync that is due
    /// is not done here, under the caller's lock, but asked for: see [`Self::take_sync_due`].
    fn count_unflushed(&mut self, records: u32, now_ms: i64) -> Result<(), StorageError> {
        self.unflushed_records += u64::from(records);
        self.oldest_unflushed_ms.get_or_insert(now_ms);
        if self
            .config
            .flush_messages
            .is_some_and(|n| self.unflushed_records >= n)
        {
            self.sync_due = true;
            self.mark_flushed();
        }
        Ok(())
    }

    /// After an append: `Some(log end)` when `flush_messages` says everything below it must be
    /// synced before the write is acknowledged. The caller syncs with [`Self::sync_from`]
    /// once it has released the log, so that appends by other producers go on meanwhile and
    /// one fsync covers them all (group commit).
    pub fn take_sync_due(&mut self) -> Option<i64> {
        std::mem::take(&mut self.sync_due).then(|| self.log_end_offset())
    }

    /// What syncing everything from `offset` to the log end takes: the segments holding
    /// those offsets (a roll may have sealed some meanwhile) and, after a roll, the
    /// directory, since fsyncing a file does not make its directory entry durable.
    pub fn sync_from(&mut self, offset: i64) -> Result<LogSync, StorageError> {
        let mut files = Vec::new();
        for segment in self.segments.values().filter(|s| s.next_offset() > offset) {
            files.push(segment.log_file().try_clone()?);
        }
        Ok(LogSync {
            files,
            dir: self.dir.clone(),
            sync_dir: std::mem::take(&mut self.active_dir_unsynced),
            through: self.log_end_offset(),
            truncations: self.truncations,
        })
    }

    /// Fsync point "flush", in three steps so that no lock is held across its fsyncs: this
    /// takes what to sync (the active segment's log and indexes, and the directory after a
    /// roll), [`LogSync::run`] syncs it with the log released, and
    /// [`Self::flushed_through`] moves the recovery point.
    pub fn begin_flush(&mut self) -> Result<LogSync, StorageError> {
        let active = self.active();
        let files = vec![
            active.log_file().try_clone()?,
            active.offset_index_file()?,
            active.time_index_file()?,
        ];
        self.mark_flushed();
        Ok(LogSync {
            files,
            dir: self.dir.clone(),
            sync_dir: std::mem::take(&mut self.active_dir_unsynced),
            through: self.log_end_offset(),
            truncations: self.truncations,
        })
    }

    /// After a [`Self::begin_flush`] whose sync made everything below `through` durable:
    /// the recovery point moves as far as the rolled segments' syncs allow, and the
    /// checkpoint recording it is returned, to be written with the log released.
    pub fn flushed_through(
        &mut self,
        (through, truncations): (i64, u64),
    ) -> Result<PendingCheckpoint, StorageError> {
        self.advance_recovery_point()?;
        // After a truncation the offsets below `through` may hold other, unsynced batches.
        if self.sealed_syncs.all_synced() && truncations == self.truncations {
            self.recovery_point = self.recovery_point.max(through.min(self.log_end_offset()));
        }
        Ok(self.take_checkpoint())
    }

    /// An explicit flush must leave a segment created a moment ago durable, and fsyncing a
    /// file does not make its directory entry durable.
    fn sync_active_dir_entry(&mut self) -> Result<(), StorageError> {
        if self.active_dir_unsynced {
            checkpoint::sync_dir(&self.dir)?;
            self.active_dir_unsynced = false;
        }
        Ok(())
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        incoming_max_ts: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() + incoming_bytes > self.config.effective_segment_bytes();
        let old = active.is_due_for_time_roll(incoming_max_ts, now_ms, self.config.segment_ms);
        // Index entries hold offsets relative to the base as 32 bits.
        let offsets_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        if full || old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset. The sealed
    /// segment, the directory and the producer snapshot are synced in the background (see
    /// `flush`): fsyncing them here, under the partition's write lock, stalled its producers
    /// for as long as the disk took. An empty active segment is kept as is.
    fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        if active.is_empty() {
            return Ok(());
        }
        active.finish()?;
        let segment_sync = active.sync_handle()?;
        let segment = Segment::create(&self.dir, log_end, interval, now_ms)?;
        self.segments.insert(log_end, segment);
        self.active_dir_unsynced = true;
        // Without changes, the last snapshot serves as well.
        let snapshot = self
            .producers_changed
            .then(|| (log_end, snapshot::encode(log_end, &self.producers)));
        self.producers_changed = false;
        let sync = SyncJob {
            segment: Some(segment_sync),
            dir: self.dir.clone(),
            snapshot,
            ..SyncJob::default()
        };
        Ok(self.sealed_syncs.start(log_end, sync)?)
    }

    /// Whole batches starting with the one containing `offset`: at most `max_bytes`, but at
    /// least one batch (KIP-74), and never a batch whose base offset is >= `upper_bound`.
    /// Reads come from one segment; the client's next fetch continues in the next.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Bytes, StorageError> {
        match self.locate(offset, max_bytes, upper_bound)? {
            Some(range) => Ok(range.read()?),
            None => Ok(Bytes::new()),
        }
    }

    /// What [`Self::read`] would read, left in the file; `None` when that is nothing.
    pub fn locate(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Option<FileRange>, StorageError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(self.out_of_range(offset));
        }
        if offset == log_end || offset >= upper_bound {
            return Ok(None);
        }
        let Some(start_base) = self.segments.range(..=offset).next_back().map(|(b, _)| *b) else {
            return Err(self.out_of_range(offset));
        };
        for segment in self.segments.range(start_base..).map(|(_, s)| s) {
            if let Some((position, header)) = segment.find_batch(offset)? {
                return segment.batches_from(position, &header, max_bytes, upper_bound);
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Clamped to `[log_start_offset, log_end_offset]`. Persisted at the next flush or close.
    pub fn set_high_watermark(&mut self, offset: i64) {
        self.high_watermark = offset.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// `(offset, timestamp)` of the first record at or after the log start with timestamp
    /// >= `ts` (ListOffsets by time); `None` if there is none.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in self.segments.values() {
            if segment.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some(found) = segment.offset_for_timestamp(ts, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// `(offset, timestamp)` of the earliest record with the largest timestamp (ListOffsets
    /// MAX_TIMESTAMP); `None` if no record carries a timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp())
            {
                best = Some(segment);
            }
        }
        match best {
            Some(segment) => segment.max_timestamp_record(),
            None => Ok(None),
        }
    }

    /// DeleteRecords: moves the log start up to `offset` (at most the high watermark) and
    /// deletes segments wholly below it. The new start is checkpointed before returning.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset > self.high_watermark {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        self.epochs_follow_log_start()?;
        let doomed = self
            .sealed()
            .take_while(|(_, next_offset)| *next_offset <= offset)
            .count();
        self.remove_oldest(doomed)
    }

    /// True when `flush_ms` has passed since the oldest unflushed append.
    pub fn needs_flush(&self, now_ms: i64) -> bool {
        match (self.config.flush_ms, self.oldest_unflushed_ms) {
            (Some(ms), Some(since)) => now_ms.saturating_sub(since) >= ms as i64,
            _ => false,
        }
    }

    /// Fsync point "flush": active segment log and indexes, then the checkpoint. Rolled
    /// segments are synced in the background; the recovery point only passes them once that
    /// is done.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.sync_active_dir_entry()?;
        self.active().sync()?;
        self.mark_flushed();
        self.advance_recovery_point()?;
        if self.sealed_syncs.all_synced() {
            self.recovery_point = self.log_end_offset();
        }
        self.write_checkpoint()
    }

    /// A checkpoint of the recovery point when background syncs of rolled segments have moved
    /// it, so that recovery after a crash need not check those segments again. The caller
    /// writes it once it has released the log: the write's fsyncs can take long.
    pub fn checkpoint_synced_segments(
        &mut self,
    ) -> Result<Option<PendingCheckpoint>, StorageError> {
        if !self.advance_recovery_point()? {
            return Ok(None);
        }
        Ok(Some(self.take_checkpoint()))
    }

    fn advance_recovery_point(&mut self) -> Result<bool, StorageError> {
        match self.sealed_syncs.finished()? {
            Some(end) if end > self.recovery_point => {
                self.recovery_point = end;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes whole old segments by time, then by size, and advances the log start offset.
    /// An expired active segment is rolled first so it can go. Returns segments deleted.
    /// Only with `cleanup.policy` delete (alone or with compact).
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        if !self.config.cleanup_policy.delete {
            return Ok(0);
        }
        let retention_ms = self.config.retention_ms.filter(|ms| *ms >= 0);
        if let Some(ms) = retention_ms {
            let active = self.active();
            if !active.is_empty() && retention::is_expired(active.largest_timestamp()?, now_ms, ms)
            {
                self.roll(now_ms)?;
            }
        }
        let mut stats = Vec::with_capacity(self.segments.len());
        for (segment, (_, next_offset)) in self.segments.values().zip(self.sealed()) {
            stats.push(SegmentStats {
                size: segment.size(),
                largest_timestamp: segment.largest_timestamp()?,
                next_offset,
            });
        }
        let count = retention::deletable_prefix(
            &stats,
            self.size_bytes(),
            retention_ms,
            self.config.retention_bytes,
            now_ms,
            self.high_watermark,
        );
        if count == 0 {
            return Ok(0);
        }
        let new_start = stats[count - 1].next_offset;
        if new_start > self.log_start_offset {
            self.log_start_offset = new_start;
            self.epochs_follow_log_start()?;
        }
        self.remove_oldest(count)?;
        Ok(count)
    }

    /// With `cleanup.policy` compact: what a cleaning due now would clean, snapshotted so
    /// that [`CleanPlan::run`] needs no access to the log. `None` when none is due.
    pub fn compaction_plan(&self, now_ms: i64) -> Result<Option<CleanPlan>, StorageError> {
        if !self.config.cleanup_policy.compact {
            return Ok(None);
        }
        compaction::plan(
            &self.dir,
            &self.config,
            &self.segments,
            self.cleaner,
            self.last_stable_offset(),
            &self.producers.aborted,
            now_ms,
        )
    }

    /// Swaps cleaned segments in (see `compaction::swap`) and advances the cleaner checkpoint.
    /// `None` if the segments they replace changed since the plan (retention, DeleteRecords):
    /// the cleaned ones are discarded and the next cleaning starts over.
    pub fn install_cleaned(
        &mut self,
        cleaned: CleanedSegments,
    ) -> Result<Option<CleanStats>, StorageError> {
        // The swap renames files the log serves from: nobody may read it half done.
        let _structural = StructuralChange::begin();
        let replaced = cleaned.replaced();
        let unchanged = self.segments.len() > replaced.len()
            && self.segments.keys().zip(replaced).all(|(a, b)| a == b)
            && self.segments.keys().nth(replaced.len()) == Some(&cleaned.end());
        if !unchanged {
            cleaned.discard()?;
            return Ok(None);
        }
        let (replaced, mut staged, cleaner, stats) = cleaned.into_parts();
        let originals = replaced
            .iter()
            .filter_map(|base| self.segments.remove(base))
            .collect();
        let swapped = compaction::swap::swap(&self.dir, originals, &mut staged);
        // Even if a step after the commit failed, the staged segments' open handles hold the
        // cleaned data and the next open finishes the swap on disk.
        for segment in staged {
            self.segments.insert(segment.base_offset(), segment);
        }
        swapped?;
        self.cleaner = cleaner;
        checkpoint::write_cleaner(&self.dir, cleaner)?;
        Ok(Some(stats))
    }

    /// Plans, runs and installs a cleaning in one go, for callers that hold the log
    /// exclusively anyway.
    pub fn clean(&mut self, now_ms: i64) -> Result<Option<CleanStats>, StorageError> {
        match self.compaction_plan(now_ms)? {
            Some(plan) => self.install_cleaned(plan.run()?),
            None => Ok(None),
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Seals the active segment, checkpoints, and leaves the clean-shutdown marker that lets
    /// the next open skip recovery.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.sealed_syncs.wait_all()?;
        self.sync_active_dir_entry()?;
        self.active_mut().seal()?;
        self.recovery_point = self.log_end_offset();
        self.write_snapshot()?;
        self.write_checkpoint()?;
        checkpoint::write_clean_marker(&self.dir)?;
        Ok(())
    }

    /// Removes the partition directory (DeleteTopics).
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(dir)?;
        Ok(())
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open creates one and deletion always spares the last.
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// `(base_offset, next_offset)` of each sealed segment, oldest first.
    fn sealed(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.segments
            .keys()
            .zip(self.segments.keys().skip(1))
            .map(|(b, n)| (*b, *n))
    }

    /// Takes the `count` oldest segments out of the log (never the active one) after the log
    /// start moved, and queues what makes that durable on the storage threads: the
    /// checkpoint with the new log start, the segments' files removed, the directory, and a
    /// producer snapshot at the log end (after syncing the active segment, so that it never
    /// describes batches not on disk) that replaces those below the new start. Nothing of it
    /// waits under the caller's lock; truncation and close wait for it as for a roll's sync.
    fn remove_oldest(&mut self, count: usize) -> Result<(), StorageError> {
        let count = count.min(self.segments.len().saturating_sub(1));
        let mut doomed = Vec::with_capacity(count);
        for _ in 0..count {
            if let Some((_, segment)) = self.segments.pop_first() {
                doomed.push(segment);
            }
        }
        let checkpoint = Some(self.take_checkpoint());
        let mut job = SyncJob {
            checkpoint,
            dir: self.dir.clone(),
            ..SyncJob::default()
        };
        if count > 0 {
            self.producers.drop_aborted_before(self.log_start_offset);
            let log_end = self.log_end_offset();
            job.doomed = doomed;
            job.segment = Some(self.active().sync_handle()?);
            job.snapshot = Some((log_end, snapshot::encode(log_end, &self.producers)));
            job.snapshots_below = Some(self.log_start_offset);
            self.producers_changed = false;
        }
        Ok(self.sealed_syncs.start(self.recovery_point, job)?)
    }

    fn write_checkpoint(&mut self) -> Result<(), StorageError> {
        self.take_checkpoint().write()
    }

    fn take_checkpoint(&mut self) -> PendingCheckpoint {
        self.checkpoint_sequence += 1;
        let checkpoint = Checkpoint {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            recovery_point: self.recovery_point,
        };
        PendingCheckpoint::new(
            self.checkpoint_file.clone(),
            self.checkpoint_sequence,
            checkpoint,
        )
    }

    fn mark_flushed(&mut self) {
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset(),
        }
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

mod replica;
mod transactions;
mod truncation;

#[cfg(test)]
mod producer_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod truncation_tests;
