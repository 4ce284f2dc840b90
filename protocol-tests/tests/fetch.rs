//! Fetch: a consumer gets back exactly the records produced, with the partition's offsets,
//! at every version; positions outside the log and unknown partitions are errors.

use std::sync::LazyLock;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use samsa_protocol_tests::batches::{self, batch, messages, Message};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, only_fetched, produce, topic_name, versions, TopicRef,
    FIRST_VERSION_WITH_TOPIC_IDS, LATEST_FETCH,
};
use samsa_protocol_tests::BrokerProcess;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const UNKNOWN_TOPIC_ID: i16 = 100;
const READ_COMMITTED: i8 = 1;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

fn start() -> BrokerProcess {
    BrokerProcess::start("auto_create_topics = false\n").unwrap()
}

/// A fetch of partitions 0 and 1 of `topic` from offset `offset`.
fn fetch_both(topic: &TopicRef, offset: i64, version: i16) -> FetchRequest {
    let mut request = fetch_request(topic, 0, offset, version);
    let partition = request.topics[0].partitions[0].clone();
    request.topics[0]
        .partitions
        .push(partition.with_partition(1));
    request
}

fn assert_envelope(response: &FetchResponse, topic: &TopicRef, version: i16) {
    assert_eq!(response.throttle_time_ms, 0, "v{version}");
    if version >= 7 {
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(
            response.session_id, 0,
            "v{version}: epoch -1 opens no session"
        );
    }
    assert_eq!(response.responses.len(), 1, "v{version}");
    let answer = &response.responses[0];
    if version >= FIRST_VERSION_WITH_TOPIC_IDS {
        assert_eq!(answer.topic_id, topic.id, "v{version}");
    } else {
        assert_eq!(answer.topic.as_str(), topic.name, "v{version}");
    }
    if version >= 16 {
        assert!(
            response.node_endpoints.is_empty(),
            "v{version}: only sent with NOT_LEADER errors"
        );
    }
}

#[test]
fn every_version_returns_exactly_the_produced_records() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "fetch-all", 2, &[]).unwrap();
    let first = messages("first", 2, *T0);
    let second = vec![
        Message::new("k", "v", *T0 + 10).with_header("trace", "abc"),
        Message {
            key: None,
            value: None,
            timestamp: *T0 + 11,
            headers: Vec::new(),
        },
        Message::new("", "", *T0 + 12),
    ];
    assert_eq!(produce(&mut conn, &topic, 1, batch(&first)).unwrap(), 0);
    assert_eq!(produce(&mut conn, &topic, 1, batch(&second)).unwrap(), 2);
    let all: Vec<Message> = first.iter().chain(&second).cloned().collect();

    for version in versions(ApiKey::Fetch) {
        let response = conn.send(&fetch_both(&topic, 0, version), version).unwrap();
        assert_envelope(&response, &topic, version);
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), 2, "v{version}");
        for (data, expected) in partitions.iter().zip([&[][..], &all[..]]) {
            let p = data.partition_index;
            assert_eq!(data.error_code, 0, "v{version} p{p}");
            let end = expected.len() as i64;
            assert_eq!(data.high_watermark, end, "v{version} p{p}");
            assert_eq!(data.last_stable_offset, end, "v{version} p{p}");
            if version >= 5 {
                assert_eq!(data.log_start_offset, 0, "v{version} p{p}");
            }
            assert_eq!(
                data.aborted_transactions, None,
                "v{version} p{p}: read_uncommitted"
            );
            if version >= 11 {
                assert_eq!(data.preferred_read_replica, BrokerId(-1), "v{version} p{p}");
            }
            if version >= 12 {
                assert_eq!(data.diverging_epoch.epoch, -1, "v{version} p{p}");
                assert_eq!(data.snapshot_id.end_offset, -1, "v{version} p{p}");
            }
            let records = data.records.as_ref().expect("records are never null");
            let fetched = batches::decode(records).unwrap();
            assert_eq!(batches::messages_of(&fetched), expected, "v{version} p{p}");
            let offsets: Vec<i64> = fetched.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (0..end).collect::<Vec<_>>(), "v{version} p{p}");
        }
        assert_eq!(partitions[0].partition_index, 0, "v{version}");
        assert_eq!(partitions[1].partition_index, 1, "v{version}");

        // From a batch boundary, only what follows.
        let response = conn
            .send(&fetch_request(&topic, 1, 2, version), version)
            .unwrap();
        let data = only_fetched(&response).unwrap();
        let fetched = batches::decode(data.records.as_ref().unwrap()).unwrap();
        assert_eq!(
            batches::messages_of(&fetched),
            second,
            "v{version} from offset 2"
        );
        assert_eq!(fetched[0].offset, 2, "v{version}");
    }
}

#[test]
fn read_committed_sees_the_same_records_and_no_aborted_transactions() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "committed", 1, &[]).unwrap();
    let sent = messages("c", 3, *T0);
    produce(&mut conn, &topic, 0, batch(&sent)).unwrap();
    for version in [4, 11, 13, LATEST_FETCH] {
        let request = fetch_request(&topic, 0, 0, version).with_isolation_level(READ_COMMITTED);
        let response = conn.send(&request, version).unwrap();
        let data = only_fetched(&response).unwrap();
        assert_eq!(data.error_code, 0, "v{version}");
        assert_eq!(data.last_stable_offset, 3, "v{version}");
        assert_eq!(data.aborted_transactions, Some(Vec::new()), "v{version}");
        let fetched = batches::decode(data.records.as_ref().unwrap()).unwrap();
        assert_eq!(batches::messages_of(&fetched), sent, "v{version}");
    }
}

#[test]
fn fetching_at_the_end_is_empty_and_past_it_is_out_of_range() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "ends", 1, &[]).unwrap();
    produce(&mut conn, &topic, 0, batch(&messages("e", 4, *T0))).unwrap();
    for version in [4, 12, LATEST_FETCH] {
        let response = conn
            .send(&fetch_request(&topic, 0, 4, version), version)
            .unwrap();
        let data = only_fetched(&response).unwrap();
        assert_eq!(data.error_code, 0, "v{version} at the end");
        assert_eq!(data.high_watermark, 4, "v{version}");
        assert!(
            data.records.as_ref().is_some_and(|r| r.is_empty()),
            "v{version}: {:?}",
            data.records
        );

        for offset in [5, 1000, -1] {
            let response = conn
                .send(&fetch_request(&topic, 0, offset, version), version)
                .unwrap();
            let data = only_fetched(&response).unwrap();
            assert_eq!(
                data.error_code, OFFSET_OUT_OF_RANGE,
                "v{version} offset {offset}"
            );
            // Like Kafka, an errored partition reports no offsets.
            assert_eq!(data.high_watermark, -1, "v{version} offset {offset}");
            assert!(
                data.records.as_ref().is_none_or(|r| r.is_empty()),
                "v{version} offset {offset}"
            );
        }
    }
}

#[test]
fn unknown_topic_or_partition_at_every_version() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "fetch-known", 1, &[]).unwrap();
    let unknown = TopicRef::unknown();
    for version in versions(ApiKey::Fetch) {
        let response = conn
            .send(&fetch_request(&unknown, 0, 0, version), version)
            .unwrap();
        let expected = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        assert_eq!(
            only_fetched(&response).unwrap().error_code,
            expected,
            "v{version} unknown topic"
        );
        assert_envelope(&response, &unknown, version);

        let response = conn
            .send(&fetch_request(&topic, 3, 0, version), version)
            .unwrap();
        let data = only_fetched(&response).unwrap();
        assert_eq!(data.partition_index, 3, "v{version}");
        assert_eq!(
            data.error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "v{version} unknown partition"
        );
    }
}

#[test]
fn a_known_partition_is_served_beside_an_unknown_one() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "mixed", 1, &[]).unwrap();
    let sent = messages("m", 2, *T0);
    produce(&mut conn, &topic, 0, batch(&sent)).unwrap();
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("mixed"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)]),
            FetchTopic::default()
                .with_topic(topic_name("mixed-missing"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)]),
        ]);
    let response = conn.send(&request, 11).unwrap();
    assert_eq!(response.responses.len(), 2);
    let served = &response.responses[0].partitions[0];
    assert_eq!(served.error_code, 0);
    assert_eq!(
        batches::messages_of(&batches::decode(served.records.as_ref().unwrap()).unwrap()),
        sent
    );
    assert_eq!(response.responses[1].topic.as_str(), "mixed-missing");
    assert_eq!(
        response.responses[1].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn incremental_fetch_session_is_not_found() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "sessions", 1, &[]).unwrap();
    for version in [7, 12, LATEST_FETCH] {
        let request = fetch_request(&topic, 0, 0, version)
            .with_session_id(12345)
            .with_session_epoch(1);
        let response = conn.send(&request, version).unwrap();
        assert_eq!(
            response.error_code, FETCH_SESSION_ID_NOT_FOUND,
            "v{version}"
        );
        assert!(response.responses.is_empty(), "v{version}");
    }
}

#[test]
fn partition_max_bytes_still_returns_the_first_batch() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "small-limit", 1, &[]).unwrap();
    let first = messages("a", 5, *T0);
    let second = messages("b", 5, *T0);
    produce(&mut conn, &topic, 0, batch(&first)).unwrap();
    produce(&mut conn, &topic, 0, batch(&second)).unwrap();
    let mut request = fetch_request(&topic, 0, 0, LATEST_FETCH);
    request.topics[0].partitions[0].partition_max_bytes = 10;
    let response = conn.send(&request, LATEST_FETCH).unwrap();
    let data = only_fetched(&response).unwrap();
    assert_eq!(data.error_code, 0);
    // KIP-74: the first batch comes whole even when larger than the limit, so consumers progress.
    let fetched = batches::decode(data.records.as_ref().unwrap()).unwrap();
    assert_eq!(batches::messages_of(&fetched), first);
    assert_eq!(data.high_watermark, 10);
}
