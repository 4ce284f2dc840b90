//! ACLs: CreateAcls, DescribeAcls and DeleteAcls at every served version, their
//! persistence, and their enforcement on produce, metadata, config changes, DeleteRecords
//! and the cluster APIs for principals authenticated over SASL.

use std::sync::LazyLock;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::{
    alter_configs_request, describe_configs_request, incremental_alter_configs_request,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, DeleteRecordsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest, DescribeAclsResponse,
    DescribeClusterRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    JoinGroupRequest, MetadataRequest,
};
use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, only_fetched, only_partition, produce_request, str_bytes,
    topic_name, versions, TopicRef,
};
use samsa_protocol_tests::free_port;
use samsa_protocol_tests::sasl::{scram_user, Scram};
use samsa_protocol_tests::{BrokerProcess, Connection};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DELETE: i8 = 6;
const DESCRIBE: i8 = 8;
const ALTER_CONFIGS: i8 = 11;
const BROKER: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

/// A broker enforcing ACLs, with a SASL_PLAINTEXT listener; admin is a super user.
fn start() -> (BrokerProcess, String) {
    let port = free_port();
    let config = format!(
        "authorizer = true\nsuper_users = [\"User:admin\"]\nauto_create_topics = false\n\
         [[listener]]\nname = \"sasl\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"SASL_PLAINTEXT\"\n\
         [sasl]\nmechanisms = [\"PLAIN\"]\n{}{}",
        scram_user("admin", Scram::Sha256, "admin-pw"),
        scram_user("alice", Scram::Sha256, "alice-pw"),
    );
    (
        BrokerProcess::start(&config).unwrap(),
        format!("127.0.0.1:{port}"),
    )
}

fn login(addr: &str, user: &str) -> Connection {
    let mut conn = Connection::open(addr).unwrap();
    let answer = conn.login_plain(user, &format!("{user}-pw"), 2).unwrap();
    assert_eq!(answer.error_code, 0, "{user}: {answer:?}");
    conn
}

fn acl(rt: i8, name: &str, pattern: i8, principal: &str, op: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(str_bytes(name))
        .with_resource_pattern_type(pattern)
        .with_principal(str_bytes(principal))
        .with_host(str_bytes("*"))
        .with_operation(op)
        .with_permission_type(permission)
}

fn create_acls(conn: &mut Connection, acls: Vec<AclCreation>, version: i16) -> Vec<i16> {
    let response = conn
        .send(&CreateAclsRequest::default().with_creations(acls), version)
        .unwrap();
    response.results.iter().map(|r| r.error_code).collect()
}

fn describe_topic_acls(
    conn: &mut Connection,
    name: Option<&str>,
    pattern: i8,
    version: i16,
) -> DescribeAclsResponse {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(name.map(str_bytes))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    conn.send(&request, version).unwrap()
}

/// (name, pattern, [(principal, operation, permission)]) per described resource.
type ResourceAcls = (String, i8, Vec<(String, i8, i8)>);

fn summary(response: &DescribeAclsResponse) -> Vec<ResourceAcls> {
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .resources
        .iter()
        .map(|r| {
            let acls = r
                .acls
                .iter()
                .map(|a| (a.principal.to_string(), a.operation, a.permission_type))
                .collect();
            (r.resource_name.to_string(), r.pattern_type, acls)
        })
        .collect()
}

fn delete_filter(name: Option<&str>, pattern: i8) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(name.map(str_bytes))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

#[test]
fn acls_round_trip_at_every_version() {
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    for version in versions(ApiKey::CreateAcls) {
        let literal = format!("rt{version}-orders");
        let prefix = format!("rt{version}-");
        let codes = create_acls(
            &mut admin,
            vec![
                acl(TOPIC, &literal, LITERAL, "User:alice", READ, ALLOW),
                acl(TOPIC, &prefix, PREFIXED, "User:*", WRITE, DENY),
                acl(
                    CLUSTER,
                    "not-the-cluster",
                    LITERAL,
                    "User:alice",
                    ALL,
                    ALLOW,
                ),
                acl(TOPIC, &literal, MATCH, "User:alice", READ, ALLOW),
                acl(TOPIC, &literal, LITERAL, "alice", READ, ALLOW),
            ],
            version,
        );
        assert_eq!(
            codes,
            [0, 0, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST],
            "v{version}"
        );

        let exact = summary(&describe_topic_acls(
            &mut admin,
            Some(&literal),
            LITERAL,
            version,
        ));
        assert_eq!(
            exact,
            [(
                literal.clone(),
                LITERAL,
                vec![("User:alice".into(), READ, ALLOW)]
            )],
            "v{version}"
        );
        // MATCH finds every binding that applies to the name: the literal and the prefix.
        let matching = summary(&describe_topic_acls(
            &mut admin,
            Some(&literal),
            MATCH,
            version,
        ));
        assert_eq!(matching.len(), 2, "v{version}: {matching:?}");

        let deleted = admin
            .send(
                &DeleteAclsRequest::default()
                    .with_filters(vec![delete_filter(Some(&literal), ANY)]),
                version,
            )
            .unwrap();
        let result = &deleted.filter_results[0];
        assert_eq!(result.error_code, 0);
        assert_eq!(result.matching_acls.len(), 1, "v{version}: {result:?}");
        assert_eq!(result.matching_acls[0].resource_name.as_str(), literal);
        let left = summary(&describe_topic_acls(&mut admin, None, ANY, version));
        assert_eq!(
            left,
            [(
                prefix.clone(),
                PREFIXED,
                vec![("User:*".into(), WRITE, DENY)]
            )],
            "v{version}"
        );
        let request =
            DeleteAclsRequest::default().with_filters(vec![delete_filter(None, PREFIXED)]);
        assert_eq!(
            admin.send(&request, version).unwrap().filter_results[0]
                .matching_acls
                .len(),
            1
        );
    }
}

#[test]
fn acls_survive_a_restart() {
    let (mut broker, addr) = start();
    let mut admin = login(&addr, "admin");
    let codes = create_acls(
        &mut admin,
        vec![acl(TOPIC, "kept", LITERAL, "User:alice", WRITE, ALLOW)],
        3,
    );
    assert_eq!(codes, [0]);
    broker.restart().unwrap();
    let mut admin = login(&addr, "admin");
    let described = summary(&describe_topic_acls(&mut admin, None, ANY, 3));
    assert_eq!(
        described,
        [(
            "kept".into(),
            LITERAL,
            vec![("User:alice".into(), WRITE, ALLOW)]
        )]
    );
}

/// A JoinGroup v5 of a new member to `group`, and its error code.
fn join(conn: &mut Connection, group: &str) -> i16 {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(str_bytes("range"))
        ]);
    conn.send(&request, 5).unwrap().error_code
}

fn produce_code(conn: &mut Connection, topic: &str) -> i16 {
    let topic = TopicRef {
        name: topic.to_owned(),
        id: uuid::Uuid::nil(),
    };
    let request = produce_request(&topic, 0, batch(&messages("m", 1, *T0)), -1, 9);
    only_partition(&conn.send(&request, 9).unwrap())
        .unwrap()
        .error_code
}

fn listed_topics(conn: &mut Connection) -> Vec<String> {
    let response = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let mut names: Vec<String> = response
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn produce_and_metadata_follow_the_acls() {
    let (broker, addr) = start();
    let mut admin = login(&addr, "admin");
    for topic in ["orders", "secret", "t-ok", "t-deny"] {
        create_topic(&mut admin, topic, 1, &[]).unwrap();
    }
    assert_eq!(
        produce_code(&mut admin, "secret"),
        0,
        "super users need no ACL"
    );

    let mut alice = login(&addr, "alice");
    assert!(
        listed_topics(&mut alice).is_empty(),
        "no ACL, nothing visible"
    );
    let codes = create_acls(
        &mut admin,
        vec![acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW)],
        3,
    );
    assert_eq!(codes, [0]);
    assert_eq!(
        produce_code(&mut alice, "orders"),
        TOPIC_AUTHORIZATION_FAILED,
        "READ is not WRITE"
    );
    assert_eq!(
        listed_topics(&mut alice),
        ["orders"],
        "READ implies DESCRIBE"
    );
    let named = alice
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name("secret")))
                ]))
                .with_include_topic_authorized_operations(true),
            10,
        )
        .unwrap();
    assert_eq!(named.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);

    let codes = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW),
            acl(TOPIC, "t-", PREFIXED, "User:alice", ALL, ALLOW),
            acl(TOPIC, "t-deny", LITERAL, "User:alice", WRITE, DENY),
        ],
        3,
    );
    assert_eq!(codes, [0, 0, 0]);
    assert_eq!(produce_code(&mut alice, "orders"), 0);
    assert_eq!(produce_code(&mut alice, "t-ok"), 0);
    assert_eq!(
        produce_code(&mut alice, "t-deny"),
        TOPIC_AUTHORIZATION_FAILED,
        "DENY wins over ALLOW ALL"
    );
    assert_eq!(listed_topics(&mut alice), ["orders", "t-deny", "t-ok"]);

    let described = alice
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name("orders")))
                ]))
                .with_include_topic_authorized_operations(true),
            10,
        )
        .unwrap();
    let expected = (1 << READ) | (1 << WRITE) | (1 << DESCRIBE);
    assert_eq!(described.topics[0].topic_authorized_operations, expected);

    // Cluster APIs need cluster ACLs; the plaintext listener's clients are User:ANONYMOUS.
    let cluster = alice.send(&DescribeClusterRequest::default(), 1).unwrap();
    assert_eq!(cluster.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let mut anonymous = broker.connect().unwrap();
    assert!(listed_topics(&mut anonymous).is_empty());
    let codes = create_acls(
        &mut anonymous,
        vec![acl(TOPIC, "x", LITERAL, "User:ANONYMOUS", ALL, ALLOW)],
        3,
    );
    assert_eq!(codes, [CLUSTER_AUTHORIZATION_FAILED]);
    assert_eq!(
        produce_code(&mut anonymous, "orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
}

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let codes = create_acls(
        &mut conn,
        vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)],
        3,
    );
    assert_eq!(codes, [SECURITY_DISABLED]);
    assert_eq!(
        describe_topic_acls(&mut conn, None, ANY, 3).error_code,
        SECURITY_DISABLED
    );
}

#[test]
fn group_apis_need_group_acls() {
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    let mut alice = login(&addr, "alice");
    let find = |conn: &mut Connection, group: &str| {
        let request = FindCoordinatorRequest::default().with_key(str_bytes(group));
        conn.send(&request, 3).unwrap().error_code
    };
    assert_eq!(find(&mut alice, "app"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(join(&mut alice, "app"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(GROUP, "app", LITERAL, "User:alice", READ, ALLOW)],
            3
        ),
        [0]
    );
    assert_eq!(find(&mut alice, "app"), 0, "READ implies DESCRIBE");
    assert_ne!(join(&mut alice, "app"), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(find(&mut admin, "other"), 0, "super user");
    let described = alice
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes("other"))]),
            5,
        )
        .unwrap();
    assert_eq!(described.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
}

/// Error codes of IncrementalAlterConfigs and AlterConfigs setting retention.ms on `kind`/`name`.
fn alter_config_codes(conn: &mut Connection, kind: i8, name: &str) -> (i16, i16) {
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(str_bytes("retention.ms"))
                    .with_value(Some(str_bytes("3600000"))),
            ]),
    ]);
    let legacy = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(str_bytes("retention.ms"))
                .with_value(Some(str_bytes("3600000")))]),
    ]);
    let incremental = conn.send(&incremental, 1).unwrap().responses[0].error_code;
    let legacy = conn.send(&legacy, 2).unwrap().responses[0].error_code;
    (incremental, legacy)
}

/// (error code, low watermark) of DeleteRecords up to the high watermark of partition 0.
fn delete_records(conn: &mut Connection, topic: &str) -> (i16, i64) {
    let request = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(-1)])]);
    let partition = conn.send(&request, 2).unwrap().topics[0].partitions[0].clone();
    (partition.error_code, partition.low_watermark)
}

#[test]
fn config_changes_and_delete_records_need_their_acls() {
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    create_topic(&mut admin, "guarded", 1, &[]).unwrap();
    let mut alice = login(&addr, "alice");

    assert_eq!(
        alter_config_codes(&mut alice, TOPIC, "guarded"),
        (TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED)
    );
    assert_eq!(
        alter_config_codes(&mut alice, BROKER, "1"),
        (CLUSTER_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED)
    );
    assert_eq!(
        delete_records(&mut alice, "guarded"),
        (TOPIC_AUTHORIZATION_FAILED, -1)
    );

    let grants = vec![
        acl(
            TOPIC,
            "guarded",
            LITERAL,
            "User:alice",
            ALTER_CONFIGS,
            ALLOW,
        ),
        acl(TOPIC, "guarded", LITERAL, "User:alice", DELETE, ALLOW),
    ];
    assert_eq!(create_acls(&mut admin, grants, 3), vec![0, 0]);
    assert_eq!(alter_config_codes(&mut alice, TOPIC, "guarded"), (0, 0));
    assert_eq!(delete_records(&mut alice, "guarded"), (0, 0));
    // ALTER_CONFIGS on a topic grants nothing on the broker.
    assert_eq!(
        alter_config_codes(&mut alice, BROKER, "1"),
        (CLUSTER_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED)
    );
}

/// Follower fetches and OffsetForLeaderEpoch from a follower need CLUSTER_ACTION, not READ.
#[test]
fn replication_requests_need_cluster_action() {
    const CLUSTER_ACTION: i8 = 9;
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    create_topic(&mut admin, "orders", 1, &[]).unwrap();
    let mut alice = login(&addr, "alice");
    create_acls(
        &mut admin,
        vec![acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW)],
        3,
    );
    let orders = TopicRef {
        name: "orders".into(),
        id: Default::default(),
    };
    let fetch_code = |conn: &mut Connection, replica: i32| {
        let mut request = fetch_request(&orders, 0, 0, 12);
        request.replica_id = kafka_protocol::messages::BrokerId(replica);
        let response = conn.send(&request, 12).unwrap();
        only_fetched(&response).unwrap().error_code
    };
    let epoch_code = |conn: &mut Connection, replica: i32| {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(replica))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name("orders"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default().with_current_leader_epoch(-1)
                ])]);
        conn.send(&request, 4).unwrap().topics[0].partitions[0].error_code
    };
    assert_eq!(fetch_code(&mut alice, -1), 0, "a consumer needs READ");
    assert_eq!(epoch_code(&mut alice, -1), 0, "a consumer needs DESCRIBE");
    assert_eq!(fetch_code(&mut alice, 7), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(epoch_code(&mut alice, 7), TOPIC_AUTHORIZATION_FAILED);
    let codes = create_acls(
        &mut admin,
        vec![acl(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            "User:alice",
            CLUSTER_ACTION,
            ALLOW,
        )],
        3,
    );
    assert_eq!(codes, [0]);
    // Allowed now, but broker 7 holds no replica of the partition.
    assert_eq!(fetch_code(&mut alice, 7), NOT_LEADER_OR_FOLLOWER);
    assert_eq!(epoch_code(&mut alice, 7), 0);
}

/// A group request creates the offsets topic when it does not exist yet, as FindCoordinator
/// does, and, as FindCoordinator does, only for a principal allowed to describe the group:
/// a refused request leaves no trace.
#[test]
fn a_refused_group_request_does_not_create_the_offsets_topic() {
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    let mut alice = login(&addr, "alice");
    assert_eq!(join(&mut alice, "g"), GROUP_AUTHORIZATION_FAILED);
    assert!(
        !listed_topics(&mut admin).contains(&"__consumer_offsets".to_owned()),
        "created for a refused request"
    );
    // MEMBER_ID_REQUIRED (79) from v4: the group is coordinated here.
    assert_eq!(join(&mut admin, "g"), 79);
    assert!(listed_topics(&mut admin).contains(&"__consumer_offsets".to_owned()));
}

/// Error codes of DescribeConfigs and IncrementalAlterConfigs of group `name`'s configs.
fn group_config_codes(conn: &mut Connection, name: &str) -> (i16, i16) {
    const GROUP_CONFIGS: i8 = 32;
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(GROUP_CONFIGS)
            .with_resource_name(str_bytes(name)),
    ]);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(GROUP_CONFIGS)
            .with_resource_name(str_bytes(name))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(str_bytes("share.auto.offset.reset"))
                    .with_value(Some(str_bytes("earliest"))),
            ]),
    ]);
    let describe = conn.send(&describe, 4).unwrap().results[0].error_code;
    let alter = conn.send(&alter, 1).unwrap().responses[0].error_code;
    (describe, alter)
}

/// As in Kafka, a group's configs take DESCRIBE_CONFIGS and ALTER_CONFIGS on the group.
#[test]
fn group_configs_need_their_acls() {
    const DESCRIBE_CONFIGS: i8 = 10;
    let (_broker, addr) = start();
    let mut admin = login(&addr, "admin");
    let mut alice = login(&addr, "alice");
    let denied = (GROUP_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED);
    assert_eq!(group_config_codes(&mut alice, "app"), denied);
    let grants = vec![
        acl(GROUP, "app", LITERAL, "User:alice", DESCRIBE_CONFIGS, ALLOW),
        acl(GROUP, "app", LITERAL, "User:alice", ALTER_CONFIGS, ALLOW),
    ];
    assert_eq!(create_acls(&mut admin, grants, 3), vec![0, 0]);
    assert_eq!(group_config_codes(&mut alice, "app"), (0, 0));
    assert_eq!(group_config_codes(&mut alice, "other"), denied);
}
