//! Metadata and DescribeCluster: clients learn from these where to connect and which
//! partitions exist, so every field must describe this one broker truthfully.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, MetadataRequest, MetadataResponse,
};
use samsa_protocol_tests::client::{create_topic, topic_name, versions, TopicRef};
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNKNOWN_TOPIC_ID: i16 = 100;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const OPERATIONS_OMITTED: i32 = i32::MIN;

fn port_of(addr: &str) -> i32 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn by_names(names: &[&str], version: i16) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(version < 4)
}

fn metadata_of(
    conn: &mut Connection,
    name: &str,
    version: i16,
) -> (MetadataResponse, MetadataResponseTopic) {
    let response = conn.send(&by_names(&[name], version), version).unwrap();
    assert_eq!(
        response.topics.len(),
        1,
        "v{version}: {:?}",
        response.topics
    );
    let topic = response.topics[0].clone();
    (response, topic)
}

/// Asserts `topic` is a healthy topic served wholly by `node` with `partitions` partitions.
fn assert_topic(
    topic: &MetadataResponseTopic,
    expected: &TopicRef,
    partitions: i32,
    node: i32,
    version: i16,
) {
    let node = BrokerId(node);
    assert_eq!(topic.error_code, 0, "v{version}");
    assert_eq!(
        topic.name.as_ref().map(|n| n.as_str()),
        Some(expected.name.as_str()),
        "v{version}"
    );
    assert!(!topic.is_internal, "v{version}");
    if version >= 10 {
        assert_eq!(topic.topic_id, expected.id, "v{version}");
    }
    if version >= 8 {
        assert_eq!(
            topic.topic_authorized_operations, OPERATIONS_OMITTED,
            "v{version}"
        );
    }
    let mut indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    indexes.sort();
    assert_eq!(indexes, (0..partitions).collect::<Vec<_>>(), "v{version}");
    for p in &topic.partitions {
        assert_eq!(
            p.error_code, 0,
            "v{version} partition {}",
            p.partition_index
        );
        assert_eq!(p.leader_id, node, "v{version}");
        assert_eq!(p.replica_nodes, vec![node], "v{version}");
        assert_eq!(p.isr_nodes, vec![node], "v{version}");
        if version >= 5 {
            assert!(p.offline_replicas.is_empty(), "v{version}");
        }
        if version >= 7 {
            assert_eq!(p.leader_epoch, 0, "v{version}");
        }
    }
}

/// Asserts the broker list and cluster fields; returns the cluster id where there is one.
fn assert_cluster(
    response: &MetadataResponse,
    host: &str,
    port: i32,
    node: i32,
    version: i16,
) -> Option<String> {
    assert_eq!(
        response.brokers.len(),
        1,
        "v{version}: {:?}",
        response.brokers
    );
    let broker = &response.brokers[0];
    assert_eq!(broker.node_id, BrokerId(node), "v{version}");
    assert_eq!(broker.host.as_str(), host, "v{version}");
    assert_eq!(broker.port, port, "v{version}");
    assert_eq!(broker.rack, None, "v{version}");
    if version >= 1 {
        assert_eq!(response.controller_id, BrokerId(node), "v{version}");
    }
    if version >= 3 {
        assert_eq!(response.throttle_time_ms, 0, "v{version}");
    }
    if (8..=10).contains(&version) {
        assert_eq!(
            response.cluster_authorized_operations, OPERATIONS_OMITTED,
            "v{version}"
        );
    }
    if version >= 13 {
        assert_eq!(response.error_code, 0, "v{version}");
    }
    if version >= 2 {
        let id = response.cluster_id.as_ref().map(|c| c.to_string());
        assert!(
            id.as_ref().is_some_and(|c| !c.is_empty()),
            "v{version}: cluster id {id:?}"
        );
        id
    } else {
        None
    }
}

#[test]
fn every_version_describes_the_broker_and_topic() {
    let broker = BrokerProcess::start("node_id = 7\nauto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "meta-3", 3, &[]).unwrap();
    let port = port_of(&broker.addr);
    let mut cluster_ids = Vec::new();
    for version in versions(ApiKey::Metadata) {
        let (response, described) = metadata_of(&mut conn, "meta-3", version);
        cluster_ids.extend(assert_cluster(&response, "127.0.0.1", port, 7, version));
        assert_topic(&described, &topic, 3, 7, version);
    }
    cluster_ids.dedup();
    assert_eq!(
        cluster_ids.len(),
        1,
        "cluster id changed between requests: {cluster_ids:?}"
    );
}

#[test]
fn advertised_listener_is_what_clients_are_told() {
    let config = "node_id = 3\nadvertised_listener = \"kafka.example.test:19092\"\n";
    let broker = BrokerProcess::start(config).unwrap();
    let mut conn = broker.connect().unwrap();
    for version in [1, 9, 13] {
        let response = conn
            .send(&MetadataRequest::default().with_topics(None), version)
            .unwrap();
        assert_cluster(&response, "kafka.example.test", 19092, 3, version);
    }
    for version in versions(ApiKey::DescribeCluster) {
        let response = conn
            .send(&DescribeClusterRequest::default(), version)
            .unwrap();
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(
            response.brokers[0].host.as_str(),
            "kafka.example.test",
            "v{version}"
        );
        assert_eq!(response.brokers[0].port, 19092, "v{version}");
        assert_eq!(response.brokers[0].broker_id, BrokerId(3), "v{version}");
    }
}

#[test]
fn all_topics_null_list_and_v0_empty_list() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let a = create_topic(&mut conn, "all-a", 1, &[]).unwrap();
    let b = create_topic(&mut conn, "all-b", 2, &[]).unwrap();
    for version in versions(ApiKey::Metadata) {
        // v0 has no null list: empty means all. From v1 null means all and empty means none.
        let all = if version == 0 {
            MetadataRequest::default().with_topics(Some(Vec::new()))
        } else {
            MetadataRequest::default().with_topics(None)
        };
        let mut response = conn.send(&all, version).unwrap();
        response
            .topics
            .sort_by_key(|t| t.name.as_ref().map(|n| n.to_string()));
        assert_eq!(
            response.topics.len(),
            2,
            "v{version}: {:?}",
            response.topics
        );
        assert_topic(&response.topics[0], &a, 1, 1, version);
        assert_topic(&response.topics[1], &b, 2, 1, version);
        if version >= 1 {
            let none = conn
                .send(
                    &MetadataRequest::default().with_topics(Some(Vec::new())),
                    version,
                )
                .unwrap();
            assert!(none.topics.is_empty(), "v{version}: {:?}", none.topics);
            assert_eq!(none.brokers.len(), 1, "v{version}");
        }
    }
}

#[test]
fn unknown_topic_is_reported_when_auto_creation_is_off() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    for version in versions(ApiKey::Metadata) {
        let request = by_names(&["missing"], version).with_allow_auto_topic_creation(true);
        let response = conn.send(&request, version).unwrap();
        assert_eq!(response.topics.len(), 1, "v{version}");
        let topic = &response.topics[0];
        assert_eq!(topic.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        assert_eq!(
            topic.name.as_ref().map(|n| n.as_str()),
            Some("missing"),
            "v{version}"
        );
        assert!(topic.partitions.is_empty(), "v{version}");
    }
}

#[test]
fn auto_creation_follows_broker_setting_and_request_flag() {
    let broker = BrokerProcess::start("auto_create_topics = true\nnum_partitions = 2\n").unwrap();
    let mut conn = broker.connect().unwrap();
    // v4+ clients may decline creation.
    let declined = conn
        .send(
            &by_names(&["auto-declined"], 12).with_allow_auto_topic_creation(false),
            12,
        )
        .unwrap();
    assert_eq!(declined.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    let created = conn
        .send(
            &by_names(&["auto-v12"], 12).with_allow_auto_topic_creation(true),
            12,
        )
        .unwrap();
    let topic = &created.topics[0];
    assert_eq!(topic.error_code, 0, "{topic:?}");
    assert!(!topic.topic_id.is_nil());
    assert_eq!(
        topic.partitions.len(),
        2,
        "num_partitions is the default for auto-created topics"
    );
    let id = topic.topic_id;

    // Before v4 there is no flag and asking is creating.
    let old = conn.send(&by_names(&["auto-v1"], 1), 1).unwrap();
    assert_eq!(old.topics[0].error_code, 0, "{:?}", old.topics[0]);
    assert_eq!(old.topics[0].partitions.len(), 2);

    // Asking again describes the same topic, not a new one.
    let again = conn.send(&by_names(&["auto-v12"], 12), 12).unwrap();
    assert_eq!(again.topics[0].topic_id, id);

    // An invalid name is not created.
    let invalid = conn
        .send(
            &by_names(&["bad/name"], 12).with_allow_auto_topic_creation(true),
            12,
        )
        .unwrap();
    assert_eq!(invalid.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
}

#[test]
fn topics_by_id_from_v12() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "by-id", 2, &[]).unwrap();
    let missing = Uuid::new_v4();
    for version in 12..=13 {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(topic.id),
                MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(missing),
            ]))
            .with_allow_auto_topic_creation(false);
        let response = conn.send(&request, version).unwrap();
        assert_eq!(response.topics.len(), 2, "v{version}");
        assert_topic(&response.topics[0], &topic, 2, 1, version);
        assert_eq!(
            response.topics[1].error_code, UNKNOWN_TOPIC_ID,
            "v{version}"
        );
        assert_eq!(response.topics[1].topic_id, missing, "v{version}");
    }
}

#[test]
fn describe_cluster_lists_this_broker_at_every_version() {
    let broker = BrokerProcess::start("node_id = 5\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let metadata = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let cluster_id = metadata.cluster_id.unwrap().to_string();
    let port = port_of(&broker.addr);
    for version in versions(ApiKey::DescribeCluster) {
        let response = conn
            .send(&DescribeClusterRequest::default(), version)
            .unwrap();
        assert_eq!(
            response.error_code, 0,
            "v{version}: {:?}",
            response.error_message
        );
        assert_eq!(response.error_message, None, "v{version}");
        assert_eq!(response.throttle_time_ms, 0, "v{version}");
        assert_eq!(response.cluster_id.as_str(), cluster_id, "v{version}");
        assert_eq!(response.controller_id, BrokerId(5), "v{version}");
        assert_eq!(
            response.cluster_authorized_operations, OPERATIONS_OMITTED,
            "v{version}"
        );
        if version >= 1 {
            assert_eq!(response.endpoint_type, 1, "v{version}");
        }
        assert_eq!(response.brokers.len(), 1, "v{version}");
        let only = &response.brokers[0];
        assert_eq!(only.broker_id, BrokerId(5), "v{version}");
        assert_eq!(only.host.as_str(), "127.0.0.1", "v{version}");
        assert_eq!(only.port, port, "v{version}");
        assert_eq!(only.rack, None, "v{version}");
        assert!(!only.is_fenced, "v{version}");
    }
}

#[test]
fn describe_cluster_refuses_controller_endpoints() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    for version in 1..=2 {
        let response = conn
            .send(
                &DescribeClusterRequest::default().with_endpoint_type(2),
                version,
            )
            .unwrap();
        // Kafka's answer: the request reached a broker endpoint, not a controller one.
        assert_eq!(response.error_code, MISMATCHED_ENDPOINT_TYPE, "v{version}");
        assert_eq!(response.endpoint_type, 1, "v{version}");
        assert!(response.brokers.is_empty(), "v{version}");
    }
}
