//! The share coordinator over the wire (KIP-932): FindCoordinator key type 2 finds it,
//! InitializeShareGroupState, WriteShareGroupState and ReadShareGroupState keep a
//! share-partition's state in `__share_group_state`, and the state written is read back the
//! same after the broker is killed with SIGKILL and restarted: it is rebuilt from the log.

use std::time::{Duration, Instant};

use base64::Engine;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{create_topic, str_bytes};
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
    let request = WriteShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![WriteStateData::default()
            .with_topic_id(topic)
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_state_epoch(state_epoch)
                .with_leader_epoch(1)
                .with_start_offset(3)
                .with_delivery_complete_count(2)
                .with_state_batches(vec![
                    batch(0, 4, 2, 1),
                    batch(5, 9, 0, 2),
                ])])]);
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
