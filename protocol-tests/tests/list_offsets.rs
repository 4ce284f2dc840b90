//! ListOffsets: consumers find where to start (earliest, latest, a point in time, the
//! newest timestamp) through it, so each lookup must land on the right record.

use std::sync::LazyLock;

use kafka_protocol::messages::ApiKey;
use samsa_protocol_tests::batches::{self, batch, Message};
use samsa_protocol_tests::client::{
    create_topic, list_offset, list_offsets_request, produce, versions,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets v7 added the MAX_TIMESTAMP lookup (KIP-734).
const FIRST_VERSION_WITH_MAX_TIMESTAMP: i16 = 7;
const READ_COMMITTED: i8 = 1;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

/// Offsets 0-2 then 3-5 in two batches, timestamps out of order within each batch.
fn two_batches(conn: &mut Connection) {
    let topic = create_topic(conn, "offsets", 2, &[]).unwrap();
    let first: Vec<Message> = [0, 2000, 1000]
        .iter()
        .enumerate()
        .map(|(i, dt)| Message::new(&format!("a{i}"), "x", *T0 + dt))
        .collect();
    let second: Vec<Message> = [3000, 6000, 4000]
        .iter()
        .enumerate()
        .map(|(i, dt)| Message::new(&format!("b{i}"), "y", *T0 + dt))
        .collect();
    assert_eq!(produce(conn, &topic, 0, batch(&first)).unwrap(), 0);
    assert_eq!(produce(conn, &topic, 0, batch(&second)).unwrap(), 3);
}

/// Asserts ListOffsets answers (offset, timestamp) for `query`, with leader epoch 0 where found.
fn assert_lookup(
    conn: &mut Connection,
    partition: i32,
    query: i64,
    expected: (i64, i64),
    version: i16,
) {
    let answer = list_offset(conn, "offsets", partition, query, version).unwrap();
    assert_eq!(answer.partition_index, partition);
    assert_eq!(answer.error_code, 0, "v{version} query {query}");
    assert_eq!(
        (answer.offset, answer.timestamp),
        expected,
        "v{version} query {query}"
    );
    if version >= 4 {
        let epoch = if expected.0 >= 0 { 0 } else { -1 };
        assert_eq!(answer.leader_epoch, epoch, "v{version} query {query}");
    }
}

#[test]
fn earliest_latest_and_timestamps_at_every_version() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    two_batches(&mut conn);
    for version in versions(ApiKey::ListOffsets) {
        let response = conn
            .send(&list_offsets_request("offsets", 0, EARLIEST), version)
            .unwrap();
        if version >= 2 {
            assert_eq!(response.throttle_time_ms, 0, "v{version}");
        }
        assert_lookup(&mut conn, 0, EARLIEST, (0, -1), version);
        assert_lookup(&mut conn, 0, LATEST, (6, -1), version);
        // The earliest offset whose timestamp is at or after the one asked for.
        assert_lookup(&mut conn, 0, *T0, (0, *T0), version);
        assert_lookup(&mut conn, 0, *T0 + 1500, (1, *T0 + 2000), version);
        assert_lookup(&mut conn, 0, *T0 + 2000, (1, *T0 + 2000), version);
        assert_lookup(&mut conn, 0, *T0 + 2500, (3, *T0 + 3000), version);
        assert_lookup(&mut conn, 0, *T0 + 3500, (4, *T0 + 6000), version);
        assert_lookup(&mut conn, 0, *T0 + 6001, (-1, -1), version);
        if version >= FIRST_VERSION_WITH_MAX_TIMESTAMP {
            assert_lookup(&mut conn, 0, MAX_TIMESTAMP, (4, *T0 + 6000), version);
        }
    }
}

#[test]
fn empty_partition_starts_and_ends_at_zero() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    two_batches(&mut conn);
    for version in [1, 6, 10] {
        for (query, expected) in [(EARLIEST, 0), (LATEST, 0)] {
            let answer = list_offset(&mut conn, "offsets", 1, query, version).unwrap();
            assert_eq!(answer.error_code, 0, "v{version} query {query}");
            assert_eq!(
                (answer.offset, answer.timestamp),
                (expected, -1),
                "v{version} query {query}"
            );
        }
        let answer = list_offset(&mut conn, "offsets", 1, *T0, version).unwrap();
        assert_eq!(
            (answer.error_code, answer.offset, answer.timestamp),
            (0, -1, -1),
            "v{version}"
        );
    }
    let answer = list_offset(&mut conn, "offsets", 1, MAX_TIMESTAMP, 10).unwrap();
    assert_eq!(
        (answer.error_code, answer.offset, answer.timestamp),
        (0, -1, -1)
    );
}

#[test]
fn read_committed_latest_is_the_stable_end() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    two_batches(&mut conn);
    for version in [2, 5, 10] {
        let request =
            list_offsets_request("offsets", 0, LATEST).with_isolation_level(READ_COMMITTED);
        let response = conn.send(&request, version).unwrap();
        let answer = &response.topics[0].partitions[0];
        assert_eq!((answer.error_code, answer.offset), (0, 6), "v{version}");
    }
}

#[test]
fn unknown_topic_or_partition_at_every_version() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    two_batches(&mut conn);
    for version in versions(ApiKey::ListOffsets) {
        for (topic, partition) in [("no-such-topic", 0), ("offsets", 2), ("offsets", -1)] {
            let answer = list_offset(&mut conn, topic, partition, LATEST, version).unwrap();
            assert_eq!(answer.partition_index, partition, "v{version}");
            assert_eq!(
                answer.error_code, UNKNOWN_TOPIC_OR_PARTITION,
                "v{version} {topic}-{partition}"
            );
            assert_eq!(
                (answer.offset, answer.timestamp),
                (-1, -1),
                "v{version} {topic}-{partition}"
            );
        }
    }
}
