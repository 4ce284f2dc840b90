//! The replica fetcher against a real leader: a broker serving on loopback in this process,
//! whose partition is made the leader of a two-replica set, and a follower replica of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use samsa_storage::LogConfig;
use tokio::sync::watch;

use super::follower::{replicate, FetcherConfig};
use crate::config::Config;
use crate::peer::PeerConnection;
use crate::testing::{start_broker, InProcessBroker};
use crate::topics::internal::{encode_batch, record};
use crate::topics::Partition;

const TIMEOUT: Duration = Duration::from_secs(20);
const LEADER: i32 = 1;
const FOLLOWER: i32 = 2;

/// One batch of `count` records. (kafka-protocol's encoder starts a new batch wherever
/// offset minus sequence changes, so each record's sequence follows its offset.)
fn records(tag: &str, count: i64) -> Bytes {
    let batch: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record(
                Bytes::from(format!("{tag}-{i}")),
                Some(Bytes::from_static(b"v")),
                i,
                0,
            );
            r.sequence = i as i32;
            r
        })
        .collect();
    encode_batch(&batch, "test records").unwrap()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A broker (LEADER) with a one-partition topic "t" it leads alone, and a connection to it.
async fn broker_with_topic(dir: &Path) -> (InProcessBroker, PeerConnection) {
    let broker = start_broker(
        dir,
        Config {
            node_id: LEADER,
            ..Config::default()
        },
    )
    .await;
    let mut conn = PeerConnection::connect(&broker.addr, "test", TIMEOUT)
        .await
        .unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("t"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let created = conn.send(&create, 5, TIMEOUT).await.unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    (broker, conn)
}

/// A leader of "t"-0 replicated to [LEADER, FOLLOWER] with both in sync, at `epoch`.
async fn leader(dir: &Path, epoch: i32) -> (InProcessBroker, PeerConnection) {
    let (leader, conn) = broker_with_topic(dir).await;
    leader_partition(&leader)
        .become_leader(epoch, &[LEADER, FOLLOWER], &[LEADER, FOLLOWER], 2)
        .unwrap();
    (leader, conn)
}

fn leader_partition(leader: &InProcessBroker) -> Arc<Partition> {
    leader.broker.topics.partition("t", 0).unwrap()
}

async fn produce(conn: &mut PeerConnection, records: Bytes) -> (i16, i64) {
    produce_with_acks(conn, -1, records).await
}

async fn produce_with_acks(conn: &mut PeerConnection, acks: i16, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(15_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = conn.send(&request, 9, TIMEOUT).await.unwrap();
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

fn follower_partition(dir: &Path) -> Arc<Partition> {
    Arc::new(Partition::open("t", 0, dir.join("t-0"), LogConfig::default(), FOLLOWER, 1).unwrap())
}

fn fetcher_config() -> FetcherConfig {
    FetcherConfig {
        local_id: FOLLOWER,
        fetch_wait_max_ms: 200,
        fetch_max_bytes: 1 << 20,
        backoff: Duration::from_millis(50),
    }
}

/// A fetcher for `follower` at the leader epoch it follows now.
fn start_fetcher(leader: &InProcessBroker, follower: &Arc<Partition>) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let epoch = follower.leader_epoch();
    tokio::spawn(replicate(
        fetcher_config(),
        leader.addr.clone(),
        vec![("t".into(), follower.clone(), epoch)],
        stopped,
    ));
    stop
}

/// Waits until the follower's log ends at `offset` and its high watermark is there too.
async fn follower_reaches(follower: &Partition, offset: i64) {
    let mut progress = follower.watch_progress();
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let offsets = follower.offsets().unwrap();
            if (offsets.log_end, offsets.high_watermark) == (offset, offset) {
                return;
            }
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("the follower caught up");
}

fn segment_bytes(partition_dir: PathBuf) -> Vec<u8> {
    std::fs::read(partition_dir.join("00000000000000000000.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_the_follower_which_gets_the_same_bytes() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, mut conn) = leader(dirs.0.path(), 1).await;
    let follower = follower_partition(dirs.1.path());
    follower.become_follower(LEADER, 1);
    let _fetcher = start_fetcher(&leader, &follower);

    for (i, count) in [3, 5, 1].into_iter().enumerate() {
        let (code, _) = produce(&mut conn, records(&format!("b{i}"), count)).await;
        assert_eq!(code, 0, "acks=all answered once the follower has the batch");
    }
    let leader_offsets = leader_partition(&leader).offsets().unwrap();
    assert_eq!(
        (leader_offsets.log_end, leader_offsets.high_watermark),
        (9, 9)
    );
    follower_reaches(&follower, 9).await;
    assert_eq!(follower.offsets().unwrap().log_end, 9);
    assert_eq!(
        segment_bytes(dirs.1.path().join("t-0")),
        segment_bytes(dirs.0.path().join("t-0")),
        "offsets, epochs and CRCs exactly as the leader wrote them"
    );
    assert_eq!(follower.end_offset_for_epoch(1).unwrap(), Some((1, 9)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_times_out_while_the_follower_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let (_leader, mut conn) = leader(dir.path(), 1).await;
    let request_timeout = 300;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(request_timeout)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records("x", 1)))])]);
    let response = conn.send(&request, 9, TIMEOUT).await.unwrap();
    const REQUEST_TIMED_OUT: i16 = 7;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        REQUEST_TIMED_OUT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_tail_is_truncated_before_fetching() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The follower once led at epoch 0 and wrote batches the new leader never got.
    let follower = follower_partition(dirs.1.path());
    follower.append_blocking(records("lost", 4), 0).unwrap();
    follower.append_blocking(records("lost-too", 2), 0).unwrap();

    // The new leader has its own epoch-0 batch, then leads at epoch 1.
    let (leader_broker, mut conn) = broker_with_topic(dirs.0.path()).await;
    let (code, base) = produce(&mut conn, records("kept", 2)).await;
    assert_eq!((code, base), (0, 0));
    leader_partition(&leader_broker)
        .become_leader(1, &[LEADER, FOLLOWER], &[LEADER], 1)
        .unwrap();
    let (code, base) = produce(&mut conn, records("new", 3)).await;
    assert_eq!((code, base), (0, 2));

    follower.become_follower(LEADER, 1);
    let _fetcher = start_fetcher(&leader_broker, &follower);
    follower_reaches(&follower, 5).await;
    assert_eq!(follower.offsets().unwrap().log_end, 5);
    assert_eq!(
        segment_bytes(dirs.1.path().join("t-0")),
        segment_bytes(dirs.0.path().join("t-0")),
        "the follower's own epoch-0 tail is gone, the leader's log replaces it"
    );
}

#[test]
fn a_follower_refuses_clients() {
    let dir = tempfile::tempdir().unwrap();
    let follower = follower_partition(dir.path());
    follower.become_follower(LEADER, 1);
    assert!(follower.append_blocking(records("x", 1), 0).is_err());
    assert!(follower
        .read(0, 1 << 20, crate::topics::Isolation::ReadUncommitted)
        .is_err());
    assert!(follower.ensure_leader().is_err());
    assert_eq!(follower.current_leader(), (LEADER, 1));
}

/// Issue 16's lost write. A replica followed the old leader at epoch 2, and its fetcher was
/// still waiting to reach that leader (restarting) when the controller made the replica
/// leader at epoch 3. The old leader came back following epoch 3 with a log that ends in
/// epoch 2, so it answered OffsetForLeaderEpoch(3) with UNDEFINED; the fetcher fell back to
/// the replica's high watermark, which lagged its log end, and cut the new leader's log.
/// Here the fetcher starts after the role change, as the waiting one got going then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetcher_left_over_from_following_never_cuts_a_new_leaders_log() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (old_leader, mut conn) = broker_with_topic(dirs.0.path()).await;
    // A third replica that never fetches holds the high watermark back, so the follower's
    // lags its log end, as it did when the last acknowledgement had not reached it yet.
    leader_partition(&old_leader)
        .become_leader(2, &[LEADER, FOLLOWER, 3], &[LEADER, FOLLOWER, 3], 1)
        .unwrap();
    assert_eq!(
        produce_with_acks(&mut conn, 1, records("x", 5)).await,
        (0, 0)
    );

    let replica = follower_partition(dirs.1.path());
    replica.become_follower(LEADER, 2);
    let (stop, stopped) = watch::channel(false);
    let first = tokio::spawn(replicate(
        fetcher_config(),
        old_leader.addr.clone(),
        vec![("t".into(), replica.clone(), 2)],
        stopped,
    ));
    let mut progress = replica.watch_progress();
    tokio::time::timeout(TIMEOUT, async {
        while replica.offsets().unwrap().log_end < 5 {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("the follower copied the leader's log");
    stop.send(true).unwrap();
    first.await.unwrap();
    let before = replica.offsets().unwrap();
    assert_eq!((before.log_end, before.high_watermark), (5, 0));

    // The controller's change: the replica leads at epoch 3 with an ISR of itself, below
    // min.insync.replicas 2, so its high watermark stays; the old leader follows it.
    replica
        .become_leader(3, &[FOLLOWER, LEADER], &[FOLLOWER], 2)
        .unwrap();
    leader_partition(&old_leader).become_follower(FOLLOWER, 3);

    let (_stop, stopped) = watch::channel(false);
    let mut stale = tokio::spawn(replicate(
        fetcher_config(),
        old_leader.addr.clone(),
        vec![("t".into(), replica.clone(), 2)],
        stopped,
    ));
    // Until the fetcher lets the replica go, or cuts its log.
    let mut progress = replica.watch_progress();
    tokio::time::timeout(TIMEOUT, async {
        while replica.offsets().unwrap().log_end == 5 {
            tokio::select! {
                ended = &mut stale => return ended.unwrap(),
                changed = progress.changed() => changed.unwrap(),
            }
        }
    })
    .await
    .expect("a fetcher whose replica now leads lets it go");
    assert_eq!(
        replica.offsets().unwrap().log_end,
        5,
        "the new leader keeps every record"
    );
    assert_eq!(
        replica.end_offset_for_epoch(3).unwrap(),
        Some((3, 5)),
        "its epoch starts at its log end"
    );
}

/// OffsetForLeaderEpoch is a leader's to answer, at the epoch it leads in (Kafka's
/// `fetchOnlyFromLeader`): a follower or a stale asker gets an error, never an offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_is_answered_by_the_current_leader_only() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut conn) = leader(dir.path(), 2).await;
    assert_eq!(
        produce_with_acks(&mut conn, 1, records("x", 3)).await,
        (0, 0)
    );
    const FENCED_LEADER_EPOCH: i16 = 74;
    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    assert_eq!(ask(&mut conn, 2, 2).await, (0, 2, 3));
    assert_eq!(
        ask(&mut conn, -1, 0).await,
        (0, 0, 0),
        "epoch 0 ended where epoch 2 began"
    );
    assert_eq!(ask(&mut conn, 1, 2).await, (FENCED_LEADER_EPOCH, -1, -1));
    assert_eq!(ask(&mut conn, 3, 2).await, (UNKNOWN_LEADER_EPOCH, -1, -1));
    leader_partition(&broker).become_follower(FOLLOWER, 3);
    assert_eq!(
        ask(&mut conn, 3, 3).await,
        (NOT_LEADER_OR_FOLLOWER, -1, -1),
        "a follower does not answer"
    );
    assert_eq!(
        ask(&mut conn, -1, 2).await,
        (NOT_LEADER_OR_FOLLOWER, -1, -1)
    );
}

/// OffsetForLeaderEpoch for "t"-0 as the follower asks it: (error, epoch, end offset).
async fn ask(conn: &mut PeerConnection, current_leader_epoch: i32, epoch: i32) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{BrokerId, OffsetForLeaderEpochRequest};
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(FOLLOWER))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(epoch)])]);
    let response = conn.send(&request, 4, TIMEOUT).await.unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}
