//! The metrics endpoint: what clients did shows up in the Prometheus text, with the
//! values the requests imply.

use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, produce, produce_request, TopicRef, LATEST_PRODUCE,
};
use samsa_protocol_tests::free_port;
use samsa_protocol_tests::metrics::{self, sample};
use samsa_protocol_tests::BrokerProcess;

fn get(port: u16, path: &str) -> (String, String) {
    metrics::get(port, path).unwrap()
}

#[test]
fn produce_and_errors_are_counted() {
    let port = free_port();
    let broker = BrokerProcess::start(&format!(
        "metrics_listen = \"127.0.0.1:{port}\"\nauto_create_topics = false\n"
    ))
    .unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "counted", 2, &[]).unwrap();
    let t0 = batches::base_timestamp();
    let first = batch(&messages("a", 7, t0));
    let second = batch(&messages("b", 5, t0));
    let bytes = (first.len() + second.len()) as f64;
    produce(&mut conn, &topic, 0, first).unwrap();
    produce(&mut conn, &topic, 1, second).unwrap();
    let missing = TopicRef {
        name: "missing".into(),
        id: uuid::Uuid::nil(),
    };
    let refused = conn
        .send(
            &produce_request(&missing, 0, batch(&messages("c", 1, t0)), -1, 9),
            9,
        )
        .unwrap();
    assert_eq!(refused.responses[0].partition_responses[0].error_code, 3);

    let (status, health) = get(port, "/health");
    assert!(status.contains("200"), "{status}");
    assert_eq!(health.trim(), "ok");

    let (status, text) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        sample(&text, r#"samsa_topic_records_in_total{topic="counted"}"#),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"samsa_topic_bytes_in_total{topic="counted"}"#),
        Some(bytes)
    );
    assert_eq!(
        sample(
            &text,
            r#"samsa_partition_log_end_offset{partition="0",topic="counted"}"#
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"samsa_partition_high_watermark{partition="1",topic="counted"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"samsa_kafka_requests_total{{api="Produce",version="{LATEST_PRODUCE}"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"samsa_kafka_request_errors_total{api="Produce",error="UNKNOWN_TOPIC_OR_PARTITION",version="9"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "samsa_connections_open"), Some(1.0));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
}

#[test]
fn deleted_topics_leave_the_partition_gauges() {
    let port = free_port();
    let broker = BrokerProcess::start(&format!("metrics_listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "brief", 1, &[]).unwrap();
    let (_, before) = get(port, "/metrics");
    assert!(before.contains(r#"topic="brief""#));
    samsa_protocol_tests::client::delete_topic(&mut conn, "brief").unwrap();
    let (_, after) = get(port, "/metrics");
    assert!(
        !after.contains(r#"samsa_partition_log_end_offset{partition="0",topic="brief"}"#),
        "{after}"
    );
}

#[test]
fn consumer_group_lag_follows_commits() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
    use samsa_protocol_tests::client::{str_bytes, topic_name};

    let port = free_port();
    let broker = BrokerProcess::start(&format!("metrics_listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "lagging", 1, &[]).unwrap();
    produce(
        &mut conn,
        &topic,
        0,
        batch(&messages("m", 10, batches::base_timestamp())),
    )
    .unwrap();
    // A simple commit (no membership, generation -1) of offset 4: six records still to read.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes("watchers")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("lagging"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(4)])]);
    let response = conn.send(&commit, 8).unwrap();
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    // A heartbeat from a member the group never had: its error is counted under Heartbeat.
    let heartbeat = kafka_protocol::messages::HeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("watchers")))
        .with_member_id(str_bytes("nobody"))
        .with_generation_id(1);
    let response = conn.send(&heartbeat, 4).unwrap();
    assert_eq!(response.error_code, 25, "UNKNOWN_MEMBER_ID");

    let (_, text) = get(port, "/metrics");
    let series =
        |name: &str| format!(r#"{name}{{group="watchers",partition="0",topic="lagging"}}"#);
    assert_eq!(
        sample(&text, &series("samsa_consumer_group_committed_offset")),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &series("samsa_consumer_group_lag")),
        Some(6.0)
    );
    assert_eq!(
        sample(&text, r#"samsa_consumer_group_members{group="watchers"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"samsa_kafka_request_errors_total{api="Heartbeat",error="UNKNOWN_MEMBER_ID",version="4"}"#
        ),
        Some(1.0)
    );
}
