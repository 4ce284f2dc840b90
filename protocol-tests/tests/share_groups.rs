//! Share groups (KIP-932) on the group coordinator: ShareGroupHeartbeat and
//! ShareGroupDescribe follow the finalized `share.version` (UNSUPPORTED_VERSION at 0, as
//! Kafka 4.4 answers), members are assigned a topic's partitions once their share state is
//! initialized, share group ids are refused by the other group APIs with Kafka's errors, a
//! share group is deleted only when empty, and it survives a restart.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{
    create_topic, set_share_version, str_bytes, topic_name, wait_groups_loaded,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

fn join(group: &str, member: &str) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![topic_name("queue")]))
}

fn beat(group: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
}

fn describe(conn: &mut Connection, group: &str) -> share_group_describe_response::DescribedGroup {
    let request =
        ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))]);
    conn.send(&request, 1).unwrap().groups.remove(0)
}

fn partitions(answer: &ShareGroupHeartbeatResponse) -> Option<Vec<i32>> {
    answer.assignment.as_ref().map(|a| {
        let mut ps: Vec<i32> = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect();
        ps.sort();
        ps
    })
}

/// Heartbeats as `member` until its assignment holds `count` partitions; the last answer.
fn beat_until(
    conn: &mut Connection,
    member: &str,
    mut epoch: i32,
    count: usize,
) -> ShareGroupHeartbeatResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = 0;
    loop {
        let answer = conn.send(&beat("g", member, epoch), 1).unwrap();
        assert_eq!(answer.error_code, 0, "{answer:?}");
        epoch = answer.member_epoch;
        if let Some(ps) = partitions(&answer) {
            held = ps.len();
        }
        if held == count {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "not assigned {count}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn share_group_apis_follow_the_finalized_share_version() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    // A new cluster has them on (share.version 2, as Kafka 4.4's); an operator turns them off.
    set_share_version(&mut conn, 0).unwrap();
    let answer = conn.send(&join("g", "m1"), 1).unwrap();
    assert_eq!(
        answer.error_code,
        E::UnsupportedVersion.code(),
        "{answer:?}"
    );
    assert_eq!(
        answer.error_message.as_deref(),
        Some("The version of API is not supported.")
    );
    assert_eq!(
        describe(&mut conn, "g").error_code,
        E::UnsupportedVersion.code()
    );
    set_share_version(&mut conn, 2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = conn.send(&join("g", "m1"), 1).unwrap();
        if answer.error_code == 0 {
            assert_eq!(answer.member_epoch, 2, "{answer:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not served: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn members_share_a_topics_partitions_and_leave() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    set_share_version(&mut conn, 2).unwrap();
    create_topic(&mut conn, "queue", 3, &[]).unwrap();

    // Bad first heartbeats, answered as Kafka does (a bad member id by the code alone).
    let no_topics = join("g", "m1").with_subscribed_topic_names(None);
    let answer = conn.send(&no_topics, 1).unwrap();
    assert_eq!(answer.error_code, E::InvalidRequest.code(), "{answer:?}");
    let answer = conn.send(&join("g", ""), 1).unwrap();
    assert_eq!(answer.error_code, E::InvalidRequest.code(), "{answer:?}");
    assert_eq!(answer.error_message, None);
    let answer = conn.send(&beat("nobody", "m1", 1), 1).unwrap();
    assert_eq!(answer.error_code, E::GroupIdNotFound.code(), "{answer:?}");

    // The first heartbeat joins with nothing assigned: the partitions' share state is made
    // first, and the next heartbeat brings them.
    let joined = conn.send(&join("g", "m1"), 1).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.member_epoch, 2);
    assert_eq!(joined.heartbeat_interval_ms, 5000);
    assert_eq!(partitions(&joined), Some(vec![]));
    let m1 = beat_until(&mut conn, "m1", 2, 3);
    assert_eq!(partitions(&m1), Some(vec![0, 1, 2]));

    let answer = conn.send(&beat("g", "m1", m1.member_epoch + 1), 1).unwrap();
    assert_eq!(answer.error_code, E::FencedMemberEpoch.code(), "{answer:?}");
    let answer = conn.send(&beat("g", "stranger", 2), 1).unwrap();
    assert_eq!(answer.error_code, E::UnknownMemberId.code(), "{answer:?}");

    // A second member: once the next target is computed (at most once a second, Kafka's
    // group.share.assignment.interval.ms), the three partitions are split between the two.
    let joined = conn.send(&join("g", "m2"), 1).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let (mut epochs, mut held) = (
        [m1.member_epoch, joined.member_epoch],
        [vec![0, 1, 2], vec![]],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while held[1].is_empty() || held[0].len() + held[1].len() != 3 {
        assert!(Instant::now() < deadline, "not split: {held:?}");
        std::thread::sleep(Duration::from_millis(100));
        for (i, member) in ["m1", "m2"].into_iter().enumerate() {
            let answer = conn.send(&beat("g", member, epochs[i]), 1).unwrap();
            assert_eq!(answer.error_code, 0, "{answer:?}");
            epochs[i] = answer.member_epoch;
            if let Some(ps) = partitions(&answer) {
                held[i] = ps;
            }
        }
    }
    let mut all = held.concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2]);

    let described = describe(&mut conn, "g");
    assert_eq!(described.error_code, 0, "{described:?}");
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.assignor_name.as_str(), "simple");
    assert_eq!(described.members.len(), 2);

    // Listed with its type; other group APIs refuse its id as Kafka does.
    let listed = conn
        .send(
            &ListGroupsRequest::default().with_types_filter(vec![str_bytes("share")]),
            5,
        )
        .unwrap();
    let group = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "g")
        .unwrap();
    assert_eq!(group.group_type.as_str(), "share");
    assert_eq!(group.protocol_type.as_str(), "share");
    assert_eq!(group.group_state.as_str(), "Stable");
    let consumer = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_member_id(str_bytes("c1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic_name("queue")]))
        .with_topic_partitions(Some(vec![]));
    let answer = conn.send(&consumer, 0).unwrap();
    assert_eq!(answer.error_code, E::GroupIdNotFound.code(), "{answer:?}");
    // A share group holds no offsets: Kafka answers OffsetFetch with none.
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(None);
    let answer = conn.send(&fetch, 7).unwrap();
    assert_eq!(
        (answer.error_code, answer.topics.len()),
        (0, 0),
        "{answer:?}"
    );
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("g"))]);
    let answer = conn.send(&delete, 2).unwrap();
    assert_eq!(
        answer.results[0].error_code,
        E::NonEmptyGroup.code(),
        "{answer:?}"
    );

    // Both leave; the empty group may then be deleted.
    for member in ["m1", "m2"] {
        let left = conn.send(&beat("g", member, -1), 1).unwrap();
        assert_eq!(left.error_code, 0, "{left:?}");
        assert_eq!(left.member_epoch, -1);
    }
    assert_eq!(describe(&mut conn, "g").group_state.as_str(), "Empty");
    let answer = conn.send(&delete, 2).unwrap();
    assert_eq!(answer.results[0].error_code, 0, "{answer:?}");
    let gone = describe(&mut conn, "g");
    assert_eq!(gone.error_code, E::GroupIdNotFound.code(), "{gone:?}");
}

#[test]
fn a_share_group_survives_a_restart() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    set_share_version(&mut conn, 2).unwrap();
    create_topic(&mut conn, "queue", 2, &[]).unwrap();
    let joined = conn.send(&join("g", "m1"), 1).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let assigned = beat_until(&mut conn, "m1", joined.member_epoch, 2);
    let before = describe(&mut conn, "g");

    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    let after = describe(&mut conn, "g");
    assert_eq!(after.error_code, 0, "{after:?}");
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.members, before.members);
    let answer = conn
        .send(&beat("g", "m1", assigned.member_epoch), 1)
        .unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(answer.member_epoch, assigned.member_epoch);
}
