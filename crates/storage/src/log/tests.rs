//! Behaviour of `PartitionLog` within one process: append, read, roll, lookups, flushing.

use super::*;
use crate::testutil::{
    batch, batch_full, batch_with, files_with_ext, headers_of, read_all, records_of, test_config,
    Codec,
};

/// Peeks for tests elsewhere in the crate.
impl PartitionLog {
    pub(crate) fn segments_first_base(&self) -> i64 {
        *self.segments.keys().next().unwrap()
    }

    pub(crate) fn segments_first_size(&self) -> u64 {
        self.segments.values().next().unwrap().size()
    }

    /// Waits for the background syncs of rolled segments and checkpoints the recovery point,
    /// as the broker's periodic `checkpoint_synced_segments` eventually does.
    pub(crate) fn checkpoint_after_sealed_syncs(&mut self) {
        self.wait_for_sealed_syncs().unwrap();
        self.write_checkpoint().unwrap();
    }

    pub(crate) fn segment_bases(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

/// Small segments and a tiny index interval so rolling and the indexes are exercised.
fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        ..test_config()
    }
}

fn append(log: &mut PartitionLog, records: Bytes) -> AppendInfo {
    let info = log.append(records, 3, 1_000).unwrap();
    log.set_high_watermark(log.log_end_offset());
    info
}

#[test]
fn append_read_round_trip_with_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let a = append(&mut log, batch(3, 100));
    let b = append(&mut log, batch_with(&[7], Codec::Gzip));
    let c = append(&mut log, batch_with(&[8, 9, 10, 11, 12], Codec::Lz4));
    assert_eq!((a.base_offset, a.last_offset, a.record_count), (0, 2, 3));
    assert_eq!((b.base_offset, b.last_offset), (3, 3));
    assert_eq!((c.base_offset, c.last_offset, c.max_timestamp), (4, 8, 12));
    assert_eq!(c.log_append_time, None);
    assert_eq!(log.log_end_offset(), 9);

    let bytes = log.read(0, 1 << 20, 9).unwrap();
    let headers = headers_of(&bytes);
    let bases: Vec<i64> = headers.iter().map(|h| h.base_offset).collect();
    assert_eq!(bases, [0, 3, 4]);
    assert!(headers.iter().all(|h| h.leader_epoch == 3));
    let offsets: Vec<i64> = records_of(&bytes).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..9).collect::<Vec<_>>());
    assert_eq!(log.size_bytes(), bytes.len() as u64);
}

#[test]
fn several_batches_in_one_append_get_their_own_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, batch(2, 0));
    let mut buf = batch(3, 0).to_vec();
    buf.extend_from_slice(&batch_with(&[50, 60], Codec::Snappy));
    let info = append(&mut log, Bytes::from(buf));
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (2, 6, 5)
    );
    let bases: Vec<i64> = headers_of(&log.read(0, 1 << 20, 7).unwrap())
        .iter()
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(bases, [0, 2, 5]);
}

#[test]
fn read_from_mid_batch_returns_the_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, batch(4, 0));
    append(&mut log, batch(4, 0));
    for offset in 4..8 {
        let headers = headers_of(&log.read(offset, 1 << 20, 8).unwrap());
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].base_offset, 4);
    }
}

#[test]
fn max_bytes_keeps_whole_batches_but_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    let sizes: Vec<usize> = (0..3)
        .map(|_| {
            let b = batch(2, 0);
            let size = b.len();
            append(&mut log, b);
            size
        })
        .collect();
    let count = |max| headers_of(&log.read(0, max, 6).unwrap()).len();
    assert_eq!(
        count(0),
        1,
        "KIP-74: one batch even if larger than max_bytes"
    );
    assert_eq!(count(1), 1);
    assert_eq!(count(sizes[0] + sizes[1] - 1), 1);
    assert_eq!(count(sizes[0] + sizes[1]), 2);
    assert_eq!(count(1 << 20), 3);
}

#[test]
fn upper_bound_excludes_batches_at_or_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, batch(3, 0));
    log.append(batch(3, 0), 3, 0).unwrap();
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(headers_of(&log.read(0, 1 << 20, 3).unwrap()).len(), 1);
    assert_eq!(headers_of(&log.read(0, 1 << 20, 4).unwrap()).len(), 2);
    assert!(log.read(3, 1 << 20, 3).unwrap().is_empty());
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    assert!(
        log.read(0, 100, 0).unwrap().is_empty(),
        "empty log, offset == LEO"
    );
    append(&mut log, batch(3, 0));
    assert!(log.read(3, 100, 3).unwrap().is_empty());
    for offset in [-1, 4, 100] {
        match log.read(offset, 100, 3) {
            Err(StorageError::OffsetOutOfRange {
                log_start: 0,
                log_end: 3,
                ..
            }) => {}
            other => panic!("offset {offset}: {other:?}"),
        }
    }
}

#[test]
fn invalid_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 500,
            ..test_config()
        },
    );
    append(&mut log, batch(2, 0));
    let size = log.size_bytes();
    let mut bad = batch(2, 0).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        log.append(Bytes::from(bad), 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));
    let huge = batch_full(&[1, 2, 3], Codec::None, 400);
    assert!(matches!(
        log.append(huge, 0, 0),
        Err(StorageError::RecordTooLarge { max: 500, .. })
    ));
    assert!(log.append(Bytes::new(), 0, 0).is_err());
    assert_eq!((log.log_end_offset(), log.size_bytes()), (2, size));
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let one = batch(3, 0).len() as u64;
    for _ in 0..20 {
        append(&mut log, batch(3, 0));
    }
    let per_segment = 1024 / one;
    assert_eq!(log.segment_count() as u64, 20_u64.div_ceil(per_segment));
    assert!(log.segments.values().all(|s| s.size() <= 1024));
    // Segments are contiguous and named by base offset.
    for (base, next) in log.sealed() {
        assert!(dir.path().join(format!("{base:020}.log")).exists());
        assert_eq!(log.segments[&base].next_offset(), next);
    }
}

#[test]
fn rolls_by_time_of_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..test_config()
    };
    let mut log = open(dir.path(), config);
    log.append(batch(1, 10_000), 0, 10_000).unwrap();
    log.append(batch(1, 10_900), 0, 10_900).unwrap();
    log.append(batch(1, 11_000), 0, 11_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(batch(1, 11_001), 0, 11_001).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segments.keys().copied().collect::<Vec<_>>(), [0, 3]);
}

#[test]
fn every_offset_finds_its_batch_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut batches = Vec::new(); // (base, last)
    for i in 0..120 {
        let info = append(&mut log, batch(1 + i % 3, i as i64));
        batches.push((info.base_offset, info.last_offset));
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    let leo = log.log_end_offset();
    for offset in 0..leo {
        let headers = headers_of(&log.read(offset, 0, leo).unwrap());
        let h = headers[0];
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "offset {offset}"
        );
        assert!(batches.contains(&(h.base_offset, h.last_offset())));
    }
}

#[test]
fn offset_for_timestamp_finds_exact_records_in_compressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 0,
            ..test_config()
        },
    );
    // Offsets: 0:100 1:200 2:300 | 3:150 4:400 | 5:500 | 6:450 7:600 ...
    append(&mut log, batch_with(&[100, 200, 300], Codec::Gzip));
    append(&mut log, batch_with(&[150, 400], Codec::Zstd));
    append(&mut log, batch_with(&[500], Codec::Snappy));
    append(&mut log, batch_with(&[450, 600], Codec::Lz4));
    append(&mut log, batch_with(&[700, 650], Codec::None));
    assert!(log.segment_count() > 1);
    let at = |ts| log.offset_for_timestamp(ts).unwrap();
    assert_eq!(at(0), Some((0, 100)));
    assert_eq!(at(100), Some((0, 100)));
    assert_eq!(at(101), Some((1, 200)));
    assert_eq!(at(350), Some((4, 400)));
    assert_eq!(at(401), Some((5, 500)));
    assert_eq!(at(501), Some((7, 600)));
    assert_eq!(at(660), Some((8, 700)));
    assert_eq!(at(701), None);

    // Records below the log start offset are not candidates.
    log.advance_log_start_offset(2).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, 300)));
}

#[test]
fn max_timestamp_is_the_earliest_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 200,
            ..test_config()
        },
    );
    assert_eq!(log.max_timestamp().unwrap(), None);
    append(&mut log, batch_with(&[100, 900, 300, 900], Codec::Gzip));
    append(&mut log, batch_with(&[800], Codec::None));
    append(&mut log, batch_with(&[900, 10], Codec::Zstd));
    assert!(log.segment_count() > 1);
    assert_eq!(log.max_timestamp().unwrap(), Some((1, 900)));
    append(&mut log, batch_with(&[5, 901], Codec::Snappy));
    assert_eq!(log.max_timestamp().unwrap(), Some((8, 901)));
}

#[test]
fn log_append_time_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..test_config()
    };
    let mut log = open(dir.path(), config);
    let info = log
        .append(batch_with(&[1, 2, 3], Codec::Gzip), 0, 5_555)
        .unwrap();
    assert_eq!(info.log_append_time, Some(5_555));
    assert_eq!(info.max_timestamp, 5_555);
    log.append(batch_with(&[4], Codec::None), 0, 6_000).unwrap();

    let bytes = log.read(0, 1 << 20, 4).unwrap();
    let headers = headers_of(&bytes); // CRCs still validate
    assert_eq!(headers[0].timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(headers[0].max_timestamp, 5_555);
    assert_eq!(log.offset_for_timestamp(5_000).unwrap(), Some((0, 5_555)));
    assert_eq!(log.offset_for_timestamp(5_556).unwrap(), Some((3, 6_000)));
    assert_eq!(log.max_timestamp().unwrap(), Some((3, 6_000)));
}

#[test]
fn advance_log_start_offset_deletes_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for _ in 0..30 {
        append(&mut log, batch(2, 0));
    }
    let segments = log.segment_count();
    let second_base = *log.segments.keys().nth(1).unwrap();
    let target = second_base + 1;
    log.advance_log_start_offset(target).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_count(), segments - 1);
    assert!(matches!(
        log.read(target - 1, 100, 60),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        headers_of(&log.read(target, 0, 60).unwrap())[0].base_offset,
        second_base
    );
    log.advance_log_start_offset(1).unwrap(); // never moves back
    assert_eq!(log.log_start_offset(), target);
    assert!(
        log.advance_log_start_offset(61).is_err(),
        "beyond the high watermark"
    );

    // The new start is checkpointed by a storage thread once it moved.
    log.wait_for_sealed_syncs().unwrap();
    drop(log); // unclean
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn flush_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: Some(100),
        ..test_config()
    };
    let mut log = open(dir.path(), config);
    assert!(!log.needs_flush(1_000_000));
    log.append(batch(1, 0), 0, 1_000).unwrap();
    log.append(batch(1, 0), 0, 1_080).unwrap();
    assert!(!log.needs_flush(1_099));
    assert!(log.needs_flush(1_100));
    log.flush().unwrap();
    assert!(!log.needs_flush(5_000));

    let config = LogConfig {
        flush_messages: Some(3),
        flush_ms: Some(100),
        ..test_config()
    };
    // Bound: the directory must outlive the log, which now writes files beside its segments.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config);
    log.append(batch(2, 0), 0, 0).unwrap();
    assert!(log.needs_flush(100));
    assert_eq!(log.take_sync_due(), None);
    log.append(batch(1, 0), 0, 0).unwrap();
    assert!(
        !log.needs_flush(100),
        "flush.messages reached: the sync is the caller's now"
    );
    assert_eq!(log.take_sync_due(), Some(3));
    assert_eq!(log.take_sync_due(), None, "asked for once");
    assert_eq!(log.sync_from(0).unwrap().run().unwrap(), 3);
}

#[test]
fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..40 {
        append(&mut log, batch_with(&[i * 10, i * 10 + 5], Codec::Gzip));
    }
    log.set_high_watermark(70);
    let before = log.read(0, 1 << 30, 80).unwrap();
    let segments = log.segment_count();
    log.close().unwrap();
    assert!(dir.path().join(checkpoint::CLEAN_SHUTDOWN_FILE).exists());

    let mut log = open(dir.path(), small_config());
    assert!(!dir.path().join(checkpoint::CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(log.segment_count(), segments);
    assert_eq!((log.log_end_offset(), log.high_watermark()), (80, 70));
    assert_eq!(before.len(), log.read(0, 1 << 30, 80).unwrap().len());
    let on_disk: Vec<u8> = files_with_ext(dir.path(), "log")
        .iter()
        .flat_map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(read_all(&log, 0, 80), on_disk);
    assert_eq!(log.max_timestamp().unwrap(), Some((79, 395)));
    assert_eq!(log.offset_for_timestamp(201).unwrap(), Some((41, 205)));
    assert_eq!(append(&mut log, batch(1, 0)).base_offset, 80);
}

#[test]
fn delete_removes_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let mut log = open(&dir, test_config());
    append(&mut log, batch(1, 0));
    log.delete().unwrap();
    assert!(!dir.exists());
}
