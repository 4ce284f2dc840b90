//! Follower truncation: cutting a log back to where it agrees with its leader, or starting
//! it over when the leader's log start passed it.
//!
//! Crash safety: every step leaves a directory that the next open recovers into a
//! consistent log. The epoch file goes first (a crash before it is written again rebuilds
//! it from the surviving batch headers), then the producer snapshots above the cut, then
//! the later segments, newest first (a crash leaves a shorter but contiguous log), then the
//! cut segment's tail. The checkpoint with the lowered recovery point is written before
//! anything can be appended again, so no rewritten segment is ever trusted unchecked.

use super::*;

impl PartitionLog {
    /// Removes every batch at or above `offset`; a batch that `offset` falls inside goes
    /// whole (Kafka truncates at batch boundaries, and the follower fetches it again), so
    /// the log end offset becomes the end of the last batch kept. The high watermark,
    /// recovery point and log start are clamped to it, epochs that started at or after it
    /// are forgotten and producer state is rebuilt as of it. Nothing happens when `offset`
    /// is at or past the log end; below the first segment the log starts over there.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        // A log half cut back must not be read or appended to.
        let _structural = StructuralChange::begin();
        self.truncations += 1;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let Some(cut_base) = self.segments.range(..=offset).next_back().map(|(b, _)| *b) else {
            return self.truncate_fully_and_start_at(offset);
        };
        self.wait_for_sealed_syncs()?;
        LeaderEpochs::remove_file(&self.dir)?;
        let cut = self.segments[&cut_base].find_batch(offset)?;
        let removed_from = cut.map_or(offset, |(_, header)| header.base_offset);
        snapshot::delete_after(&self.dir, removed_from)?;
        while let Some(entry) = self.segments.last_entry() {
            if *entry.key() == cut_base {
                break;
            }
            entry.remove().delete_files()?;
        }
        checkpoint::sync_dir(&self.dir)?;
        self.active_dir_unsynced = false;
        if let Some((position, _)) = cut {
            self.active_mut().truncate_to(position)?;
        }
        let log_end = self.log_end_offset();
        self.log_start_offset = self.log_start_offset.min(log_end);
        self.high_watermark = self.high_watermark.min(log_end);
        self.recovery_point = self.recovery_point.min(log_end);
        self.write_checkpoint()?;

        self.producers = rebuild::load(&self.dir, &self.segments, self.log_start_offset, log_end)?;
        // Loading dropped the snapshots between the new end and the cut.
        checkpoint::sync_dir(&self.dir)?;
        self.producers_changed = true;
        self.epochs.truncate_from_end(log_end);
        self.epochs.write(&self.dir)?;
        if self.cleaner.first_dirty_offset > log_end {
            self.cleaner.first_dirty_offset = log_end;
            checkpoint::write_cleaner(&self.dir, self.cleaner)?;
        }
        Ok(())
    }

    /// Drops the whole log and starts an empty one at `offset`, which becomes the log start,
    /// high watermark and log end: for a follower whose fetch offset fell below its
    /// leader's log start.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        let _structural = StructuralChange::begin();
        self.truncations += 1;
        self.wait_for_sealed_syncs()?;
        LeaderEpochs::remove_file(&self.dir)?;
        snapshot::delete_after(&self.dir, i64::MIN)?;
        while let Some((_, segment)) = self.segments.pop_last() {
            segment.delete_files()?;
        }
        let interval = self.config.index_interval_bytes;
        let segment = Segment::create(&self.dir, offset, interval, wall_clock_ms())?;
        self.segments.insert(offset, segment);
        checkpoint::sync_dir(&self.dir)?;
        self.active_dir_unsynced = false;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.mark_flushed();
        self.write_checkpoint()?;

        self.producers = ProducerStates::default();
        self.producers_changed = false;
        self.epochs = LeaderEpochs::default();
        self.epochs.write(&self.dir)?;
        self.cleaner = CleanerCheckpoint {
            first_dirty_offset: offset,
            next_delete_horizon: None,
        };
        checkpoint::write_cleaner(&self.dir, self.cleaner)?;
        Ok(())
    }

    /// A roll's background job may still write a producer snapshot at the end of the
    /// segment it sealed; a truncation waits for all of them, so none appears above the cut
    /// afterwards.
    pub(super) fn wait_for_sealed_syncs(&mut self) -> Result<(), StorageError> {
        if let Some(end) = self.sealed_syncs.wait_all()? {
            self.recovery_point = self.recovery_point.max(end);
        }
        Ok(())
    }
}
