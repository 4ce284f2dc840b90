//! DeleteRecords: the log start moves forward, ListOffsets and Fetch see it, and it survives
//! a restart.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest};
use samsa_protocol_tests::batches::{base_timestamp, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, fetch_records, fetch_request, list_offset, only_fetched, produce, topic_name,
    versions, LATEST_FETCH, LATEST_LIST_OFFSETS,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const EARLIEST: i64 = -2;
const HIGH_WATERMARK: i64 = -1;

/// (error code, low watermark) of one partition.
fn delete_records(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    offset: i64,
    version: i16,
) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let response = conn.send(&request, version).unwrap();
    assert_eq!(response.topics.len(), 1, "v{version}");
    assert_eq!(response.topics[0].name.as_str(), topic, "v{version}");
    let result = &response.topics[0].partitions[0];
    assert_eq!(result.partition_index, partition, "v{version}");
    (result.error_code, result.low_watermark)
}

fn earliest(conn: &mut Connection, topic: &str) -> i64 {
    let answer = list_offset(conn, topic, 0, EARLIEST, LATEST_LIST_OFFSETS).unwrap();
    assert_eq!(answer.error_code, 0);
    answer.offset
}

#[test]
fn delete_records_at_every_version() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    for version in versions(ApiKey::DeleteRecords) {
        let name = format!("dr-{version}");
        let topic = create_topic(&mut conn, &name, 1, &[]).unwrap();
        for i in 0..5 {
            produce(
                &mut conn,
                &topic,
                0,
                batch(&messages(&format!("m{i}"), 2, base_timestamp())),
            )
            .unwrap();
        }
        assert_eq!(
            delete_records(&mut conn, &name, 0, 3, version),
            (0, 3),
            "v{version}"
        );
        assert_eq!(earliest(&mut conn, &name), 3, "v{version}");
        // Records below the log start are gone; from it on they are readable (in whole
        // batches, so the batch holding offsets 2 and 3 comes back whole, as from Kafka).
        let below = conn
            .send(&fetch_request(&topic, 0, 1, LATEST_FETCH), LATEST_FETCH)
            .unwrap();
        assert_eq!(
            only_fetched(&below).unwrap().error_code,
            OFFSET_OUT_OF_RANGE,
            "v{version}"
        );
        let fetched = fetch_records(&mut conn, &topic, 0, 3).unwrap();
        let offsets: Vec<i64> = fetched.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, (2..10).collect::<Vec<_>>(), "v{version}");

        // Going backwards leaves the log start where it is.
        assert_eq!(
            delete_records(&mut conn, &name, 0, 1, version),
            (0, 3),
            "v{version}"
        );
        assert_eq!(
            delete_records(&mut conn, &name, 0, 11, version).0,
            OFFSET_OUT_OF_RANGE,
            "v{version}"
        );
        assert_eq!(
            delete_records(&mut conn, &name, 0, -7, version).0,
            OFFSET_OUT_OF_RANGE,
            "v{version}"
        );
        assert_eq!(
            delete_records(&mut conn, &name, 0, HIGH_WATERMARK, version),
            (0, 10),
            "v{version}"
        );
        assert_eq!(earliest(&mut conn, &name), 10, "v{version}");

        assert_eq!(
            delete_records(&mut conn, &name, 1, 0, version),
            (UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
        assert_eq!(
            delete_records(&mut conn, "missing", 0, 0, version),
            (UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
    }
}

#[test]
fn log_start_survives_restart() {
    let mut broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "kept", 1, &[("segment.bytes", "1024")]).unwrap();
    for i in 0..20 {
        produce(
            &mut conn,
            &topic,
            0,
            batch(&messages(&format!("m{i}"), 5, base_timestamp())),
        )
        .unwrap();
    }
    assert_eq!(delete_records(&mut conn, "kept", 0, 57, 2), (0, 57));
    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    assert_eq!(earliest(&mut conn, "kept"), 57);
    let below = conn
        .send(&fetch_request(&topic, 0, 56, LATEST_FETCH), LATEST_FETCH)
        .unwrap();
    assert_eq!(
        only_fetched(&below).unwrap().error_code,
        OFFSET_OUT_OF_RANGE
    );
    // Whole batches: the one holding offsets 55..60 is the first readable.
    let fetched = fetch_records(&mut conn, &topic, 0, 57).unwrap();
    assert_eq!(fetched.first().map(|f| f.offset), Some(55));
}
