//! `compression.type` and the codec levels (KIP-390), and the timestamp bounds (KIP-937), as
//! topic configs: described with their
//! sources and synonyms, set by CreateTopics and IncrementalAlterConfigs, and refused with
//! Kafka's code and words when out of range.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    incremental_alter_configs_request, ApiKey, CreateTopicsRequest, CreateTopicsResponse,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use samsa_protocol_tests::client::{str_bytes, topic_configs, topic_name};
use samsa_protocol_tests::differential::{Answer, Differential};

use crate::ends;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const KEYS: &[&str] = &[
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
];

/// The timestamp bounds (KIP-937), which Kafka checks on every produced record.
const TIMESTAMP_KEYS: &[&str] = &[
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
];
const BROKER_TIMESTAMP_KEYS: &[&str] = &[
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
];

fn describe(kind: i8, name: &str, synonyms: bool) -> DescribeConfigsRequest {
    describe_keys(kind, name, KEYS, synonyms)
}

fn describe_keys(kind: i8, name: &str, keys: &[&str], synonyms: bool) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(Some(
                keys.iter().map(|k| str_bytes(k)).collect(),
            ))])
}

fn create(name: &str, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(topic_configs(configs))])
}

fn set(topic: &str, key: &str, value: &str) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_config_operation(0)
                    .with_name(str_bytes(key))
                    .with_value(Some(str_bytes(value))),
            ]),
    ])
}

/// CreateTopics' error text, which `compare` checks only for presence: Kafka's
/// ConfigException words, which samsa gives too.
fn same_text(case: &str, answers: &(Answer<CreateTopicsResponse>, Answer<CreateTopicsResponse>)) {
    let text = |a: &Answer<CreateTopicsResponse>| {
        let t = &a.response().expect(case).topics[0];
        (t.error_code, t.error_message.clone())
    };
    assert_eq!(
        text(&answers.0),
        text(&answers.1),
        "{case}: samsa, then Kafka"
    );
}

#[test]
fn compression_configs() {
    let mut d = Differential::start("compression_configs");
    let topic = d.topic("t");
    d.create_topic(
        &topic,
        1,
        &[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "7"),
        ],
    );
    for v in ends(ApiKey::DescribeConfigs) {
        d.compare("describe", v, |_| describe(TOPIC, &topic, false));
        d.compare("describe-synonyms", v, |_| describe(TOPIC, &topic, true));
        d.compare("describe-broker", v, |s| {
            describe(BROKER, &s.node_id.to_string(), true)
        });
        d.compare("describe-timestamp-bounds", v, |_| {
            describe_keys(TOPIC, &topic, TIMESTAMP_KEYS, true)
        });
        d.compare("describe-broker-timestamp-bounds", v, |s| {
            describe_keys(BROKER, &s.node_id.to_string(), BROKER_TIMESTAMP_KEYS, true)
        });
    }
    let bad = d.topic("bad");
    for (case, key, value) in [
        ("unknown-codec", "compression.type", "none"),
        ("upper-case-codec", "compression.type", "GZIP"),
        ("gzip-level-zero", "compression.gzip.level", "0"),
        ("gzip-level-ten", "compression.gzip.level", "10"),
        ("lz4-level-high", "compression.lz4.level", "18"),
        ("zstd-level-low", "compression.zstd.level", "-131073"),
        ("zstd-level-text", "compression.zstd.level", "fast"),
        (
            "negative-after-bound",
            "message.timestamp.after.max.ms",
            "-1",
        ),
    ] {
        let v = *ends(ApiKey::CreateTopics).last().unwrap();
        let answers = d.compare(case, v, |_| create(&bad, &[(key, value)]));
        same_text(case, &answers);
        d.compare(&format!("alter-{case}"), 1, |_| set(&topic, key, value));
    }
    for v in ends(ApiKey::IncrementalAlterConfigs) {
        d.compare("set-lz4", v, |_| set(&topic, "compression.type", "lz4"));
        d.compare("set-lz4-level", v, |_| {
            set(&topic, "compression.lz4.level", "1")
        });
    }
    d.compare_settled("after-set", 4, |_| describe(TOPIC, &topic, true), |_| {});
    d.finish();
}
