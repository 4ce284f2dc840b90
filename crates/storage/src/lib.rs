//! samsa's native segment store.
//!
//! A partition is a directory of segments; each segment is a `.log` of Kafka RecordBatch v2
//! bytes (the wire format is the disk format, so fetches are plain file reads) plus two sparse
//! indexes. This crate knows nothing of requests or responses: the broker validates and maps
//! [`StorageError`] to Kafka error codes in one place.
//!
//! Durability model, in short: a rolled segment is fsynced in the background (module `flush`)
//! and the partition checkpoint records the recovery point, the offset below which everything
//! is on disk. After a crash, recovery on open checks every segment from the recovery point on
//! and truncates the log at the first torn or corrupt batch.
//!
//! Compaction (`cleanup.policy=compact`, module `compaction`) rewrites sealed segments keeping
//! the last record per key at its original offset; an interrupted swap of cleaned segments is
//! finished or rolled back on open.
//!
//! Replication support: the leader epoch cache (module `epochs`, Kafka's
//! `leader-epoch-checkpoint`) answers OffsetForLeaderEpoch; a follower appends its leader's
//! batches as they are and truncates back to a batch boundary after a leader change.

mod batch;
mod checkpoint;
mod compaction;
mod config;
pub mod durable;
mod epochs;
mod file_range;
mod flush;
mod index;
mod log;
mod producers;
mod recompress;
mod record_rules;
mod records;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod testutil;
mod threads;

pub use batch::{validate_batches, BatchHeader, Compression, HEADER_SIZE};
pub use checkpoint::PendingCheckpoint;
pub use compaction::{CleanPlan, CleanStats, CleanedSegments};
pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use file_range::FileRange;
pub use log::{AppendInfo, LogSync, PartitionLog};
pub use producers::{AbortedTxn, ControlType, ProducerInfo};
pub use recompress::{recompress, TargetCompression};
pub use record_rules::{RecordFault, RefusedRecord};
pub use records::{decompress_bounded, record_payloads, Payload};
pub use threads::DEFAULT_STORAGE_THREADS;
pub use threads::{
    configure as configure_storage_threads, counting as count_storage_time, storage_threads,
    StorageThreads,
};

/// Everything the storage layer can fail with. The broker maps these to Kafka error codes.
#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    /// Bytes that fail framing or CRC checks (Kafka CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// A well-formed batch that breaks a rule (Kafka INVALID_RECORD).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// Records of a batch that break a per-record rule: the batch is refused and each of them
    /// named (Kafka INVALID_RECORD, or INVALID_TIMESTAMP when one is refused for its timestamp).
    #[error("{} records of the batch were refused", .0.len())]
    RecordsRefused(Vec<RefusedRecord>),
    /// Kafka MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// Only RecordBatch v2 is stored (Kafka UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("unsupported record batch magic {0}, only 2 is supported")]
    UnsupportedMagic(i8),
    /// Kafka OFFSET_OUT_OF_RANGE.
    #[error("offset {offset} is outside the log range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// An idempotent producer's batch does not follow its last sequence (Kafka
    /// OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// A batch or marker from an epoch older than the producer's current one (Kafka
    /// INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// Kafka UNKNOWN_PRODUCER_ID.
    #[error("unknown producer id: {0}")]
    UnknownProducerId(String),
    /// A transactional batch or marker that does not fit the producer's transaction state
    /// (Kafka INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A marker from a transaction coordinator epoch older than the last one seen for the
    /// producer (Kafka TRANSACTION_COORDINATOR_FENCED).
    #[error("transaction coordinator fenced: {0}")]
    CoordinatorFenced(String),
    /// A replicated batch that does not continue the log: it starts below the next offset
    /// the log expects (Kafka's UnexpectedAppendOffsetException for the first batch, its
    /// OffsetsOutOfOrderException for a later one). A follower whose log start lies inside
    /// the leader's first batch resolves it by starting its log at `base_offset`.
    #[error(
        "replicated batch at offset {base_offset} overlaps the log, which continues at {expected}"
    )]
    UnexpectedAppendOffset { base_offset: i64, expected: i64 },
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Compile-time guarantee the broker can share a log behind a lock across threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<PartitionLog>();
}
