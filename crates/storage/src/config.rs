//! Per-partition log settings, mirroring the Kafka topic configs of the same names.

/// Which timestamp a record carries once stored (Kafka `message.timestamp.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp each batch with the broker's clock at append.
    LogAppendTime,
}

/// What happens to old data (Kafka `cleanup.policy`): deletion by time and size, compaction
/// to the latest record per key, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll before a batch would make the active segment exceed this (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is older than this (`segment.ms`).
    pub segment_ms: i64,
    /// Log bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// `retention.ms`; `None` (or a negative value) keeps segments forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`; `None` means unlimited.
    pub retention_bytes: Option<u64>,
    /// fsync after this many appended records; `Some(1)` syncs every append.
    pub flush_messages: Option<u64>,
    /// See [`crate::PartitionLog::needs_flush`].
    pub flush_ms: Option<u64>,
    /// Largest accepted batch in bytes (`max.message.bytes`).
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    /// A CreateTime record more than this before the broker's clock is refused
    /// (`message.timestamp.before.max.ms`; `i64::MAX` for no bound).
    pub timestamp_before_max_ms: i64,
    /// ... or more than this after it (`message.timestamp.after.max.ms`).
    pub timestamp_after_max_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone survives once the cleaner has first seen it (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Clean when dirty bytes / cleanable bytes reach this (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are never compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// Producers with no open transaction that wrote nothing for this long are forgotten
    /// (Kafka's broker config `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            flush_messages: None,
            flush_ms: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            // No bounds unless the broker sets them (its default after bound is Kafka's hour).
            timestamp_after_max_ms: i64::MAX,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
        }
    }
}

impl LogConfig {
    /// Index entries hold 32-bit positions, so a segment can never outgrow `i32::MAX` bytes
    /// (the same cap Kafka puts on `segment.bytes`).
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
