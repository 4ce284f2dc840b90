//! CreateTopics, DeleteTopics, CreatePartitions: topic administration and its refusals.

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
};
use samsa_protocol_tests::client::{str_bytes, topic_name};
use samsa_protocol_tests::differential::Differential;
use uuid::Uuid;

use crate::{ends, INVALID_NAME, UNKNOWN};

fn creatable(
    name: &str,
    partitions: i32,
    replication: i16,
    configs: &[(&str, &str)],
) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        )
}

fn create(topics: Vec<CreatableTopic>, validate_only: bool) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(topics)
}

#[test]
fn create_topics() {
    let mut d = Differential::start("create_topics");
    let existing = d.topic("existing");
    d.create_topic(&existing, 1, &[]);
    for v in ends(ApiKey::CreateTopics) {
        let name = |d: &Differential, base: &str| d.topic(&format!("{base}-v{v}"));
        let (a, b, dup) = (name(&d, "a"), name(&d, "b"), name(&d, "dup"));
        let (vo, defaults) = (name(&d, "validate"), name(&d, "defaults"));
        let configured = name(&d, "configured");
        let (rf, zero, badcfg, badval) = (
            name(&d, "rf"),
            name(&d, "zero"),
            name(&d, "badcfg"),
            name(&d, "badval"),
        );
        d.compare("two-topics", v, |_| {
            create(
                vec![creatable(&a, 2, 1, &[]), creatable(&b, 1, 1, &[])],
                false,
            )
        });
        d.compare("with-configs", v, |_| {
            create(
                vec![creatable(
                    &configured,
                    1,
                    1,
                    &[("retention.ms", "3600000"), ("max.message.bytes", "2000")],
                )],
                false,
            )
        });
        d.compare("validate-only", v, |_| {
            create(vec![creatable(&vo, 3, 1, &[])], true)
        });
        d.compare("validate-only-then-real", v, |_| {
            create(vec![creatable(&vo, 3, 1, &[])], false)
        });
        d.compare("already-exists", v, |_| {
            create(vec![creatable(&existing, 1, 1, &[])], false)
        });
        d.compare("already-exists-validate-only", v, |_| {
            create(vec![creatable(&existing, 1, 1, &[])], true)
        });
        d.compare("invalid-name", v, |_| {
            create(vec![creatable(INVALID_NAME, 1, 1, &[])], false)
        });
        d.compare("name-too-long", v, |_| {
            create(vec![creatable(&"x".repeat(250), 1, 1, &[])], false)
        });
        d.compare("replication-factor-too-large", v, |_| {
            create(vec![creatable(&rf, 1, 3, &[])], false)
        });
        d.compare("zero-partitions", v, |_| {
            create(vec![creatable(&zero, 0, 1, &[])], false)
        });
        d.compare("broker-defaults", v, |_| {
            create(vec![creatable(&defaults, -1, -1, &[])], false)
        });
        d.compare("unknown-config", v, |_| {
            create(
                vec![creatable(&badcfg, 1, 1, &[("no.such.config", "1")])],
                false,
            )
        });
        d.compare("invalid-config-value", v, |_| {
            create(
                vec![creatable(&badval, 1, 1, &[("retention.ms", "soon")])],
                false,
            )
        });
        d.compare("min-insync-replicas-zero", v, |_| {
            create(
                vec![creatable(&badval, 1, 1, &[("min.insync.replicas", "0")])],
                false,
            )
        });
        d.compare("duplicate-in-request", v, |_| {
            create(
                vec![creatable(&dup, 1, 1, &[]), creatable(&dup, 2, 1, &[])],
                false,
            )
        });
    }
    d.finish();
}

fn delete_by_name(names: &[&str], version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        request.with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect(),
        )
    } else {
        request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
    }
}

#[test]
fn delete_topics() {
    let mut d = Differential::start("delete_topics");
    for v in ends(ApiKey::DeleteTopics) {
        let (gone, by_id) = (
            d.topic(&format!("gone-v{v}")),
            d.topic(&format!("by-id-v{v}")),
        );
        let dup = d.topic(&format!("dup-v{v}"));
        d.create_topic(&gone, 2, &[]);
        d.create_topic(&dup, 1, &[]);
        d.create_topic(&by_id, 1, &[]);
        d.compare("by-name", v, |_| delete_by_name(&[&gone], v));
        d.compare("deleted-twice", v, |_| delete_by_name(&[&gone], v));
        d.compare("unknown-name", v, |_| delete_by_name(&[&UNKNOWN.name], v));
        d.compare("invalid-name", v, |_| delete_by_name(&[INVALID_NAME], v));
        d.compare("duplicate-in-request", v, |_| {
            delete_by_name(&[&dup, &dup], v)
        });
        if v >= 6 {
            d.compare("by-id", v, |s| {
                DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![DeleteTopicState::default().with_topic_id(s.id(&by_id))])
            });
            d.compare("unknown-id", v, |_| {
                DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![
                        DeleteTopicState::default().with_topic_id(Uuid::from_u128(0x5a35a))
                    ])
            });
        }
    }
    d.finish();
}

fn grow(name: &str, count: i32) -> CreatePartitionsTopic {
    // The crate's default is an empty assignment list, which Kafka refuses; null means "any broker".
    CreatePartitionsTopic::default()
        .with_name(topic_name(name))
        .with_count(count)
        .with_assignments(None)
}

fn create_partitions(
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(topics)
}

#[test]
fn create_partitions_() {
    let mut d = Differential::start("create_partitions");
    for v in ends(ApiKey::CreatePartitions) {
        let t = d.topic(&format!("t-v{v}"));
        d.create_topic(&t, 2, &[]);
        d.compare("validate-only", v, |_| {
            create_partitions(vec![grow(&t, 4)], true)
        });
        d.compare("grow", v, |_| create_partitions(vec![grow(&t, 3)], false));
        d.await_leaders(&t, 3).unwrap();
        d.compare("same-count", v, |_| {
            create_partitions(vec![grow(&t, 3)], false)
        });
        d.compare("fewer", v, |_| create_partitions(vec![grow(&t, 1)], false));
        d.compare("unknown-topic", v, |_| {
            create_partitions(vec![grow(&UNKNOWN.name, 2)], false)
        });
        d.compare("empty-assignment-list", v, |_| {
            create_partitions(vec![grow(&t, 4).with_assignments(Some(vec![]))], false)
        });
        d.compare("duplicate-in-request", v, |_| {
            create_partitions(vec![grow(&t, 5), grow(&t, 6)], false)
        });
        d.compare("assignment-to-unknown-broker", v, |_| {
            let topic = grow(&t, 4).with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(99)]),
            ]));
            create_partitions(vec![topic], false)
        });
        d.compare("assignment-count-mismatch", v, |s| {
            let me = BrokerId(s.node_id);
            let topic = grow(&t, 6).with_assignments(Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![me]),
            ]));
            create_partitions(vec![topic], false)
        });
    }
    d.finish();
}
