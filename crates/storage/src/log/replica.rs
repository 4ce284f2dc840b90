//! What replication needs of a log: the leader epoch cache and its OffsetForLeaderEpoch
//! answers.

use super::*;

impl PartitionLog {
    /// The epoch of the newest batch written with one, `None` for a log without any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest()
    }

    /// OffsetForLeaderEpoch for `epoch`: `(epoch found, end offset)` as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` answers it, `None` for its UNDEFINED_EPOCH /
    /// UNDEFINED_EPOCH_OFFSET (see [`LeaderEpochs::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// `(leader epoch, start offset)` of every cached epoch, oldest first.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Adds the epochs that `(leader epoch, base offset)` of batches about to be written
    /// start, and saves the cache before the batches are written: after a crash the file
    /// may know an epoch whose data did not make it (dropped on open), never the reverse.
    /// The file's fsyncs happen only when an epoch starts, once per leader change.
    pub(super) fn record_epochs(&mut self, batches: &[(i32, i64)]) -> Result<(), StorageError> {
        let mut next: Option<LeaderEpochs> = None;
        for &(epoch, base_offset) in batches {
            if next.as_ref().unwrap_or(&self.epochs).is_new(epoch) {
                next.get_or_insert_with(|| self.epochs.clone())
                    .assign(epoch, base_offset);
            }
        }
        if let Some(next) = next {
            next.write(&self.dir)?;
            self.epochs = next;
        }
        Ok(())
    }

    /// After the log start moved: the entry covering it is clamped to it, older ones go. A
    /// crash before the file is written only redoes this on open.
    pub(super) fn epochs_follow_log_start(&mut self) -> Result<(), StorageError> {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }
}
