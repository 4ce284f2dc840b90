//! Produce: what a producer appends is stored at contiguous offsets and read back intact,
//! and what the broker refuses is refused with the code Kafka gives and leaves no trace.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::records::{Compression, TimestampType};
use samsa_protocol_tests::batches::{self, batch, batch_with, messages, Message};
use samsa_protocol_tests::client::{
    create_topic, fetch_records, list_offset, only_partition, produce, produce_request, topic_name,
    versions, TopicRef, FIRST_VERSION_WITH_TOPIC_IDS, LATEST_LIST_OFFSETS, LATEST_PRODUCE,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNKNOWN_TOPIC_ID: i16 = 100;
const LATEST: i64 = -1;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

fn start() -> (BrokerProcess, Connection) {
    let broker =
        BrokerProcess::start("auto_create_topics = false\nmessage_max_bytes = 4096\n").unwrap();
    let conn = broker.connect().unwrap();
    (broker, conn)
}

fn log_end(conn: &mut Connection, topic: &str, partition: i32) -> i64 {
    let answer = list_offset(conn, topic, partition, LATEST, LATEST_LIST_OFFSETS).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer.offset
}

#[test]
fn every_version_appends_at_contiguous_offsets() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "produce-all", 1, &[]).unwrap();
    let mut produced = Vec::new();
    for version in versions(ApiKey::Produce) {
        let sent = messages(&format!("v{version}"), 3, *T0 + 10 * i64::from(version)).into_iter();
        // Headers must survive too; give every version's last record one.
        let sent: Vec<Message> = sent
            .enumerate()
            .map(|(i, m)| if i == 2 { m.with_header("h", "x") } else { m })
            .collect();
        let acks = if version % 2 == 0 { -1 } else { 1 };
        let response = conn
            .send(
                &produce_request(&topic, 0, batch(&sent), acks, version),
                version,
            )
            .unwrap();

        assert_eq!(response.throttle_time_ms, 0, "v{version}");
        assert_eq!(response.responses.len(), 1, "v{version}");
        let answer = &response.responses[0];
        if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            assert_eq!(answer.topic_id, topic.id, "v{version}");
        } else {
            assert_eq!(answer.name.as_str(), topic.name, "v{version}");
        }
        let partition = only_partition(&response).unwrap();
        assert_eq!(partition.index, 0, "v{version}");
        assert_eq!(
            partition.error_code, 0,
            "v{version}: {:?}",
            partition.error_message
        );
        assert_eq!(partition.base_offset, produced.len() as i64, "v{version}");
        assert_eq!(
            partition.log_append_time_ms, -1,
            "v{version}: CreateTime topic"
        );
        if version >= 5 {
            assert_eq!(partition.log_start_offset, 0, "v{version}");
        }
        if version >= 8 {
            assert!(partition.record_errors.is_empty(), "v{version}");
            assert_eq!(partition.error_message, None, "v{version}");
        }
        produced.extend(sent);
    }

    let fetched = fetch_records(&mut conn, &topic, 0, 0).unwrap();
    assert_eq!(batches::messages_of(&fetched), produced);
    for (i, record) in fetched.iter().enumerate() {
        assert_eq!(record.offset, i as i64);
        assert_eq!(record.leader_epoch, 0, "the broker stamps its leader epoch");
        assert_eq!(record.timestamp_type, TimestampType::Creation);
    }
    assert_eq!(log_end(&mut conn, "produce-all", 0), produced.len() as i64);
}

#[test]
fn every_compression_codec_is_stored_and_served_as_sent() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "codecs", 1, &[]).unwrap();
    let mut produced = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let sent = messages(&format!("{codec:?}"), 4, *T0);
        let base = produce(&mut conn, &topic, 0, batch_with(&sent, codec)).unwrap();
        assert_eq!(base, produced.len() as i64, "{codec:?}");
        produced.extend(sent);
    }
    let fetched = fetch_records(&mut conn, &topic, 0, 0).unwrap();
    assert_eq!(batches::messages_of(&fetched), produced);
    assert_eq!(
        fetched.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn log_append_time_topic_stamps_broker_time() {
    let (_broker, mut conn) = start();
    let topic = create_topic(
        &mut conn,
        "append-time",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .unwrap();
    let before = now_ms();
    let response = conn
        .send(
            &produce_request(&topic, 0, batch(&messages("lat", 2, *T0)), -1, 9),
            9,
        )
        .unwrap();
    let after = now_ms();
    let partition = only_partition(&response).unwrap();
    assert_eq!(partition.error_code, 0);
    let stamped = partition.log_append_time_ms;
    assert!(
        (before..=after).contains(&stamped),
        "log_append_time_ms {stamped} not in [{before}, {after}]"
    );
    let fetched = fetch_records(&mut conn, &topic, 0, 0).unwrap();
    assert_eq!(fetched.len(), 2);
    for record in fetched {
        assert_eq!(record.timestamp_type, TimestampType::LogAppend);
        assert_eq!(record.message.timestamp, stamped);
    }
}

#[test]
fn one_request_many_partitions_each_answered_on_its_own() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "multi", 2, &[]).unwrap();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name("multi"))
                .with_partition_data(
                    [(0, "p0"), (1, "p1"), (2, "p2")]
                        .into_iter()
                        .map(|(index, prefix)| {
                            PartitionProduceData::default()
                                .with_index(index)
                                .with_records(Some(batch(&messages(prefix, 2, *T0))))
                        })
                        .collect(),
                ),
            TopicProduceData::default()
                .with_name(topic_name("multi-missing"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&messages("x", 1, *T0))))]),
        ]);
    let response = conn.send(&request, 8).unwrap();
    assert_eq!(response.responses.len(), 2);
    let known = &response.responses[0];
    assert_eq!(known.name.as_str(), "multi");
    let codes: Vec<(i32, i16, i64)> = known
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    assert_eq!(
        codes,
        vec![(0, 0, 0), (1, 0, 0), (2, UNKNOWN_TOPIC_OR_PARTITION, -1)]
    );
    let unknown = &response.responses[1];
    assert_eq!(unknown.name.as_str(), "multi-missing");
    assert_eq!(unknown.partition_responses.len(), 1);
    assert_eq!(
        unknown.partition_responses[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    for (partition, prefix) in [(0, "p0"), (1, "p1")] {
        let fetched = fetch_records(&mut conn, &topic, partition, 0).unwrap();
        assert_eq!(batches::messages_of(&fetched), messages(prefix, 2, *T0));
    }
}

#[test]
fn unknown_topic_or_partition_at_every_version() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "known", 1, &[]).unwrap();
    let unknown = TopicRef::unknown();
    for version in versions(ApiKey::Produce) {
        let records = batch(&messages("u", 1, *T0));
        let response = conn
            .send(
                &produce_request(&unknown, 0, records.clone(), -1, version),
                version,
            )
            .unwrap();
        let answer = only_partition(&response).unwrap();
        let expected = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        assert_eq!(answer.error_code, expected, "v{version} unknown topic");
        assert_eq!(answer.base_offset, -1, "v{version}");
        if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            assert_eq!(response.responses[0].topic_id, unknown.id, "v{version}");
        } else {
            assert_eq!(
                response.responses[0].name.as_str(),
                unknown.name,
                "v{version}"
            );
        }

        let response = conn
            .send(&produce_request(&topic, 1, records, -1, version), version)
            .unwrap();
        let answer = only_partition(&response).unwrap();
        assert_eq!(answer.index, 1, "v{version}");
        assert_eq!(
            answer.error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "v{version} unknown partition"
        );
    }
    assert_eq!(log_end(&mut conn, "known", 0), 0);
}

#[test]
fn acks_other_than_minus_one_zero_one_are_refused() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "acks", 1, &[]).unwrap();
    for (version, acks) in [(3, 2), (9, 2), (13, -2), (13, 5)] {
        let request = produce_request(&topic, 0, batch(&messages("a", 1, *T0)), acks, version);
        let response = conn.send(&request, version).unwrap();
        let answer = only_partition(&response).unwrap();
        assert_eq!(
            answer.error_code, INVALID_REQUIRED_ACKS,
            "v{version} acks={acks}"
        );
    }
    assert_eq!(
        log_end(&mut conn, "acks", 0),
        0,
        "a refused produce appended records"
    );
}

#[test]
fn batch_with_a_flipped_byte_is_corrupt() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "crc", 1, &[]).unwrap();
    let good = batch(&messages("c", 3, *T0));
    // Flip one byte inside the CRC-covered region (a record value), one in the CRC itself.
    for at in [good.len() - 3, 17] {
        let mut bad = BytesMut::from(&good[..]);
        bad[at] ^= 0x20;
        for version in [3, 8, 13] {
            let response = conn
                .send(
                    &produce_request(&topic, 0, bad.clone().freeze(), -1, version),
                    version,
                )
                .unwrap();
            let answer = only_partition(&response).unwrap();
            assert_eq!(answer.error_code, CORRUPT_MESSAGE, "v{version} byte {at}");
            assert_eq!(answer.base_offset, -1, "v{version}");
        }
    }
    assert_eq!(
        log_end(&mut conn, "crc", 0),
        0,
        "a corrupt batch was appended"
    );
    assert_eq!(produce(&mut conn, &topic, 0, good).unwrap(), 0);
}

#[test]
fn batch_over_message_max_bytes_is_too_large() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "large", 1, &[]).unwrap();
    let big = Message {
        key: None,
        value: Some(Bytes::from(vec![b'z'; 5000])),
        timestamp: *T0,
        headers: Vec::new(),
    };
    let oversized = batch(&[big]);
    assert!(oversized.len() > 4096);
    for version in [3, 9, 13] {
        let response = conn
            .send(
                &produce_request(&topic, 0, oversized.clone(), -1, version),
                version,
            )
            .unwrap();
        let answer = only_partition(&response).unwrap();
        assert_eq!(answer.error_code, MESSAGE_TOO_LARGE, "v{version}");
    }
    assert_eq!(log_end(&mut conn, "large", 0), 0);

    // The topic-level max.message.bytes overrides the broker's.
    let roomy = create_topic(&mut conn, "large-ok", 1, &[("max.message.bytes", "10000")]).unwrap();
    assert_eq!(produce(&mut conn, &roomy, 0, oversized.clone()).unwrap(), 0);
    let tight = create_topic(&mut conn, "large-tight", 1, &[("max.message.bytes", "100")]).unwrap();
    let response = conn
        .send(
            &produce_request(&tight, 0, batch(&messages("t", 5, *T0)), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(
        only_partition(&response).unwrap().error_code,
        MESSAGE_TOO_LARGE
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
