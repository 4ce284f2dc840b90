//! Markers sent to the leaders a cluster's metadata names: a real broker (in this process,
//! serving WriteTxnMarkers on a loopback port) as the remote leader, this broker's own
//! registry for the partitions it leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::state::{
    Broker as RegisteredBroker, Partition as PartitionRecord, Topic as TopicRecord,
};
use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;

use super::*;
use crate::config::Config;
use crate::error::BrokerError;
use crate::testing::{start_broker, InProcessBroker};

const LOCAL: i32 = 1;
const REMOTE: i32 = 2;

/// A partition record led by `leader`.
fn led_by(leader: i32) -> PartitionRecord {
    PartitionRecord {
        replicas: vec![leader],
        isr: vec![leader],
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        target_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
    }
}

/// Topics "remote" (led by the other broker at `addr`) and "here" (led by this one).
fn metadata(addr: &str, remote_leader: i32) -> ClusterMetadata {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let broker = RegisteredBroker {
        id: REMOTE,
        host: host.to_owned(),
        port: port.parse().unwrap(),
        rack: None,
        incarnation: 1,
        epoch: 1,
        fenced: false,
        registry_url: None,
    };
    let topic = |name: &str, leader| TopicRecord {
        name: name.to_owned(),
        id: [0; 16],
        configs: BTreeMap::new(),
        partitions: vec![led_by(leader)],
    };
    ClusterMetadata {
        brokers: BTreeMap::from([(REMOTE, broker)]),
        topics: BTreeMap::from([
            (
                "remote".to_owned(),
                std::sync::Arc::new(topic("remote", remote_leader)),
            ),
            ("here".to_owned(), std::sync::Arc::new(topic("here", LOCAL))),
        ]),
        ..ClusterMetadata::default()
    }
}

struct Setup {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    remote: InProcessBroker,
    local: Arc<TopicRegistry>,
    groups: GroupCoordinator,
    markers: ClusterMarkers,
    published: watch::Sender<Arc<ClusterMetadata>>,
    _shutdown: watch::Sender<bool>,
}

async fn setup(remote_leader: i32) -> Setup {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = start_broker(
        dirs.0.path(),
        Config {
            node_id: REMOTE,
            ..Config::default()
        },
    )
    .await;
    remote
        .broker
        .topics
        .create_led_here("remote", 1, Default::default())
        .unwrap();
    let config = Arc::new(Config {
        data_dir: dirs.1.path().to_owned(),
        node_id: LOCAL,
        ..Config::default()
    });
    let local = Arc::new(TopicRegistry::open(config.clone()).unwrap());
    local
        .create_led_here("here", 1, Default::default())
        .unwrap();
    let groups = GroupCoordinator::new(config, local.clone());
    let (published, watched) = watch::channel(Arc::new(metadata(&remote.addr, remote_leader)));
    let (shutdown, stopped) = watch::channel(false);
    let markers = ClusterMarkers::new(
        LOCAL,
        local.clone(),
        watched,
        Duration::from_secs(5),
        stopped,
    );
    Setup {
        _dirs: dirs,
        remote,
        local,
        groups,
        markers,
        published,
        _shutdown: shutdown,
    }
}

fn marker(coordinator_epoch: i32) -> Marker {
    Marker {
        producer_id: 42,
        producer_epoch: 0,
        commit: true,
        coordinator_epoch,
        transaction_version: 0,
    }
}

/// The coordinator epoch partition `index` of `topic` last took a marker of producer 42 from.
fn seen_epoch(topics: &TopicRegistry, topic: &str) -> Option<i32> {
    let producers = topics.partition(topic, 0).unwrap().producers().unwrap();
    producers
        .iter()
        .find(|p| p.producer_id == 42)
        .map(|p| p.coordinator_epoch)
}

fn partitions() -> Vec<(String, i32)> {
    vec![("remote".to_owned(), 0), ("here".to_owned(), 0)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_marker_reaches_its_partitions_leader() {
    let s = setup(REMOTE).await;
    let partitions = partitions();
    s.markers
        .write_markers(&s.groups, marker(3), &partitions, &|| true)
        .await
        .unwrap();
    assert_eq!(
        seen_epoch(&s.remote.broker.topics, "remote"),
        Some(3),
        "sent with WriteTxnMarkers"
    );
    assert_eq!(seen_epoch(&s.local, "here"), Some(3), "appended here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_without_a_leader_gets_its_marker_once_it_has_one() {
    let s = setup(-1).await;
    let partitions = partitions();
    let writing = s
        .markers
        .write_markers(&s.groups, marker(3), &partitions, &|| true);
    let elect = async {
        // Once the marker of the led partition is in, the other one is still waiting.
        let here = s.local.partition("here", 0).unwrap();
        let mut progress = here.watch_progress();
        progress.wait_for(|hw| *hw > 0).await.unwrap();
        assert_eq!(seen_epoch(&s.remote.broker.topics, "remote"), None);
        s.published
            .send_replace(Arc::new(metadata(&s.remote.addr, REMOTE)));
    };
    let (written, ()) = tokio::join!(writing, elect);
    written.unwrap();
    assert_eq!(seen_epoch(&s.remote.broker.topics, "remote"), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_coordinator_epoch_at_a_partition_fences_this_coordinator() {
    let s = setup(REMOTE).await;
    let remote = vec![("remote".to_owned(), 0)];
    s.markers
        .write_markers(&s.groups, marker(5), &remote, &|| true)
        .await
        .unwrap();
    let stale = s
        .markers
        .write_markers(&s.groups, marker(4), &remote, &|| true)
        .await;
    assert!(
        matches!(stale, Err(BrokerError::NotCoordinator)),
        "{stale:?}"
    );
    assert_eq!(seen_epoch(&s.remote.broker.topics, "remote"), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_is_given_up_and_a_lost_coordinator_stops() {
    let s = setup(-1).await;
    let gone = vec![("deleted".to_owned(), 0)];
    s.markers
        .write_markers(&s.groups, marker(3), &gone, &|| true)
        .await
        .unwrap();
    // Leaderless: retried until this broker no longer coordinates the transaction.
    let remote = vec![("remote".to_owned(), 0)];
    let stopped = s
        .markers
        .write_markers(&s.groups, marker(3), &remote, &|| false)
        .await;
    assert!(
        matches!(stopped, Err(BrokerError::NotCoordinator)),
        "{stopped:?}"
    );
}

#[test]
fn answers_are_read_as_kafkas_coordinator_reads_them() {
    use ResponseError as E;
    let p = ("t".to_owned(), 0);
    assert_eq!(outcome_of(&p, None), Outcome::Written);
    for retried in [
        E::NotLeaderOrFollower,
        E::UnknownTopicOrPartition,
        E::NotEnoughReplicas,
        E::RequestTimedOut,
        E::ClusterAuthorizationFailed,
    ] {
        assert_eq!(outcome_of(&p, Some(retried)), Outcome::Retry, "{retried:?}");
    }
    for fenced in [E::InvalidProducerEpoch, E::TransactionCoordinatorFenced] {
        assert_eq!(outcome_of(&p, Some(fenced)), Outcome::Fenced, "{fenced:?}");
    }
    assert_eq!(
        outcome_of(&p, Some(E::UnsupportedForMessageFormat)),
        Outcome::Written
    );
}
