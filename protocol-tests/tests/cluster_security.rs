//! ACLs and SCRAM credentials in a cluster: made through any node, kept in the metadata log,
//! enforced and accepted by every node, back after a restart, and REQUEST_TIMED_OUT when no
//! controller can take the change (as Kafka's forwarding broker answers).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest, MetadataRequest,
};
use samsa_protocol_tests::client::{str_bytes, topic_name};
use samsa_protocol_tests::cluster::{TestCluster, CONVERGE};
use samsa_protocol_tests::sasl::{scram_user, Scram, ITERATIONS};
use samsa_protocol_tests::{free_port, Connection};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const REQUEST_TIMED_OUT: i16 = 7;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

/// Three nodes enforcing ACLs, each with a SASL_PLAINTEXT listener of its own (returned by
/// node id - 1) and the bootstrap user admin. admin is a super user, and so is every
/// PLAINTEXT client, the followers' fetches among them.
fn start() -> (TestCluster, Vec<String>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster = TestCluster::start_with(3, |id| {
        format!(
            "authorizer = true\nsuper_users = [\"User:admin\", \"User:ANONYMOUS\"]\nauto_create_topics = false\n\
             [[listener]]\nname = \"sasl\"\naddress = \"127.0.0.1:{}\"\nprotocol = \"SASL_PLAINTEXT\"\n\
             [sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-512\"]\n{}",
            ports[id as usize - 1],
            scram_user("admin", Scram::Sha512, "admin-pw"),
        )
    })
    .unwrap();
    (
        cluster,
        ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
    )
}

/// Polls `check` until it holds; a node may refuse connections while it restarts.
fn eventually(what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let last = check();
        if matches!(last, Ok(true)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {CONVERGE:?}: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn login(addr: &str, user: &str, password: &str) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(addr)?;
    let answer = conn.login_scram(Scram::Sha512, user, password, 2)?;
    anyhow::ensure!(answer.error_code == 0, "{user} on {addr}: {answer:?}");
    Ok(conn)
}

fn upsert(user: &str, password: &str) -> AlterUserScramCredentialsRequest {
    let salt = format!("cluster-salt-{user}").into_bytes();
    let mechanism = Scram::Sha512;
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(str_bytes(user))
        .with_mechanism(mechanism.code())
        .with_iterations(ITERATIONS as i32)
        .with_salted_password(Bytes::from(
            mechanism.salted_password(password, &salt, ITERATIONS),
        ))
        .with_salt(Bytes::from(salt));
    AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion])
}

fn alter_codes(conn: &mut Connection, request: &AlterUserScramCredentialsRequest) -> Vec<i16> {
    conn.send(request, 0)
        .unwrap()
        .results
        .iter()
        .map(|r| r.error_code)
        .collect()
}

fn describe_permission() -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(str_bytes("orders"))
        .with_resource_pattern_type(LITERAL)
        .with_principal(str_bytes("User:alice"))
        .with_host(str_bytes("*"))
        .with_operation(DESCRIBE)
        .with_permission_type(ALLOW)
}

fn create_codes(conn: &mut Connection) -> Vec<i16> {
    let request = CreateAclsRequest::default().with_creations(vec![describe_permission()]);
    conn.send(&request, 3)
        .unwrap()
        .results
        .iter()
        .map(|r| r.error_code)
        .collect()
}

fn orders_filter() -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(str_bytes("orders")))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// The ACLs on topics a node lists: (name, principal, operation, permission).
fn listed_acls(conn: &mut Connection) -> anyhow::Result<Vec<(String, String, i8, i8)>> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let response = conn.send(&request, 3)?;
    anyhow::ensure!(response.error_code == 0, "{response:?}");
    Ok(response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                (
                    r.resource_name.to_string(),
                    a.principal.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect())
}

/// The error code of Metadata for the topic `orders`: DESCRIBE on it is what it takes.
fn orders_code(conn: &mut Connection) -> anyhow::Result<i16> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("orders")))
        ]))
        .with_allow_auto_topic_creation(false);
    Ok(conn.send(&request, 12)?.topics[0].error_code)
}

#[test]
fn users_and_acls_made_through_one_node_hold_on_every_node() {
    let (mut cluster, sasl) = start();
    let node = |id: i32| sasl[id as usize - 1].clone();

    let mut admin1 = login(&node(1), "admin", "admin-pw").unwrap();
    assert_eq!(alter_codes(&mut admin1, &upsert("alice", "alice-pw")), [0]);
    for id in [2, 3] {
        eventually(&format!("alice accepted by node {id}"), || {
            Ok(login(&node(id), "alice", "alice-pw").is_ok())
        });
        let mut plain = Connection::open(&node(id)).unwrap();
        assert_eq!(
            plain
                .login_plain("alice", "alice-pw", 2)
                .unwrap()
                .error_code,
            0,
            "PLAIN checks the same credential"
        );
        let mut wrong = Connection::open(&node(id)).unwrap();
        let refused = wrong
            .login_scram(Scram::Sha512, "alice", "not-her-password", 2)
            .unwrap();
        assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
    }
    let mut admin3 = login(&node(3), "admin", "admin-pw").unwrap();
    let described = admin3
        .send(
            &DescribeUserScramCredentialsRequest::default().with_users(None),
            0,
        )
        .unwrap();
    let users: Vec<(String, Vec<(i8, i32)>)> = described
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            )
        })
        .collect();
    let sha512 = vec![(Scram::Sha512.code(), ITERATIONS as i32)];
    assert_eq!(
        users,
        [
            ("admin".to_owned(), sha512.clone()),
            ("alice".to_owned(), sha512)
        ]
    );

    cluster
        .create_topic(1, "orders", 1, 3, &[], &[1, 2, 3])
        .unwrap();
    let mut alice1 = login(&node(1), "alice", "alice-pw").unwrap();
    assert_eq!(
        orders_code(&mut alice1).unwrap(),
        TOPIC_AUTHORIZATION_FAILED,
        "no ACL yet"
    );

    let mut admin2 = login(&node(2), "admin", "admin-pw").unwrap();
    assert_eq!(create_codes(&mut admin2), [0]);
    let expected = vec![(
        "orders".to_owned(),
        "User:alice".to_owned(),
        DESCRIBE,
        ALLOW,
    )];
    eventually("the ACL listed by node 3", || {
        Ok(listed_acls(&mut admin3)? == expected)
    });
    eventually("the ACL enforced by node 1", || {
        Ok(orders_code(&mut alice1)? == 0)
    });

    let deleted = admin3
        .send(
            &DeleteAclsRequest::default().with_filters(vec![orders_filter()]),
            3,
        )
        .unwrap();
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(
        deleted.filter_results[0].matching_acls.len(),
        1,
        "{deleted:?}"
    );
    eventually("the ACL gone from node 1", || {
        Ok(orders_code(&mut alice1)? == TOPIC_AUTHORIZATION_FAILED)
    });
    assert!(
        listed_acls(&mut admin3).unwrap().is_empty(),
        "node 3 answered once it applied the delete"
    );

    // After a restart the ACLs and users come back from the metadata log, not from files.
    assert_eq!(create_codes(&mut admin2), [0]);
    eventually("the ACL enforced by node 1 again", || {
        Ok(orders_code(&mut alice1)? == 0)
    });
    cluster.node_mut(1).process.restart().unwrap();
    eventually("alice and her ACL back on the restarted node 1", || {
        let Ok(mut alice) = login(&node(1), "alice", "alice-pw") else {
            return Ok(false);
        };
        Ok(orders_code(&mut alice)? == 0)
    });
    for n in &cluster.nodes {
        let data = n.process.data_dir.path().join("data");
        for file in ["acls.json", "credentials.json"] {
            assert!(!data.join(file).exists(), "node {} wrote {file}", n.id);
        }
    }

    let deletion = ScramCredentialDeletion::default()
        .with_name(str_bytes("alice"))
        .with_mechanism(Scram::Sha512.code());
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
    assert_eq!(alter_codes(&mut admin2, &request), [0]);
    eventually("alice refused by node 3", || {
        Ok(login(&node(3), "alice", "alice-pw").is_err())
    });
}

#[test]
fn changes_time_out_when_no_controller_can_take_them() {
    let (mut cluster, sasl) = start();
    let mut admin = login(&sasl[0], "admin", "admin-pw").unwrap();
    cluster.node_mut(2).process.kill().unwrap();
    cluster.node_mut(3).process.kill().unwrap();

    assert_eq!(create_codes(&mut admin), [REQUEST_TIMED_OUT]);
    let deleted = admin
        .send(
            &DeleteAclsRequest::default().with_filters(vec![orders_filter()]),
            3,
        )
        .unwrap();
    assert_eq!(deleted.filter_results[0].error_code, REQUEST_TIMED_OUT);
    assert_eq!(
        alter_codes(&mut admin, &upsert("alice", "alice-pw")),
        [REQUEST_TIMED_OUT]
    );
    assert!(
        listed_acls(&mut admin).unwrap().is_empty(),
        "what this node applied is still described"
    );
}
