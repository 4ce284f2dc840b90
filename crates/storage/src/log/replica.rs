//! What replication needs of a log: the leader epoch cache and its OffsetForLeaderEpoch
//! answers, and a follower's appends of its leader's batches.

use super::*;
use crate::batch::check_batch;

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

    /// A replica becoming leader in `epoch` records it at its log end before writing
    /// anything (Kafka's makeLeader does the same): otherwise a follower holding data of an
    /// epoch between the cached latest and `epoch` would get UNDEFINED for it instead of
    /// where to truncate. An entry that never got data is dropped on the next open, and
    /// the broker assigns it again when it leads again. Older epochs are ignored.
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        self.record_epochs(&[(epoch, log_end)])
    }

    /// `(leader epoch, start offset)` of every cached epoch, oldest first.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Appends batches fetched from the leader, which already carry their offsets, leader
    /// epochs and (LogAppendTime) timestamps: they are checked (framing, magic, CRC) and
    /// written byte for byte. Each batch must start at or after where the previous one
    /// ended, the first at or after the log end offset
    /// ([`StorageError::UnexpectedAppendOffset`] otherwise); gaps are allowed, as in Kafka,
    /// because compaction removes whole batches from the leader's log. Producer state is
    /// replayed as on open: the leader already applied the sequence and epoch rules.
    pub fn append_as_follower(
        &mut self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let headers = replicated_batches(&records, self.log_end_offset())?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        };
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        // A new segment starts at the log end; its index holds offsets relative to that.
        if last_offset - self.log_end_offset() > i64::from(i32::MAX) {
            return Err(StorageError::InvalidRecord(format!(
                "replicated batches up to offset {last_offset} are too far past the log end {} for one segment",
                self.log_end_offset()
            )));
        }
        let max_timestamp = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        let record_count = headers
            .iter()
            .map(|h| h.record_count.max(0) as u32)
            .fold(0u32, u32::saturating_add);
        let starts: Vec<(i32, i64)> = headers
            .iter()
            .map(|h| (h.leader_epoch, h.base_offset))
            .collect();
        self.record_epochs(&starts)?;
        self.maybe_roll(records.len() as u64, max_timestamp, last_offset, now_ms)?;
        self.active_mut().append(&records, &headers)?;
        let mut position = 0;
        for header in &headers {
            let end = position + header.total_size();
            let bytes = || Ok::<_, StorageError>(&records[position..end]);
            self.producers_changed |= rebuild::replay(header, bytes, &mut self.producers)?;
            position = end;
        }
        self.count_unflushed(record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            record_count,
            max_timestamp,
            log_append_time: None,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Adds the epochs that `(leader epoch, base offset)` of batches about to be written
    /// start, and saves the cache before the batches are written: after a crash the file
    /// may know an epoch whose data did not make it (dropped on open), never the reverse.
    /// The file's fsyncs happen only when an epoch starts, once per leader change.
    pub(super) fn record_epochs(&mut self, batches: &[(i32, i64)]) -> Result<(), StorageError> {
        // Written before the first batch of a new epoch, under the log's lock: once per epoch.
        let _structural = crate::durable::StructuralChange::begin();
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

    /// After the log start moved: the entry covering it is clamped to it, older ones go, in
    /// memory only. The file may lag: open cuts what it reads to the log start anyway, and
    /// the next epoch, truncation or open writes it whole. Writing it here would fsync under
    /// the log's lock on every retention pass.
    pub(super) fn epochs_follow_log_start(&mut self) -> Result<(), StorageError> {
        self.epochs.truncate_from_start(self.log_start_offset);
        Ok(())
    }
}

/// The headers of replicated batches that continue a log ending at `log_end`: each intact
/// and starting at or after where the one before it ended.
fn replicated_batches(records: &[u8], log_end: i64) -> Result<Vec<BatchHeader>, StorageError> {
    if records.is_empty() {
        return Err(StorageError::InvalidRecord("no record batches".into()));
    }
    let mut headers = Vec::new();
    let mut expected = log_end;
    let mut rest = records;
    while !rest.is_empty() {
        let header = check_batch(rest)?;
        if header.base_offset < expected {
            return Err(StorageError::UnexpectedAppendOffset {
                base_offset: header.base_offset,
                expected,
            });
        }
        expected = header.next_offset();
        rest = &rest[header.total_size()..];
        headers.push(header);
    }
    Ok(headers)
}
