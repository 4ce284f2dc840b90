//! Classic members inside a consumer group: the online upgrade's members, a classic member
//! joining, revoking before its partitions move, the heartbeat's REBALANCE_IN_PROGRESS, the
//! generation checks, the join and sync deadlines, leaving and commits.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::classic::{decode_assignment, ClassicJoin, ClassicSource};
use super::tests::settings;
use super::*;
use crate::error::BrokerError;

const TOPIC: u8 = 7;

fn image() -> TopicImage {
    let meta = TopicMeta {
        id: Uuid::from_bytes([TOPIC; 16]),
        partitions: 4,
    };
    [("t".to_owned(), meta)].into_iter().collect()
}

fn partitions(list: &[i32]) -> Assignment {
    [(
        Uuid::from_bytes([TOPIC; 16]),
        list.iter().copied().collect(),
    )]
    .into_iter()
    .collect()
}

fn subscription(owned: &[i32]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .with_owned_partitions(vec![OwnedTopic::default()
            .with_topic(StrBytes::from_static_str("t").into())
            .with_partitions(owned.to_vec())]);
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn assignment_bytes(list: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedTopic::default()
            .with_topic(StrBytes::from_static_str("t").into())
            .with_partitions(list.to_vec()),
    ]);
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    a.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn decoded(bytes: &Bytes) -> Vec<i32> {
    let mut buf = bytes.slice(2..);
    let a = ConsumerProtocolAssignment::decode(&mut buf, 1).unwrap();
    a.assigned_partitions
        .into_iter()
        .flat_map(|t| t.partitions)
        .collect()
}

fn source(id: &str, assigned: &[i32]) -> ClassicSource {
    ClassicSource {
        member_id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocols: vec![("range".into(), subscription(assigned))],
        assignment: assignment_bytes(assigned),
    }
}

fn rejoin(id: &str, owned: &[i32]) -> ClassicJoin {
    ClassicJoin {
        member_id: id.into(),
        instance_id: None,
        protocols: vec![("range".into(), subscription(owned))],
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        client_id: "c".into(),
        client_host: "/h".into(),
    }
}

/// The first heartbeat of a consumer-protocol member "c" subscribing to "t".
fn consumer_member_joins() -> Heartbeat {
    Heartbeat {
        member_id: "c".into(),
        member_epoch: 0,
        rebalance_timeout_ms: Some(30_000),
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

/// A classic group at generation 3 whose two members own two partitions each.
fn upgraded(now: Instant) -> ConsumerGroup {
    let sources = vec![source("a", &[0, 1]), source("b", &[2, 3])];
    ConsumerGroup::from_classic("g", 3, Some("range"), sources, &image(), now).unwrap()
}

#[test]
fn an_upgraded_group_keeps_its_classic_members_stable_at_the_generation() {
    let now = Instant::now();
    let group = upgraded(now);
    assert_eq!(group.group_epoch, 3);
    assert_eq!(group.assignment_epoch, 3);
    assert_eq!(group.state(), ConsumerGroupState::Stable);
    let a = &group.members["a"];
    assert_eq!((a.epoch, a.previous_epoch), (3, 3));
    assert_eq!(a.assigned, partitions(&[0, 1]));
    assert_eq!(group.target["b"], partitions(&[2, 3]));
    assert!(a.uses_classic_protocol());
    assert_eq!(a.subscribed_topic_names, vec!["t".to_owned()]);
}

#[test]
fn a_malformed_embedded_protocol_refuses_the_upgrade() {
    let mut bad = source("a", &[0]);
    bad.protocols[0].1 = Bytes::from_static(b"\x00\x01\xff");
    assert!(ConsumerGroup::from_classic(
        "g",
        1,
        Some("range"),
        vec![bad],
        &image(),
        Instant::now()
    )
    .is_none());
    assert_eq!(
        decode_assignment(&Bytes::new(), &image()),
        Some(Assignment::new())
    );
}

#[test]
fn partitions_move_to_a_consumer_member_only_once_the_classic_owner_gave_them_up() {
    let now = Instant::now();
    let mut group = upgraded(now);
    let s = settings();
    let hb = consumer_member_joins();
    let joined = group
        .heartbeat(hb, &image(), &s, now, || "c".into())
        .unwrap();
    assert_eq!(group.group_epoch, 4);
    // Everything is owned by the classic members: the newcomer waits.
    assert_eq!(joined.assignment, Some(Assignment::new()));
    // The classic members hear of the rebalance on their heartbeat.
    assert!(matches!(
        group.classic_heartbeat("a", None, 3, now),
        Err(BrokerError::RebalanceInProgress)
    ));
    assert!(matches!(
        group.classic_heartbeat("a", None, 2, now),
        Err(BrokerError::IllegalGeneration)
    ));
    // An eager member rejoins owning nothing: its lost partitions are free at once.
    let a = group
        .classic_join(rejoin("a", &[]), &image(), &s, now)
        .unwrap();
    assert_eq!(a.generation, 4);
    assert_eq!(a.protocol, "range");
    let given = group
        .classic_sync("a", None, 4, Some("consumer"), Some("range"), &image(), now)
        .unwrap();
    let kept = decoded(&given);
    assert!(
        kept.iter().all(|p| [0, 1].contains(p)),
        "a got others' partitions: {kept:?}"
    );
    // b still owns its partitions: the newcomer gets none of them until b rejoins.
    let c = group
        .heartbeat(
            Heartbeat {
                member_id: "c".into(),
                member_epoch: 4,
                owned: Some(Assignment::new()),
                ..Default::default()
            },
            &image(),
            &s,
            now,
            || unreachable!(),
        )
        .unwrap();
    let owned_by_b = partitions(&[2, 3]);
    let c_has = c.assignment.unwrap_or_default();
    for (topic, ps) in &c_has {
        assert!(ps.is_disjoint(&owned_by_b[topic]), "{c_has:?}");
    }
    assert!(matches!(
        group.classic_sync("a", None, 3, None, None, &image(), now),
        Err(BrokerError::IllegalGeneration)
    ));
    assert!(matches!(
        group.classic_sync(
            "a",
            None,
            4,
            Some("consumer"),
            Some("roundrobin"),
            &image(),
            now
        ),
        Err(BrokerError::InconsistentGroupProtocol)
    ));
}

#[test]
fn a_classic_member_must_speak_the_groups_protocols() {
    let group = upgraded(Instant::now());
    let protocols = vec![("range".to_owned(), subscription(&[]))];
    assert!(group.supports_classic("consumer", &protocols));
    assert!(!group.supports_classic("connect", &protocols));
    let other = vec![("roundrobin".to_owned(), subscription(&[]))];
    assert!(!group.supports_classic("consumer", &other));
}

#[test]
fn consumer_protocol_members_are_not_answered_as_classic_ones() {
    let now = Instant::now();
    let mut group = upgraded(now);
    let hb = consumer_member_joins();
    group
        .heartbeat(hb, &image(), &settings(), now, || "c".into())
        .unwrap();
    assert!(matches!(
        group.classic_heartbeat("c", None, 4, now),
        Err(BrokerError::UnknownMemberId)
    ));
    assert!(matches!(
        group.classic_leave("c", None, &settings()),
        Err(BrokerError::UnknownMemberId)
    ));
    assert!(group.all_classic_except("c"));
    assert!(!group.all_classic_except("a"));
}

#[test]
fn a_classic_member_that_does_not_rejoin_in_time_is_fenced() {
    let now = Instant::now();
    let mut group = upgraded(now);
    let s = settings();
    group.group_epoch += 1;
    // a keeps heartbeating but never rejoins: its join deadline is its rebalance timeout
    // (30 s) from the first REBALANCE_IN_PROGRESS, whatever its heartbeats.
    for second in (0..30).step_by(5) {
        let at = now + Duration::from_secs(second);
        assert!(matches!(
            group.classic_heartbeat("a", None, 3, at),
            Err(BrokerError::RebalanceInProgress)
        ));
        let _ = group.classic_heartbeat("b", None, 3, at);
        assert!(group.tick(at + Duration::from_millis(500), &s).is_empty());
    }
    assert!(group.tick(now + Duration::from_secs(29), &s).is_empty());
    let fenced = group.tick(now + Duration::from_secs(31), &s);
    assert!(fenced.contains(&"a".to_owned()), "{fenced:?}");
}

#[test]
fn a_classic_member_is_fenced_after_its_own_session_timeout() {
    let now = Instant::now();
    let mut group = upgraded(now);
    let s = settings();
    // The classic session timeout (10 s), not the consumer one (45 s).
    group.classic_heartbeat("a", None, 3, now).unwrap();
    assert!(group.tick(now + Duration::from_secs(9), &s).is_empty());
    let fenced = group.tick(now + Duration::from_secs(11), &s);
    assert_eq!(fenced.len(), 2);
}

#[test]
fn leaving_frees_the_members_partitions_and_commits_check_the_generation() {
    let now = Instant::now();
    let mut group = upgraded(now);
    assert!(group.validate_commit("a", 3, 2).is_ok());
    assert!(matches!(
        group.validate_commit("a", 2, 8),
        Err(BrokerError::IllegalGeneration)
    ));
    assert_eq!(group.classic_leave("a", None, &settings()).unwrap(), "a");
    assert!(!group.members.contains_key("a"));
    assert_eq!(group.group_epoch, 4);
    assert_eq!(group.target["b"], partitions(&[0, 1, 2, 3]));
    assert!(matches!(
        group.classic_leave("a", None, &settings()),
        Err(BrokerError::UnknownMemberId)
    ));
}

#[test]
fn the_last_consumer_member_leaving_plans_a_classic_group_at_the_epoch_before() {
    let now = Instant::now();
    let mut group = upgraded(now);
    // Only classic members: nothing to downgrade from.
    assert!(group.downgrade_plan("a").is_none());
    group
        .heartbeat(consumer_member_joins(), &image(), &settings(), now, || {
            "c".into()
        })
        .unwrap();
    assert!(
        group.downgrade_plan("a").is_none(),
        "a is not the consumer member"
    );
    let (generation, members) = group.downgrade_plan("c").expect("c is the last one");
    assert_eq!(generation, group.group_epoch);
    let mut ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    for m in &members {
        // Each takes its target, in the embedded protocol of its subscription's version.
        let target: Vec<i32> = group.target[&m.member_id]
            .values()
            .flatten()
            .copied()
            .collect();
        assert_eq!(decoded(&m.assignment), target);
        assert_eq!(m.session_timeout, Duration::from_secs(10));
        assert_eq!(m.protocols[0].0, "range");
    }
}

#[test]
fn a_static_classic_member_rejoining_under_a_new_id_takes_its_old_place() {
    let now = Instant::now();
    let mut sources = vec![source("a", &[0, 1]), source("b", &[2, 3])];
    sources[0].instance_id = Some("i1".into());
    let mut group =
        ConsumerGroup::from_classic("g", 3, Some("range"), sources, &image(), now).unwrap();
    let mut join = rejoin("a2", &[]);
    join.instance_id = Some("i1".into());
    let joined = group
        .classic_join(join, &image(), &settings(), now)
        .unwrap();
    assert_eq!(joined.member_id, "a2");
    assert!(!group.members.contains_key("a"));
    assert_eq!(group.static_member("i1").unwrap().id, "a2");
    // It keeps the old one's partitions: no other member may have them meanwhile.
    let assignment = group
        .classic_sync(
            "a2",
            Some("i1"),
            joined.generation,
            None,
            None,
            &image(),
            now,
        )
        .unwrap();
    assert_eq!(decoded(&assignment), vec![0, 1]);
    assert!(matches!(
        group.classic_heartbeat("a", Some("i1"), 3, now),
        Err(BrokerError::FencedInstanceId)
    ));
}
