//! The storage boundary seen from a partition: a slow disk (an fsync held by the storage
//! crate's test hook, released by the test) delays neither the event loop nor the partition's
//! other users, because fsyncs run on storage threads with no lock held.

use std::sync::Arc;
use std::time::Duration;

use samsa_storage::durable::test_hooks::{hold_fsyncs, FsyncHold};
use samsa_storage::LogConfig;

use super::*;
use crate::topics::internal::{encode_batch, record};

fn records(count: i64) -> Bytes {
    let batch: Vec<_> = (0..count)
        .map(|i| record(Bytes::from(format!("k{i}")), None, i, 0))
        .collect();
    encode_batch(&batch, "test records").unwrap()
}

fn open(dir: &std::path::Path, name: &str, config: LogConfig) -> Arc<Partition> {
    Arc::new(Partition::open(name, 0, dir.join(format!("{name}-0")), config, 1, 1).unwrap())
}

/// Waits, yielding to the runtime, until an fsync has reached `hold`.
async fn entered(hold: &FsyncHold) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hold.entered() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no fsync was held");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// On a single-threaded runtime, as one event-loop thread: an append to a partition that
/// fsyncs every write waits for its (held) fsync, and meanwhile an append to another
/// partition completes. Were the fsync run by the appending task itself, the thread would
/// sit in it until the hold gave up, and the second append would come after.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_fsync_on_one_partition_does_not_delay_a_produce_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let synced = LogConfig {
        flush_messages: Some(1),
        ..LogConfig::default()
    };
    let slow = open(dir.path(), "slow", synced);
    let other = open(dir.path(), "other", LogConfig::default());
    let hold = hold_fsyncs(&dir.path().join("slow-0"));
    let waiting = {
        let slow = slow.clone();
        tokio::spawn(async move { slow.append(records(1), 0).await })
    };
    entered(&hold).await;
    let info = other.append(records(2), 0).await.unwrap();
    assert_eq!(info.last_offset, 1);
    assert!(
        hold.is_held(),
        "the other partition's append waited for the slow fsync"
    );
    assert!(
        !waiting.is_finished(),
        "acknowledged before its fsync ended"
    );
    hold.release();
    let info = waiting.await.unwrap().unwrap();
    assert_eq!(info.last_offset, 0);
    assert_eq!(slow.sync.synced(), 1);
}

/// Runs `work` on a thread of its own with the partition's fsyncs held, and appends to the
/// partition while `work` waits in one: the append must not wait with it.
fn append_while_fsync_held<T: Send + 'static>(
    partition: &Arc<Partition>,
    dir: &std::path::Path,
    work: impl FnOnce(&Partition) -> Result<T> + Send + 'static,
) -> T {
    let hold = hold_fsyncs(dir);
    let working = {
        let partition = partition.clone();
        std::thread::spawn(move || work(&partition))
    };
    assert!(hold.wait_entered());
    partition.append_blocking(records(1), 0).unwrap();
    assert!(hold.is_held(), "the append waited for the held fsync");
    hold.release();
    working.join().unwrap().unwrap()
}

/// The periodic flush syncs with the log released: an append to the same partition goes on
/// while the flush's fsync is held.
#[test]
fn the_flush_loop_holds_no_lock_across_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let flush_always = LogConfig {
        flush_ms: Some(0),
        ..LogConfig::default()
    };
    let partition = open(dir.path(), "t", flush_always);
    partition.append_blocking(records(1), 0).unwrap();
    append_while_fsync_held(&partition, &dir.path().join("t-0"), |p| {
        p.flush_if_due(crate::clock::now_ms())
    });
}

/// Retention takes segments out under the lock and leaves their removal, the checkpoint and
/// the directory sync to a storage thread: an append goes on while those fsyncs are held.
#[test]
fn retention_holds_no_lock_across_its_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    // Old records in one segment: retention rolls it and deletes it; no roll's sync is
    // queued before the hold.
    let expire_all = LogConfig {
        retention_ms: Some(0),
        ..LogConfig::default()
    };
    let partition = open(dir.path(), "t", expire_all);
    partition.append_blocking(records(3), 0).unwrap();
    let deleted = append_while_fsync_held(&partition, &dir.path().join("t-0"), |p| {
        p.apply_retention(crate::clock::now_ms())
    });
    assert_eq!(deleted, 1);
}
