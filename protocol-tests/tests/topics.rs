//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions change what
//! Metadata reports, and refuse what Kafka refuses with Kafka's codes.

use std::sync::LazyLock;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    MetadataRequest,
};
use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, delete_topic, fetch_records, fetch_request, list_offset, only_fetched,
    only_partition, produce, produce_request, str_bytes, topic_name, versions,
};
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

fn start() -> (BrokerProcess, Connection) {
    let broker = BrokerProcess::start("auto_create_topics = false\nnum_partitions = 3\n").unwrap();
    let conn = broker.connect().unwrap();
    (broker, conn)
}

fn creatable(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn create_one(
    conn: &mut Connection,
    topic: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_validate_only(validate_only);
    let response = conn.send(&request, version).unwrap();
    assert_eq!(response.throttle_time_ms, 0, "v{version}");
    assert_eq!(response.topics.len(), 1, "v{version}");
    response.topics[0].clone()
}

/// What Metadata v12 says of `name`, never creating it.
fn describe(conn: &mut Connection, name: &str) -> MetadataResponseTopic {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(name)))
        ]))
        .with_allow_auto_topic_creation(false);
    conn.send(&request, 12).unwrap().topics.remove(0)
}

fn config_value<'a>(result: &'a CreatableTopicResult, key: &str) -> Option<(&'a str, i8)> {
    let configs = result.configs.as_ref()?;
    let entry = configs.iter().find(|c| c.name.as_str() == key)?;
    Some((
        entry.value.as_ref().map_or("<null>", |v| v.as_str()),
        entry.config_source,
    ))
}

#[test]
fn create_topics_at_every_version() {
    let (_broker, mut conn) = start();
    for version in versions(ApiKey::CreateTopics) {
        let name = format!("created-v{version}");
        let topic = creatable(&name, 2, 1).with_configs(vec![CreatableTopicConfig::default()
            .with_name(str_bytes("retention.ms"))
            .with_value(Some(str_bytes("3600000")))]);
        let result = create_one(&mut conn, topic, false, version);
        assert_eq!(result.name.as_str(), name, "v{version}");
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        assert!(
            result.error_message.as_ref().is_none_or(|m| m.is_empty()),
            "v{version}: {:?}",
            result.error_message
        );
        if version >= 5 {
            assert_eq!(result.num_partitions, 2, "v{version}");
            assert_eq!(result.replication_factor, 1, "v{version}");
            assert_eq!(result.topic_config_error_code, 0, "v{version}");
            assert_eq!(
                config_value(&result, "retention.ms"),
                Some(("3600000", DYNAMIC_TOPIC_CONFIG)),
                "v{version}"
            );
            assert_eq!(
                config_value(&result, "cleanup.policy"),
                Some(("delete", DEFAULT_CONFIG)),
                "v{version}"
            );
            assert!(
                result
                    .configs
                    .as_ref()
                    .unwrap()
                    .iter()
                    .all(|c| !c.is_sensitive),
                "v{version}"
            );
        }
        let described = describe(&mut conn, &name);
        assert_eq!(described.error_code, 0, "v{version}");
        assert_eq!(described.partitions.len(), 2, "v{version}");
        if version >= 7 {
            assert!(!result.topic_id.is_nil(), "v{version}");
            assert_eq!(described.topic_id, result.topic_id, "v{version}");
        }
    }
}

#[test]
fn defaults_and_explicit_assignments() {
    let (_broker, mut conn) = start();
    // v4 made -1 mean "the broker's default" for both counts.
    for version in [4, 5, 7] {
        let name = format!("defaults-v{version}");
        let result = create_one(&mut conn, creatable(&name, -1, -1), false, version);
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        if version >= 5 {
            assert_eq!(
                (result.num_partitions, result.replication_factor),
                (3, 1),
                "v{version}"
            );
        }
        assert_eq!(describe(&mut conn, &name).partitions.len(), 3, "v{version}");
    }
    let assigned = creatable("assigned", -1, -1).with_assignments(
        (0..2)
            .map(|p| {
                CreatableReplicaAssignment::default()
                    .with_partition_index(p)
                    .with_broker_ids(vec![BrokerId(1)])
            })
            .collect(),
    );
    let result = create_one(&mut conn, assigned, false, 7);
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.num_partitions, 2);
    assert_eq!(describe(&mut conn, "assigned").partitions.len(), 2);

    let elsewhere = creatable("assigned-elsewhere", -1, -1).with_assignments(vec![
        CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(2)]),
    ]);
    assert_eq!(
        create_one(&mut conn, elsewhere, false, 7).error_code,
        INVALID_REPLICA_ASSIGNMENT
    );
}

#[test]
fn invalid_topic_names_are_refused() {
    let (_broker, mut conn) = start();
    let too_long = "x".repeat(250);
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "../escape",
        "has space",
        "ü",
        too_long.as_str(),
    ] {
        for version in [2, 5, 7] {
            let result = create_one(&mut conn, creatable(name, 1, 1), false, version);
            assert_eq!(
                result.error_code, INVALID_TOPIC_EXCEPTION,
                "v{version} name {name:?}"
            );
            assert!(result.error_message.is_some(), "v{version} name {name:?}");
            if version >= 5 {
                assert_eq!(
                    (result.num_partitions, result.replication_factor),
                    (-1, -1),
                    "v{version}"
                );
            }
        }
    }
    let longest = "y".repeat(249);
    assert_eq!(
        create_one(&mut conn, creatable(&longest, 1, 1), false, 7).error_code,
        0
    );
    let all = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec![longest], "only the valid name was created");
}

#[test]
fn refusals_carry_kafka_codes() {
    let (_broker, mut conn) = start();
    create_topic(&mut conn, "exists", 1, &[]).unwrap();
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(str_bytes(k))
            .with_value(Some(str_bytes(v)))
    };
    let cases = [
        (creatable("exists", 1, 1), TOPIC_ALREADY_EXISTS),
        (creatable("rf3", 1, 3), INVALID_REPLICATION_FACTOR),
        (creatable("rf0", 1, 0), INVALID_REPLICATION_FACTOR),
        (creatable("p0", 0, 1), INVALID_PARTITIONS),
        (creatable("p-5", -5, 1), INVALID_PARTITIONS),
        (
            creatable("bad-key", 1, 1).with_configs(vec![config("no.such.config", "1")]),
            INVALID_CONFIG,
        ),
        (
            creatable("bad-value", 1, 1).with_configs(vec![config("retention.ms", "soon")]),
            INVALID_CONFIG,
        ),
    ];
    for (topic, code) in cases {
        let name = topic.name.to_string();
        for version in [2, 4, 5, 7] {
            let result = create_one(&mut conn, topic.clone(), false, version);
            assert_eq!(
                result.error_code, code,
                "v{version} {name}: {:?}",
                result.error_message
            );
            assert!(result.error_message.is_some(), "v{version} {name}");
        }
        if name != "exists" {
            assert_eq!(
                describe(&mut conn, &name).error_code,
                UNKNOWN_TOPIC_OR_PARTITION,
                "{name} was created"
            );
        }
    }
}

#[test]
fn duplicate_names_in_one_request_create_nothing() {
    let (_broker, mut conn) = start();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable("twice", 1, 1), creatable("twice", 2, 1)]);
    let response = conn.send(&request, 7).unwrap();
    assert!(!response.topics.is_empty());
    for result in &response.topics {
        assert_eq!(result.name.as_str(), "twice");
        assert_eq!(result.error_code, INVALID_REQUEST, "{result:?}");
    }
    assert_eq!(
        describe(&mut conn, "twice").error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn validate_only_creates_nothing() {
    let (_broker, mut conn) = start();
    for version in [2, 5, 7] {
        let result = create_one(&mut conn, creatable("dry-run", 4, 1), true, version);
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        if version >= 5 {
            assert_eq!(result.num_partitions, 4, "v{version}");
        }
        assert_eq!(
            describe(&mut conn, "dry-run").error_code,
            UNKNOWN_TOPIC_OR_PARTITION,
            "v{version}"
        );
        let refused = create_one(&mut conn, creatable("dry-run", 0, 1), true, version);
        assert_eq!(
            refused.error_code, INVALID_PARTITIONS,
            "v{version}: validation still applies"
        );
    }
    assert_eq!(
        create_one(&mut conn, creatable("dry-run", 4, 1), false, 7).error_code,
        0
    );
    assert_eq!(describe(&mut conn, "dry-run").partitions.len(), 4);
}

fn delete_by_name(name: &str, version: i16) -> DeleteTopicsRequest {
    if version >= 6 {
        DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name)))
        ])
    } else {
        DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)])
    }
    .with_timeout_ms(5000)
}

#[test]
fn delete_topics_by_name_at_every_version_and_by_id() {
    let (_broker, mut conn) = start();
    for version in versions(ApiKey::DeleteTopics) {
        let name = format!("doomed-v{version}");
        let topic = create_topic(&mut conn, &name, 2, &[]).unwrap();
        produce(&mut conn, &topic, 1, batch(&messages("d", 3, *T0))).unwrap();
        let response = conn.send(&delete_by_name(&name, version), version).unwrap();
        assert_eq!(response.throttle_time_ms, 0, "v{version}");
        assert_eq!(response.responses.len(), 1, "v{version}");
        let result = &response.responses[0];
        assert_eq!(
            result.name.as_ref().map(|n| n.as_str()),
            Some(name.as_str()),
            "v{version}"
        );
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        if version >= 5 {
            assert_eq!(result.error_message, None, "v{version}");
        }
        if version >= 6 {
            assert_eq!(result.topic_id, topic.id, "v{version}");
        }
        assert_eq!(
            describe(&mut conn, &name).error_code,
            UNKNOWN_TOPIC_OR_PARTITION,
            "v{version}"
        );
    }

    let topic = create_topic(&mut conn, "doomed-by-id", 1, &[]).unwrap();
    let request = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(topic.id)]);
    let response = conn.send(&request, 6).unwrap();
    let result = &response.responses[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.topic_id, topic.id);
    assert_eq!(
        result.name.as_ref().map(|n| n.as_str()),
        Some("doomed-by-id")
    );
    assert_eq!(
        describe(&mut conn, "doomed-by-id").error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn a_recreated_topic_is_new_and_empty() {
    let (_broker, mut conn) = start();
    let old = create_topic(&mut conn, "phoenix", 1, &[]).unwrap();
    produce(&mut conn, &old, 0, batch(&messages("old", 5, *T0))).unwrap();
    let response = conn.send(&delete_by_name("phoenix", 6), 6).unwrap();
    assert_eq!(response.responses[0].error_code, 0);
    let new = create_topic(&mut conn, "phoenix", 1, &[]).unwrap();
    assert_ne!(new.id, old.id, "a recreated topic needs a new id");
    assert!(
        fetch_records(&mut conn, &new, 0, 0).unwrap().is_empty(),
        "old records survived deletion"
    );
    let fresh = messages("new", 2, *T0);
    assert_eq!(produce(&mut conn, &new, 0, batch(&fresh)).unwrap(), 0);
    // The old id must not reach the new topic.
    let stale = produce_request(&old, 0, batch(&fresh), -1, 13);
    let response = conn.send(&stale, 13).unwrap();
    assert_eq!(
        only_partition(&response).unwrap().error_code,
        UNKNOWN_TOPIC_ID
    );
}

#[test]
fn delete_unknown_topics() {
    let (_broker, mut conn) = start();
    for version in versions(ApiKey::DeleteTopics) {
        let response = conn
            .send(&delete_by_name("never-was", version), version)
            .unwrap();
        assert_eq!(response.responses.len(), 1, "v{version}");
        assert_eq!(
            response.responses[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "v{version}"
        );
        assert_eq!(
            response.responses[0].name.as_ref().map(|n| n.as_str()),
            Some("never-was"),
            "v{version}"
        );
    }
    let missing = Uuid::new_v4();
    let request = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(missing)]);
    let response = conn.send(&request, 6).unwrap();
    assert_eq!(response.responses[0].error_code, UNKNOWN_TOPIC_ID);
    assert_eq!(response.responses[0].topic_id, missing);
}

fn grow(name: &str, count: i32, validate_only: bool) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)
            .with_assignments(None)])
}

#[test]
fn create_partitions_at_every_version_grows_the_topic() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "growing", 1, &[]).unwrap();
    produce(&mut conn, &topic, 0, batch(&messages("p0", 2, *T0))).unwrap();
    for version in versions(ApiKey::CreatePartitions) {
        let count = 2 + i32::from(version);
        let response = conn.send(&grow("growing", count, false), version).unwrap();
        assert_eq!(response.throttle_time_ms, 0, "v{version}");
        assert_eq!(response.results.len(), 1, "v{version}");
        let result = &response.results[0];
        assert_eq!(result.name.as_str(), "growing", "v{version}");
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        assert_eq!(result.error_message, None, "v{version}");
        let described = describe(&mut conn, "growing");
        assert_eq!(described.partitions.len() as i32, count, "v{version}");
        assert_eq!(
            described.topic_id, topic.id,
            "v{version}: growing must keep the id"
        );
        let newest = count - 1;
        assert_eq!(
            produce(&mut conn, &topic, newest, batch(&messages("new", 1, *T0))).unwrap(),
            0,
            "v{version}"
        );
    }
    // The first partition kept its records.
    assert_eq!(fetch_records(&mut conn, &topic, 0, 0).unwrap().len(), 2);

    let assigned =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("growing"))
            .with_count(6)
            .with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
            ]))]);
    assert_eq!(conn.send(&assigned, 3).unwrap().results[0].error_code, 0);
    assert_eq!(describe(&mut conn, "growing").partitions.len(), 6);
}

#[test]
fn create_partitions_refusals() {
    let (_broker, mut conn) = start();
    create_topic(&mut conn, "three", 3, &[]).unwrap();
    for version in versions(ApiKey::CreatePartitions) {
        for (name, count, code) in [
            ("three", 2, INVALID_PARTITIONS),
            ("three", 3, INVALID_PARTITIONS),
            ("absent", 4, UNKNOWN_TOPIC_OR_PARTITION),
        ] {
            let result = conn
                .send(&grow(name, count, false), version)
                .unwrap()
                .results
                .remove(0);
            assert_eq!(result.name.as_str(), name, "v{version}");
            assert_eq!(result.error_code, code, "v{version} {name} to {count}");
        }
        let dry = conn
            .send(&grow("three", 5, true), version)
            .unwrap()
            .results
            .remove(0);
        assert_eq!(dry.error_code, 0, "v{version}: {:?}", dry.error_message);
    }
    let elsewhere =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("three"))
            .with_count(4)
            .with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(9)])
            ]))]);
    assert_eq!(
        conn.send(&elsewhere, 3).unwrap().results[0].error_code,
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        describe(&mut conn, "three").partitions.len(),
        3,
        "a refused or dry-run change took effect"
    );
}

#[test]
fn deleted_topic_is_unknown_to_produce_fetch_and_list_offsets() {
    let (_broker, mut conn) = start();
    let topic = create_topic(&mut conn, "vanishing", 1, &[]).unwrap();
    produce(&mut conn, &topic, 0, batch(&messages("v", 1, *T0))).unwrap();
    delete_topic(&mut conn, "vanishing").unwrap();
    for version in [12, 13] {
        let expected = if version >= 13 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        let records = batch(&messages("late", 1, *T0));
        let response = conn
            .send(&produce_request(&topic, 0, records, -1, version), version)
            .unwrap();
        assert_eq!(
            only_partition(&response).unwrap().error_code,
            expected,
            "produce v{version}"
        );
        let response = conn
            .send(&fetch_request(&topic, 0, 0, version), version)
            .unwrap();
        assert_eq!(
            only_fetched(&response).unwrap().error_code,
            expected,
            "fetch v{version}"
        );
    }
    let answer = list_offset(&mut conn, "vanishing", 0, -1, 10).unwrap();
    assert_eq!(answer.error_code, UNKNOWN_TOPIC_OR_PARTITION);
}
