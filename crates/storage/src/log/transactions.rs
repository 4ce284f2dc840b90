//! What the log keeps for idempotent and transactional producers: transaction markers, the
//! last stable offset, aborted transactions, producer expiry and the producer snapshots.

use super::*;

impl PartitionLog {
    /// Appends a commit or abort marker for `producer_id`'s open transaction (a control
    /// batch, stamped like any append). A marker with no open transaction is written too:
    /// coordinators resend markers when they retry or recover. `transaction_version` is the
    /// coordinator's for this transaction: from 2 the marker's epoch must be newer than the
    /// producer's here.
    #[allow(clippy::too_many_arguments)]
    pub fn append_control(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
        transaction_version: i16,
    ) -> Result<AppendInfo, StorageError> {
        if producer_id < 0 {
            return Err(StorageError::InvalidTxnState(format!(
                "a transaction marker needs a producer id, got {producer_id}"
            )));
        }
        let offset = self.log_end_offset();
        let update = self.producers.prepare_marker(&Marker {
            producer_id,
            epoch: producer_epoch,
            control,
            coordinator_epoch,
            offset,
            timestamp: now_ms,
            transaction_version,
        })?;
        let mut bytes = batch::control_batch(
            producer_id,
            producer_epoch,
            control,
            coordinator_epoch,
            now_ms,
        );
        batch::assign_offset_and_epoch(&mut bytes, offset, leader_epoch);
        let header = BatchHeader::parse(&bytes)?;
        self.record_epochs(&[(leader_epoch, offset)])?;
        self.maybe_roll(bytes.len() as u64, now_ms, offset, now_ms)?;
        self.active_mut().append(&bytes, &[header])?;
        self.producers_changed |= self.producers.commit(update);
        self.count_unflushed(1, now_ms)?;
        Ok(AppendInfo {
            base_offset: offset,
            last_offset: offset,
            record_count: 1,
            max_timestamp: now_ms,
            log_append_time: None,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// The first offset of the oldest open transaction, or the high watermark if none is
    /// open: what read_committed consumers may read up to.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark))
    }

    /// Aborted transactions that overlap `[from, to)`, oldest first.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.aborted_between(from, to)
    }

    /// The state of every producer that has written to this partition and not expired.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.producers.infos()
    }

    /// Forgets idle producers (see [`LogConfig::producer_id_expiration_ms`]); the broker
    /// calls this periodically. Returns how many were dropped.
    pub fn expire_producers(&mut self, now_ms: i64) -> usize {
        let expired = self
            .producers
            .expire(now_ms, self.config.producer_id_expiration_ms);
        self.producers_changed |= expired > 0;
        expired
    }

    /// A producer snapshot at the log end, whose batches must be durable already.
    pub(super) fn write_snapshot(&mut self) -> Result<(), StorageError> {
        snapshot::write(&self.dir, self.log_end_offset(), &self.producers)?;
        self.producers_changed = false;
        Ok(())
    }
}
