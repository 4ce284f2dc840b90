//! A single node's markers when a partition fails to take one: the write is retried until it
//! goes in, and the transaction stays PrepareCommit or PrepareAbort until then, so its
//! partition's last stable offset is never left behind a transaction the coordinator
//! thinks complete.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_storage::{validate_batches, AbortedTxn};

use crate::clock::now_ms;
use crate::config::Config;
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
use crate::topics::internal::{encode_batch, record};
use crate::topics::{Isolation, Partition, TopicRegistry};
use crate::txn::state::TxnState;
use crate::txn::{TransactionCoordinator, TxnError};

const ID: &str = "txn";
const TIMEOUT_MS: i32 = 60_000;
/// Enough injected failures that only the test's own reset ends them.
const FAIL_UNTIL_RESET: usize = 1_000_000;

struct SingleNode {
    _dir: tempfile::TempDir,
    txns: Arc<TransactionCoordinator>,
    groups: GroupCoordinator,
    topics: Arc<TopicRegistry>,
}

/// One node's coordinators over a fresh data directory with topic "t", loaded.
fn single_node() -> SingleNode {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config {
        data_dir: dir.path().to_owned(),
        transaction_state_num_partitions: 1,
        offsets_topic_num_partitions: 1,
        ..Config::default()
    });
    let topics = Arc::new(TopicRegistry::open(config.clone()).unwrap());
    topics.create_led_here("t", 1, Default::default()).unwrap();
    let txns = Arc::new(TransactionCoordinator::new(config.clone(), topics.clone()));
    let groups = GroupCoordinator::new(config, topics.clone());
    crate::testing::coordinate_everything(&topics, &groups, Some(&txns));
    // Retried until written, with no shutdown.
    txns.set_markers(Arc::new(super::LocalMarkers::new(
        topics.clone(),
        tokio::sync::watch::channel(false).1,
    )));
    SingleNode {
        _dir: dir,
        txns,
        groups,
        topics,
    }
}

/// `count` records of the producer's transaction, as one batch from sequence `first_seq`.
fn transactional(producer_id: i64, epoch: i16, first_seq: i32, count: i64) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record(
                Bytes::from(format!("k{i}")),
                Some(Bytes::from_static(b"v")),
                i,
                now_ms(),
            );
            r.transactional = true;
            r.producer_id = producer_id;
            r.producer_epoch = epoch;
            r.sequence = first_seq + i as i32;
            r
        })
        .collect();
    encode_batch(&records, "transactional records").unwrap()
}

/// Opens a transaction of `ID` on t-0 holding two records at offsets 0 and 1.
async fn two_records_in_a_transaction(s: &SingleNode) -> (Arc<Partition>, i64, i16) {
    let (producer_id, epoch) = s
        .txns
        .init_producer_id(ID, TIMEOUT_MS, None, &s.groups)
        .await
        .unwrap();
    s.txns
        .add_partitions(ID, producer_id, epoch, &[("t".into(), 0)], 0)
        .await
        .unwrap();
    let partition = s.topics.partition("t", 0).unwrap();
    partition
        .append_blocking(transactional(producer_id, epoch, 0, 2), now_ms())
        .unwrap();
    let offsets = partition.offsets().unwrap();
    assert_eq!(
        (offsets.last_stable, offsets.high_watermark),
        (0, 2),
        "held at the open transaction"
    );
    (partition, producer_id, epoch)
}

/// Waits until at least `failures` injected marker failures have happened on `partition`.
async fn failed_at_least(partition: &Partition, failures: usize) {
    let retried = async {
        while FAIL_UNTIL_RESET - partition.failing_markers_left() < failures {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), retried)
        .await
        .unwrap_or_else(|_| panic!("the marker write was not retried {failures} times"));
}

/// Ends the transaction while t-0 fails every marker write, checks that it stays prepared
/// meanwhile, then lets the writes succeed and waits for the end.
async fn end_through_failing_writes(
    s: &SingleNode,
    partition: &Partition,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) {
    partition.fail_next_markers(FAIL_UNTIL_RESET);
    let end = s
        .txns
        .end_txn(ID, (producer_id, epoch), commit, 0, &s.groups);
    let check_while_failing = async {
        failed_at_least(partition, 3).await;
        let prepared = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        assert_eq!(
            s.txns.describe(ID).unwrap().state,
            prepared,
            "not complete before its markers"
        );
        // As Kafka: the id takes no new epoch or partitions until the end is complete.
        let init = s
            .txns
            .init_producer_id(ID, TIMEOUT_MS, Some((producer_id, epoch)), &s.groups)
            .await;
        assert!(
            matches!(
                init,
                Err(BrokerError::Txn(TxnError::ConcurrentTransactions))
            ),
            "{init:?}"
        );
        let add = s
            .txns
            .add_partitions(ID, producer_id, epoch, &[("t".into(), 0)], 0)
            .await;
        assert!(
            matches!(add, Err(BrokerError::Txn(TxnError::ConcurrentTransactions))),
            "{add:?}"
        );
        assert_eq!(partition.offsets().unwrap().last_stable, 0);
        assert!(partition
            .read(0, 1 << 20, Isolation::ReadCommitted)
            .unwrap()
            .records
            .is_empty());
        partition.fail_next_markers(0);
    };
    let (ended, ()) = tokio::join!(end, check_while_failing);
    ended.unwrap();
}

/// The producer's next transaction on t-0 opens, takes records and commits.
async fn next_transaction_goes_through(
    s: &SingleNode,
    partition: &Partition,
    producer_id: i64,
    epoch: i16,
) {
    let (next_id, next_epoch) = s
        .txns
        .init_producer_id(ID, TIMEOUT_MS, Some((producer_id, epoch)), &s.groups)
        .await
        .unwrap();
    assert_eq!((next_id, next_epoch), (producer_id, epoch + 1));
    s.txns
        .add_partitions(ID, next_id, next_epoch, &[("t".into(), 0)], 0)
        .await
        .unwrap();
    partition
        .append_blocking(transactional(next_id, next_epoch, 0, 1), now_ms())
        .unwrap();
    s.txns
        .end_txn(ID, (next_id, next_epoch), true, 0, &s.groups)
        .await
        .unwrap();
    let offsets = partition.offsets().unwrap();
    assert_eq!(offsets.last_stable, offsets.log_end);
}

#[tokio::test]
async fn the_first_failed_marker_writes_do_not_leave_the_last_stable_offset_behind() {
    let s = single_node();
    let (partition, producer_id, epoch) = two_records_in_a_transaction(&s).await;
    partition.fail_next_markers(3);
    s.txns
        .end_txn(ID, (producer_id, epoch), true, 0, &s.groups)
        .await
        .unwrap();

    let offsets = partition.offsets().unwrap();
    assert_eq!(
        (offsets.last_stable, offsets.log_end),
        (3, 3),
        "past the transaction and its marker"
    );
    assert_eq!(
        partition.failing_markers_left(),
        0,
        "three failed writes, then the one that went in"
    );
    assert_eq!(s.txns.describe(ID).unwrap().state, TxnState::CompleteCommit);
    let read = partition
        .read(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(
        validate_batches(&read.records, usize::MAX).unwrap()[0].record_count,
        2
    );
    next_transaction_goes_through(&s, &partition, producer_id, epoch).await;
}

#[tokio::test]
async fn a_commit_marker_that_fails_to_write_is_retried_until_it_is_written() {
    let s = single_node();
    let (partition, producer_id, epoch) = two_records_in_a_transaction(&s).await;
    end_through_failing_writes(&s, &partition, producer_id, epoch, true).await;

    assert_eq!(s.txns.describe(ID).unwrap().state, TxnState::CompleteCommit);
    let offsets = partition.offsets().unwrap();
    assert_eq!(
        (offsets.last_stable, offsets.log_end),
        (3, 3),
        "the two records and the marker"
    );
    let read = partition
        .read(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    let batches = validate_batches(&read.records, usize::MAX).unwrap();
    assert_eq!(batches[0].record_count, 2, "the committed records");
    assert!(read.aborted.is_empty());

    next_transaction_goes_through(&s, &partition, producer_id, epoch).await;
}

#[tokio::test]
async fn an_abort_marker_that_fails_to_write_is_retried_until_it_is_written() {
    let s = single_node();
    let (partition, producer_id, epoch) = two_records_in_a_transaction(&s).await;
    end_through_failing_writes(&s, &partition, producer_id, epoch, false).await;

    assert_eq!(s.txns.describe(ID).unwrap().state, TxnState::CompleteAbort);
    assert_eq!(partition.offsets().unwrap().last_stable, 3);
    // read_committed consumers are told to drop the records.
    let read = partition
        .read(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    let aborted = AbortedTxn {
        producer_id,
        first_offset: 0,
        last_offset: 2,
    };
    assert_eq!(read.aborted, vec![aborted]);

    next_transaction_goes_through(&s, &partition, producer_id, epoch).await;
}

#[tokio::test]
async fn a_partition_deleted_while_its_marker_fails_is_given_up() {
    let s = single_node();
    let (partition, producer_id, epoch) = two_records_in_a_transaction(&s).await;
    partition.fail_next_markers(FAIL_UNTIL_RESET);
    let end = s.txns.end_txn(ID, (producer_id, epoch), true, 0, &s.groups);
    let delete = async {
        failed_at_least(&partition, 2).await;
        s.topics.delete("t").unwrap();
    };
    let (ended, ()) = tokio::join!(end, delete);
    ended.unwrap();
    assert_eq!(s.txns.describe(ID).unwrap().state, TxnState::CompleteCommit);
}

#[tokio::test]
async fn retries_stop_at_shutdown_and_leave_the_transaction_prepared() {
    use tokio::sync::watch;
    let s = single_node();
    let (stop, stopping) = watch::channel(false);
    s.txns.set_markers(Arc::new(super::LocalMarkers::new(
        s.topics.clone(),
        stopping,
    )));
    let (partition, producer_id, epoch) = two_records_in_a_transaction(&s).await;
    partition.fail_next_markers(FAIL_UNTIL_RESET);
    let end = s
        .txns
        .end_txn(ID, (producer_id, epoch), false, 0, &s.groups);
    let shut_down = async {
        failed_at_least(&partition, 2).await;
        stop.send_replace(true);
    };
    let (ended, ()) = tokio::join!(end, shut_down);
    assert!(
        matches!(ended, Err(BrokerError::NotCoordinator)),
        "{ended:?}"
    );
    // In the log as PrepareAbort: the next start's load finishes it.
    assert_eq!(s.txns.describe(ID).unwrap().state, TxnState::PrepareAbort);
    assert_eq!(partition.offsets().unwrap().last_stable, 0);
}
