//! Retention policy: which of the oldest sealed segments may be deleted. Pure decisions, so
//! the rules are testable without files; `PartitionLog::apply_retention` carries them out.

/// What retention needs to know about one sealed segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentStats {
    pub size: u64,
    /// Largest record timestamp (or file mtime when records carry none).
    pub largest_timestamp: i64,
    /// First offset after the segment.
    pub next_offset: i64,
}

/// Whether data last written at `largest_timestamp` is past `retention_ms` at `now_ms`.
pub(crate) fn is_expired(largest_timestamp: i64, now_ms: i64, retention_ms: i64) -> bool {
    now_ms.saturating_sub(largest_timestamp) > retention_ms
}

/// How many of the oldest `sealed` segments to delete (always a prefix, so offsets stay
/// contiguous from the log start). Time goes first, then size: size retention keeps deleting
/// while what remains of `total_size` would still be at least `retention_bytes`, as in Kafka.
/// Nothing at or above the high watermark goes: uncommitted data is never retention's to drop.
pub(crate) fn deletable_prefix(
    sealed: &[SegmentStats],
    total_size: u64,
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
    now_ms: i64,
    high_watermark: i64,
) -> usize {
    let committed = |s: &SegmentStats| s.next_offset <= high_watermark;
    let mut count = 0;
    if let Some(ms) = retention_ms.filter(|ms| *ms >= 0) {
        count = sealed
            .iter()
            .take_while(|s| committed(s) && is_expired(s.largest_timestamp, now_ms, ms))
            .count();
    }
    if let Some(limit) = retention_bytes {
        let mut remaining = total_size.saturating_sub(sealed[..count].iter().map(|s| s.size).sum());
        for segment in &sealed[count..] {
            if !committed(segment) || remaining.saturating_sub(segment.size) < limit {
                break;
            }
            remaining -= segment.size;
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, batch_with, test_config, Codec};
    use crate::{LogConfig, PartitionLog, StorageError};

    fn seg(size: u64, largest_timestamp: i64, next_offset: i64) -> SegmentStats {
        SegmentStats {
            size,
            largest_timestamp,
            next_offset,
        }
    }

    #[test]
    fn time_retention_deletes_an_expired_prefix_only() {
        let sealed = [seg(10, 100, 10), seg(10, 500, 20), seg(10, 150, 30)];
        assert_eq!(deletable_prefix(&sealed, 40, Some(100), None, 300, 100), 1);
        assert_eq!(deletable_prefix(&sealed, 40, Some(100), None, 700, 100), 3);
        assert_eq!(
            deletable_prefix(&sealed, 40, Some(100), None, 700, 25),
            2,
            "high watermark"
        );
        assert_eq!(deletable_prefix(&sealed, 40, None, None, 700, 100), 0);
        assert_eq!(deletable_prefix(&sealed, 40, Some(-1), None, 700, 100), 0);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let sealed = [seg(10, 0, 10), seg(10, 0, 20), seg(10, 0, 30)];
        // 45 bytes in total (15 in the active segment).
        assert_eq!(deletable_prefix(&sealed, 45, None, Some(100), 0, 100), 0);
        assert_eq!(deletable_prefix(&sealed, 45, None, Some(35), 0, 100), 1);
        assert_eq!(deletable_prefix(&sealed, 45, None, Some(25), 0, 100), 2);
        assert_eq!(deletable_prefix(&sealed, 45, None, Some(0), 0, 100), 3);
        assert_eq!(
            deletable_prefix(&sealed, 45, None, Some(0), 0, 15),
            1,
            "high watermark"
        );
    }

    fn log_with_timestamps(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
        let mut log = PartitionLog::open(dir, config).unwrap();
        // 30 batches, batch i holding timestamps i*100 and i*100+50.
        for i in 0..30 {
            log.append(
                batch_with(&[i * 100, i * 100 + 50], Codec::None),
                0,
                i * 100,
            )
            .unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        log
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 500,
            ..test_config()
        }
    }

    #[test]
    fn retention_by_time_deletes_old_segments_and_moves_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_timestamps(
            dir.path(),
            LogConfig {
                retention_ms: Some(1_000),
                ..config()
            },
        );
        let before = log.segment_count();
        assert!(before > 3);
        // At 2_500, batches with max timestamp < 1_500 (offsets < 30) have expired.
        let deleted = log.apply_retention(2_500).unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), before - deleted);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 30, "log start {start}");
        assert_eq!(log.segments_first_base(), start);
        assert!(matches!(
            log.read(start - 1, 100, 60),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(!log.read(start, 100, 60).unwrap().is_empty());
        assert_eq!(log.apply_retention(2_500).unwrap(), 0, "idempotent");
    }

    #[test]
    fn expired_active_segment_is_rolled_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(1_000),
            ..config()
        };
        let mut log = log_with_timestamps(dir.path(), config.clone());
        let deleted = log.apply_retention(100_000).unwrap();
        assert!(deleted > 1);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 60));
        assert_eq!(log.append(batch(1, 0), 0, 100_000).unwrap().base_offset, 60);
        log.close().unwrap();
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 61));
    }

    #[test]
    fn retention_never_passes_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_timestamps(
            dir.path(),
            LogConfig {
                retention_ms: Some(1_000),
                ..config()
            },
        );
        log.set_high_watermark(10);
        log.apply_retention(100_000).unwrap();
        assert!(log.log_start_offset() <= 10);
        assert!(!log.read(10, 100, 60).unwrap().is_empty());
    }

    #[test]
    fn retention_by_size_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1_200;
        let mut log = log_with_timestamps(
            dir.path(),
            LogConfig {
                retention_bytes: Some(limit),
                ..config()
            },
        );
        let deleted = log.apply_retention(0).unwrap();
        assert!(deleted > 0);
        assert!(log.size_bytes() >= limit);
        let first_size = log.segments_first_size();
        assert!(
            log.size_bytes() - first_size < limit,
            "one more segment could have gone"
        );
    }

    #[test]
    fn time_then_size() {
        let sealed = [seg(10, 0, 10), seg(10, 1000, 20), seg(10, 1000, 30)];
        assert_eq!(
            deletable_prefix(&sealed, 40, Some(500), Some(20), 1000, 100),
            2
        );
    }
}
