use std::time::Duration;

use samsa_storage::LogConfig;

use super::*;

fn records(count: i64) -> Bytes {
    use crate::topics::internal::{encode_batch, record};
    let batch: Vec<_> = (0..count)
        .map(|i| {
            record(
                Bytes::from(format!("k{i}")),
                Some(Bytes::from_static(b"v")),
                i,
                0,
            )
        })
        .collect();
    encode_batch(&batch, "test records").unwrap()
}

fn led_with_a_follower(dir: &std::path::Path) -> Partition {
    let partition = Partition::open("t", 0, dir.join("t-0"), LogConfig::default(), 1, 1).unwrap();
    partition.become_leader(1, &[1, 2], &[1, 2], 2).unwrap();
    partition
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn acks_all_waits_for_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let partition = std::sync::Arc::new(led_with_a_follower(dir.path()));
    let info = partition.append_blocking(records(3), 0).unwrap();
    assert_eq!(partition.offsets().unwrap().high_watermark, 0);
    let waiting = {
        let partition = partition.clone();
        tokio::spawn(async move {
            partition
                .wait_until_replicated(info.last_offset + 1, soon())
                .await
        })
    };
    // The follower's fetch from offset 3 says it holds 0..3.
    partition.record_follower_fetch(2, 3, 0).unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(partition.offsets().unwrap().high_watermark, 3);
}

#[tokio::test]
async fn acks_all_times_out_without_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let partition = led_with_a_follower(dir.path());
    partition.append_blocking(records(1), 0).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    let result = partition.wait_until_replicated(1, deadline).await;
    assert!(
        matches!(result, Err(BrokerError::RequestTimedOut)),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_shrunk_isr_refuses_acks_all() {
    let dir = tempfile::tempdir().unwrap();
    let partition = led_with_a_follower(dir.path());
    assert!(partition.has_min_isr());
    partition.become_leader(2, &[1, 2], &[1], 2).unwrap();
    assert!(!partition.has_min_isr());
    // Written with acks=1 meanwhile: committed only once the ISR is back.
    partition.append_blocking(records(1), 0).unwrap();
    assert_eq!(partition.offsets().unwrap().high_watermark, 0);
    assert_eq!(partition.leader_epoch(), 2);
}

#[test]
fn leader_epochs_are_checked_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let partition = led_with_a_follower(dir.path());
    assert!(partition.check_leader_epoch(-1).is_ok());
    assert!(partition.check_leader_epoch(1).is_ok());
    assert!(matches!(
        partition.check_leader_epoch(0),
        Err(BrokerError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        partition.check_leader_epoch(2),
        Err(BrokerError::UnknownLeaderEpoch { .. })
    ));
    assert!(matches!(
        partition.record_follower_fetch(3, 0, 0),
        Err(BrokerError::NotLeaderOrFollower)
    ));
}

#[test]
fn flush_messages_syncs_are_shared_by_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: Some(1),
        ..LogConfig::default()
    };
    let partition =
        std::sync::Arc::new(Partition::open("t", 0, dir.path().join("t-0"), config, 1, 1).unwrap());
    partition.append_blocking(records(1), 0).unwrap();
    assert_eq!(
        partition.syncs.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(partition.sync.synced(), 1);

    // An fsync in progress while two producers append: both wait for it, and one more
    // fsync then covers them both.
    let in_progress = partition.sync.hold();
    let mut progress = partition.watch_progress();
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let partition = partition.clone();
            std::thread::spawn(move || partition.append_blocking(records(1), 0).unwrap())
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        while partition.offsets().unwrap().log_end < 3 {
            progress.changed().await.unwrap();
        }
    });
    drop(in_progress);
    for producer in producers {
        producer.join().unwrap();
    }
    assert_eq!(
        partition.syncs.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(partition.sync.synced(), 3);
}

#[test]
fn without_flush_messages_nothing_is_synced_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let partition =
        Partition::open("t", 0, dir.path().join("t-0"), LogConfig::default(), 1, 1).unwrap();
    partition.append_blocking(records(2), 0).unwrap();
    assert_eq!(
        partition.syncs.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn only_a_follower_at_the_fetchers_epoch_takes_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let partition = std::sync::Arc::new(led_with_a_follower(dir.path()));
    partition.append_blocking(records(3), 0).unwrap();
    partition.append_blocking(records(2), 0).unwrap();
    for epoch in [0, 1] {
        assert!(matches!(
            partition.truncate_to(epoch, 1),
            Err(BrokerError::NotLeaderOrFollower)
        ));
        assert!(matches!(
            partition.truncate_fully_and_start_at(epoch, 7),
            Err(BrokerError::NotLeaderOrFollower)
        ));
        assert!(matches!(
            partition.follow_high_watermark(epoch, 3),
            Err(BrokerError::NotLeaderOrFollower)
        ));
        assert!(matches!(
            partition.append_replicated(epoch, records(1), 0).await,
            Err(BrokerError::NotLeaderOrFollower)
        ));
    }
    assert_eq!(
        partition.offsets().unwrap().log_end,
        5,
        "a leader's log is never cut by a fetcher"
    );

    partition.become_follower(2, 3);
    assert!(!partition.follows(2));
    assert!(matches!(
        partition.truncate_to(2, 1),
        Err(BrokerError::FencedLeaderEpoch {
            claimed: 2,
            epoch: 3
        })
    ));
    assert!(matches!(
        partition.truncate_to(4, 1),
        Err(BrokerError::UnknownLeaderEpoch {
            claimed: 4,
            epoch: 3
        })
    ));
    assert_eq!(partition.offsets().unwrap().log_end, 5);
    assert!(partition.follows(3));
    partition.truncate_to(3, 3).unwrap();
    assert_eq!(
        partition.offsets().unwrap().log_end,
        3,
        "the fetcher of the current epoch cuts a divergent tail"
    );
}
