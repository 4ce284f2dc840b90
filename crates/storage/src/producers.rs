//! Per-producer state of one partition: what idempotent and transactional producers have
//! written, so retried batches are recognised, sequence gaps and stale epochs refused, and
//! open transactions bound the last stable offset.
//!
//! (Interface only so far; the state machine, snapshots and the transaction index follow.)

/// A commit or abort marker, the one record of a control batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// A transaction that was aborted, as Fetch reports it to read_committed consumers so they
/// drop its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// One producer's state in a partition, as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction, -1 if none.
    pub current_txn_start_offset: i64,
}
