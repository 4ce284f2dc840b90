//! The share coordinator over the wire (KIP-932): FindCoordinator key type 2 finds it,
//! InitializeShareGroupState, WriteShareGroupState and ReadShareGroupState keep a
//! share-partition's state in `__share_group_state`, and the state written is read back the
//! same after the broker is killed with SIGKILL and restarted: it is rebuilt from the log.
//! In a three-node cluster, the state survives the loss of its coordinator: the new leader
//! of the state partition replays it and answers the same. The prune job moves the state
//! partition's log start past the records later snapshots made redundant, and the state
//! rebuilt from what is left is the same.

use std::time::{Duration, Instant};

use base64::Engine;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{create_topic, list_offset, str_bytes};
use samsa_protocol_tests::cluster::TestCluster;
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

const SHARE_KEY: i8 = 2;
const INVALID_REQUEST: i16 = 42;
const FENCED_STATE_EPOCH: i16 = 124;
/// What a broker answers while the coordinator moves or loads.
const RETRIED: [i16; 3] = [14, 15, 16];

fn share_key(group: &str, topic: Uuid, partition: i32) -> String {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic.as_bytes());
    format!("{group}:{id}:{partition}")
}

/// Retries `send` while it answers a code of [`RETRIED`], and returns the last answer's code
/// with the answer.
fn until_served<T>(mut send: impl FnMut() -> (i16, T)) -> (i16, T) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, answer) = send();
        if !RETRIED.contains(&code) || Instant::now() > deadline {
            return (code, answer);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn initialize(conn: &mut Connection, group: &str, topic: Uuid, state_epoch: i32) -> i16 {
    use initialize_share_group_state_request::*;
    let request = InitializeShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![InitializeStateData::default()
            .with_topic_id(topic)
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_state_epoch(state_epoch)
                .with_start_offset(0)])]);
    until_served(|| {
        let response = conn.send(&request, 0).unwrap();
        (response.results[0].partitions[0].error_code, ())
    })
    .0
}

fn write(conn: &mut Connection, group: &str, topic: Uuid, state_epoch: i32) -> i16 {
    use write_share_group_state_request::*;
    let batch = |first, last, state, count| {
        StateBatch::default()
            .with_first_offset(first)
            .with_last_offset(last)
            .with_delivery_state(state)
            .with_delivery_count(count)
    };
    let data = PartitionData::default()
        .with_state_epoch(state_epoch)
        .with_start_offset(3)
        .with_delivery_complete_count(2)
        .with_state_batches(vec![batch(0, 4, 2, 1), batch(5, 9, 0, 2)]);
    write_partition(conn, group, topic, data)
}

/// WriteShareGroupState of `data` to partition 0 of `topic`, at leader epoch 1.
fn write_partition(
    conn: &mut Connection,
    group: &str,
    topic: Uuid,
    data: write_share_group_state_request::PartitionData,
) -> i16 {
    use write_share_group_state_request::*;
    let request = WriteShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![WriteStateData::default()
            .with_topic_id(topic)
            .with_partitions(vec![data.with_partition(0).with_leader_epoch(1)])]);
    until_served(|| {
        let response = conn.send(&request, 1).unwrap();
        (response.results[0].partitions[0].error_code, ())
    })
    .0
}

fn read(
    conn: &mut Connection,
    group: &str,
    topic: Uuid,
) -> (i16, read_share_group_state_response::PartitionResult) {
    use read_share_group_state_request::*;
    let request = ReadShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![ReadStateData::default()
            .with_topic_id(topic)
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_leader_epoch(1)])]);
    until_served(|| {
        let response = conn.send(&request, 0).unwrap();
        let partition = response.results[0].partitions[0].clone();
        (partition.error_code, partition)
    })
}

/// (first, last, state, count) of each batch read.
fn batches(p: &read_share_group_state_response::PartitionResult) -> Vec<(i64, i64, i8, i16)> {
    p.state_batches
        .iter()
        .map(|b| {
            (
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect()
}

#[test]
fn share_state_is_found_written_and_read_back_after_a_sigkill() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "share-state", 1, &[]).unwrap().id;
    let key = share_key("g1", topic, 0);

    // FindCoordinator names this broker for the share key from v6 only.
    let find = FindCoordinatorRequest::default()
        .with_key_type(SHARE_KEY)
        .with_coordinator_keys(vec![str_bytes(&key), str_bytes("not-a-share-key")]);
    let (code, found) = until_served(|| {
        let response = conn.send(&find, 6).unwrap();
        (response.coordinators[0].error_code, response)
    });
    assert_eq!(code, 0, "{found:?}");
    assert!(found.coordinators[0].node_id.0 >= 0);
    assert_eq!(found.coordinators[1].error_code, INVALID_REQUEST);
    let old = FindCoordinatorRequest::default()
        .with_key_type(SHARE_KEY)
        .with_coordinator_keys(vec![str_bytes(&key)]);
    assert_eq!(
        conn.send(&old, 5).unwrap().coordinators[0].error_code,
        INVALID_REQUEST
    );

    // A share-partition never initialized cannot be read.
    assert_eq!(read(&mut conn, "g1", topic).0, INVALID_REQUEST);
    assert_eq!(initialize(&mut conn, "g1", topic, 1), 0);
    assert_eq!(write(&mut conn, "g1", topic, 0), FENCED_STATE_EPOCH);
    assert_eq!(write(&mut conn, "g1", topic, 1), 0);
    let (code, before) = read(&mut conn, "g1", topic);
    assert_eq!(code, 0, "{before:?}");
    let expected = vec![(3, 4, 2, 1), (5, 9, 0, 2)];
    assert_eq!((before.state_epoch, before.start_offset), (1, 3));
    assert_eq!(batches(&before), expected);

    broker.crash_and_restart().unwrap();
    let mut conn = broker.connect().unwrap();
    let (code, after) = read(&mut conn, "g1", topic);
    assert_eq!(code, 0, "{after:?}");
    assert_eq!((after.state_epoch, after.start_offset), (1, 3));
    assert_eq!(batches(&after), expected);
    // The epochs came back with the state: the old state epoch is still fenced.
    assert_eq!(write(&mut conn, "g1", topic, 0), FENCED_STATE_EPOCH);
}

/// Writes one batch `[start, start + 4]` (available, delivered once) at `start`.
fn write_from(conn: &mut Connection, group: &str, topic: Uuid, start: i64) -> i16 {
    use write_share_group_state_request::*;
    let data = PartitionData::default()
        .with_state_epoch(1)
        .with_start_offset(start)
        .with_state_batches(vec![StateBatch::default()
            .with_first_offset(start)
            .with_last_offset(start + 4)
            .with_delivery_state(0)
            .with_delivery_count(1)]);
    write_partition(conn, group, topic, data)
}

/// The earliest offset of `__share_group_state` partition 0.
fn state_log_start(conn: &mut Connection) -> i64 {
    let answer = list_offset(conn, "__share_group_state", 0, -2, 7).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer.offset
}

/// Kafka's prune job (`share.coordinator.state.topic.prune.interval.ms`): with a snapshot
/// every third record, many writes to one share-partition leave only its latest snapshot and
/// the updates after it needed; the log start moves up to that snapshot, and a broker killed
/// and restarted rebuilds the same state from what is left.
#[test]
fn pruning_drops_redundant_share_state_and_a_restart_rebuilds_it() {
    let mut broker = BrokerProcess::start(
        "share_coordinator_state_topic_prune_interval_ms = 100\n\
         share_coordinator_snapshot_update_records_per_snapshot = 2\n",
    )
    .unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "pruned", 1, &[]).unwrap().id;
    // FindCoordinator creates the state topic.
    let find = FindCoordinatorRequest::default()
        .with_key_type(SHARE_KEY)
        .with_coordinator_keys(vec![str_bytes(&share_key("g", topic, 0))]);
    let (code, found) = until_served(|| {
        let response = conn.send(&find, 6).unwrap();
        (response.coordinators[0].error_code, response)
    });
    assert_eq!(code, 0, "{found:?}");
    assert_eq!(initialize(&mut conn, "g", topic, 1), 0);
    for start in 1..=20 {
        assert_eq!(write_from(&mut conn, "g", topic, start), 0);
    }
    let (code, before) = read(&mut conn, "g", topic);
    assert_eq!(code, 0, "{before:?}");
    assert_eq!(before.start_offset, 20);
    assert_eq!(batches(&before), vec![(20, 24, 0, 1)]);
    // 21 records: the initialization's snapshot, then updates, and every third write from
    // the fourth a snapshot (offsets 4, 7, ..., 19). Everything before 19 goes.
    let end = list_offset(&mut conn, "__share_group_state", 0, -1, 7)
        .unwrap()
        .offset;
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_log_start(&mut conn) < 19 {
        assert!(
            Instant::now() < deadline,
            "log start {}",
            state_log_start(&mut conn)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pruned = state_log_start(&mut conn);
    // (The read wrote one more: its leader epoch, new to the state.)
    assert_eq!(
        (pruned, end),
        (19, 22),
        "the latest snapshot and what follows it stay"
    );

    broker.crash_and_restart().unwrap();
    let mut conn = broker.connect().unwrap();
    let (code, after) = read(&mut conn, "g", topic);
    assert_eq!(code, 0, "{after:?}");
    assert_eq!((after.state_epoch, after.start_offset), (1, 20));
    assert_eq!(batches(&after), batches(&before));
    // The moved log start is checkpointed lazily, as Kafka's is (its checkpoint interval), so
    // after a SIGKILL it may start from an older one; the rebuilt coordinator prunes back to
    // the same snapshot.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_log_start(&mut conn) != pruned {
        assert!(
            Instant::now() < deadline,
            "log start {} after the restart, want {pruned}",
            state_log_start(&mut conn)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Writing goes on from the rebuilt state, and pruning with it.
    assert_eq!(write_from(&mut conn, "g", topic, 21), 0);
    assert_eq!(
        batches(&read(&mut conn, "g", topic).1),
        vec![(21, 25, 0, 1)]
    );
}

/// Kafka's `kafka-dump-log --share-group-state-decoder` reads samsa's state segments: the
/// snapshot an initialization writes and the update a write makes. Needs Kafka's tools,
/// which `make test` installs first (`compat/install.sh`); without them it fails, saying so.
#[test]
fn kafkas_dump_log_decodes_the_state_segments() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "share-dump", 1, &[]).unwrap().id;
    coordinator_of(&mut conn, &share_key("g3", topic, 0), None);
    assert_eq!(initialize(&mut conn, "g3", topic, 1), 0);
    assert_eq!(write(&mut conn, "g3", topic, 1), 0);
    broker.terminate().unwrap();
    let segment = broker
        .data_dir
        .path()
        .join("data/__share_group_state-0/00000000000000000000.log");
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/kafka-tools");
    let out = std::process::Command::new(tools)
        .args(["kafka-dump-log", "--share-group-state-decoder", "--files"])
        .arg(&segment)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic.as_bytes());
    let snapshot =
        format!(r#"key: {{"type":"0","data":{{"groupId":"g3","topicId":"{id}","partition":0}}}}"#);
    assert!(text.contains(&snapshot), "{text}");
    assert!(
        text.contains(r#""stateEpoch":1,"leaderEpoch":0,"startOffset":0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"type":"1","data":{"groupId":"g3""#),
        "{text}"
    );
    assert!(
        text.contains(r#""stateBatches":[{"firstOffset":3,"lastOffset":4,"deliveryState":2,"deliveryCount":1},{"firstOffset":5,"lastOffset":9,"deliveryState":0,"deliveryCount":2}]"#),
        "{text}"
    );
}

/// The node FindCoordinator names for `key`, asked of `conn`, once it names one other than
/// `not`.
fn coordinator_of(conn: &mut Connection, key: &str, not: Option<i32>) -> i32 {
    let find = FindCoordinatorRequest::default()
        .with_key_type(SHARE_KEY)
        .with_coordinator_keys(vec![str_bytes(key)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = conn.send(&find, 6).unwrap().coordinators[0].clone();
        if found.error_code == 0 && Some(found.node_id.0) != not {
            return found.node_id.0;
        }
        assert!(Instant::now() < deadline, "no new coordinator: {found:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// In a cluster, with pruning: the next leader rebuilds the same state, and its own prune
/// round moves its replica's log start to where the old leader had moved its own.
#[test]
fn share_state_survives_the_loss_of_its_coordinator() {
    let mut cluster = TestCluster::start(
        3,
        "share_coordinator_state_topic_prune_interval_ms = 100\n\
         share_coordinator_snapshot_update_records_per_snapshot = 2\n",
    )
    .unwrap();
    let topic = cluster
        .create_topic(1, "share-cluster", 1, 3, &[], &[1, 2, 3])
        .unwrap()
        .id;
    let key = share_key("g2", topic, 0);
    let coordinator = coordinator_of(&mut cluster.connect(1).unwrap(), &key, None);
    let mut conn = cluster.connect(coordinator).unwrap();
    assert_eq!(initialize(&mut conn, "g2", topic, 1), 0);
    assert_eq!(write(&mut conn, "g2", topic, 1), 0);
    let expected = vec![(3, 4, 2, 1), (5, 9, 0, 2)];
    assert_eq!(batches(&read(&mut conn, "g2", topic).1), expected);
    let metric = |series| cluster.metric(coordinator, series).unwrap();
    assert_eq!(metric("samsa_share_coordinator_write_total"), Some(1.0));
    assert_eq!(metric("samsa_share_coordinator_partitions"), Some(1.0));

    // More writes, and the prune job drops what their snapshots made redundant.
    for start in 4..=20 {
        assert_eq!(write_from(&mut conn, "g2", topic, start), 0);
    }
    let expected = vec![(20, 24, 0, 1)];
    assert_eq!(batches(&read(&mut conn, "g2", topic).1), expected);
    // Pruned as far as the writes allow: the log start has moved, and several prune rounds
    // in a row (every 100 ms) leave it where it is. (Taking the first value past the first
    // rounds raced the rounds after it.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut pruned, mut unchanged) = (state_log_start(&mut conn), 0);
    while pruned < 10 || unchanged < 5 {
        assert!(Instant::now() < deadline, "not pruned: {pruned}");
        std::thread::sleep(Duration::from_millis(100));
        let now = state_log_start(&mut conn);
        unchanged = if now == pruned { unchanged + 1 } else { 0 };
        pruned = now;
    }

    // The writes were answered once the in-sync replicas held them: the next leader has them.
    cluster.node_mut(coordinator).process.kill().unwrap();
    let survivor = (1..=3).find(|id| *id != coordinator).unwrap();
    let next = coordinator_of(
        &mut cluster.connect(survivor).unwrap(),
        &key,
        Some(coordinator),
    );
    let mut conn = cluster.connect(next).unwrap();
    let (code, after) = read(&mut conn, "g2", topic);
    assert_eq!(code, 0, "{after:?}");
    assert_eq!((after.state_epoch, after.start_offset), (1, 20));
    assert_eq!(batches(&after), expected);
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_log_start(&mut conn) != pruned {
        assert!(Instant::now() < deadline, "{}", state_log_start(&mut conn));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(write(&mut conn, "g2", topic, 0), FENCED_STATE_EPOCH);
}
