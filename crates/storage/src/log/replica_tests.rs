//! Replication support through `PartitionLog`: the leader epoch cache across appends,
//! rolls, reopen and crashes, follower appends and truncation.

use super::*;
use crate::epochs::EPOCH_FILE;
use crate::testutil::{
    batch, batch_with, files_with_ext, headers_of, producer_batch, read_all, test_config, Codec,
};

pub(super) fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, small_config()).unwrap()
}

/// Stops using `log` as a crash would, once the background syncs of its rolls are done: a
/// crash ends those threads, which in a test would race the reopen.
pub(super) fn crash(mut log: PartitionLog) {
    log.sealed_syncs.wait_all().unwrap();
    drop(log);
}

/// Small segments so that epochs cross rolls.
pub(super) fn small_config() -> LogConfig {
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
    log.append_control(7, 0, ControlType::Abort, 0, 5, 2_000, 0)
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
fn a_new_leader_records_its_epoch_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_at(&mut log, &[1, 1]);
    // A follower still holds epoch 2 data that this replica never got.
    assert_eq!(log.end_offset_for_epoch(2), None);
    log.assign_leader_epoch(3).unwrap();
    log.assign_leader_epoch(2).unwrap();
    assert_eq!(log.leader_epochs(), [(1, 0), (3, 4)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)));
    log.close().unwrap();
    let mut log = open(dir.path());
    assert_eq!(
        log.leader_epochs(),
        [(1, 0)],
        "no data was written in epoch 3"
    );
    log.assign_leader_epoch(3).unwrap();
    append_at(&mut log, &[3]);
    crash(log);
    assert_eq!(open(dir.path()).leader_epochs(), [(1, 0), (3, 4)]);
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
    crash(log);
    let log = open(dir.path());
    assert_eq!(log.leader_epochs(), [(1, 0), (3, 6), (4, 20), (7, 28)]);
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 30)));
}

#[test]
fn entries_past_the_recovered_log_end_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_three_epochs(dir.path());
    append_at(&mut log, &[9]);
    crash(log);
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
    crash(log);
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
    crash(log);
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

pub(super) const PID: i64 = 500;

/// A leader over several epochs and segments, stamping LogAppendTime, with an idempotent
/// producer, an aborted transaction, a committed one and one still open.
pub(super) fn busy_leader(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(
        dir,
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        },
    )
    .unwrap();
    let mut now = 10_000;
    let mut write = |log: &mut PartitionLog, bytes: Bytes, epoch: i32| {
        now += 1;
        log.append(bytes, epoch, now).unwrap();
    };
    for seq in 0..4 {
        write(&mut log, producer_batch(PID, 0, seq * 2, 2, 0, false), 1);
    }
    write(&mut log, batch_with(&[5, 6, 7], Codec::Gzip), 2);
    write(&mut log, producer_batch(PID + 1, 0, 0, 2, 0, true), 2);
    log.append_control(PID + 1, 0, ControlType::Abort, 1, 2, 20_000, 0)
        .unwrap();
    write(&mut log, producer_batch(PID + 2, 0, 0, 1, 0, true), 4);
    log.append_control(PID + 2, 0, ControlType::Commit, 1, 4, 20_001, 0)
        .unwrap();
    write(&mut log, batch_with(&[8, 9], Codec::Zstd), 4);
    write(&mut log, producer_batch(PID + 1, 0, 2, 2, 0, true), 6);
    log.set_high_watermark(log.log_end_offset());
    assert!(log.segment_count() > 2, "{} segments", log.segment_count());
    log
}

/// Everything a follower must agree on with its leader.
#[derive(Debug, PartialEq)]
pub(super) struct Replicated {
    pub(super) bytes: Vec<u8>,
    pub(super) log_end: i64,
    pub(super) epochs: Vec<(i32, i64)>,
    pub(super) producers: Vec<ProducerInfo>,
    pub(super) aborted: Vec<AbortedTxn>,
    pub(super) last_stable: i64,
}

pub(super) fn replicated(log: &mut PartitionLog) -> Replicated {
    log.set_high_watermark(log.log_end_offset());
    Replicated {
        bytes: read_all(log, log.log_start_offset(), i64::MAX),
        log_end: log.log_end_offset(),
        epochs: log.leader_epochs(),
        producers: log.producers(),
        aborted: log.aborted_transactions(0, i64::MAX),
        last_stable: log.last_stable_offset(),
    }
}

/// Fetches from `leader` into `follower` until it caught up, in reads of about `max_bytes`.
pub(super) fn catch_up(leader: &PartitionLog, follower: &mut PartitionLog, max_bytes: usize) {
    catch_up_to(leader, follower, max_bytes, i64::MAX);
}

/// As `catch_up`, copying only the batches that start below `until`.
pub(super) fn catch_up_to(
    leader: &PartitionLog,
    follower: &mut PartitionLog,
    max_bytes: usize,
    until: i64,
) {
    while follower.log_end_offset() < leader.log_end_offset().min(until) {
        let fetched = leader
            .read(follower.log_end_offset(), max_bytes, until)
            .unwrap();
        if fetched.is_empty() {
            break;
        }
        let info = follower
            .append_as_follower(fetched.clone(), 99_999)
            .unwrap();
        assert_eq!(info.base_offset, headers_of(&fetched)[0].base_offset);
        assert_eq!(info.last_offset + 1, follower.log_end_offset());
    }
}

pub(super) fn follower(dir: &Path) -> PartitionLog {
    // LogAppendTime too: a follower must still keep the leader's stamps.
    PartitionLog::open(
        dir,
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            segment_bytes: 300,
            ..small_config()
        },
    )
    .unwrap()
}

#[test]
fn a_follower_copies_its_leader_exactly() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = busy_leader(leader_dir.path());
    let expected = replicated(&mut leader);
    assert_eq!(expected.aborted.len(), 1);
    assert!(
        expected.last_stable < expected.log_end,
        "a transaction is open"
    );
    assert_eq!(expected.epochs, [(1, 0), (2, 8), (4, 14), (6, 18)]);

    for max_bytes in [0, 250, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let mut follower = follower(dir.path());
        catch_up(&leader, &mut follower, max_bytes);
        assert!(follower.segment_count() > 1);
        assert_eq!(
            replicated(&mut follower),
            expected,
            "reads of {max_bytes} bytes"
        );
        crash(follower);
        let mut follower = self::follower(dir.path());
        assert_eq!(replicated(&mut follower), expected, "after a crash");
        // Made leader, it recognises a retry of what the old leader acknowledged.
        let retry = producer_batch(PID, 0, 6, 2, 0, false);
        assert!(follower.append(retry, 7, 0).unwrap().duplicate);
    }
}

#[test]
fn follower_appends_refuse_overlaps_and_damage_and_write_nothing() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = busy_leader(leader_dir.path());
    let mut follower = follower(follower_dir.path());
    let first = leader.read(0, 0, i64::MAX).unwrap();
    let two = leader.read(0, 1 << 20, 6).unwrap();
    follower.append_as_follower(first.clone(), 0).unwrap();
    let before = replicated(&mut follower);

    let again = follower.append_as_follower(first.clone(), 0);
    assert!(
        matches!(
            again,
            Err(StorageError::UnexpectedAppendOffset {
                base_offset: 0,
                expected: 2
            })
        ),
        "{again:?}"
    );
    // Batch 2..3, then batch 0..1 again: the second overlaps the first.
    let mut backwards = leader.read(2, 0, i64::MAX).unwrap().to_vec();
    backwards.extend_from_slice(&first);
    assert!(matches!(
        follower.append_as_follower(Bytes::from(backwards), 0),
        Err(StorageError::UnexpectedAppendOffset {
            base_offset: 0,
            expected: 4
        })
    ));
    let mut damaged = two[first.len()..].to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x10;
    assert!(matches!(
        follower.append_as_follower(Bytes::from(damaged), 0),
        Err(StorageError::CorruptRecord(_))
    ));
    let torn = two.slice(first.len()..two.len() - 1);
    assert!(matches!(
        follower.append_as_follower(torn, 0),
        Err(StorageError::CorruptRecord(_))
    ));
    assert!(follower.append_as_follower(Bytes::new(), 0).is_err());
    let mut too_far = first.to_vec();
    crate::batch::assign_offset_and_epoch(&mut too_far, 2 + (1 << 31), 1);
    assert!(matches!(
        follower.append_as_follower(Bytes::from(too_far), 0),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(replicated(&mut follower), before);
    crash(follower);
    assert_eq!(replicated(&mut self::follower(follower_dir.path())), before);
}

#[test]
fn a_follower_accepts_the_gaps_compaction_leaves() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = busy_leader(leader_dir.path());
    let mut follower = follower(follower_dir.path());
    follower
        .append_as_follower(leader.read(0, 0, i64::MAX).unwrap(), 0)
        .unwrap();
    // Batches 2..3 and 4..5 were compacted away on the leader.
    let mut gappy = leader.read(6, 0, i64::MAX).unwrap().to_vec();
    gappy.extend_from_slice(&leader.read(8, 0, i64::MAX).unwrap());
    let info = follower.append_as_follower(Bytes::from(gappy), 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (6, 10));
    assert_eq!(follower.log_end_offset(), 11);
    assert_eq!(follower.leader_epochs(), [(1, 0), (2, 8)]);
    let read = follower.read(2, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        headers_of(&read)[0].base_offset,
        6,
        "a read in the gap gets the next batch"
    );
}
