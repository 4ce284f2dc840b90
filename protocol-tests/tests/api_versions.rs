//! ApiVersions: the table a client negotiates from must be exactly what samsa serves, at
//! every version, and a client too new for samsa must still get the table back.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use samsa_protocol_tests::client::{str_bytes, versions, SERVED_APIS};
use samsa_protocol_tests::BrokerProcess;

const UNSUPPORTED_VERSION: i16 = 35;

fn sorted_table(keys: &[ApiVersion]) -> Vec<(i16, i16, i16)> {
    let mut table: Vec<_> = keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    table.sort();
    table
}

fn expected_table() -> Vec<(i16, i16, i16)> {
    let mut table: Vec<_> = SERVED_APIS
        .iter()
        // Produce is listed from v0 as Kafka 4 lists it (KAFKA-18659), though v0-2 are
        // refused.
        .map(|&(k, min, max)| (k as i16, if k == ApiKey::Produce { 0 } else { min }, max))
        .collect();
    table.sort();
    table
}

#[test]
fn table_is_exactly_what_is_served_at_every_version() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    for version in versions(ApiKey::ApiVersions) {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("samsa-protocol-tests"))
            .with_client_software_version(str_bytes("1.0"));
        let response = conn.send(&request, version).unwrap();
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(
            sorted_table(&response.api_keys),
            expected_table(),
            "v{version}"
        );
        assert_eq!(
            response.api_keys.len(),
            SERVED_APIS.len(),
            "v{version}: duplicate keys"
        );
        if version >= 1 {
            assert_eq!(response.throttle_time_ms, 0, "v{version}");
        }
    }
}

#[test]
fn every_advertised_range_is_one_the_client_library_knows() {
    // A range beyond what kafka-protocol can encode would be a promise no client can test.
    for &(key, min, max) in SERVED_APIS {
        let known = key.valid_versions();
        assert!(
            known.min <= min && max <= known.max,
            "{key:?} {min}..={max} outside {known}"
        );
    }
}

/// A client newer than samsa sends ApiVersions at a version samsa cannot parse; Kafka
/// answers with a v0 body carrying UNSUPPORTED_VERSION and the table, so it can retry.
#[test]
fn unknown_api_versions_version_gets_v0_table_with_unsupported_version() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(4242);
    // The rest is what a future client might send: a v2 header tail and a body samsa must not parse.
    frame.put_i16(5);
    frame.put_slice(b"newer");
    frame.put_slice(&[0, 3, b'x', b'y', 2, b'9', 0, 0xff, 0xfe]);
    conn.send_frame(&frame).unwrap();

    let mut response = conn.read_frame().unwrap();
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 4242);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(
        response.remaining(),
        0,
        "response is longer than a v0 ApiVersions body"
    );
    assert_eq!(body.error_code, UNSUPPORTED_VERSION);
    assert_eq!(sorted_table(&body.api_keys), expected_table());

    // The connection stays usable for the retry.
    let retry = conn
        .send(
            &ApiVersionsRequest::default()
                .with_client_software_name(str_bytes("samsa-protocol-tests"))
                .with_client_software_version(str_bytes("1.0")),
            3,
        )
        .unwrap();
    assert_eq!(retry.error_code, 0);
    assert_eq!(sorted_table(&retry.api_keys), expected_table());
}

#[test]
fn invalid_client_software_names_are_refused_from_v3() {
    // Kafka (KIP-511) only accepts names and versions usable as metric labels.
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    for (name, version) in [("", "1.0"), ("bad name!", "1.0"), ("ok", "-1")] {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(str_bytes(name))
            .with_client_software_version(str_bytes(version));
        let response = conn.send(&request, 3).unwrap();
        assert_eq!(response.error_code, 42, "{name:?} {version:?}");
    }
    // Before v3 there are no such fields to check.
    let response = conn.send(&ApiVersionsRequest::default(), 2).unwrap();
    assert_eq!(response.error_code, 0);
}

/// KIP-848 consumer groups follow the finalized `group.version`, as in Kafka 4.4: a new
/// cluster starts at 1; downgraded to 0 the APIs stay listed but answer UNSUPPORTED_VERSION
/// (Kafka's `isConsumerGroupProtocolEnabled`), and upgraded again they serve once more.
#[test]
fn consumer_group_apis_follow_group_version() {
    use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
    use kafka_protocol::messages::{
        ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, UpdateFeaturesRequest,
    };
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let level = |conn: &mut samsa_protocol_tests::Connection| {
        let answer = conn
            .send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .unwrap();
        answer
            .finalized_features
            .iter()
            .find(|f| f.name.as_str() == "group.version")
            .map_or(0, |f| f.max_version_level)
    };
    // A new cluster's group.version, once the first broker has bootstrapped the levels.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while level(&mut conn) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "group.version never 1"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let set = |conn: &mut samsa_protocol_tests::Connection, to: i16, upgrade_type: i8| {
        let request =
            UpdateFeaturesRequest::default().with_feature_updates(vec![FeatureUpdateKey::default(
            )
            .with_feature(str_bytes("group.version"))
            .with_max_version_level(to)
            .with_upgrade_type(upgrade_type)]);
        let answer = conn.send(&request, 1).unwrap();
        assert_eq!(answer.error_code, 0, "{answer:?}");
    };
    let heartbeat = || {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(str_bytes("g").into())
            .with_member_id(str_bytes("m"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(Vec::new()))
            .with_topic_partitions(Some(Vec::new()))
    };
    let describe =
        || ConsumerGroupDescribeRequest::default().with_group_ids(vec![str_bytes("g").into()]);
    let joined = |conn: &mut samsa_protocol_tests::Connection| loop {
        // The group's coordinator may still be loading its partition.
        let answer = conn.send(&heartbeat(), 1).unwrap();
        if answer.error_code != 14 && answer.error_code != 15 {
            return answer.error_code;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(joined(&mut conn), 0);
    set(&mut conn, 0, 2);
    while level(&mut conn) != 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        sorted_table(
            &conn
                .send(&samsa_protocol_tests::client::api_versions_request(), 3)
                .unwrap()
                .api_keys
        ),
        expected_table()
    );
    assert_eq!(conn.send(&heartbeat(), 1).unwrap().error_code, 35);
    let described = conn.send(&describe(), 1).unwrap();
    assert_eq!(described.groups[0].error_code, 35);
    set(&mut conn, 1, 1);
    while level(&mut conn) != 1 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(conn.send(&describe(), 1).unwrap().groups[0].error_code, 0);
}

/// Produce is listed from v0 (KAFKA-18659) but v0-2 are gone, as in Kafka 4: a request at
/// one of them closes the connection without an answer.
#[test]
fn produce_is_listed_from_v0_but_v0_to_v2_close_the_connection() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let table = conn
        .send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
    let produce = table
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("Produce is listed");
    assert_eq!(produce.min_version, 0);
    for version in 0..=2i16 {
        // Header v1 (client id "t"), then acks=1, timeout 1000 ms and no topics.
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::Produce as i16);
        frame.put_i16(version);
        frame.put_i32(7);
        frame.put_i16(1);
        frame.put_slice(b"t");
        frame.put_i16(1);
        frame.put_i32(1000);
        frame.put_i32(0);
        let mut old = broker.connect().unwrap();
        old.send_frame(&frame).unwrap();
        assert!(old.is_closed_by_peer(), "Produce v{version} must close");
    }
}
