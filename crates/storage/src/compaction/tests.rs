//! Compaction of a `PartitionLog`: what is kept, at which offsets, when, and what a crash in
//! the middle of the swap leaves.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;

use super::swap;
use crate::checkpoint::write_atomically;
use crate::segment::{file_name, staged_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::testutil::{
    files_with_ext, headers_of, keyed_batch, records_of_full, test_config, Codec,
};
use crate::{BatchHeader, CleanupPolicy, LogConfig, PartitionLog, StorageError};

/// (offset, key, value) of one stored record.
type Rec = (i64, String, Option<String>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 60,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 10_000,
        ..test_config()
    }
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

fn put(log: &mut PartitionLog, entries: &[(&str, Option<&str>)], codec: Codec) {
    log.append(keyed_batch(entries, 1_000, codec), 0, 1_000)
        .unwrap();
    log.set_high_watermark(log.log_end_offset());
}

/// Ten rounds over five keys, so several sealed segments each hold every key.
fn overwritten_log(dir: &Path, config: LogConfig) -> PartitionLog {
    let mut log = open(dir, config);
    for round in 0..10 {
        let values: Vec<String> = (0..5).map(|k| format!("r{round}-k{k}")).collect();
        let entries: Vec<(String, Option<&str>)> = (0..5)
            .map(|k| (format!("k{k}"), Some(values[k].as_str())))
            .collect();
        let entries: Vec<(&str, Option<&str>)> =
            entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        put(&mut log, &entries, Codec::ALL[round % Codec::ALL.len()]);
    }
    assert!(log.segment_count() >= 4, "want several sealed segments");
    log
}

/// Every record, reading batch by batch from the log start and advancing by batch headers,
/// as a consumer does.
fn records(log: &PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let chunk = log.read(offset, 1 << 20, end).unwrap();
        let Some(last) = headers_of(&chunk).last().copied() else {
            break;
        };
        for r in records_of_full(&chunk) {
            if r.offset >= offset {
                out.push((r.offset, text(&r.key).unwrap(), text(&r.value)));
            }
        }
        offset = last.next_offset();
    }
    out
}

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// What a cleaning must leave: records at or after `active_base` untouched, below it only
/// the last record of each key (counting every record below `active_base`).
fn expected_after_clean(before: &[Rec], active_base: i64) -> Vec<Rec> {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, key, _) in before.iter().filter(|r| r.0 < active_base) {
        last.insert(key, *offset);
    }
    before
        .iter()
        .filter(|(offset, key, _)| *offset >= active_base || last[key.as_str()] == *offset)
        .cloned()
        .collect()
}

fn active_base(log: &PartitionLog) -> i64 {
    *log.segment_bases().last().unwrap()
}

/// A read at any offset starts with the batch holding the first kept record at or after it.
fn assert_reads_skip_to_next_kept(log: &PartitionLog, kept: &[Rec]) {
    for offset in 0..log.log_end_offset() {
        let chunk = log.read(offset, 0, log.log_end_offset()).unwrap();
        let first = records_of_full(&chunk)
            .into_iter()
            .find(|r| r.offset >= offset)
            .map(|r| r.offset);
        let want = kept.iter().map(|r| r.0).find(|o| *o >= offset);
        assert_eq!(first, want, "read at {offset}");
    }
}

#[test]
fn keeps_the_last_value_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path(), config());
    let before = records(&log);
    let (leo, size) = (log.log_end_offset(), log.size_bytes());
    let expected = expected_after_clean(&before, active_base(&log));
    assert!(expected.len() < before.len());

    let stats = log.clean(5_000).unwrap().expect("a cleaning is due");
    assert_eq!(records(&log), expected);
    assert_eq!(
        stats.records_removed as usize,
        before.len() - expected.len()
    );
    assert!(log.size_bytes() < size);
    assert!(
        log.segment_count() < stats.segments_before + 1,
        "small cleaned segments merge"
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, leo));
    assert_reads_skip_to_next_kept(&log, &expected);
    // Nothing new is dirty: cleaning again is not due.
    assert_eq!(log.clean(6_000).unwrap(), None);

    // Appends continue at the same offsets; a clean reopen and a crash reopen agree.
    put(&mut log, &[("k0", Some("late"))], Codec::None);
    let after = records(&log);
    log.close().unwrap();
    let log = open(dir.path(), config());
    assert_eq!(records(&log), after);
    drop(log);
    let log = open(dir.path(), config());
    assert_eq!(records(&log), after);
    assert_eq!(log.log_end_offset(), leo + 1);
}

#[test]
fn rewritten_batches_keep_their_offset_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 200,
            ..config()
        },
    );
    put(
        &mut log,
        &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))],
        Codec::Gzip,
    );
    put(&mut log, &[("b", Some("2"))], Codec::None);
    put(&mut log, &[("x", Some("roll"))], Codec::None);
    log.clean(0).unwrap().unwrap();
    let first = headers_of(&log.read(0, 0, 10).unwrap())[0];
    assert_eq!(
        (
            first.base_offset,
            first.last_offset_delta,
            first.record_count
        ),
        (0, 2, 2)
    );
    let offsets: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [0, 2, 3, 4]);
}

#[test]
fn compressed_batches_keep_their_codec() {
    for codec in Codec::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        for round in 0..6 {
            let v = format!("{round}");
            put(
                &mut log,
                &[
                    ("a", Some(&v)),
                    ("b", Some(&v)),
                    (&format!("u{round}"), Some(&v)),
                ],
                codec,
            );
        }
        let before = records(&log);
        let codec_of = |log: &PartitionLog| -> Vec<_> {
            headers_of(&crate::testutil::read_all(log, 0, log.log_end_offset()))
                .iter()
                .map(BatchHeader::compression)
                .collect()
        };
        let codecs = codec_of(&log)[0];
        log.clean(0).unwrap().unwrap();
        assert_eq!(
            records(&log),
            expected_after_clean(&before, active_base(&log)),
            "{codec:?}"
        );
        assert!(codec_of(&log).iter().all(|c| *c == codecs), "{codec:?}");
    }
}

#[test]
fn tombstones_go_after_delete_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 150,
            ..config()
        },
    );
    put(
        &mut log,
        &[("gone", Some("v")), ("kept", Some("v"))],
        Codec::None,
    );
    put(&mut log, &[("gone", None)], Codec::Snappy);
    put(&mut log, &[("filler", Some("x"))], Codec::None);
    put(&mut log, &[("filler2", Some("x"))], Codec::None);
    let keys = |log: &PartitionLog| -> Vec<(String, Option<String>)> {
        records(log).into_iter().map(|(_, k, v)| (k, v)).collect()
    };

    log.clean(1_000).unwrap().unwrap();
    assert!(
        keys(&log).contains(&("gone".into(), None)),
        "tombstone kept at first"
    );
    assert!(!keys(&log).contains(&("gone".into(), Some("v".into()))));
    // Not dirty and the horizon (1_000 + 10_000) not reached: nothing to do.
    assert_eq!(log.clean(10_999).unwrap(), None);
    log.close().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 150,
            ..config()
        },
    );
    assert!(
        log.clean(11_000).unwrap().is_some(),
        "the horizon makes a cleaning due"
    );
    assert!(
        keys(&log).iter().all(|(k, _)| k != "gone"),
        "{:?}",
        keys(&log)
    );
    assert!(keys(&log).contains(&("kept".into(), Some("v".into()))));
}

#[test]
fn the_active_segment_is_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
    );
    for _ in 0..5 {
        put(&mut log, &[("same", Some("v"))], Codec::None);
    }
    assert_eq!(log.clean(0).unwrap(), None);
    assert_eq!(records(&log).len(), 5);

    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path(), config());
    let active = log.segment_bases().last().copied().unwrap();
    let path = log.dir().join(file_name(active, LOG_EXT));
    let bytes = fs::read(&path).unwrap();
    log.clean(0).unwrap().unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn dirty_ratio_and_compaction_lag_decide_when() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..config()
    };
    let mut log = overwritten_log(dir.path(), config.clone());
    log.clean(0).unwrap().unwrap();
    // Distinct keys: the clean part stays, so the dirty share grows slowly.
    let mut n = 0;
    let mut due_at = None;
    while due_at.is_none() && n < 200 {
        put(&mut log, &[(&format!("new{n}"), Some("v"))], Codec::None);
        n += 1;
        let plan = log.compaction_plan(0).unwrap();
        due_at = plan.is_some().then_some(n);
    }
    let due_at = due_at.expect("due eventually");
    assert!(
        due_at > 3,
        "a little dirty data is not enough (due after {due_at})"
    );

    let lagged = LogConfig {
        min_compaction_lag_ms: 1_000,
        ..config
    };
    let dir = tempfile::tempdir().unwrap();
    let log = overwritten_log(dir.path(), lagged);
    // Records carry timestamps 1_000..=1_004.
    assert!(
        log.compaction_plan(2_003).unwrap().is_none(),
        "records too young to compact"
    );
    assert!(log.compaction_plan(2_004).unwrap().is_some());
}

#[test]
fn compacted_logs_reject_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    let keyless = crate::testutil::batch_full_keys(&[Some("a"), None], Codec::Zstd);
    match log.append(keyless.clone(), 0, 0) {
        Err(StorageError::RecordsRefused(refused)) => {
            assert_eq!(refused.len(), 1);
            assert_eq!(refused[0].index, 1);
        }
        other => panic!("expected the keyless record refused, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain = open(plain_dir.path(), test_config());
    assert!(plain.append(keyless, 0, 0).is_ok());
}

#[test]
fn reads_and_appends_go_on_while_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path(), config());
    let before = records(&log);
    let plan = log.compaction_plan(0).unwrap().unwrap();
    let cleaned = plan.run().unwrap();
    assert_eq!(
        records(&log),
        before,
        "nothing visible changes before the swap"
    );
    put(&mut log, &[("k0", Some("during")); 8], Codec::None);
    let stats = log.install_cleaned(cleaned).unwrap();
    assert!(stats.is_some());
    let after = records(&log);
    assert_eq!(after.last().unwrap().2.as_deref(), Some("during"));
    assert!(after.len() < before.len() + 8);

    // Retention moving under the cleaner: the cleaned segments are thrown away.
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path(), config());
    let cleaned = log.compaction_plan(0).unwrap().unwrap().run().unwrap();
    let second = log.segment_bases()[1];
    log.advance_log_start_offset(second).unwrap();
    assert_eq!(log.install_cleaned(cleaned).unwrap(), None);
    assert!(files_with_ext(log.dir(), "cleaned").is_empty());
}

/// The swap's file operations after the commit, in the order `swap::swap` does them.
fn swap_steps(dir: &Path, replaced: &[i64], installed: &[i64]) -> Vec<Box<dyn Fn()>> {
    let mut steps: Vec<Box<dyn Fn()>> = Vec::new();
    for &base in replaced {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let path = dir.join(file_name(base, ext));
            steps.push(Box::new(move || fs::remove_file(&path).unwrap()));
        }
    }
    for &base in installed {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let (from, to) = (
                dir.join(staged_name(base, ext)),
                dir.join(file_name(base, ext)),
            );
            steps.push(Box::new(move || fs::rename(&from, &to).unwrap()));
        }
    }
    steps
}

#[test]
fn a_crash_anywhere_in_the_swap_recovers_a_consistent_log() {
    // Expected result of a full cleaning, computed once.
    let reference = tempfile::tempdir().unwrap();
    let (before, expected) = {
        let mut log = overwritten_log(reference.path(), config());
        let before = records(&log);
        log.clean(0).unwrap().unwrap();
        (before, records(&log))
    };
    let mut crash_point = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let log = overwritten_log(dir.path(), config());
        let cleaned = log.compaction_plan(0).unwrap().unwrap().run().unwrap();
        let replaced = cleaned.replaced().to_vec();
        let installed: Vec<i64> = cleaned.segments.iter().map(|s| s.base_offset()).collect();
        // The crash: nothing is closed, the handles just go away.
        drop(cleaned);
        drop(log);
        let steps = swap_steps(dir.path(), &replaced, &installed);
        if crash_point == 0 {
            // Staged but never committed: rolls back.
            let log = open(dir.path(), config());
            assert_eq!(records(&log), before, "uncommitted");
        } else {
            let manifest = super::swap::tests_support::manifest(&replaced, &installed);
            write_atomically(dir.path(), swap::MANIFEST_FILE, &manifest).unwrap();
            for step in &steps[..crash_point - 1] {
                step();
            }
            let mut log = open(dir.path(), config());
            let what = format!(
                "crash after {} of {} swap steps",
                crash_point - 1,
                steps.len()
            );
            assert_eq!(records(&log), expected, "{what}");
            assert_reads_skip_to_next_kept(&log, &expected);
            assert!(!dir.path().join(swap::MANIFEST_FILE).exists(), "{what}");
            assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".cleaned")));
            put(&mut log, &[("after", Some("crash"))], Codec::None);
            assert_eq!(records(&log).last().unwrap().1, "after");
        }
        crash_point += 1;
        if crash_point > steps.len() + 1 {
            break;
        }
    }
}

#[test]
fn aborted_records_go_markers_stay_and_open_transactions_wait() {
    use crate::testutil::producer_batch;
    use crate::ControlType::{Abort, Commit};
    let dir = tempfile::tempdir().unwrap();
    // A segment per batch, so the cleanable section can end anywhere.
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 100,
            ..config()
        },
    );
    let txn = |log: &mut PartitionLog, pid: i64| {
        log.append(producer_batch(pid, 0, 0, 1, 1_000, true), 0, 1_000)
            .unwrap();
    };
    let end_txn = |log: &mut PartitionLog, pid: i64, control| {
        log.append_control(pid, 0, control, 0, 0, 1_000, 0).unwrap();
        log.set_high_watermark(log.log_end_offset());
    };
    txn(&mut log, 1);
    end_txn(&mut log, 1, Commit);
    txn(&mut log, 2);
    end_txn(&mut log, 2, Abort);
    put(&mut log, &[("other", Some("v"))], Codec::None);
    txn(&mut log, 3);
    put(&mut log, &[("filler", Some("x"))], Codec::None);
    put(&mut log, &[("filler", Some("y"))], Codec::None);
    assert_eq!(log.last_stable_offset(), 5);

    log.clean(2_000).unwrap().expect("a cleaning is due");
    let offsets: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    // The committed key-0 at 0 survives both the aborted one at 2 (dropped) and the open
    // transaction's at 5 (past the last stable offset, so not cleaned against yet). Both
    // markers stay.
    assert_eq!(offsets, vec![0, 1, 3, 4, 5, 6, 7]);
    assert_eq!(log.aborted_transactions(0, 10).len(), 1);
    let markers: Vec<i64> = headers_of(&crate::testutil::read_all(&log, 0, 8))
        .iter()
        .filter(|h| h.is_control())
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(markers, vec![1, 3]);

    // Once that transaction commits, its key-0 supersedes the first (and "filler" at 7
    // the one at 6; the newest, at 9, is in the active segment).
    end_txn(&mut log, 3, Commit);
    put(&mut log, &[("filler", Some("z"))], Codec::None);
    log.clean(3_000).unwrap().expect("a cleaning is due");
    let offsets: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![1, 3, 4, 5, 7, 8, 9]);
}
