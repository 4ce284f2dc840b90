//! Unit tests of the transaction coordinator in a cluster: it coordinates the transactional
//! ids of the `__transaction_state` partitions it has loaded, finishes their half-ended
//! transactions on load, and acknowledges state changes only once replicated.

use std::sync::Arc;

use parking_lot::Mutex;

use super::log::TRANSACTION_STATE_TOPIC;
use futures_util::future::BoxFuture;

use super::markers::{Marker, MarkerWriter, StillCoordinating};
use super::state::{TxnMetadata, TxnState};
use super::{TransactionCoordinator, TxnError};
use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;
use crate::topics::TopicRegistry;

const PARTITIONS: i32 = 3;
const TIMEOUT_MS: i32 = 100;

/// The markers asked for: (producer id, commit), and the coordinator epoch of the last.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(i64, bool)>>>, Arc<Mutex<Option<i32>>>);

impl MarkerWriter for Recorded {
    fn write_markers<'a>(
        &'a self,
        _: &'a GroupCoordinator,
        marker: Marker,
        _: &'a [(String, i32)],
        _: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        self.0.lock().push((marker.producer_id, marker.commit));
        *self.1.lock() = Some(marker.coordinator_epoch);
        Box::pin(async { Ok(()) })
    }
}

struct Cluster {
    txns: Arc<TransactionCoordinator>,
    groups: GroupCoordinator,
    topics: Arc<TopicRegistry>,
    markers: Recorded,
}

/// Cluster-mode coordinators over a real registry in `dir` whose `__transaction_state`
/// exists (the controller made it), with nothing loaded yet.
fn cluster(dir: &std::path::Path) -> Cluster {
    let config = Arc::new(Config {
        data_dir: dir.to_owned(),
        transaction_state_num_partitions: PARTITIONS,
        ..Config::default()
    });
    let topics = Arc::new(TopicRegistry::open(config.clone()).expect("registry"));
    topics
        .create_led_here(TRANSACTION_STATE_TOPIC, PARTITIONS, Default::default())
        .expect("state topic");
    // Followed, as the reconciler leaves the partitions another broker coordinates.
    for partition in 0..PARTITIONS {
        topics
            .partition(TRANSACTION_STATE_TOPIC, partition)
            .unwrap()
            .become_follower(2, 0);
    }
    topics
        .create_led_here("t", 1, Default::default())
        .expect("data topic");
    let markers = Recorded::default();
    let txns = Arc::new(TransactionCoordinator::new(config.clone(), topics.clone()));
    txns.set_markers(Arc::new(markers.clone()));
    // In a cluster producer ids come in blocks from the controller.
    txns.add_producer_ids(0, 1000);
    let groups = GroupCoordinator::new(config, topics.clone());
    Cluster {
        txns,
        groups,
        topics,
        markers,
    }
}

/// Leads state partition `partition` alone and loads it, as the reconciler does when it
/// gains one.
fn lead(c: &Cluster, partition: i32) {
    take_leadership(c, partition);
    c.txns.load_partition(partition).unwrap();
}

fn take_leadership(c: &Cluster, partition: i32) {
    let state = c
        .topics
        .partition(TRANSACTION_STATE_TOPIC, partition)
        .unwrap();
    state
        .become_leader(state.leader_epoch() + 1, &[1], &[1], 1)
        .unwrap();
}

/// Gives state partition `partition` up to broker 2 and unloads it.
fn lose(c: &Cluster, partition: i32) {
    let state = c
        .topics
        .partition(TRANSACTION_STATE_TOPIC, partition)
        .unwrap();
    state.become_follower(2, state.leader_epoch() + 1);
    c.txns.unload_partition(partition);
}

fn id_in(txns: &TransactionCoordinator, partition: i32) -> String {
    (0..)
        .map(|i| format!("txn-{i}"))
        .find(|id| txns.partition_of(id) == partition)
        .unwrap()
}

/// An id with an open transaction on partition t-0: (producer id, epoch).
async fn ongoing(c: &Cluster, id: &str) -> (i64, i16) {
    let (producer_id, epoch) = c
        .txns
        .init_producer_id(id, TIMEOUT_MS, None, &c.groups)
        .await
        .unwrap();
    c.txns
        .add_partitions(id, producer_id, epoch, &[("t".into(), 0)], 0)
        .await
        .unwrap();
    (producer_id, epoch)
}

#[tokio::test]
async fn ids_of_partitions_not_loaded_here_are_not_coordinated_here() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let (a, b) = (id_in(&c.txns, 0), id_in(&c.txns, 1));
    let init = c
        .txns
        .init_producer_id(&a, TIMEOUT_MS, None, &c.groups)
        .await;
    assert!(matches!(init, Err(BrokerError::NotCoordinator)));
    assert!(matches!(
        c.txns.describe(&a),
        Err(BrokerError::NotCoordinator)
    ));

    lead(&c, 0);
    let (producer_id, epoch) = ongoing(&c, &a).await;
    assert_eq!(c.txns.describe(&a).unwrap().state, TxnState::Ongoing);
    let init = c
        .txns
        .init_producer_id(&b, TIMEOUT_MS, None, &c.groups)
        .await;
    assert!(
        matches!(init, Err(BrokerError::NotCoordinator)),
        "partition 1 is not loaded"
    );
    assert_eq!(c.txns.list().unwrap().len(), 1);

    // Unloaded: forgotten; loaded again: as the log has it.
    lose(&c, 0);
    assert!(matches!(
        c.txns.describe(&a),
        Err(BrokerError::NotCoordinator)
    ));
    let end = c
        .txns
        .end_txn(&a, (producer_id, epoch), true, 0, &c.groups)
        .await;
    assert!(matches!(end, Err(BrokerError::NotCoordinator)));
    assert!(c.txns.list().unwrap().is_empty());
    lead(&c, 0);
    let loaded = c.txns.describe(&a).unwrap();
    assert_eq!(
        (loaded.state, loaded.producer_id, loaded.producer_epoch),
        (TxnState::Ongoing, producer_id, epoch)
    );
    c.txns
        .end_txn(&a, (producer_id, epoch), true, 0, &c.groups)
        .await
        .unwrap();
    assert_eq!(c.markers.0.lock().as_slice(), &[(producer_id, true)]);
}

#[tokio::test]
async fn loading_a_partition_finishes_only_its_half_ended_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let (a, b) = (id_in(&c.txns, 0), id_in(&c.txns, 1));
    // A coordinator that stopped between PrepareCommit and its markers, for both ids.
    take_leadership(&c, 0);
    take_leadership(&c, 1);
    for (id, producer_id) in [(&a, 10), (&b, 11)] {
        let mut metadata = TxnMetadata::new(producer_id, TIMEOUT_MS, 0);
        metadata.producer_epoch = 0;
        metadata.add_partitions(&[("t".into(), 0)], 0, 0).unwrap();
        metadata.prepare(true, 0);
        c.txns.log.write(id, Some(&metadata), 0).unwrap();
    }
    c.txns.load_partition(0).unwrap();
    // The load only finds them; finishing, which may wait for other brokers, comes after.
    assert_eq!(c.txns.describe(&a).unwrap().state, TxnState::PrepareCommit);
    assert!(c.markers.0.lock().is_empty());
    c.txns.finish_half_ended(&c.groups).await;
    assert_eq!(c.markers.0.lock().as_slice(), &[(10, true)]);
    assert_eq!(c.txns.describe(&a).unwrap().state, TxnState::CompleteCommit);
    let unloaded = c.txns.describe(&b);
    assert!(
        matches!(unloaded, Err(BrokerError::CoordinatorLoadInProgress)),
        "led, not loaded: {unloaded:?}"
    );

    c.txns.load_partition(1).unwrap();
    c.txns.finish_half_ended(&c.groups).await;
    assert_eq!(c.markers.0.lock().as_slice(), &[(10, true), (11, true)]);
    assert_eq!(c.txns.describe(&b).unwrap().state, TxnState::CompleteCommit);
}

#[tokio::test]
async fn markers_carry_the_leader_epoch_the_partition_was_loaded_at() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let a = id_in(&c.txns, 0);
    let state = c.topics.partition(TRANSACTION_STATE_TOPIC, 0).unwrap();
    state.become_leader(7, &[1], &[1], 1).unwrap();
    c.txns.load_partition(0).unwrap();
    let (producer_id, epoch) = ongoing(&c, &a).await;
    c.txns
        .end_txn(&a, (producer_id, epoch), false, 0, &c.groups)
        .await
        .unwrap();
    assert_eq!(c.markers.0.lock().as_slice(), &[(producer_id, false)]);
    assert_eq!(*c.markers.1.lock(), Some(7));
}

#[tokio::test]
async fn a_half_ended_transaction_unloaded_before_it_is_finished_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let a = id_in(&c.txns, 0);
    let mut metadata = TxnMetadata::new(10, TIMEOUT_MS, 0);
    metadata.producer_epoch = 0;
    metadata.add_partitions(&[("t".into(), 0)], 0, 0).unwrap();
    metadata.prepare(false, 0);
    take_leadership(&c, 0);
    c.txns.log.write(&a, Some(&metadata), 0).unwrap();
    c.txns.load_partition(0).unwrap();
    lose(&c, 0);
    c.txns.finish_half_ended(&c.groups).await;
    assert!(
        c.markers.0.lock().is_empty(),
        "the partition's next coordinator finishes it"
    );
}

#[tokio::test]
async fn a_state_the_replicas_do_not_take_is_undone_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let a = id_in(&c.txns, 0);
    lead(&c, 0);
    let (producer_id, epoch) = ongoing(&c, &a).await;
    // Partition 0 gets a follower that never fetches: the high watermark stands still.
    let state = c.topics.partition(TRANSACTION_STATE_TOPIC, 0).unwrap();
    state.become_leader(1, &[1, 2], &[1, 2], 1).unwrap();

    // The PrepareCommit times out (Kafka: COORDINATOR_NOT_AVAILABLE); no marker goes out.
    let end = c
        .txns
        .end_txn(&a, (producer_id, epoch), true, 0, &c.groups)
        .await;
    assert!(
        matches!(end, Err(BrokerError::CoordinatorNotAvailable)),
        "{end:?}"
    );
    assert!(c.markers.0.lock().is_empty());
    assert_eq!(
        c.txns.describe(&a).unwrap().state,
        TxnState::Ongoing,
        "put back"
    );

    // Once the follower has caught up, the retried EndTxn goes through.
    let end = c.txns.end_txn(&a, (producer_id, epoch), true, 0, &c.groups);
    let follower = async {
        // The PrepareCommit lands, then the CompleteCommit: the follower fetches each.
        loop {
            let log_end = state.offsets().unwrap().log_end;
            state.record_follower_fetch(2, log_end, 0).unwrap();
            tokio::task::yield_now().await;
        }
    };
    tokio::select! {
        ended = end => { ended.unwrap(); }
        _ = follower => unreachable!(),
    }
    assert_eq!(c.markers.0.lock().as_slice(), &[(producer_id, true)]);
    assert_eq!(c.txns.describe(&a).unwrap().state, TxnState::CompleteCommit);
}

#[tokio::test]
async fn a_new_id_not_stored_in_time_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let a = id_in(&c.txns, 0);
    lead(&c, 0);
    let state = c.topics.partition(TRANSACTION_STATE_TOPIC, 0).unwrap();
    state.become_leader(1, &[1, 2], &[1, 2], 1).unwrap();
    let init = c
        .txns
        .init_producer_id(&a, TIMEOUT_MS, None, &c.groups)
        .await;
    assert!(
        matches!(init, Err(BrokerError::CoordinatorNotAvailable)),
        "{init:?}"
    );
    let described = c.txns.describe(&a);
    assert!(
        matches!(
            described,
            Err(BrokerError::Txn(TxnError::TransactionalIdNotFound))
        ),
        "{described:?}"
    );
}

#[tokio::test]
async fn ids_coordinated_elsewhere_are_left_to_the_partitions_producer_state() {
    use crate::group::txn_offsets::TransactionCheck;
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let a = id_in(&c.txns, 0);
    // Partition 0 is not loaded here: another broker coordinates the id.
    assert_eq!(
        c.txns
            .append_in_transaction(&a, 5, 0, ("t", 0), || Ok(7))
            .unwrap(),
        7
    );
    let mut written = false;
    c.txns
        .verify_then(&a, 5, 0, 0, &mut || {
            written = true;
            Ok(())
        })
        .unwrap();
    assert!(written);

    // Coordinated here: the producer must be in an open transaction that has the partition.
    lead(&c, 0);
    let refused = c.txns.append_in_transaction(&a, 5, 0, ("t", 0), || Ok(7));
    assert!(
        matches!(refused, Err(BrokerError::Txn(TxnError::NotInTransaction))),
        "{refused:?}"
    );
    let refused = c.txns.verify_then(&a, 5, 0, 0, &mut || Ok(()));
    assert!(
        matches!(
            refused,
            Err(BrokerError::Txn(TxnError::InvalidProducerIdMapping))
        ),
        "{refused:?}"
    );
}

/// Transactional appends of different transactions run side by side: one underway does not
/// hold up another's check and write (they once ran one at a time under the coordinator's
/// lock, and the second append here waited for the first to finish, which never came).
#[tokio::test]
async fn transactional_appends_do_not_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(cluster(dir.path()));
    let (a, b) = (id_in(&c.txns, 0), id_in(&c.txns, 1));
    lead(&c, 0);
    lead(&c, 1);
    let (a_id, a_epoch) = ongoing(&c, &a).await;
    let (b_id, b_epoch) = ongoing(&c, &b).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let nested = c
        .txns
        .append_in_transaction(&a, a_id, a_epoch, ("t", 0), || {
            let c = c.clone();
            std::thread::spawn(move || {
                let appended = c
                    .txns
                    .append_in_transaction(&b, b_id, b_epoch, ("t", 0), || Ok(2));
                let _ = tx.send(appended);
            });
            // A bound only so that the old behaviour fails instead of hanging.
            Ok(rx.recv_timeout(std::time::Duration::from_secs(30)))
        })
        .unwrap();
    let inner = nested.expect("the second append waited for the first to finish");
    assert_eq!(inner.unwrap(), 2);
}
