//! IncrementalAlterConfigs and AlterConfigs: topic config changes are validated, persist in
//! the catalogue and take effect on the partition logs at once.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest, ApiKey,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use samsa_protocol_tests::batches::{base_timestamp, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, only_partition, produce, produce_request, str_bytes, versions, LATEST_PRODUCE,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn start() -> (BrokerProcess, Connection) {
    let broker = BrokerProcess::start("auto_create_topics = false\nnode_id = 1\n").unwrap();
    let conn = broker.connect().unwrap();
    (broker, conn)
}

/// One IncrementalAlterConfigs resource: (operation, key, value) changes.
fn incremental(
    conn: &mut Connection,
    kind: i8,
    name: &str,
    changes: &[(i8, &str, Option<&str>)],
    validate_only: bool,
    version: i16,
) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default()
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
        ]);
    let response = conn.send(&request, version).unwrap();
    assert_eq!(response.responses.len(), 1, "v{version}");
    let result = &response.responses[0];
    assert_eq!(
        (result.resource_type, result.resource_name.as_str()),
        (kind, name),
        "v{version}"
    );
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn legacy(
    conn: &mut Connection,
    kind: i8,
    name: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
    version: i16,
) -> i16 {
    let request = AlterConfigsRequest::default()
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
            )]);
    let response = conn.send(&request, version).unwrap();
    assert_eq!(response.responses.len(), 1, "v{version}");
    response.responses[0].error_code
}

/// (value, source) of a topic config as DescribeConfigs reports it.
fn described(conn: &mut Connection, topic: &str, key: &str) -> (String, i8) {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(Some(vec![str_bytes(key)]))]);
    let response = conn.send(&request, 4).unwrap();
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let entry = &result.configs[0];
    (
        entry.value.as_ref().unwrap().to_string(),
        entry.config_source,
    )
}

#[test]
fn incremental_set_delete_append_subtract_at_every_version() {
    let (_broker, mut conn) = start();
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let topic = format!("inc-{version}");
        create_topic(&mut conn, &topic, 1, &[("segment.bytes", "1048576")]).unwrap();

        let set = [(SET, "retention.ms", Some("7200000"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &set, false, version),
            (0, None),
            "v{version}"
        );
        assert_eq!(
            described(&mut conn, &topic, "retention.ms"),
            ("7200000".into(), DYNAMIC_TOPIC_CONFIG)
        );
        // Other overrides are untouched by an incremental change.
        assert_eq!(
            described(&mut conn, &topic, "segment.bytes"),
            ("1048576".into(), DYNAMIC_TOPIC_CONFIG)
        );

        let delete = [(DELETE, "retention.ms", None)];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &delete, false, version).0,
            0,
            "v{version}"
        );
        assert_eq!(
            described(&mut conn, &topic, "retention.ms").1,
            DEFAULT_CONFIG,
            "v{version}"
        );

        // cleanup.policy is a list: APPEND and SUBTRACT edit it element by element.
        let append = [(APPEND, "cleanup.policy", Some("delete"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &append, false, version).0,
            0,
            "v{version}"
        );
        assert_eq!(
            described(&mut conn, &topic, "cleanup.policy"),
            ("delete".into(), DYNAMIC_TOPIC_CONFIG)
        );
        let compact = [(APPEND, "cleanup.policy", Some("compact"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &compact, false, version).0,
            0,
            "v{version}"
        );
        assert_eq!(
            described(&mut conn, &topic, "cleanup.policy"),
            ("delete,compact".into(), DYNAMIC_TOPIC_CONFIG)
        );
        let subtract = [(SUBTRACT, "cleanup.policy", Some("delete"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &subtract, false, version).0,
            0,
            "v{version}"
        );
        let bogus = [(APPEND, "cleanup.policy", Some("shred"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &bogus, false, version).0,
            INVALID_CONFIG
        );
        let append_scalar = [(APPEND, "retention.ms", Some("1"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, &topic, &append_scalar, false, version).0,
            INVALID_CONFIG
        );
        assert_eq!(
            described(&mut conn, &topic, "cleanup.policy"),
            ("compact".into(), DYNAMIC_TOPIC_CONFIG)
        );
    }
}

#[test]
fn incremental_errors() {
    let (_broker, mut conn) = start();
    create_topic(&mut conn, "errors", 1, &[]).unwrap();
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let set = |key, value| [(SET, key, Some(value))];
        let code =
            |conn: &mut Connection, kind, name: &str, changes: &[(i8, &str, Option<&str>)]| {
                incremental(conn, kind, name, changes, false, version).0
            };
        assert_eq!(
            code(&mut conn, TOPIC, "missing", &set("retention.ms", "1")),
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            code(&mut conn, TOPIC, "errors", &set("no.such.key", "1")),
            INVALID_CONFIG
        );
        assert_eq!(
            code(&mut conn, TOPIC, "errors", &set("retention.ms", "soon")),
            INVALID_CONFIG
        );
        assert_eq!(
            code(&mut conn, TOPIC, "errors", &[(SET, "retention.ms", None)]),
            INVALID_REQUEST
        );
        assert_eq!(
            code(
                &mut conn,
                TOPIC,
                "errors",
                &[(9, "retention.ms", Some("1"))]
            ),
            INVALID_REQUEST
        );
        let twice = [
            (SET, "retention.ms", Some("1")),
            (DELETE, "retention.ms", None),
        ];
        assert_eq!(code(&mut conn, TOPIC, "errors", &twice), INVALID_REQUEST);
        // Broker settings come from the config file: none can change at run time.
        assert_eq!(
            code(&mut conn, BROKER, "1", &set("log.retention.ms", "1")),
            INVALID_REQUEST
        );
        assert_eq!(
            described(&mut conn, "errors", "retention.ms").1,
            DEFAULT_CONFIG,
            "v{version}"
        );
    }
}

#[test]
fn validate_only_changes_nothing() {
    let (_broker, mut conn) = start();
    create_topic(&mut conn, "dry", 1, &[]).unwrap();
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let set = [(SET, "retention.ms", Some("60000"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, "dry", &set, true, version).0,
            0
        );
        let bad = [(SET, "retention.ms", Some("x"))];
        assert_eq!(
            incremental(&mut conn, TOPIC, "dry", &bad, true, version).0,
            INVALID_CONFIG
        );
    }
    for version in versions(ApiKey::AlterConfigs) {
        assert_eq!(
            legacy(
                &mut conn,
                TOPIC,
                "dry",
                &[("retention.ms", "60000")],
                true,
                version
            ),
            0
        );
    }
    assert_eq!(
        described(&mut conn, "dry", "retention.ms").1,
        DEFAULT_CONFIG
    );
}

#[test]
fn legacy_alter_configs_replaces_every_override() {
    let (_broker, mut conn) = start();
    for version in versions(ApiKey::AlterConfigs) {
        let topic = format!("legacy-{version}");
        create_topic(&mut conn, &topic, 1, &[("retention.ms", "3600000")]).unwrap();
        assert_eq!(
            legacy(
                &mut conn,
                TOPIC,
                &topic,
                &[("segment.bytes", "2097152")],
                false,
                version
            ),
            0
        );
        assert_eq!(
            described(&mut conn, &topic, "segment.bytes"),
            ("2097152".into(), DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(
            described(&mut conn, &topic, "retention.ms").1,
            DEFAULT_CONFIG,
            "v{version}: not replaced"
        );

        assert_eq!(
            legacy(&mut conn, TOPIC, "missing", &[], false, version),
            UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            legacy(
                &mut conn,
                TOPIC,
                &topic,
                &[("no.such.key", "1")],
                false,
                version
            ),
            INVALID_CONFIG
        );
        assert_eq!(
            legacy(
                &mut conn,
                BROKER,
                "1",
                &[("log.retention.ms", "1")],
                false,
                version
            ),
            INVALID_REQUEST
        );
        assert_eq!(
            described(&mut conn, &topic, "segment.bytes").0,
            "2097152",
            "v{version}"
        );
    }
}

#[test]
fn changes_persist_and_take_effect() {
    let (mut broker, mut conn) = start();
    let topic = create_topic(&mut conn, "effect", 1, &[]).unwrap();
    let big = batch(&messages(&"x".repeat(500), 4, base_timestamp()));
    produce(&mut conn, &topic, 0, big.clone()).unwrap();

    let set = [(SET, "max.message.bytes", Some("200"))];
    assert_eq!(incremental(&mut conn, TOPIC, "effect", &set, false, 1).0, 0);
    let response = conn
        .send(
            &produce_request(&topic, 0, big.clone(), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(
        only_partition(&response).unwrap().error_code,
        MESSAGE_TOO_LARGE
    );

    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    assert_eq!(
        described(&mut conn, "effect", "max.message.bytes"),
        ("200".into(), DYNAMIC_TOPIC_CONFIG)
    );
    let response = conn
        .send(
            &produce_request(&topic, 0, big.clone(), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(
        only_partition(&response).unwrap().error_code,
        MESSAGE_TOO_LARGE,
        "after restart"
    );

    let delete = [(DELETE, "max.message.bytes", None)];
    assert_eq!(
        incremental(&mut conn, TOPIC, "effect", &delete, false, 0).0,
        0
    );
    produce(&mut conn, &topic, 0, big).unwrap();
}
