//! The security APIs over the PLAINTEXT listener, as User:ANONYMOUS, a super user on both
//! brokers (both enforce ACLs: run.sh starts Kafka with `--authorizer`): CreateAcls,
//! DescribeAcls, DeleteAcls, DescribeUserScramCredentials, AlterUserScramCredentials, and
//! SaslHandshake / SaslAuthenticate sent where no SASL is spoken; then, on both brokers'
//! SASL_PLAINTEXT listeners, the SASL exchanges themselves and the refusals an
//! authenticated principal without ACLs gets.
//!
//! Everything a case creates on the shared Kafka carries the run tag (principals, resource
//! names, SCRAM users), and filters name it, so other tests and runs are never seen.

use bytes::Bytes;
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{AddRaftVoterRequest, RemoveRaftVoterRequest};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, ApiKey, ApiVersionsRequest, BrokerId, CreateAclsRequest,
    DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
    DescribeTopicPartitionsRequest, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, FindCoordinatorRequest, MetadataRequest,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    UnregisterBrokerRequest, UnregisterControllerRequest,
};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::client::{produce_request, topic_name};
use samsa_protocol_tests::differential::Differential;
use samsa_protocol_tests::sasl::Scram;
use samsa_protocol_tests::sasl::CLIENT_NONCE;

use crate::{ends, topic_ref, T0};

// Kafka's codes (AclResourceType, PatternType, AclOperation, AclPermissionType).
const ANY: i8 = 1;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

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

fn describe(
    rt: i8,
    name: Option<&str>,
    pattern: i8,
    principal: Option<&str>,
) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name.map(str_bytes))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(principal.map(str_bytes))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn delete_filter(
    rt: i8,
    name: Option<&str>,
    pattern: i8,
    principal: Option<&str>,
) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(rt)
        .with_resource_name_filter(name.map(str_bytes))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(principal.map(str_bytes))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

#[test]
fn acls() {
    let mut d = Differential::start("acls");
    for v in ends(ApiKey::CreateAcls) {
        let principal = format!("User:{}", d.topic(&format!("alice-v{v}")));
        let other = format!("User:{}", d.topic(&format!("bob-v{v}")));
        let literal = d.topic(&format!("orders-v{v}"));
        let prefix = d.topic(&format!("pfx-v{v}"));
        let group = d.topic(&format!("group-v{v}"));
        let (p, o) = (principal.as_str(), other.as_str());
        d.compare("create", v, |_| {
            CreateAclsRequest::default().with_creations(vec![
                acl(TOPIC, &literal, LITERAL, p, READ, ALLOW),
                acl(TOPIC, &prefix, PREFIXED, p, WRITE, DENY),
                acl(GROUP, &group, LITERAL, p, ALL, ALLOW),
                acl(TOPIC, &literal, LITERAL, o, READ, ALLOW),
            ])
        });
        d.compare("create-again", v, |_| {
            CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, &literal, LITERAL, p, READ, ALLOW)])
        });
        // One at a time: Kafka fails a whole request when one creation cannot be parsed.
        let invalid = [
            ("resource-any", acl(ANY, &literal, LITERAL, p, READ, ALLOW)),
            ("pattern-match", acl(TOPIC, &literal, MATCH, p, READ, ALLOW)),
            ("pattern-any", acl(TOPIC, &literal, ANY, p, READ, ALLOW)),
            (
                "operation-any",
                acl(TOPIC, &literal, LITERAL, p, ANY, ALLOW),
            ),
            (
                "permission-any",
                acl(TOPIC, &literal, LITERAL, p, READ, ANY),
            ),
            (
                "principal-without-type",
                acl(TOPIC, &literal, LITERAL, "alice", READ, ALLOW),
            ),
            (
                "cluster-misnamed",
                acl(CLUSTER, &literal, LITERAL, p, ALL, ALLOW),
            ),
        ];
        for (what, creation) in invalid {
            d.compare(&format!("create-invalid-{what}"), v, |_| {
                CreateAclsRequest::default().with_creations(vec![creation.clone()])
            });
        }
        d.compare_part(
            "describe-literal",
            v,
            |_| describe(TOPIC, Some(&literal), LITERAL, Some(p)),
            sort_acls,
        );
        d.compare_part(
            "describe-match",
            v,
            |_| describe(TOPIC, Some(&format!("{prefix}-x")), MATCH, Some(p)),
            sort_acls,
        );
        d.compare_part(
            "describe-by-principal",
            v,
            |_| describe(ANY, None, ANY, Some(p)),
            sort_acls,
        );
        d.compare_part(
            "describe-group",
            v,
            |_| describe(GROUP, Some(&group), ANY, None),
            sort_acls,
        );
        d.compare_part(
            "describe-nothing",
            v,
            |_| describe(TOPIC, Some(&d_name(&literal)), LITERAL, None),
            sort_acls,
        );
        d.compare_part(
            "describe-invalid",
            v,
            |_| describe(TOPIC, None, 0, Some(p)),
            sort_acls,
        );
        d.compare_part(
            "delete",
            v,
            |_| {
                DeleteAclsRequest::default().with_filters(vec![
                    delete_filter(TOPIC, Some(&literal), ANY, Some(o)),
                    delete_filter(TOPIC, Some(&d_name(&literal)), LITERAL, None),
                ])
            },
            sort_deleted,
        );
        d.compare_part(
            "delete-by-principal",
            v,
            |_| {
                DeleteAclsRequest::default().with_filters(vec![delete_filter(
                    ANY,
                    None,
                    ANY,
                    Some(p),
                )])
            },
            sort_deleted,
        );
        d.compare_settled(
            "describe-after-delete",
            v,
            |_| describe(ANY, None, ANY, Some(p)),
            sort_acls,
        );
    }
    d.finish();
}

// Both list resources, bindings and users in no particular order: compare them sorted.

fn sort_acls(r: &mut DescribeAclsResponse) {
    for resource in &mut r.resources {
        resource
            .acls
            .sort_by_key(|a| (a.principal.to_string(), a.operation, a.permission_type));
    }
    r.resources
        .sort_by_key(|x| (x.resource_type, x.resource_name.to_string(), x.pattern_type));
}

fn sort_deleted(r: &mut DeleteAclsResponse) {
    for result in &mut r.filter_results {
        result.matching_acls.sort_by_key(|a| {
            let name = a.resource_name.to_string();
            (
                a.resource_type,
                name,
                a.pattern_type,
                a.principal.to_string(),
                a.operation,
            )
        });
    }
}

fn sort_users(r: &mut DescribeUserScramCredentialsResponse) {
    r.results.sort_by_key(|u| u.user.to_string());
    for user in &mut r.results {
        user.credential_infos.sort_by_key(|c| c.mechanism);
    }
}

fn sort_altered(r: &mut AlterUserScramCredentialsResponse) {
    r.results.sort_by_key(|u| u.user.to_string());
}

/// A resource name nobody has an ACL on.
fn d_name(name: &str) -> String {
    format!("{name}-none")
}

fn upsertion(name: &str, mechanism: Scram, iterations: i32) -> ScramCredentialUpsertion {
    let salt = b"differential-salt".to_vec();
    let salted = mechanism.salted_password("secret", &salt, iterations.max(1) as u32);
    ScramCredentialUpsertion::default()
        .with_name(str_bytes(name))
        .with_mechanism(mechanism.code())
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted))
}

fn deletion(name: &str, mechanism: Scram) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(str_bytes(name))
        .with_mechanism(mechanism.code())
}

fn describe_users(names: &[&str]) -> DescribeUserScramCredentialsRequest {
    DescribeUserScramCredentialsRequest::default().with_users(Some(
        names
            .iter()
            .map(|n| UserName::default().with_name(str_bytes(n)))
            .collect(),
    ))
}

#[test]
fn scram_credentials() {
    let mut d = Differential::start("scram_credentials");
    let (carol, dave) = (d.topic("carol"), d.topic("dave"));
    let (c, dv) = (carol.as_str(), dave.as_str());
    let v = 0;
    d.compare("describe-unknown", v, |_| describe_users(&[c]));
    d.compare_part(
        "upsert",
        v,
        |_| {
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                upsertion(c, Scram::Sha256, 4096),
                upsertion(dv, Scram::Sha512, 4096),
            ])
        },
        sort_altered,
    );
    d.compare("upsert-second-mechanism", v, |_| {
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion(
            c,
            Scram::Sha512,
            8192,
        )])
    });
    // Kafka refuses to alter one user twice in a request, whatever the mechanisms.
    d.compare_part(
        "upsert-same-user-twice",
        v,
        |_| {
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                upsertion(c, Scram::Sha256, 4096),
                upsertion(c, Scram::Sha512, 4096),
                upsertion(dv, Scram::Sha512, 4096),
            ])
        },
        sort_altered,
    );
    d.compare_part(
        "describe-by-name",
        v,
        |_| describe_users(&[c, dv]),
        sort_users,
    );
    d.compare("describe-duplicate", v, |_| describe_users(&[c, c]));
    d.compare_part(
        "describe-known-and-unknown",
        v,
        |_| describe_users(&[dv, "nobody-at-all"]),
        sort_users,
    );
    d.compare("upsert-invalid-iterations", v, |_| {
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion(
            dv,
            Scram::Sha256,
            1,
        )])
    });
    d.compare("upsert-too-many-iterations", v, |_| {
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion(
            dv,
            Scram::Sha256,
            20_000,
        )])
    });
    d.compare("upsert-empty-name", v, |_| {
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion(
            "",
            Scram::Sha256,
            4096,
        )])
    });
    d.compare("delete-absent-mechanism", v, |_| {
        AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![deletion(dv, Scram::Sha256)])
    });
    d.compare("upsert-and-delete-same-user", v, |_| {
        AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsertion(dv, Scram::Sha256, 4096)])
            .with_deletions(vec![deletion(dv, Scram::Sha512)])
    });
    d.compare_part(
        "delete",
        v,
        |_| {
            AlterUserScramCredentialsRequest::default().with_deletions(vec![
                deletion(c, Scram::Sha256),
                deletion(dv, Scram::Sha512),
            ])
        },
        sort_altered,
    );
    d.compare("delete-last", v, |_| {
        AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion(c, Scram::Sha512)])
    });
    d.compare_settled(
        "describe-after-delete",
        v,
        |_| describe_users(&[c, dv]),
        sort_users,
    );
    d.finish();
}

#[test]
fn sasl_on_plaintext() {
    let mut d = Differential::start("sasl_on_plaintext");
    for v in ends(ApiKey::SaslHandshake) {
        d.compare("handshake-plain", v, |_| {
            SaslHandshakeRequest::default().with_mechanism(str_bytes("PLAIN"))
        });
        d.compare("handshake-unknown", v, |_| {
            SaslHandshakeRequest::default().with_mechanism(str_bytes("GSSAPI-NOPE"))
        });
    }
    for v in ends(ApiKey::SaslAuthenticate) {
        d.compare("authenticate", v, |_| {
            SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0admin\0admin-pw"))
        });
    }
    d.finish();
}

/// A SCRAM server-first message with the server's nonce part and salt replaced, so both
/// brokers' answers compare: `r=<client nonce>+<server>,s=<salt>,i=4096`.
fn server_first_shape(r: &mut SaslAuthenticateResponse) {
    let text = String::from_utf8_lossy(&r.auth_bytes).into_owned();
    let shape: Vec<String> = text
        .split(',')
        .map(|part| match part.split_once('=') {
            Some(("r", nonce))
                if nonce.starts_with(CLIENT_NONCE) && nonce.len() > CLIENT_NONCE.len() =>
            {
                "r=<client nonce>+<server>".to_owned()
            }
            Some(("s", _)) => "s=<salt>".to_owned(),
            _ => part.to_owned(),
        })
        .collect();
    r.auth_bytes = Bytes::from(shape.join(","));
}

fn handshake(mechanism: &str) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(str_bytes(mechanism))
}

fn authenticate(token: &[u8]) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token))
}

/// After a failed exchange: whether the connection still answers (both close it).
fn next_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
}

#[test]
fn sasl() {
    let mut d = Differential::start_sasl("sasl");
    d.use_sasl_listeners();
    for v in ends(ApiKey::SaslHandshake) {
        d.reconnect();
        d.compare("handshake-plain", v, |_| handshake("PLAIN"));
        d.compare("handshake-again", v, |_| handshake("PLAIN"));
        d.reconnect();
        d.compare("handshake-scram", v, |_| handshake("SCRAM-SHA-512"));
        d.reconnect();
        d.compare("handshake-unsupported", v, |_| handshake("GSSAPI"));
        d.compare("after-unsupported", 0, |_| next_request());
    }
    for v in ends(ApiKey::SaslAuthenticate) {
        d.reconnect();
        d.compare("authenticate-before-handshake", v, |_| {
            authenticate(b"\0alice\0alice-pw")
        });
        d.reconnect();
        d.compare("handshake", 1, |_| handshake("PLAIN"));
        d.compare("plain-good", v, |_| authenticate(b"\0alice\0alice-pw"));
        d.compare("after-good", 0, |_| next_request());
        d.compare("authenticate-again", v, |_| {
            authenticate(b"\0alice\0alice-pw")
        });
        d.reconnect();
        d.compare("handshake", 1, |_| handshake("PLAIN"));
        d.compare("plain-bad-password", v, |_| authenticate(b"\0alice\0wrong"));
        d.compare("after-bad-password", 0, |_| next_request());
        d.reconnect();
        d.compare("handshake", 1, |_| handshake("PLAIN"));
        d.compare("plain-unknown-user", v, |_| authenticate(b"\0nobody\0x"));
        d.reconnect();
        d.compare("handshake", 1, |_| handshake("PLAIN"));
        d.compare("plain-malformed", v, |_| authenticate(b"alice-pw"));
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            d.reconnect();
            d.compare("handshake", 1, |_| handshake(mechanism));
            let first = format!("n,,n=alice,r={CLIENT_NONCE}");
            d.compare_part(
                &format!("{mechanism}-client-first"),
                v,
                |_| authenticate(first.as_bytes()),
                server_first_shape,
            );
            d.compare(&format!("{mechanism}-bad-proof"), v, |_| {
                authenticate(format!("c=biws,r={CLIENT_NONCE}x,p=AAAA").as_bytes())
            });
        }
    }
    d.finish();
}

/// alice is authenticated but has no ACLs: both refuse her, topic by topic.
#[test]
fn unauthorized() {
    let mut d = Differential::start_sasl("unauthorized");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let group = d.topic("g");
    d.use_sasl_listeners();
    d.login("alice");
    let records = batch(&messages("u", 1, *T0));
    for v in ends(ApiKey::Produce) {
        d.compare("produce", v, |s| {
            produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, v)
        });
    }
    for v in ends(ApiKey::Metadata) {
        d.compare("metadata-topic", v, |_| {
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(&topic)))
                ]))
                .with_allow_auto_topic_creation(false)
        });
        // Every topic: alice may describe none, so the list is empty on both.
        d.compare("metadata-all", v, |_| {
            MetadataRequest::default()
                .with_topics(None)
                .with_allow_auto_topic_creation(false)
        });
    }
    // A topic named is refused, known or not (and listed after the others); listing every
    // topic leaves out what may not be described.
    let unknown = d.topic("unknown");
    let named = |names: &[&str]| {
        DescribeTopicPartitionsRequest::default().with_topics(
            names
                .iter()
                .map(|n| TopicRequest::default().with_name(topic_name(n)))
                .collect(),
        )
    };
    d.compare("describe-topic-partitions", 0, |_| {
        named(&[&unknown, &topic])
    });
    d.compare("describe-topic-partitions-all", 0, |_| named(&[]));
    d.compare("unregister-broker", 0, |_| {
        UnregisterBrokerRequest::default().with_broker_id(BrokerId(999))
    });
    // The quorum membership APIs need ALTER on the cluster too, checked before anything else.
    d.compare("add-raft-voter", 1, |_| {
        AddRaftVoterRequest::default()
            .with_voter_id(99)
            .with_voter_directory_id(uuid::Uuid::from_u128(99))
    });
    d.compare("remove-raft-voter", 0, |_| {
        RemoveRaftVoterRequest::default()
            .with_voter_id(99)
            .with_voter_directory_id(uuid::Uuid::from_u128(99))
    });
    d.compare("unregister-controller", 0, |_| {
        UnregisterControllerRequest::default().with_controller_id(99)
    });
    // Moving replicas between directories needs ALTER on the cluster.
    d.compare("alter-replica-log-dirs", 2, |_| {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(str_bytes("/anywhere"))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![0])])])
    });
    for v in ends(ApiKey::FindCoordinator) {
        d.compare("find-coordinator", v, |_| {
            let request = FindCoordinatorRequest::default().with_key_type(0);
            if v >= 4 {
                request.with_coordinator_keys(vec![str_bytes(&group)])
            } else {
                request.with_key(str_bytes(&group))
            }
        });
    }
    for v in ends(ApiKey::DescribeAcls) {
        d.compare("describe-acls", v, |_| describe(ANY, None, ANY, None));
    }
    d.finish();
}
