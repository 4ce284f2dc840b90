//! Replication support through `PartitionLog`: the leader epoch cache across appends,
//! rolls, reopen and crashes, follower appends and truncation.

use super::*;
use crate::epochs::EPOCH_FILE;
use crate::testutil::{batch, files_with_ext, read_all, test_config};

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, small_config()).unwrap()
}

/// Small segments so that epochs cross rolls.
fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 50,
        ..test_config()
    }
}

/// Appends two-record batches at the given leader epochs, committing each.
fn append_at(log: &mut PartitionLog, epochs: &[i32]) {
    for &epoch in epochs {
        log.append(batch(2, 1_000), epoch, 1_000).unwrap();
        log.set_high_watermark(log.log_end_offset());
    }
}

/// Epoch 1 at 0, 3 at 6, 4 at 20 (two-record batches), over several segments.
fn log_with_three_epochs(dir: &Path) -> PartitionLog {
    let mut log = open(dir);
    append_at(&mut log, &[1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4]);
    assert!(log.segment_count() > 2, "{} segments", log.segment_count());
    log
}

const THREE_EPOCHS: [(i32, i64); 3] = [(1, 0), (3, 6), (4, 20)];

#[test]
fn appends_start_epochs_and_answer_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), None);
    append_at(&mut log, &[-1]);
    assert_eq!(
        log.latest_epoch(),
        None,
        "a batch without an epoch starts none"
    );
    append_at(&mut log, &[1, 1, 3]);
    log.append_control(7, 0, ControlType::Abort, 0, 5, 2_000)
        .unwrap();
    assert_eq!(log.leader_epochs(), [(1, 2), (3, 6), (5, 8)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 8)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 9)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 2)));
}

#[test]
fn epochs_survive_clean_close_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_three_epochs(dir.path());
    assert_eq!(log.leader_epochs(), THREE_EPOCHS);
    log.close().unwrap();
    let mut log = open(dir.path());
    assert_eq!(log.leader_epochs(), THREE_EPOCHS);
    append_at(&mut log, &[4, 7]);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.leader_epochs(), [(1, 0), (3, 6), (4, 20), (7, 28)]);
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 30)));
}

#[test]
fn entries_past_the_recovered_log_end_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_three_epochs(dir.path());
    append_at(&mut log, &[9]);
    drop(log);
    // The crash tore the epoch 9 batch, whose entry was saved before it was written.
    let active = files_with_ext(dir.path(), "log").pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), 26);
    assert_eq!(log.leader_epochs(), THREE_EPOCHS);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.leader_epochs(), THREE_EPOCHS, "the cut was saved");
}

#[test]
fn a_missing_or_corrupt_epoch_file_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    log_with_three_epochs(dir.path()).close().unwrap();
    let path = dir.path().join(EPOCH_FILE);
    let saved = fs::read(&path).unwrap();
    for damage in ["missing", "garbage", "flipped"] {
        match damage {
            "missing" => fs::remove_file(&path).unwrap(),
            "garbage" => fs::write(&path, b"1\n3\n0 1\n").unwrap(),
            _ => {
                let mut bytes = saved.clone();
                bytes[12] ^= 1;
                fs::write(&path, bytes).unwrap();
            }
        }
        let log = open(dir.path());
        assert_eq!(log.leader_epochs(), THREE_EPOCHS, "{damage}");
        log.close().unwrap();
        assert_eq!(fs::read(&path).unwrap(), saved, "{damage}: rewritten");
    }
}

#[test]
fn a_moving_log_start_clamps_the_covering_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_three_epochs(dir.path());
    log.advance_log_start_offset(9).unwrap();
    assert_eq!(log.leader_epochs(), [(3, 9), (4, 20)]);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 9)));
    log.advance_log_start_offset(21).unwrap();
    assert_eq!(log.leader_epochs(), [(4, 21)]);
    drop(log);
    // The file follows, and so would a log reopened before the file was written.
    assert_eq!(open(dir.path()).leader_epochs(), [(4, 21)]);
    fs::remove_file(dir.path().join(EPOCH_FILE)).unwrap();
    assert_eq!(open(dir.path()).leader_epochs(), [(4, 21)]);
}

#[test]
fn retention_clamps_the_covering_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_three_epochs(dir.path());
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..small_config()
    });
    assert!(log.apply_retention(1_000).unwrap() > 0);
    let start = log.log_start_offset();
    let expected: Vec<(i32, i64)> = match start {
        s if s < 6 => vec![(1, s), (3, 6), (4, 20)],
        s if s < 20 => vec![(3, s), (4, 20)],
        s => vec![(4, s)],
    };
    assert_eq!(log.leader_epochs(), expected);
    assert!(!read_all(&log, start, log.log_end_offset()).is_empty());
}
