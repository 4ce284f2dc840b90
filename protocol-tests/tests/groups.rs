//! Consumer groups on the wire: coordinator lookup, the join/sync/heartbeat/leave protocol
//! with its fencing errors, static membership, committed offsets (surviving a restart)
//! and the operator APIs. Members that must wait for each other run on their own threads
//! and connections, as real consumers do.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
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
use samsa_protocol_tests::client::{create_topic, str_bytes, topic_name};
use samsa_protocol_tests::{BrokerProcess, Connection};

/// No initial rebalance delay and short sessions allowed, so tests run in seconds.
const CONFIG: &str = "group_initial_rebalance_delay_ms = 0\ngroup_min_session_timeout_ms = 100\n";
const SESSION_MS: i32 = 10_000;
const DEADLINE: Duration = Duration::from_secs(20);

fn code(e: E) -> i16 {
    e.code()
}

fn start() -> BrokerProcess {
    let broker = BrokerProcess::start(CONFIG).unwrap();
    wait_loaded(&broker);
    broker
}

/// Groups answer COORDINATOR_LOAD_IN_PROGRESS until the offsets topic is replayed.
fn wait_loaded(broker: &BrokerProcess) {
    samsa_protocol_tests::client::wait_groups_loaded(&mut broker.connect().unwrap()).unwrap();
}

fn join_request(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    session_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(str_bytes(member_id))
        .with_group_instance_id(instance.map(str_bytes))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

/// Joins, doing the MEMBER_ID_REQUIRED round first when the version calls for it.
fn join(
    conn: &mut Connection,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    version: i16,
) -> JoinGroupResponse {
    let mut r = conn
        .send(
            &join_request(group, member_id, instance, SESSION_MS),
            version,
        )
        .unwrap();
    if r.error_code == code(E::MemberIdRequired) {
        assert!(version >= 4 && member_id.is_empty() && instance.is_none());
        assert!(!r.member_id.is_empty());
        r = conn
            .send(
                &join_request(group, &r.member_id, instance, SESSION_MS),
                version,
            )
            .unwrap();
    }
    r
}

fn sync(
    conn: &mut Connection,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
    version: i16,
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    if version >= 5 {
        req = req
            .with_protocol_type(Some(str_bytes("consumer")))
            .with_protocol_name(Some(str_bytes("range")));
    }
    conn.send(&req, version).unwrap()
}

fn heartbeat(
    conn: &mut Connection,
    group: &str,
    generation: i32,
    member: &str,
    instance: Option<&str>,
    version: i16,
) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member))
        .with_group_instance_id(instance.map(str_bytes));
    conn.send(&req, version).unwrap().error_code
}

/// Heartbeats every 50 ms until the answer is `want`; fails after the deadline.
fn heartbeat_until(conn: &mut Connection, group: &str, generation: i32, member: &str, want: E) {
    let until = Instant::now() + DEADLINE;
    loop {
        let got = heartbeat(conn, group, generation, member, None, 4);
        if got == code(want) {
            return;
        }
        assert_eq!(got, 0, "unexpected heartbeat error");
        assert!(Instant::now() < until, "heartbeat never answered {want:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A single member group, stable, joined at the highest versions.
fn stable_alone(conn: &mut Connection, group: &str) -> (String, i32) {
    let joined = join(conn, group, "", None, 9);
    assert_eq!(joined.error_code, 0);
    let synced = sync(
        conn,
        group,
        joined.generation_id,
        &joined.member_id,
        &[(&joined.member_id, "all")],
        5,
    );
    assert_eq!(synced.error_code, 0);
    (joined.member_id.to_string(), joined.generation_id)
}

#[test]
fn find_coordinator_answers_this_broker_in_every_version() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    // The coordinator is this broker as Metadata describes it.
    let port = conn
        .send(&MetadataRequest::default().with_topics(Some(vec![])), 1)
        .unwrap()
        .brokers[0]
        .port;
    for version in 0..=3 {
        let r = conn
            .send(
                &FindCoordinatorRequest::default().with_key(str_bytes("g")),
                version,
            )
            .unwrap();
        assert_eq!(
            (r.error_code, r.node_id.0, r.port),
            (0, 1, port),
            "v{version}"
        );
        if version >= 1 {
            let txn = FindCoordinatorRequest::default()
                .with_key(str_bytes("t"))
                .with_key_type(1);
            let r = conn.send(&txn, version).unwrap();
            assert_eq!(
                (r.error_code, r.node_id.0, r.port),
                (0, 1, port),
                "transactions v{version}"
            );
        }
    }
    for version in 4..=6 {
        let req = FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![str_bytes("a"), str_bytes("b")]);
        let r = conn.send(&req, version).unwrap();
        let keys: Vec<_> = r
            .coordinators
            .iter()
            .map(|c| (c.key.to_string(), c.error_code, c.port))
            .collect();
        assert_eq!(
            keys,
            vec![("a".into(), 0, port), ("b".into(), 0, port)],
            "v{version}"
        );
        let r = conn.send(&req.with_key_type(1), version).unwrap();
        let keys: Vec<_> = r
            .coordinators
            .iter()
            .map(|c| (c.key.to_string(), c.error_code, c.port))
            .collect();
        assert_eq!(
            keys,
            vec![("a".into(), 0, port), ("b".into(), 0, port)],
            "transactions v{version}"
        );
    }
}

#[test]
fn one_member_round_trips_in_every_version() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    for version in 0..=9i16 {
        let group = format!("solo-v{version}");
        // v4+: an unknown member is first handed an id (KIP-394). An id handed out but not
        // used would hold the rebalance until it lapses, as in Kafka, so it is used here.
        let mut given = String::new();
        if version >= 4 {
            let r = conn
                .send(&join_request(&group, "", None, SESSION_MS), version)
                .unwrap();
            assert_eq!(r.error_code, code(E::MemberIdRequired), "v{version}");
            given = r.member_id.to_string();
        }
        let joined = join(&mut conn, &group, &given, None, version);
        assert_eq!(joined.error_code, 0, "join v{version}");
        assert_eq!(joined.leader, joined.member_id);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(
            joined.protocol_name.as_ref().map(|s| s.as_str()),
            Some("range")
        );
        assert_eq!(joined.members.len(), 1);
        let member = joined.member_id.to_string();
        let sync_v = version.min(5);
        let synced = sync(&mut conn, &group, 1, &member, &[(&member, "p0")], sync_v);
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (0, &b"p0"[..]),
            "sync v{sync_v}"
        );
        let hb_v = version.min(4);
        assert_eq!(
            heartbeat(&mut conn, &group, 1, &member, None, hb_v),
            0,
            "heartbeat v{hb_v}"
        );
        assert_eq!(
            heartbeat(&mut conn, &group, 0, &member, None, hb_v),
            code(E::IllegalGeneration)
        );
        assert_eq!(
            heartbeat(&mut conn, &group, 1, "nobody", None, hb_v),
            code(E::UnknownMemberId)
        );
        let leave_v = version.min(5);
        let req = if leave_v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(str_bytes(&member))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&group)))
                .with_member_id(str_bytes(&member))
        };
        let left = conn.send(&req, leave_v).unwrap();
        assert_eq!(left.error_code, 0, "leave v{leave_v}");
        assert!(left.members.iter().all(|m| m.error_code == 0));
        assert_eq!(
            heartbeat(&mut conn, &group, 1, &member, None, hb_v),
            code(E::UnknownMemberId)
        );
    }
}

#[test]
fn a_second_member_triggers_a_rebalance_and_gets_the_leaders_assignment() {
    let broker = start();
    let mut a = broker.connect().unwrap();
    let (a_id, generation) = stable_alone(&mut a, "pair");

    let addr = broker.addr.clone();
    let b = thread::spawn(move || -> Result<(JoinGroupResponse, SyncGroupResponse)> {
        let mut conn = Connection::open(&addr)?;
        let joined = join(&mut conn, "pair", "", None, 9);
        if joined.error_code != 0 {
            bail!("b join failed: {}", joined.error_code);
        }
        let synced = sync(
            &mut conn,
            "pair",
            joined.generation_id,
            &joined.member_id,
            &[],
            5,
        );
        Ok((joined, synced))
    });
    heartbeat_until(&mut a, "pair", generation, &a_id, E::RebalanceInProgress);
    // A member of the old generation may still commit; a sync of it is refused.
    assert_eq!(
        sync(&mut a, "pair", generation, &a_id, &[], 5).error_code,
        code(E::RebalanceInProgress)
    );

    let rejoined = join(&mut a, "pair", &a_id, None, 9);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.leader, str_bytes(&a_id));
    let members: Vec<String> = rejoined
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    assert_eq!(members.len(), 2);
    let b_id = members.iter().find(|m| **m != a_id).unwrap().clone();
    let synced = sync(
        &mut a,
        "pair",
        rejoined.generation_id,
        &a_id,
        &[(&a_id, "p0,p1"), (&b_id, "p2,p3")],
        5,
    );
    assert_eq!(&synced.assignment[..], b"p0,p1");

    let (b_joined, b_synced) = b.join().unwrap().unwrap();
    assert_eq!(b_joined.member_id, str_bytes(&b_id));
    assert!(
        b_joined.members.is_empty(),
        "only the leader sees the members"
    );
    assert_eq!(
        (b_synced.error_code, &b_synced.assignment[..]),
        (0, &b"p2,p3"[..])
    );
    assert_eq!(
        heartbeat(&mut a, "pair", generation, &a_id, None, 4),
        code(E::IllegalGeneration)
    );
    assert_eq!(heartbeat(&mut a, "pair", generation + 1, &a_id, None, 4), 0);
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_group_rebalances() {
    let broker = start();
    let group = "expiry";
    let mut a = broker.connect().unwrap();
    let mut b = broker.connect().unwrap();
    // a joins first and becomes leader; b (short session) joins; both rejoin the rebalance.
    let (a_id, _) = stable_alone(&mut a, group);
    let addr = broker.addr.clone();
    let b_thread = thread::spawn(move || {
        let mut conn = Connection::open(&addr).unwrap();
        let r = conn
            .send(&join_request("expiry", "", None, 600), 3)
            .unwrap();
        (r.member_id.to_string(), r.generation_id)
    });
    heartbeat_until(&mut a, group, 1, &a_id, E::RebalanceInProgress);
    let joined = join(&mut a, group, &a_id, None, 9);
    let (b_id, generation) = b_thread.join().unwrap();
    assert_eq!(generation, 2);
    assert_eq!(joined.members.len(), 2);
    assert_eq!(sync(&mut a, group, 2, &a_id, &[], 5).error_code, 0);
    assert_eq!(sync(&mut b, group, 2, &b_id, &[], 3).error_code, 0);

    // b goes silent; within its 600 ms session the coordinator drops it and rebalances.
    heartbeat_until(&mut a, group, 2, &a_id, E::RebalanceInProgress);
    assert_eq!(
        heartbeat(&mut b, group, 2, &b_id, None, 4),
        code(E::UnknownMemberId)
    );
    let alone = join(&mut a, group, &a_id, None, 9);
    assert_eq!((alone.generation_id, alone.members.len()), (3, 1));
}

#[test]
fn static_members_replace_their_old_incarnation_which_is_fenced() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let group = "static";
    for version in [5i16, 9] {
        let first = join(&mut conn, group, "", Some("instance-1"), version);
        assert_eq!(first.error_code, 0, "v{version}");
        assert_eq!(
            first.members[0]
                .group_instance_id
                .as_ref()
                .map(|s| s.as_str()),
            Some("instance-1")
        );
        let synced = sync(
            &mut conn,
            group,
            first.generation_id,
            &first.member_id,
            &[(&first.member_id, "mine")],
            5,
        );
        assert_eq!(synced.error_code, 0);

        // The same instance restarts: a new member id, no rebalance, the old id is fenced.
        let second = join(&mut conn, group, "", Some("instance-1"), version);
        assert_eq!(second.error_code, 0);
        assert_ne!(second.member_id, first.member_id);
        assert_eq!(second.generation_id, first.generation_id);
        assert_eq!(
            heartbeat(
                &mut conn,
                group,
                first.generation_id,
                &first.member_id,
                Some("instance-1"),
                4
            ),
            code(E::FencedInstanceId)
        );
        let again = sync(
            &mut conn,
            group,
            second.generation_id,
            &second.member_id,
            &[],
            5,
        );
        assert_eq!(&again.assignment[..], b"mine");

        // Batched leave (v3+): one known static member, one stranger.
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_members(vec![
                MemberIdentity::default()
                    .with_member_id(str_bytes(&first.member_id))
                    .with_group_instance_id(Some(str_bytes("instance-1"))),
                MemberIdentity::default().with_group_instance_id(Some(str_bytes("instance-1"))),
                MemberIdentity::default().with_member_id(str_bytes("stranger")),
            ]);
        {
            let leave_v = if version == 5 { 3 } else { 5 };
            let left = conn.send(&req, leave_v).unwrap();
            let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
            assert_eq!(
                codes,
                vec![code(E::FencedInstanceId), 0, code(E::UnknownMemberId)],
                "leave v{leave_v}"
            );
        }
    }
}

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_metadata(Some(str_bytes("meta")))
                    })
                    .collect(),
            )])
}

fn commit_codes(conn: &mut Connection, req: &OffsetCommitRequest, version: i16) -> Vec<i16> {
    let r = conn.send(req, version).unwrap();
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// Committed offsets of (group, topic, partitions) through OffsetFetch at `version`.
fn fetch_offsets(
    conn: &mut Connection,
    group: &str,
    topic: &str,
    partitions: &[i32],
    version: i16,
) -> Vec<i64> {
    if version >= 8 {
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec())]))]);
        let r = conn.send(&req, version).unwrap();
        assert_eq!(r.groups[0].error_code, 0);
        return r.groups[0].topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect();
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let r = conn.send(&req, version).unwrap();
    assert_eq!(r.error_code, 0);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

#[test]
fn committed_offsets_round_trip_and_survive_a_restart() {
    let mut broker = start();
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "orders", 3, &[]).unwrap();

    // Simple (non-member) commits in every version, read back in every version.
    for version in 2..=9i16 {
        let req = commit_request(
            "simple",
            -1,
            "",
            "orders",
            &[(0, 10 + i64::from(version)), (1, 20)],
        );
        assert_eq!(
            commit_codes(&mut conn, &req, version),
            vec![0, 0],
            "commit v{version}"
        );
    }
    for version in 1..=9i16 {
        assert_eq!(
            fetch_offsets(&mut conn, "simple", "orders", &[0, 1, 2], version),
            vec![19, 20, -1],
            "fetch v{version}"
        );
    }
    let unknown = commit_request("simple", -1, "", "no-such-topic", &[(0, 1)]);
    assert_eq!(
        commit_codes(&mut conn, &unknown, 9),
        vec![code(E::UnknownTopicOrPartition)]
    );

    // A member commits within its generation only.
    let (member, generation) = stable_alone(&mut conn, "members");
    let good = commit_request("members", generation, &member, "orders", &[(2, 7)]);
    assert_eq!(commit_codes(&mut conn, &good, 9), vec![0]);
    let stale = commit_request("members", generation - 1, &member, "orders", &[(2, 8)]);
    assert_eq!(
        commit_codes(&mut conn, &stale, 9),
        vec![code(E::IllegalGeneration)]
    );
    let stranger = commit_request("members", generation, "stranger", "orders", &[(2, 8)]);
    assert_eq!(
        commit_codes(&mut conn, &stranger, 2),
        vec![code(E::UnknownMemberId)]
    );
    let simple = commit_request("members", -1, "", "orders", &[(2, 8)]);
    assert_eq!(
        commit_codes(&mut conn, &simple, 9),
        vec![code(E::UnknownMemberId)]
    );

    // v8+: several groups in one request, all topics of each.
    let multi = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("simple")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("members")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("nobody")))
            .with_topics(None),
    ]);
    for version in [8i16, 9] {
        let r = conn.send(&multi, version).unwrap();
        let summary: Vec<(String, Vec<(i32, i64)>)> = r
            .groups
            .iter()
            .map(|g| {
                let offsets = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (p.partition_index, p.committed_offset))
                    })
                    .collect();
                (g.group_id.to_string(), offsets)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("simple".into(), vec![(0, 19), (1, 20)]),
                ("members".into(), vec![(2, 7)]),
                ("nobody".into(), vec![]),
            ]
        );
    }

    broker.restart().unwrap();
    wait_loaded(&broker);
    let mut conn = broker.connect().unwrap();
    assert_eq!(
        fetch_offsets(&mut conn, "simple", "orders", &[0, 1, 2], 9),
        vec![19, 20, -1]
    );
    assert_eq!(
        fetch_offsets(&mut conn, "members", "orders", &[2], 5),
        vec![7]
    );
    // The member itself came back with the group: it carries on in its generation.
    assert_eq!(
        heartbeat(&mut conn, "members", generation, &member, None, 4),
        0
    );
}

#[test]
fn describe_list_and_delete_groups() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "events", 2, &[]).unwrap();
    let (member, _) = stable_alone(&mut conn, "busy");
    let simple = commit_request("idle", -1, "", "events", &[(0, 5), (1, 6)]);
    assert_eq!(commit_codes(&mut conn, &simple, 9), vec![0, 0]);

    for version in 0..=6i16 {
        let req = DescribeGroupsRequest::default().with_groups(vec![
            GroupId(str_bytes("busy")),
            GroupId(str_bytes("ghost")),
        ]);
        let r = conn.send(&req, version).unwrap();
        let busy = &r.groups[0];
        assert_eq!(
            (busy.error_code, busy.group_state.as_str()),
            (0, "Stable"),
            "v{version}"
        );
        assert_eq!(
            (busy.protocol_type.as_str(), busy.protocol_data.as_str()),
            ("consumer", "range")
        );
        assert_eq!(busy.members.len(), 1);
        assert_eq!(busy.members[0].member_id, str_bytes(&member));
        assert_eq!(busy.members[0].client_id.as_str(), "protocol-tests");
        assert_eq!(&busy.members[0].member_assignment[..], b"all");
        let ghost = &r.groups[1];
        let want = if version >= 6 {
            code(E::GroupIdNotFound)
        } else {
            0
        };
        assert_eq!(
            (ghost.error_code, ghost.group_state.as_str()),
            (want, "Dead"),
            "v{version}"
        );
    }

    for version in 0..=5i16 {
        let r = conn.send(&ListGroupsRequest::default(), version).unwrap();
        let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, vec!["busy", "idle"], "v{version}");
        if version >= 4 {
            let stable = ListGroupsRequest::default().with_states_filter(vec![str_bytes("Stable")]);
            let r = conn.send(&stable, version).unwrap();
            let listed: Vec<(String, String)> = r
                .groups
                .iter()
                .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
                .collect();
            assert_eq!(listed, vec![("busy".to_owned(), "Stable".to_owned())]);
            let empty = ListGroupsRequest::default().with_states_filter(vec![str_bytes("empty")]);
            let r = conn.send(&empty, version).unwrap();
            assert_eq!(r.groups.len(), 1);
            assert_eq!(r.groups[0].group_id.as_str(), "idle");
        }
    }

    // OffsetDelete: an empty group's offsets may go, partition by partition.
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str_bytes("idle")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name("events"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let r = conn.send(&req, 0).unwrap();
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(
        fetch_offsets(&mut conn, "idle", "events", &[0, 1], 9),
        vec![-1, 6]
    );
    let r = conn
        .send(&req.clone().with_group_id(GroupId(str_bytes("ghost"))), 0)
        .unwrap();
    assert_eq!(r.error_code, code(E::GroupIdNotFound));

    for version in 0..=2i16 {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![
            GroupId(str_bytes("busy")),
            GroupId(str_bytes("ghost")),
        ]);
        let r = conn.send(&req, version).unwrap();
        let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
        assert_eq!(
            codes,
            vec![code(E::NonEmptyGroup), code(E::GroupIdNotFound)],
            "v{version}"
        );
    }
    let r = conn
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("idle"))]),
            2,
        )
        .unwrap();
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(
        fetch_offsets(&mut conn, "idle", "events", &[1], 9),
        vec![-1]
    );
    let r = conn.send(&ListGroupsRequest::default(), 5).unwrap();
    assert_eq!(r.groups.len(), 1);
}

#[test]
fn the_offsets_topic_is_internal_in_metadata() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let listed = |conn: &mut Connection| {
        let r = conn
            .send(&MetadataRequest::default().with_topics(None), 1)
            .unwrap();
        r.topics.iter().any(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "__consumer_offsets")
        })
    };
    // As in Kafka, the topic appears once a group first stores something.
    assert!(!listed(&mut conn));
    create_topic(&mut conn, "t", 1, &[]).unwrap();
    assert_eq!(
        commit_codes(&mut conn, &commit_request("g", -1, "", "t", &[(0, 1)]), 9),
        vec![0]
    );
    assert!(listed(&mut conn));
    for version in [1i16, 12] {
        let r = conn
            .send(&MetadataRequest::default().with_topics(None), version)
            .unwrap();
        let offsets = r
            .topics
            .iter()
            .find(|t| {
                t.name
                    .as_ref()
                    .is_some_and(|n| n.as_str() == "__consumer_offsets")
            })
            .expect("listed");
        assert!(offsets.is_internal, "v{version}");
    }
    let r = conn
        .send(&MetadataRequest::default().with_topics(None), 0)
        .unwrap();
    assert!(r.topics.iter().any(|t| t
        .name
        .as_ref()
        .is_some_and(|n| n.as_str() == "__consumer_offsets")));
}
