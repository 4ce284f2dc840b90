//! IncrementalAlterConfigs and AlterConfigs: topic changes, their errors, and refusals of
//! broker changes. Broker cases are validate-only: the Kafka is shared by the whole suite.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest, ApiKey,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;

use crate::{ends, UNKNOWN};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(crate) fn incremental(
    kind: i8,
    name: &str,
    changes: &[(i8, &str, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(name))
                .with_configs(
                    changes
                        .iter()
                        .map(|(op, key, value)| {
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_config_operation(*op)
                                .with_name(str_bytes(key))
                                .with_value(value.map(str_bytes))
                        })
                        .collect(),
                ),
        ])
}

pub(crate) fn legacy(
    kind: i8,
    name: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> AlterConfigsRequest {
    AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(key, value)| {
                        alter_configs_request::AlterableConfig::default()
                            .with_name(str_bytes(key))
                            .with_value(Some(str_bytes(value)))
                    })
                    .collect(),
            )])
}

fn describe(topic: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(str_bytes(topic))
        .with_configuration_keys(Some(
            [
                "retention.ms",
                "segment.bytes",
                "cleanup.policy",
                "max.message.bytes",
            ]
            .iter()
            .map(|k| str_bytes(k))
            .collect(),
        ))])
}

#[test]
fn incremental_alter_configs() {
    let mut d = Differential::start("incremental_alter_configs");
    for v in ends(ApiKey::IncrementalAlterConfigs) {
        let topic = d.topic(&format!("t{v}"));
        d.create_topic(&topic, 1, &[("segment.bytes", "1048576")]);
        let t = topic.as_str();
        d.compare("set", v, |_| {
            incremental(TOPIC, t, &[(SET, "retention.ms", Some("7200000"))], false)
        });
        d.compare_settled("after-set", 4, |_| describe(t), |_| {});
        d.compare("delete", v, |_| {
            incremental(TOPIC, t, &[(DELETE, "retention.ms", None)], false)
        });
        d.compare("delete-unset", v, |_| {
            incremental(TOPIC, t, &[(DELETE, "max.message.bytes", None)], false)
        });
        d.compare("append-list", v, |_| {
            incremental(
                TOPIC,
                t,
                &[(APPEND, "cleanup.policy", Some("delete"))],
                false,
            )
        });
        d.compare_settled("after-delete-append", 4, |_| describe(t), |_| {});
        d.compare("append-scalar", v, |_| {
            incremental(TOPIC, t, &[(APPEND, "retention.ms", Some("1"))], false)
        });
        d.compare("subtract-scalar", v, |_| {
            incremental(TOPIC, t, &[(SUBTRACT, "segment.bytes", Some("1"))], false)
        });
        d.compare("validate-only", v, |_| {
            incremental(TOPIC, t, &[(SET, "retention.ms", Some("60000"))], true)
        });
        d.compare_settled("after-validate-only", 4, |_| describe(t), |_| {});
        d.compare("unknown-key", v, |_| {
            incremental(TOPIC, t, &[(SET, "no.such.config", Some("1"))], false)
        });
        d.compare("invalid-value", v, |_| {
            incremental(TOPIC, t, &[(SET, "retention.ms", Some("soon"))], false)
        });
        d.compare("null-value", v, |_| {
            incremental(TOPIC, t, &[(SET, "retention.ms", None)], false)
        });
        d.compare("unknown-operation", v, |_| {
            incremental(TOPIC, t, &[(9, "retention.ms", Some("1"))], false)
        });
        d.compare("duplicate-keys", v, |_| {
            incremental(
                TOPIC,
                t,
                &[
                    (SET, "retention.ms", Some("1")),
                    (DELETE, "retention.ms", None),
                ],
                false,
            )
        });
        d.compare("unknown-topic", v, |_| {
            incremental(
                TOPIC,
                &UNKNOWN.name,
                &[(SET, "retention.ms", Some("1"))],
                false,
            )
        });
        d.compare("broker-read-only", v, |s| {
            incremental(
                BROKER,
                &s.node_id.to_string(),
                &[(SET, "broker.id", Some("7"))],
                true,
            )
        });
        d.compare("broker-dynamic", v, |s| {
            incremental(
                BROKER,
                &s.node_id.to_string(),
                &[(SET, "log.retention.ms", Some("60000"))],
                true,
            )
        });
        // What kafka-reassign-partitions --verify sends to clear throttles nobody set.
        d.compare("broker-clear-throttles", v, |s| {
            let changes = [
                (DELETE, "leader.replication.throttled.rate", None),
                (DELETE, "follower.replication.throttled.rate", None),
            ];
            incremental(BROKER, &s.node_id.to_string(), &changes, false)
        });
        d.compare("topic-clear-throttles", v, |_| {
            let changes = [
                (DELETE, "leader.replication.throttled.replicas", None),
                (DELETE, "follower.replication.throttled.replicas", None),
            ];
            incremental(TOPIC, t, &changes, false)
        });
    }
    d.finish();
}

#[test]
fn alter_configs() {
    let mut d = Differential::start("alter_configs");
    for v in ends(ApiKey::AlterConfigs) {
        let topic = d.topic(&format!("t{v}"));
        d.create_topic(&topic, 1, &[("retention.ms", "3600000")]);
        let t = topic.as_str();
        d.compare("replace", v, |_| {
            legacy(TOPIC, t, &[("segment.bytes", "2097152")], false)
        });
        d.compare_settled("after-replace", 4, |_| describe(t), |_| {});
        d.compare("validate-only", v, |_| {
            legacy(TOPIC, t, &[("max.message.bytes", "5000")], true)
        });
        d.compare("unknown-key", v, |_| {
            legacy(TOPIC, t, &[("no.such.config", "1")], false)
        });
        d.compare("invalid-value", v, |_| {
            legacy(TOPIC, t, &[("retention.ms", "soon")], false)
        });
        d.compare_settled("after-errors", 4, |_| describe(t), |_| {});
        d.compare("unknown-topic", v, |_| {
            legacy(TOPIC, &UNKNOWN.name, &[("retention.ms", "1")], false)
        });
        d.compare("broker-read-only", v, |s| {
            legacy(BROKER, &s.node_id.to_string(), &[("broker.id", "7")], true)
        });
    }
    d.finish();
}
