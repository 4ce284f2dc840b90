//! Restart: after a clean stop, clients must find the same cluster, topics, ids, configs
//! and records, and producing carries on where it stopped.

use std::sync::LazyLock;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, MetadataRequest};
use samsa_protocol_tests::batches::{self, batch, messages, Message};
use samsa_protocol_tests::client::{
    create_topic, delete_topic, fetch_records, list_offset, produce, str_bytes, TopicRef,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

struct Snapshot {
    cluster_id: String,
    topics: Vec<(String, uuid::Uuid, usize)>,
}

fn snapshot(conn: &mut Connection) -> Snapshot {
    let response = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let mut topics: Vec<_> = response
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.topic_id,
                t.partitions.len(),
            )
        })
        .collect();
    topics.sort();
    Snapshot {
        cluster_id: response.cluster_id.unwrap().to_string(),
        topics,
    }
}

fn retention_of(conn: &mut Connection, topic: &str) -> String {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(Some(vec![str_bytes("retention.ms")]))]);
    let response = conn.send(&request, 4).unwrap();
    response.results[0].configs[0]
        .value
        .as_ref()
        .unwrap()
        .to_string()
}

#[test]
fn topics_ids_configs_and_records_survive_restarts() {
    let mut broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let orders = create_topic(&mut conn, "orders", 2, &[("retention.ms", "86400000")]).unwrap();
    let audit = create_topic(&mut conn, "audit", 1, &[]).unwrap();
    let gone = create_topic(&mut conn, "gone", 1, &[]).unwrap();
    let mut written: Vec<Vec<Message>> = vec![Vec::new(); 2];
    for (round, partition) in [(0, 0), (1, 1), (2, 0)] {
        let sent = messages(&format!("r{round}"), 3, *T0 + round);
        produce(&mut conn, &orders, partition, batch(&sent)).unwrap();
        written[partition as usize].extend(sent);
    }
    let audit_sent = vec![Message::new("who", "what", *T0).with_header("h", "1")];
    produce(&mut conn, &audit, 0, batch(&audit_sent)).unwrap();
    produce(&mut conn, &gone, 0, batch(&messages("g", 1, *T0))).unwrap();
    delete_topic(&mut conn, "gone").unwrap();
    let before = snapshot(&mut conn);
    assert_eq!(before.topics.len(), 2);
    drop(conn);

    for restart in 1..=2 {
        broker.restart().unwrap();
        let mut conn = broker.connect().unwrap();
        let after = snapshot(&mut conn);
        assert_eq!(after.cluster_id, before.cluster_id, "restart {restart}");
        assert_eq!(after.topics, before.topics, "restart {restart}");
        assert_eq!(
            retention_of(&mut conn, "orders"),
            "86400000",
            "restart {restart}"
        );
        for (partition, expected) in written.iter().enumerate() {
            let fetched = fetch_records(&mut conn, &orders, partition as i32, 0).unwrap();
            assert_eq!(
                &batches::messages_of(&fetched),
                expected,
                "restart {restart} p{partition}"
            );
            let offsets: Vec<i64> = fetched.iter().map(|r| r.offset).collect();
            assert_eq!(
                offsets,
                (0..expected.len() as i64).collect::<Vec<_>>(),
                "restart {restart}"
            );
            let latest = list_offset(&mut conn, "orders", partition as i32, -1, 10).unwrap();
            assert_eq!(
                latest.offset,
                expected.len() as i64,
                "restart {restart} p{partition}"
            );
        }
        assert_eq!(
            batches::messages_of(&fetch_records(&mut conn, &audit, 0, 0).unwrap()),
            audit_sent
        );
        let stale = TopicRef {
            name: "gone".into(),
            id: gone.id,
        };
        assert!(
            fetch_records(&mut conn, &stale, 0, 0).is_err(),
            "restart {restart}: deleted topic is back"
        );

        // Producing continues at the next offset.
        let more = messages(&format!("after-{restart}"), 2, *T0);
        let next = written[1].len() as i64;
        assert_eq!(
            produce(&mut conn, &orders, 1, batch(&more)).unwrap(),
            next,
            "restart {restart}"
        );
        written[1].extend(more);
    }
}
