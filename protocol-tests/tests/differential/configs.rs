//! DescribeConfigs: topic and broker settings and where each value comes from.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, ListConfigResourcesRequest, ListConfigResourcesResponse,
};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;

use crate::{ends, UNKNOWN};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const TOPIC_KEYS: &[&str] = &[
    "retention.ms",
    "max.message.bytes",
    "cleanup.policy",
    "segment.bytes",
    "message.timestamp.type",
];
const BROKER_KEYS: &[&str] = &[
    "message.max.bytes",
    "log.retention.ms",
    "num.partitions",
    "log.segment.bytes",
    "auto.create.topics.enable",
    "max.incremental.fetch.session.cache.slots",
    // An internal config of Kafka's: not described.
    "min.incremental.fetch.session.eviction.ms",
];

pub(crate) fn describe(
    kind: i8,
    name: &str,
    keys: Option<&[&str]>,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_include_documentation(docs)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|k| str_bytes(k)).collect()),
            )])
}

#[test]
fn describe_configs() {
    let mut d = Differential::start("describe_configs");
    let topic = d.topic("t");
    d.create_topic(
        &topic,
        1,
        &[("retention.ms", "3600000"), ("max.message.bytes", "2000")],
    );
    for v in ends(ApiKey::DescribeConfigs) {
        d.compare("topic-keys", v, |_| {
            describe(TOPIC, &topic, Some(TOPIC_KEYS), false, false)
        });
        d.compare("topic-keys-synonyms", v, |_| {
            describe(TOPIC, &topic, Some(TOPIC_KEYS), true, false)
        });
        d.compare("topic-all", v, |_| {
            describe(TOPIC, &topic, None, false, false)
        });
        d.compare("topic-unknown-key", v, |_| {
            describe(TOPIC, &topic, Some(&["no.such.config"]), false, false)
        });
        d.compare("unknown-topic", v, |_| {
            describe(TOPIC, &UNKNOWN.name, None, false, false)
        });
        d.compare("broker-keys", v, |s| {
            describe(
                BROKER,
                &s.node_id.to_string(),
                Some(BROKER_KEYS),
                false,
                false,
            )
        });
        d.compare("broker-keys-synonyms", v, |s| {
            describe(
                BROKER,
                &s.node_id.to_string(),
                Some(BROKER_KEYS),
                true,
                false,
            )
        });
        d.compare("other-broker", v, |_| {
            describe(BROKER, "99", None, false, false)
        });
        d.compare("broker-not-a-number", v, |_| {
            describe(BROKER, "abc", None, false, false)
        });
        d.compare("unknown-resource-type", v, |_| {
            describe(17, "x", None, false, false)
        });
        if v >= 3 {
            d.compare("topic-documentation", v, |_| {
                describe(TOPIC, &topic, Some(TOPIC_KEYS), false, true)
            });
        }
    }
    d.finish();
}

/// ListConfigResources: v0 lists client metrics resources (none here), v1 every type or
/// the types asked for. Kafka is shared with the whole suite, so of the topics only this
/// test's own are compared, in name order (Kafka lists them unordered), and no groups
/// (`group_configs` compares those it configures).
#[test]
fn list_config_resources() {
    let mut d = Differential::start("list_config_resources");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let own = |r: &mut ListConfigResourcesResponse| {
        r.config_resources
            .retain(|c| ![2, 32].contains(&c.resource_type) || c.resource_name.as_str() == topic);
        r.config_resources.sort_by_key(|c| c.resource_type);
    };
    let list =
        |types: &[i8]| ListConfigResourcesRequest::default().with_resource_types(types.to_vec());
    d.compare_part("client-metrics", 0, |_| list(&[]), own);
    for v in ends(ApiKey::ListConfigResources) {
        d.compare_part("all", v, |_| list(&[]), own);
        d.compare_part("unsupported-type", v, |_| list(&[2, 1]), own);
    }
    let v = 1;
    for (case, types) in [
        ("topics", &[2][..]),
        ("brokers", &[4]),
        ("broker-loggers", &[8]),
        ("groups", &[32]),
        ("client-metrics", &[16]),
        ("topics-and-brokers", &[4, 2]),
    ] {
        d.compare_part(case, v, |_| list(types), own);
    }
    d.finish();
}
