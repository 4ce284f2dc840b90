//! Truncation through `PartitionLog`: inside batches, at their boundaries and across
//! segments; with producers and transactions; across crashes; starting over.

use super::replica_tests::{
    busy_leader, catch_up, catch_up_to, crash, follower, open, replicated, Replicated, PID,
};
use super::*;
use crate::epochs::EPOCH_FILE;
use crate::testutil::{batch, files_with_ext, headers_of, producer_batch, read_all};

/// Thirteen two-record batches, batch `i` at offset `2i` with timestamps `1000 + 10i` and
/// `+ 1`, in epochs 1 (from 0), 3 (from 6) and 4 (from 20), over several segments.
fn log_with_timestamps(dir: &Path) -> PartitionLog {
    let mut log = open(dir);
    for (i, epoch) in [1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4]
        .into_iter()
        .enumerate()
    {
        log.append(batch(2, 1_000 + 10 * i as i64), epoch, 1_000)
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    assert!(log.segment_count() > 2);
    log
}

fn epochs_below(end: i64) -> Vec<(i32, i64)> {
    [(1, 0), (3, 6), (4, 20)]
        .into_iter()
        .filter(|&(_, start)| start < end)
        .collect()
}

fn assert_truncated(log: &PartitionLog, end: i64, original: &[u8], what: &str) {
    assert_eq!(log.log_end_offset(), end, "{what}");
    assert_eq!(log.high_watermark(), end, "{what}");
    assert_eq!(log.leader_epochs(), epochs_below(end), "{what}");
    assert_eq!(
        read_all(log, 0, i64::MAX),
        read_all_prefix(original, end),
        "{what}"
    );
    let expected_max = (end > 0).then(|| (end - 1, 1_000 + 10 * (end / 2 - 1) + 1));
    assert_eq!(log.max_timestamp().unwrap(), expected_max, "{what}");
    assert_eq!(
        log.offset_for_timestamp(1_000 + 10 * (end / 2)).unwrap(),
        None,
        "{what}: removed timestamps are not found"
    );
}

/// The batches of `bytes` that start below `end`.
fn read_all_prefix(bytes: &[u8], end: i64) -> Vec<u8> {
    let kept: usize = headers_of(bytes)
        .iter()
        .take_while(|h| h.base_offset < end)
        .map(|h| h.total_size())
        .sum();
    bytes[..kept].to_vec()
}

#[test]
fn truncation_cuts_whole_batches_anywhere_and_appends_continue() {
    let original = {
        let dir = tempfile::tempdir().unwrap();
        read_all(&log_with_timestamps(dir.path()), 0, i64::MAX)
    };
    for target in 0..26 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with_timestamps(dir.path());
        log.truncate_to(target).unwrap();
        let end = target - target % 2;
        let what = format!("truncated to {target}");
        assert_truncated(&log, end, &original, &what);
        assert!(
            files_with_ext(dir.path(), "log").iter().all(|p| p
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                <= end),
            "{what}: later segments are gone"
        );

        crash(log);
        let mut log = open(dir.path());
        assert_truncated(&log, end, &original, &format!("{what}, after a crash"));
        let info = log.append(batch(2, 5_000), 8, 6_000).unwrap();
        assert_eq!(info.base_offset, end, "{what}");
        let mut epochs = epochs_below(end);
        epochs.push((8, end));
        assert_eq!(log.leader_epochs(), epochs, "{what}");
        log.close().unwrap();
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), end + 2, "{what}");
        assert_eq!(log.leader_epochs(), epochs, "{what}");
        assert_eq!(
            log.max_timestamp().unwrap(),
            Some((end + 1, 5_001)),
            "{what}"
        );
    }
}

#[test]
fn truncation_at_or_past_the_end_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_timestamps(dir.path());
    let before = read_all(&log, 0, i64::MAX);
    log.truncate_to(26).unwrap();
    log.truncate_to(1_000).unwrap();
    assert_eq!(read_all(&log, 0, i64::MAX), before);
    assert_eq!(log.high_watermark(), 26);
}

/// Truncating a full copy of the busy leader at any batch boundary gives what copying only
/// the batches below it gives: same bytes, epochs, producers, aborted transactions and last
/// stable offset; and so after a crash.
#[test]
fn truncation_rebuilds_producer_and_transaction_state() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = busy_leader(leader_dir.path());
    let boundaries: Vec<i64> = headers_of(&read_all(&leader, 0, i64::MAX))
        .iter()
        .map(|h| h.base_offset)
        .collect();
    let mut seen_states = std::collections::HashSet::new();
    for &cut in &boundaries {
        let (full_dir, part_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut expected_log = follower(part_dir.path());
        catch_up_to(&leader, &mut expected_log, 1 << 20, cut);
        let expected: Replicated = replicated(&mut expected_log);
        seen_states.insert((
            expected.aborted.len(),
            expected.last_stable < expected.log_end,
        ));

        let mut truncated = follower(full_dir.path());
        catch_up(&leader, &mut truncated, 250);
        truncated.truncate_to(cut).unwrap();
        assert_eq!(replicated(&mut truncated), expected, "cut at {cut}");
        crash(truncated);
        let mut reopened = follower(full_dir.path());
        assert_eq!(
            replicated(&mut reopened),
            expected,
            "cut at {cut}, after a crash"
        );

        // Back in step with the leader, a copy carries on like one that never diverged,
        // also when it crashes after fetching past where its snapshots used to be.
        let again_dir = tempfile::tempdir().unwrap();
        let mut again = follower(again_dir.path());
        catch_up(&leader, &mut again, 250);
        again.truncate_to(cut).unwrap();
        catch_up(&leader, &mut again, 1 << 20);
        crash(again);
        catch_up(&leader, &mut expected_log, 1 << 20);
        let in_step = replicated(&mut expected_log);
        assert_eq!(
            replicated(&mut follower(again_dir.path())),
            in_step,
            "cut at {cut}"
        );
        catch_up(&leader, &mut reopened, 1 << 20);
        assert_eq!(replicated(&mut reopened), in_step, "cut at {cut}");
    }
    // The cuts met open, aborted and no transactions.
    assert!(seen_states.contains(&(0, true)), "{seen_states:?}");
    assert!(seen_states.contains(&(1, true)), "{seen_states:?}");
    assert!(seen_states.contains(&(1, false)), "{seen_states:?}");
}

#[test]
fn a_crash_between_segment_deletion_and_the_cut_recovers_a_contiguous_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_timestamps(dir.path());
    let original = read_all(&log, 0, i64::MAX);
    let bases = log.segment_bases();
    log.close().unwrap();
    // What truncate_to leaves when it stops after deleting the last segment: the epoch file
    // gone, the later segments gone, the checkpoint and the cut segment untouched.
    fs::remove_file(dir.path().join(EPOCH_FILE)).unwrap();
    let last = *bases.last().unwrap();
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(dir.path().join(crate::segment::file_name(last, ext))).unwrap();
    }
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), last);
    assert_eq!(log.leader_epochs(), epochs_below(last));
    assert_eq!(
        read_all(&log, 0, i64::MAX),
        read_all_prefix(&original, last)
    );
}

#[test]
fn starting_over_drops_everything() {
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = busy_leader(leader_dir.path());
    let mut log = follower(dir.path());
    catch_up(&leader, &mut log, 250);
    log.truncate_fully_and_start_at(100).unwrap();
    let empty = |log: &PartitionLog| {
        assert_eq!(log.log_start_offset(), 100);
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.high_watermark(), 100);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.leader_epochs(), []);
        assert_eq!(log.producers(), []);
        assert_eq!(log.aborted_transactions(0, i64::MAX), []);
        assert!(log.read(99, 100, i64::MAX).is_err());
    };
    empty(&log);
    assert!(files_with_ext(dir.path(), "snapshot").is_empty());
    crash(log);
    let mut log = follower(dir.path());
    empty(&log);

    // Follower appends go on from there; the old producers never come back.
    let mut next = producer_batch(PID + 9, 0, 0, 2, 0, false).to_vec();
    crate::batch::assign_offset_and_epoch(&mut next, 100, 9);
    log.append_as_follower(Bytes::from(next), 0).unwrap();
    assert_eq!(log.leader_epochs(), [(9, 100)]);
    log.close().unwrap();
    let log = follower(dir.path());
    assert_eq!(log.log_end_offset(), 102);
    let producers: Vec<i64> = log.producers().iter().map(|p| p.producer_id).collect();
    assert_eq!(producers, [PID + 9]);
}

#[test]
fn truncating_below_the_first_segment_starts_over_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_timestamps(dir.path());
    log.truncate_fully_and_start_at(50).unwrap();
    log.append(batch(1, 0), 2, 0).unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.leader_epochs(), []);
}
