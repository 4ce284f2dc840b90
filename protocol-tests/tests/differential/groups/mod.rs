//! Consumer groups: coordinator lookup and the classic join/sync/heartbeat/leave protocol
//! with its errors; committed offsets and the operator APIs are in `offsets`.
//!
//! Every group has one member, so each step is answered at once and both brokers can be
//! driven in lockstep over one connection each. Member ids and generations are each
//! broker's own: a step's answers give both, and the next request uses each side's value.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{produce_request, str_bytes, topic_name, TopicRef};
use samsa_protocol_tests::differential::{Answer, Differential, Side};

use crate::{ends, T0, UNKNOWN};

mod consumer;
mod offsets;
pub(crate) mod share;
mod streams;
mod streams_topology;

const SESSION_MS: i32 = 30_000;
/// Kafka's default `group.min.session.timeout.ms` and `group.max.session.timeout.ms`,
/// which the differential samsa is configured with too.
const MIN_SESSION_MS: i32 = 6_000;
const MAX_SESSION_MS: i32 = 1_800_000;
const OFFSETS_TOPIC: &str = "__consumer_offsets";
const PROTOCOL: &str = "range";

/// A value each broker chose for itself (a member id, a generation).
#[derive(Default)]
struct Both<T> {
    samsa: T,
    kafka: T,
}

impl<T> Both<T> {
    fn of(&self, side: &Side) -> &T {
        if side.name == "samsa" {
            &self.samsa
        } else {
            &self.kafka
        }
    }
}

fn both<R, T: Default>(answers: &(Answer<R>, Answer<R>), f: impl Fn(&R) -> T) -> Both<T> {
    Both {
        samsa: answers.0.response().map(&f).unwrap_or_default(),
        kafka: answers.1.response().map(&f).unwrap_or_default(),
    }
}

/// One member of a group, as each broker knows it.
#[derive(Default)]
struct Member {
    id: Both<String>,
    generation: Both<i32>,
}

fn group_id(name: &str) -> GroupId {
    GroupId(str_bytes(name))
}

/// A consumer's subscription as the Java client encodes it (ConsumerProtocolSubscription v0).
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect())
        .encode(&mut buf, 0)
        .unwrap();
    buf.freeze()
}

/// A JoinGroup as a consumer of `topics` sends it, with the fields `version` has.
fn join_request(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    protocol_type: &str,
    session_ms: i32,
    topics: &[&str],
    version: i16,
) -> JoinGroupRequest {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(session_ms)
        .with_member_id(str_bytes(member_id))
        .with_protocol_type(str_bytes(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes(PROTOCOL))
            .with_metadata(subscription(topics))]);
    let request = if version >= 1 {
        request.with_rebalance_timeout_ms(SESSION_MS)
    } else {
        request
    };
    if version >= 5 {
        request.with_group_instance_id(instance.map(str_bytes))
    } else {
        request
    }
}

/// Joins a new consumer of `topics` to `group` (from v4 a dynamic member first gets
/// MEMBER_ID_REQUIRED), comparing each step under `case`.
fn join(
    d: &mut Differential,
    case: &str,
    v: i16,
    group: &str,
    instance: Option<&str>,
    topics: &[&str],
) -> Member {
    let mut given = Both::<String>::default();
    if v >= 4 && instance.is_none() {
        let answers = d.compare(&format!("{case}-member-id-required"), v, |_| {
            join_request(group, "", None, "consumer", SESSION_MS, topics, v)
        });
        given = both(&answers, |r| r.member_id.to_string());
    }
    let answers = d.compare(case, v, |s| {
        join_request(
            group,
            given.of(s),
            instance,
            "consumer",
            SESSION_MS,
            topics,
            v,
        )
    });
    Member {
        id: both(&answers, |r| r.member_id.to_string()),
        generation: both(&answers, |r| r.generation_id),
    }
}

fn sync_request(
    group: &str,
    member: &str,
    generation: i32,
    instance: Option<&str>,
    assignment: Option<&[u8]>,
    version: i16,
) -> SyncGroupRequest {
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member))
        .with_assignments(
            assignment
                .map(|a| {
                    vec![SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(member))
                        .with_assignment(Bytes::copy_from_slice(a))]
                })
                .unwrap_or_default(),
        );
    let request = if version >= 3 {
        request.with_group_instance_id(instance.map(str_bytes))
    } else {
        request
    };
    if version >= 5 {
        request
            .with_protocol_type(Some(str_bytes("consumer")))
            .with_protocol_name(Some(str_bytes(PROTOCOL)))
    } else {
        request
    }
}

/// Joins a consumer of `topics` and syncs it as the group's leader: the group is Stable.
fn stable_member(
    d: &mut Differential,
    case: &str,
    v: i16,
    group: &str,
    instance: Option<&str>,
    topics: &[&str],
) -> Member {
    let member = join(d, &format!("{case}-join"), v, group, instance, topics);
    // The SyncGroup of the same era: v5 goes with JoinGroup v9, v0 with v0.
    let sync_version = if v >= 5 { 5 } else { 0 };
    d.compare(&format!("{case}-sync"), sync_version, |s| {
        sync_request(
            group,
            member.id.of(s),
            *member.generation.of(s),
            instance,
            Some(b"assignment"),
            sync_version,
        )
    });
    member
}

fn describe(groups: &[&str], version: i16) -> DescribeGroupsRequest {
    let request =
        DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| group_id(g)).collect());
    if version >= 3 {
        request.with_include_authorized_operations(true)
    } else {
        request
    }
}

#[test]
fn find_coordinator() {
    let mut d = Differential::start("find_coordinator");
    let (g1, g2) = (d.topic("g1"), d.topic("g2"));
    d.await_group_coordinator(&g1).unwrap();
    d.await_transaction_coordinator("txn").unwrap();
    // v3 is the last with a single key, v4 the first with batches.
    for v in ends(ApiKey::FindCoordinator).into_iter().chain([3, 4]) {
        let single = |key: &str, key_type: i8| {
            let request = FindCoordinatorRequest::default().with_key(str_bytes(key));
            if v >= 1 {
                request.with_key_type(key_type)
            } else {
                request
            }
        };
        let batched = |keys: &[&str], key_type: i8| {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(keys.iter().map(|k| str_bytes(k)).collect())
        };
        if v < 4 {
            d.compare("group", v, |_| single(&g1, 0));
            if v >= 1 {
                d.compare("transaction", v, |_| single("txn", 1));
            }
        } else {
            d.compare("group", v, |_| batched(&[&g1], 0));
            d.compare("several-groups", v, |_| batched(&[&g1, &g2], 0));
            d.compare("transaction", v, |_| batched(&["txn"], 1));
        }
    }
    d.finish();
}

#[test]
fn join_group() {
    let mut d = Differential::start("join_group");
    for v in ends(ApiKey::JoinGroup) {
        let group = d.topic(&format!("g-v{v}"));
        d.await_group_coordinator(&group).unwrap();
        // Leader of generation 1, with itself as the only member.
        let member = join(&mut d, "first-member", v, &group, None, &["t"]);
        d.compare("unknown-member-id", v, |_| {
            join_request(
                &group,
                "no-such-member",
                None,
                "consumer",
                SESSION_MS,
                &["t"],
                v,
            )
        });
        let fresh = d.topic(&format!("fresh-v{v}"));
        d.compare("unknown-member-id-new-group", v, |_| {
            join_request(
                &fresh,
                "no-such-member",
                None,
                "consumer",
                SESSION_MS,
                &["t"],
                v,
            )
        });
        d.compare("inconsistent-protocol-type", v, |_| {
            join_request(&group, "", None, "connect", SESSION_MS, &["t"], v)
        });
        d.compare("session-timeout-too-small", v, |_| {
            join_request(&group, "", None, "consumer", MIN_SESSION_MS - 1, &["t"], v)
        });
        d.compare("session-timeout-too-large", v, |_| {
            join_request(&group, "", None, "consumer", MAX_SESSION_MS + 1, &["t"], v)
        });
        // The leader of a group waiting for its assignment joins again, unchanged.
        d.compare("rejoin-unchanged", v, |s| {
            join_request(
                &group,
                member.id.of(s),
                None,
                "consumer",
                SESSION_MS,
                &["t"],
                v,
            )
        });
        if v >= 5 {
            let stat = d.topic(&format!("static-v{v}"));
            d.await_group_coordinator(&stat).unwrap();
            let first = stable_member(&mut d, "static", v, &stat, Some("instance-a"), &["t"]);
            // A new process of the same instance: a new member id, the old one fenced.
            d.compare("static-rejoin", v, |_| {
                join_request(
                    &stat,
                    "",
                    Some("instance-a"),
                    "consumer",
                    SESSION_MS,
                    &["t"],
                    v,
                )
            });
            d.compare("static-old-id-fenced", v, |s| {
                join_request(
                    &stat,
                    first.id.of(s),
                    Some("instance-a"),
                    "consumer",
                    SESSION_MS,
                    &["t"],
                    v,
                )
            });
        }
    }
    d.finish();
}

#[test]
fn sync_group() {
    let mut d = Differential::start("sync_group");
    for v in ends(ApiKey::SyncGroup) {
        let group = d.topic(&format!("g-v{v}"));
        d.await_group_coordinator(&group).unwrap();
        let join_version = if v >= 5 { 9 } else { 0 };
        let member = join(&mut d, "join", join_version, &group, None, &["t"]);
        let sync = |s: &Side, member_id: Option<&str>, generation: i32| {
            let id = member_id.unwrap_or(member.id.of(s));
            sync_request(&group, id, generation, None, Some(b"assignment"), v)
        };
        d.compare("wrong-generation", v, |s| {
            sync(s, None, member.generation.of(s) + 1)
        });
        d.compare("unknown-member", v, |s| {
            sync(s, Some("no-such-member"), *member.generation.of(s))
        });
        if v >= 5 {
            d.compare("protocol-type-mismatch", v, |s| {
                sync(s, None, *member.generation.of(s))
                    .with_protocol_type(Some(str_bytes("connect")))
            });
            d.compare("protocol-name-mismatch", v, |s| {
                sync(s, None, *member.generation.of(s))
                    .with_protocol_name(Some(str_bytes("roundrobin")))
            });
        }
        d.compare("leader-assignment", v, |s| {
            sync(s, None, *member.generation.of(s))
        });
        d.compare("after-stable", v, |s| {
            sync(s, None, *member.generation.of(s))
        });
        let unknown = d.topic(&format!("unknown-v{v}"));
        d.compare("unknown-group", v, |_| {
            sync_request(&unknown, "no-such-member", 1, None, None, v)
        });
    }
    d.finish();
}

#[test]
fn heartbeat() {
    let mut d = Differential::start("heartbeat");
    for v in ends(ApiKey::Heartbeat) {
        let group = d.topic(&format!("g-v{v}"));
        d.await_group_coordinator(&group).unwrap();
        let member = stable_member(
            &mut d,
            "member",
            if v >= 4 { 9 } else { 0 },
            &group,
            None,
            &["t"],
        );
        let beat = |g: &str, member_id: &str, generation: i32| {
            HeartbeatRequest::default()
                .with_group_id(group_id(g))
                .with_member_id(str_bytes(member_id))
                .with_generation_id(generation)
        };
        d.compare("ok", v, |s| {
            beat(&group, member.id.of(s), *member.generation.of(s))
        });
        d.compare("stale-generation", v, |s| {
            beat(&group, member.id.of(s), member.generation.of(s) - 1)
        });
        d.compare("future-generation", v, |s| {
            beat(&group, member.id.of(s), member.generation.of(s) + 1)
        });
        d.compare("unknown-member", v, |s| {
            beat(&group, "no-such-member", *member.generation.of(s))
        });
        let unknown = d.topic(&format!("unknown-v{v}"));
        d.compare("unknown-group", v, |_| beat(&unknown, "no-such-member", 1));
    }
    d.finish();
}

#[test]
fn leave_group() {
    let mut d = Differential::start("leave_group");
    for v in ends(ApiKey::LeaveGroup) {
        let group = d.topic(&format!("g-v{v}"));
        d.await_group_coordinator(&group).unwrap();
        let join_version = if v >= 3 { 9 } else { 0 };
        let member = stable_member(&mut d, "member", join_version, &group, None, &["t"]);
        let leave = |g: &str, ids: &[&str]| {
            let request = LeaveGroupRequest::default().with_group_id(group_id(g));
            if v >= 3 {
                request.with_members(
                    ids.iter()
                        .map(|id| MemberIdentity::default().with_member_id(str_bytes(id)))
                        .collect(),
                )
            } else {
                request.with_member_id(str_bytes(ids[0]))
            }
        };
        if v >= 3 {
            d.compare("member-and-unknown", v, |s| {
                leave(&group, &[member.id.of(s), "no-such-member"])
            });
        } else {
            d.compare("unknown-member", v, |_| leave(&group, &["no-such-member"]));
            d.compare("member", v, |s| leave(&group, &[member.id.of(s)]));
        }
        d.compare("left-twice", v, |s| leave(&group, &[member.id.of(s)]));
        let unknown = d.topic(&format!("unknown-v{v}"));
        d.compare("unknown-group", v, |_| leave(&unknown, &["no-such-member"]));
        d.compare(&format!("describe-after-leave-v{v}"), 5, |_| {
            describe(&[&group], 5)
        });
    }
    d.finish();
}
