//! DescribeConfigs: operators and tools read topic and broker settings, and where each
//! value comes from, through it.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest};
use samsa_protocol_tests::client::{create_topic, str_bytes, versions};
use samsa_protocol_tests::{BrokerProcess, Connection};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn start(extra: &str) -> (BrokerProcess, Connection) {
    let broker =
        BrokerProcess::start(&format!("auto_create_topics = false\nnode_id = 2\n{extra}")).unwrap();
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "configured", 1, &[("retention.ms", "3600000")]).unwrap();
    (broker, conn)
}

fn resource(kind: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(str_bytes(name))
        .with_configuration_keys(keys.map(|keys| keys.iter().map(|k| str_bytes(k)).collect()))
}

fn describe(
    conn: &mut Connection,
    resources: Vec<DescribeConfigsResource>,
    synonyms: bool,
    version: i16,
) -> Vec<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(synonyms);
    let response = conn.send(&request, version).unwrap();
    assert_eq!(response.throttle_time_ms, 0, "v{version}");
    response.results
}

fn entry<'a>(result: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| {
            panic!(
                "{key} missing from {:?}",
                result
                    .configs
                    .iter()
                    .map(|c| c.name.to_string())
                    .collect::<Vec<_>>()
            )
        })
}

fn value(entry: &DescribeConfigsResourceResult) -> Option<&str> {
    entry.value.as_ref().map(|v| v.as_str())
}

#[test]
fn topic_configs_at_every_version() {
    let (_broker, mut conn) = start("");
    for version in versions(ApiKey::DescribeConfigs) {
        let results = describe(
            &mut conn,
            vec![resource(TOPIC, "configured", None)],
            false,
            version,
        );
        assert_eq!(results.len(), 1, "v{version}");
        let result = &results[0];
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
        assert_eq!(
            (result.resource_type, result.resource_name.as_str()),
            (TOPIC, "configured"),
            "v{version}"
        );

        let retention = entry(result, "retention.ms");
        assert_eq!(value(retention), Some("3600000"), "v{version}");
        assert_eq!(retention.config_source, DYNAMIC_TOPIC_CONFIG, "v{version}");
        assert!(
            !retention.read_only && !retention.is_sensitive,
            "v{version}"
        );
        assert!(
            retention.synonyms.is_empty(),
            "v{version}: synonyms were not asked for"
        );

        let cleanup = entry(result, "cleanup.policy");
        assert_eq!(
            (value(cleanup), cleanup.config_source),
            (Some("delete"), DEFAULT_CONFIG),
            "v{version}"
        );
        let max_bytes = entry(result, "max.message.bytes");
        assert_eq!(
            (value(max_bytes), max_bytes.config_source),
            (Some("1048588"), DEFAULT_CONFIG),
            "v{version}"
        );
        if version >= 3 {
            let documentation = retention.documentation.as_ref();
            assert!(
                documentation.is_none_or(|d| d.is_empty()),
                "v{version}: documentation was not asked for"
            );
        }
        let mut names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before, "v{version}: duplicate keys");
    }
}

#[test]
fn only_the_keys_asked_for_and_synonyms_when_asked() {
    let (_broker, mut conn) = start("");
    for version in versions(ApiKey::DescribeConfigs) {
        let keys: &[&str] = &["retention.ms", "cleanup.policy"];
        let results = describe(
            &mut conn,
            vec![resource(TOPIC, "configured", Some(keys))],
            true,
            version,
        );
        let mut names: Vec<&str> = results[0].configs.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["cleanup.policy", "retention.ms"], "v{version}");
        let retention = entry(&results[0], "retention.ms");
        let first = retention
            .synonyms
            .first()
            .expect("an overridden key has itself as first synonym");
        assert_eq!(first.name.as_str(), "retention.ms", "v{version}");
        assert_eq!(
            first.value.as_ref().map(|v| v.as_str()),
            Some("3600000"),
            "v{version}"
        );
        assert_eq!(first.source, DYNAMIC_TOPIC_CONFIG, "v{version}");
    }
}

#[test]
fn broker_configs_at_every_version() {
    let (_broker, mut conn) = start("message_max_bytes = 2000000\n");
    for version in versions(ApiKey::DescribeConfigs) {
        let results = describe(&mut conn, vec![resource(BROKER, "2", None)], false, version);
        let result = &results[0];
        assert_eq!(
            result.error_code, 0,
            "v{version}: {:?}",
            result.error_message
        );
        assert_eq!(
            (result.resource_type, result.resource_name.as_str()),
            (BROKER, "2"),
            "v{version}"
        );
        let max_bytes = entry(result, "message.max.bytes");
        assert_eq!(value(max_bytes), Some("2000000"), "v{version}");
        assert_eq!(max_bytes.config_source, STATIC_BROKER_CONFIG, "v{version}");
        assert_eq!(value(entry(result, "broker.id")), Some("2"), "v{version}");
        assert_eq!(
            value(entry(result, "auto.create.topics.enable")),
            Some("false"),
            "v{version}"
        );
    }
}

#[test]
fn topic_and_broker_in_one_request_with_errors_apart() {
    let (_broker, mut conn) = start("");
    let results = describe(
        &mut conn,
        vec![
            resource(TOPIC, "configured", Some(&["retention.ms"])),
            resource(TOPIC, "not-there", None),
            resource(BROKER, "99", None),
            resource(BROKER, "2", Some(&["num.partitions"])),
        ],
        false,
        4,
    );
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].error_code, 0);
    assert_eq!(value(entry(&results[0], "retention.ms")), Some("3600000"));
    assert_eq!(results[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(results[1].resource_name.as_str(), "not-there");
    assert!(results[1].configs.is_empty());
    assert_eq!(
        results[2].error_code, INVALID_REQUEST,
        "another broker's id"
    );
    assert_eq!(results[3].error_code, 0);
    assert_eq!(value(entry(&results[3], "num.partitions")), Some("1"));
}

/// A topic key left unset takes the broker's value; if the operator set that in the
/// config file, Kafka reports STATIC_BROKER_CONFIG, not DEFAULT_CONFIG.
#[test]
fn topic_default_from_broker_file_is_static_broker_config() {
    let (_broker, mut conn) = start("message_max_bytes = 2000000\n");
    let results = describe(
        &mut conn,
        vec![resource(TOPIC, "configured", Some(&["max.message.bytes"]))],
        false,
        4,
    );
    let max_bytes = entry(&results[0], "max.message.bytes");
    assert_eq!(value(max_bytes), Some("2000000"));
    assert_eq!(max_bytes.config_source, STATIC_BROKER_CONFIG);
}

/// DescribeConfigs v3 added each entry's data type; Kafka always fills it.
#[test]
fn config_types_from_v3() {
    const STRING: i8 = 2;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    let (_broker, mut conn) = start("");
    for version in 3..=4 {
        let results = describe(
            &mut conn,
            vec![resource(TOPIC, "configured", None)],
            false,
            version,
        );
        for (key, expected) in [
            ("retention.ms", LONG),
            ("cleanup.policy", LIST),
            ("message.timestamp.type", STRING),
        ] {
            assert_eq!(
                entry(&results[0], key).config_type,
                expected,
                "v{version} {key}"
            );
        }
    }
}
