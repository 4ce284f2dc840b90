//! Idempotent and transactional producers through `PartitionLog`: retries, sequence and
//! epoch rules, markers, the last stable offset, and producer state across reopen and crash.

use super::*;
use crate::testutil::{files_with_ext, producer_batch, records_of_full, test_config};

const PID: i64 = 1000;

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 50,
        ..test_config()
    }
}

fn try_append(log: &mut PartitionLog, records: Bytes) -> Result<AppendInfo, StorageError> {
    let info = log.append(records, 0, 5_000)?;
    log.set_high_watermark(log.log_end_offset());
    Ok(info)
}

fn append(log: &mut PartitionLog, records: Bytes) -> AppendInfo {
    try_append(log, records).unwrap()
}

fn marker(
    log: &mut PartitionLog,
    epoch: i16,
    control: ControlType,
) -> Result<AppendInfo, StorageError> {
    let info = log.append_control(PID, epoch, control, 0, 0, 6_000, 0)?;
    log.set_high_watermark(log.log_end_offset());
    Ok(info)
}

fn data(epoch: i16, seq: i32, count: usize) -> Bytes {
    producer_batch(PID, epoch, seq, count, 100 + i64::from(seq), false)
}

fn txn(epoch: i16, seq: i32, count: usize) -> Bytes {
    producer_batch(PID, epoch, seq, count, 100 + i64::from(seq), true)
}

fn only_producer(log: &PartitionLog) -> ProducerInfo {
    let producers = log.producers();
    assert_eq!(producers.len(), 1, "{producers:?}");
    producers[0]
}

#[test]
fn in_order_batches_append_and_are_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    assert_eq!(append(&mut log, data(0, 0, 3)).base_offset, 0);
    // Batches without a producer id are not tracked and do not disturb the sequence.
    append(&mut log, crate::testutil::batch(2, 0));
    let info = append(&mut log, data(0, 3, 2));
    assert_eq!(
        (info.base_offset, info.last_offset, info.duplicate),
        (5, 6, false)
    );
    let p = only_producer(&log);
    assert_eq!(
        (p.producer_id, p.producer_epoch, p.last_sequence),
        (PID, 0, 4)
    );
    assert_eq!(
        (
            p.last_timestamp,
            p.coordinator_epoch,
            p.current_txn_start_offset
        ),
        (104, -1, -1)
    );
}

#[test]
fn a_retry_of_any_of_the_last_five_batches_is_acknowledged_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    let originals: Vec<AppendInfo> = (0..6)
        .map(|i| append(&mut log, data(0, i * 2, 2)))
        .collect();
    let end = log.log_end_offset();
    for (i, original) in originals.iter().enumerate().skip(1) {
        let retry = append(&mut log, data(0, i as i32 * 2, 2));
        assert!(retry.duplicate, "batch {i}");
        assert_eq!(
            (retry.base_offset, retry.last_offset),
            (original.base_offset, original.last_offset)
        );
        assert_eq!(retry.max_timestamp, original.max_timestamp);
        assert_eq!(log.log_end_offset(), end, "nothing written for batch {i}");
    }
    // The sixth batch back is no longer remembered: Kafka calls it out of order.
    let err = try_append(&mut log, data(0, 0, 2)).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence(_)),
        "{err:?}"
    );
    // Same first sequence, different last: not a retry.
    let err = try_append(&mut log, data(0, 10, 1)).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence(_)),
        "{err:?}"
    );
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(append(&mut log, data(0, 12, 1)).base_offset, end);
}

#[test]
fn gaps_stale_epochs_and_new_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, data(2, 0, 2));
    let end = log.log_end_offset();
    let refused = |log: &mut PartitionLog, bytes| try_append(log, bytes).unwrap_err();
    assert!(matches!(
        refused(&mut log, data(2, 5, 1)),
        StorageError::OutOfOrderSequence(_)
    ));
    assert!(matches!(
        refused(&mut log, data(2, 1, 1)),
        StorageError::OutOfOrderSequence(_)
    ));
    assert!(matches!(
        refused(&mut log, data(1, 2, 1)),
        StorageError::InvalidProducerEpoch(_)
    ));
    // A stale epoch is refused even for what would be a retry in that epoch.
    assert!(matches!(
        refused(&mut log, data(1, 0, 2)),
        StorageError::InvalidProducerEpoch(_)
    ));
    // A new epoch must start at 0.
    assert!(matches!(
        refused(&mut log, data(3, 2, 1)),
        StorageError::OutOfOrderSequence(_)
    ));
    assert_eq!(log.log_end_offset(), end, "nothing refused was written");
    assert_eq!(append(&mut log, data(3, 0, 1)).base_offset, end);
    // The new epoch forgot the old one's batches.
    assert!(matches!(
        refused(&mut log, data(2, 0, 2)),
        StorageError::InvalidProducerEpoch(_)
    ));
    // A producer never seen may start anywhere (KIP-360; Kafka 4.4 accepts it too).
    let stranger = producer_batch(PID + 1, 7, 42, 1, 0, false);
    assert!(!append(&mut log, stranger).duplicate);
    // A batch with a producer id but no sequence is invalid, as in Kafka.
    let no_seq = producer_batch(PID + 2, 0, -1, 1, 0, false);
    assert!(matches!(
        refused(&mut log, no_seq),
        StorageError::InvalidRecord(_)
    ));
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(crate::producers::sequence_after(i32::MAX - 1, 3), 1);
    assert_eq!(crate::producers::sequence_after(5, 0), 5);
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, data(0, i32::MAX - 1, 2));
    assert_eq!(only_producer(&log).last_sequence, i32::MAX);
    append(&mut log, data(0, 0, 1));
    assert_eq!(only_producer(&log).last_sequence, 0);
    assert!(append(&mut log, data(0, 0, 1)).duplicate);
    assert!(matches!(
        try_append(&mut log, data(0, 2, 1)),
        Err(StorageError::OutOfOrderSequence(_))
    ));
}

#[test]
fn transactions_hold_the_last_stable_offset_until_their_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, data(0, 0, 2));
    assert_eq!(log.last_stable_offset(), 2);
    append(&mut log, txn(0, 2, 3));
    append(&mut log, txn(0, 5, 1));
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (6, 2));
    assert_eq!(only_producer(&log).current_txn_start_offset, 2);
    // No plain batch while the transaction is open (Kafka INVALID_TXN_STATE).
    let err = try_append(&mut log, data(0, 6, 1)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidTxnState(_)), "{err:?}");
    // Another producer's transaction starting later does not move the LSO forward.
    append(&mut log, producer_batch(PID + 1, 0, 0, 1, 0, true));
    let commit = marker(&mut log, 0, ControlType::Commit).unwrap();
    assert_eq!(commit.base_offset, 7);
    assert_eq!(
        log.last_stable_offset(),
        6,
        "the other producer's transaction is still open"
    );
    assert!(log.aborted_transactions(0, 100).is_empty());
    let p = log.producers()[0];
    assert_eq!(
        (
            p.current_txn_start_offset,
            p.coordinator_epoch,
            p.last_timestamp
        ),
        (-1, 0, 6_000)
    );
    log.append_control(PID + 1, 0, ControlType::Commit, 0, 0, 6_000, 0)
        .unwrap();
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 9);
}

#[test]
fn markers_are_control_batches_kafka_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, txn(4, 0, 1));
    marker(&mut log, 4, ControlType::Abort).unwrap();
    let bytes = log.read(1, 1 << 20, 2).unwrap();
    let header = crate::BatchHeader::parse(&bytes).unwrap();
    assert!(header.is_control() && header.is_transactional());
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (PID, 4, -1)
    );
    assert_eq!(
        (header.base_offset, header.record_count, header.leader_epoch),
        (1, 1, 0)
    );
    let records = records_of_full(&bytes);
    assert_eq!(records.len(), 1);
    assert!(records[0].control);
    assert_eq!(
        records[0].key.as_deref(),
        Some(&[0u8, 0, 0, 0][..]),
        "version 0, abort"
    );
    assert_eq!(
        records[0].value.as_deref(),
        Some(&[0u8, 0, 0, 0, 0, 0][..]),
        "version 0, coordinator epoch 0"
    );
    assert_eq!(
        batch::control_marker(&bytes).unwrap(),
        Some((ControlType::Abort, 0))
    );
    // And clients may not write one themselves.
    let err = try_append(
        &mut log,
        Bytes::from(batch::control_batch(PID, 4, ControlType::Commit, 0, 0)),
    );
    assert!(
        matches!(err, Err(StorageError::InvalidRecord(_))),
        "{err:?}"
    );
}

#[test]
fn aborts_are_listed_and_markers_fence_older_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    append(&mut log, txn(0, 0, 2));
    append(&mut log, producer_batch(PID + 1, 0, 0, 1, 0, false));
    let abort = marker(&mut log, 0, ControlType::Abort).unwrap();
    assert_eq!(abort.base_offset, 3);
    let aborted = AbortedTxn {
        producer_id: PID,
        first_offset: 0,
        last_offset: 3,
    };
    assert_eq!(log.aborted_transactions(0, 4), vec![aborted]);
    assert_eq!(log.aborted_transactions(3, 4), vec![aborted]);
    assert_eq!(log.aborted_transactions(4, 10), vec![]);
    assert_eq!(log.aborted_transactions(0, 0), vec![]);
    // A marker with no open transaction is written and changes nothing else.
    assert_eq!(
        marker(&mut log, 0, ControlType::Abort).unwrap().base_offset,
        4
    );
    assert_eq!(log.aborted_transactions(0, 10), vec![aborted]);
    // A marker of a newer epoch fences the old one (a zombie producer).
    marker(&mut log, 1, ControlType::Abort).unwrap();
    assert!(matches!(
        try_append(&mut log, txn(0, 2, 1)),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    assert!(matches!(
        marker(&mut log, 0, ControlType::Commit),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    let stale_coordinator = log.append_control(PID, 1, ControlType::Commit, -5, 0, 0, 0);
    assert!(matches!(
        stale_coordinator,
        Err(StorageError::CoordinatorFenced(_))
    ));
    // The bumped epoch starts again at sequence 0.
    append(&mut log, txn(1, 0, 1));
    marker(&mut log, 1, ControlType::Abort).unwrap();
    assert_eq!(log.aborted_transactions(0, 100).len(), 2);
    assert_eq!(log.aborted_transactions(0, 100)[1].first_offset, 6);
}

/// Transaction version 2 (Kafka 4.2+): every end bumps the epoch, so a marker must carry an
/// epoch newer than the partition's; the same epoch again is a retried marker, written
/// only when no transaction is open here.
#[test]
fn transaction_version_2_markers_need_a_newer_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), test_config());
    let tv2 = |log: &mut PartitionLog, epoch: i16| {
        let written = log.append_control(PID, epoch, ControlType::Commit, 0, 0, 6_000, 2);
        log.set_high_watermark(log.log_end_offset());
        written
    };
    append(&mut log, txn(3, 0, 2));
    // The data's own epoch: what transaction.version 1 takes, version 2 refuses.
    assert!(matches!(
        tv2(&mut log, 3),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    tv2(&mut log, 4).unwrap();
    assert_eq!(only_producer(&log).producer_epoch, 4);
    assert_eq!(only_producer(&log).current_txn_start_offset, -1);
    // The coordinator sends it again: nothing is open, so it is a retry and is written.
    tv2(&mut log, 4).unwrap();
    assert!(matches!(
        tv2(&mut log, 3),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    // The next transaction writes at the bumped epoch from sequence 0; while it is open its
    // epoch's marker is refused, the next one is taken.
    append(&mut log, txn(4, 0, 1));
    assert!(matches!(
        tv2(&mut log, 4),
        Err(StorageError::InvalidProducerEpoch(_))
    ));
    tv2(&mut log, 5).unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

/// A log with three producers in every state: PID with an aborted transaction and an open
/// one, PID + 1 idempotent only, PID + 2 committed. Enough batches to roll several segments.
fn busy_log(dir: &Path) -> PartitionLog {
    let mut log = open(dir, small_config());
    for i in 0..6 {
        append(&mut log, producer_batch(PID + 1, 0, i * 2, 2, 0, false));
    }
    append(&mut log, txn(0, 0, 2));
    marker(&mut log, 0, ControlType::Abort).unwrap();
    append(&mut log, producer_batch(PID + 2, 0, 0, 1, 0, true));
    log.append_control(PID + 2, 0, ControlType::Commit, 3, 0, 0, 0)
        .unwrap();
    append(&mut log, txn(0, 2, 1));
    log.set_high_watermark(log.log_end_offset());
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    log
}

struct Seen {
    producers: Vec<ProducerInfo>,
    aborted: Vec<AbortedTxn>,
    lso: i64,
}

fn seen(log: &PartitionLog) -> Seen {
    Seen {
        producers: log.producers(),
        aborted: log.aborted_transactions(0, i64::MAX),
        lso: log.last_stable_offset(),
    }
}

fn assert_same(log: &PartitionLog, before: &Seen, what: &str) {
    let after = seen(log);
    assert_eq!(after.producers, before.producers, "{what}");
    assert_eq!(after.aborted, before.aborted, "{what}");
    assert_eq!(after.lso, before.lso, "{what}");
    assert_eq!(before.aborted.len(), 1, "{what}");
    assert!(
        before.lso < log.high_watermark(),
        "{what}: a transaction is open"
    );
}

/// Retries and sequence checks behave as before the restart.
fn assert_dedup_survived(log: &mut PartitionLog, what: &str) {
    let end = log.log_end_offset();
    let retry = try_append(log, producer_batch(PID + 1, 0, 10, 2, 0, false)).unwrap();
    assert!(retry.duplicate, "{what}");
    assert_eq!(log.log_end_offset(), end, "{what}");
    let gap = try_append(log, producer_batch(PID + 1, 0, 13, 1, 0, false));
    assert!(
        matches!(gap, Err(StorageError::OutOfOrderSequence(_))),
        "{what}"
    );
}

#[test]
fn producer_state_survives_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = busy_log(dir.path());
    let before = seen(&log);
    log.close().unwrap();
    let mut log = open(dir.path(), small_config());
    assert_same(&log, &before, "clean reopen");
    assert_dedup_survived(&mut log, "clean reopen");
}

#[test]
fn producer_state_survives_a_crash_with_and_without_snapshots() {
    for keep_snapshots in [true, false] {
        let what = if keep_snapshots {
            "crash, snapshots"
        } else {
            "crash, no snapshot"
        };
        let dir = tempfile::tempdir().unwrap();
        let mut log = busy_log(dir.path());
        // Roll snapshots are written by the background syncs.
        log.checkpoint_after_sealed_syncs();
        let before = seen(&log);
        drop(log);
        let snapshots = files_with_ext(dir.path(), "snapshot");
        assert!(!snapshots.is_empty(), "rolling writes snapshots");
        if !keep_snapshots {
            for path in snapshots {
                fs::remove_file(path).unwrap();
            }
        }
        let mut log = open(dir.path(), small_config());
        log.set_high_watermark(log.log_end_offset());
        assert_same(&log, &before, what);
        assert_dedup_survived(&mut log, what);
    }
}

#[test]
fn a_torn_transactional_batch_is_forgotten_with_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    marker(&mut log, 0, ControlType::Commit).unwrap();
    let committed = log.log_end_offset();
    append(&mut log, txn(0, 3, 3));
    assert_eq!(log.last_stable_offset(), committed);
    log.close().unwrap();
    // Cut the last batch in half: the clean close's snapshot is now past the log end.
    let active = files_with_ext(dir.path(), "log").pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&active).unwrap();
    file.set_len(len - 20).unwrap();
    fs::remove_file(dir.path().join(crate::checkpoint::CLEAN_SHUTDOWN_FILE)).unwrap();
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.log_end_offset(), committed);
    log.set_high_watermark(committed);
    assert_eq!(
        log.last_stable_offset(),
        committed,
        "no transaction is open any more"
    );
    let p = log
        .producers()
        .into_iter()
        .find(|p| p.producer_id == PID)
        .unwrap();
    assert_eq!((p.current_txn_start_offset, p.last_sequence), (-1, 2));
    // The producer's retry of the torn batch is written, not taken for a duplicate.
    let retry = append(&mut log, txn(0, 3, 3));
    assert!(!retry.duplicate);
    assert_eq!(retry.base_offset, committed);
}

#[test]
fn deleting_old_segments_drops_their_aborted_transactions_not_their_producers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path());
    let abort_at = log.aborted_transactions(0, i64::MAX)[0].last_offset;
    let producers = log.producers();
    log.advance_log_start_offset(abort_at).unwrap();
    assert_eq!(
        log.aborted_transactions(0, i64::MAX).len(),
        1,
        "its marker is still in the log"
    );
    let past = log.log_end_offset() - 1;
    log.advance_log_start_offset(past).unwrap();
    assert!(log.segment_count() < 3);
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
    assert_eq!(log.producers(), producers);
    // Snapshots are replaced by a storage thread once the segments are gone.
    log.wait_for_sealed_syncs().unwrap();
    let snapshots = files_with_ext(dir.path(), "snapshot");
    assert_eq!(snapshots.len(), 1, "old snapshots go: {snapshots:?}");
    // And after a crash the deleted segments' producers are still known.
    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.producers(), producers);
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
    assert_dedup_survived(&mut log, "after deleting segments");
}

#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 1_000,
        ..test_config()
    };
    let mut log = open(dir.path(), config);
    append(&mut log, producer_batch(PID, 0, 0, 1, 10_000, false));
    append(&mut log, producer_batch(PID + 1, 0, 0, 1, 10_000, true));
    assert_eq!(log.expire_producers(10_999), 0);
    assert_eq!(log.expire_producers(11_000), 1);
    assert_eq!(log.producers()[0].producer_id, PID + 1);
    // An expired producer may start again anywhere.
    assert!(!append(&mut log, producer_batch(PID, 0, 9, 1, 20_000, false)).duplicate);
}
