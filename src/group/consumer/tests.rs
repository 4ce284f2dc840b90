//! Every transition of the consumer group machine: joining, the target assignment, revocation
//! before assignment, epochs, fencing, static members, timeouts, validation and assignors.

use std::time::Duration;

use super::assignor::{self, AssignorMember};
use super::*;
use crate::error::BrokerError;

pub(super) fn settings() -> ConsumerSettings {
    ConsumerSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        max_size: 100,
        assignors: vec!["uniform".into(), "range".into()],
    }
}

fn topic_id(n: u8) -> TopicId {
    Uuid::from_bytes([n; 16])
}

fn topics(list: &[(&str, u8, i32)]) -> TopicImage {
    list.iter()
        .map(|(name, id, partitions)| {
            (
                name.to_string(),
                TopicMeta {
                    id: topic_id(*id),
                    partitions: *partitions,
                },
            )
        })
        .collect()
}

fn parts(list: &[(u8, &[i32])]) -> Assignment {
    list.iter()
        .map(|(t, ps)| (topic_id(*t), ps.iter().copied().collect()))
        .collect()
}

fn join(id: &str, topics: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: Some(60_000),
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: Assignment) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        owned: Some(owned),
        ..Default::default()
    }
}

struct Fixture {
    group: ConsumerGroup,
    topics: TopicImage,
    now: Instant,
}

impl Fixture {
    fn new(image: TopicImage) -> Fixture {
        Fixture {
            group: ConsumerGroup::new("g"),
            topics: image,
            now: Instant::now(),
        }
    }

    fn send(&mut self, hb: Heartbeat) -> Result<HeartbeatResult, BrokerError> {
        self.group
            .heartbeat(hb, &self.topics, &settings(), self.now, || {
                "generated".into()
            })
    }

    fn ok(&mut self, hb: Heartbeat) -> HeartbeatResult {
        self.send(hb).expect("heartbeat accepted")
    }
}

#[tokio::test]
async fn first_member_gets_every_partition_at_epoch_two() {
    let mut f = Fixture::new(topics(&[("a", 1, 3)]));
    let r = f.ok(join("m1", &["a"]));
    // A new group is at epoch 1, as in Kafka 4.4; the join moves it on.
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(parts(&[(1, &[0, 1, 2])])));
    assert_eq!(r.heartbeat_interval_ms, 5000);
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
    assert_eq!((f.group.group_epoch, f.group.assignment_epoch), (2, 2));
}

#[tokio::test]
async fn a_partition_moves_only_after_its_owner_revokes_it() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    f.ok(join("m1", &["a"]));
    // m2 joins: the target gives it a partition m1 still owns.
    let r2 = f.ok(join("m2", &["a"]));
    assert_eq!(r2.member_epoch, 3);
    assert_eq!(r2.assignment, Some(Assignment::new()));
    assert_eq!(
        f.group.members["m2"].state,
        MemberState::UnreleasedPartitions
    );
    assert_eq!(f.group.state(), ConsumerGroupState::Reconciling);
    // m1 is asked to revoke one partition and stays at epoch 2.
    let r1 = f.ok(beat("m1", 2, parts(&[(1, &[0, 1])])));
    assert_eq!(r1.member_epoch, 2);
    assert_eq!(
        r1.assignment.as_ref().map(|a| a[&topic_id(1)].len()),
        Some(1)
    );
    let m1 = &f.group.members["m1"];
    assert_eq!(m1.state, MemberState::UnrevokedPartitions);
    let revoked: Vec<i32> = m1.pending_revocation[&topic_id(1)]
        .iter()
        .copied()
        .collect();
    // Until m1 says it no longer owns the partition, m2 does not get it.
    assert_eq!(f.ok(beat("m2", 3, Assignment::new())).assignment, None);
    // m1 still owning it: nothing moves.
    let r1 = f.ok(beat("m1", 2, parts(&[(1, &[0, 1])])));
    assert_eq!((r1.member_epoch, r1.assignment), (2, None));
    // m1 acknowledges: it moves to epoch 3 and the partition is free.
    let kept = f.group.members["m1"].assigned.clone();
    let r1 = f.ok(beat("m1", 2, kept.clone()));
    assert_eq!(r1.member_epoch, 3);
    assert_eq!(f.group.members["m1"].state, MemberState::Stable);
    assert_eq!(f.group.members["m1"].previous_epoch, 2);
    let r2 = f.ok(beat("m2", 3, Assignment::new()));
    assert_eq!(r2.assignment, Some(parts(&[(1, &revoked)])));
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
}

#[tokio::test]
async fn a_heartbeat_without_owned_partitions_does_not_acknowledge_a_revocation() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    f.ok(join("m1", &["a"]));
    f.ok(join("m2", &["a"]));
    f.ok(beat("m1", 2, parts(&[(1, &[0, 1])])));
    let mut hb = beat("m1", 2, Assignment::new());
    hb.owned = None;
    assert_eq!(f.ok(hb).member_epoch, 2);
    assert_eq!(
        f.group.members["m1"].state,
        MemberState::UnrevokedPartitions
    );
}

#[tokio::test]
async fn epochs_ahead_or_behind_are_fenced_but_the_previous_one_is_accepted() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    f.ok(join("m1", &["a"]));
    let err = f.send(beat("m1", 5, Assignment::new())).unwrap_err();
    assert!(matches!(err, BrokerError::FencedMemberEpoch(ref m) if m.contains("greater")));
    // Move m1 to epoch 3 through a subscription change and a new topic.
    f.topics = topics(&[("a", 1, 2), ("b", 2, 1)]);
    let mut hb = beat("m1", 2, parts(&[(1, &[0, 1])]));
    hb.subscribed_topic_names = Some(vec!["a".into(), "b".into()]);
    assert_eq!(f.ok(hb).member_epoch, 3);
    // The previous epoch with owned partitions within the assignment: accepted.
    assert!(f.send(beat("m1", 2, parts(&[(1, &[0])]))).is_ok());
    // The previous epoch owning something else: fenced.
    let err = f.send(beat("m1", 2, parts(&[(3, &[0])]))).unwrap_err();
    assert!(matches!(err, BrokerError::FencedMemberEpoch(ref m) if m.contains("smaller")));
    // The previous epoch without the owned partitions: fenced.
    let mut hb = beat("m1", 2, Assignment::new());
    hb.owned = None;
    assert!(f.send(hb).is_err());
}

#[tokio::test]
async fn unknown_members_and_groups_answer_unknown_member_id() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    let err = f.send(beat("ghost", 1, Assignment::new())).unwrap_err();
    assert_eq!(err.code(), 25);
    assert_eq!(err.to_string(), "Member ghost is not a member of group g.");
}

#[tokio::test]
async fn a_member_without_id_gets_one_from_the_coordinator() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    let r = f.ok(join("", &["a"]));
    assert_eq!(r.member_id, "generated");
}

#[tokio::test]
async fn leaving_frees_partitions_and_bumps_the_epoch() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    f.ok(join("m1", &["a"]));
    f.ok(join("m2", &["a"]));
    let left = f.group.leave("m2", None, LEAVE_EPOCH, &settings()).unwrap();
    assert_eq!(left.member_epoch, -1);
    assert_eq!(f.group.group_epoch, 4);
    let r = f.ok(beat("m1", 2, parts(&[(1, &[0, 1])])));
    assert_eq!(r.member_epoch, 4);
    assert_eq!(f.group.members["m1"].assigned, parts(&[(1, &[0, 1])]));
    f.group.leave("m1", None, LEAVE_EPOCH, &settings()).unwrap();
    assert_eq!(f.group.state(), ConsumerGroupState::Empty);
    assert!(f.group.leave("m1", None, LEAVE_EPOCH, &settings()).is_err());
}

#[tokio::test]
async fn sessions_and_revocations_time_out() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    f.ok(join("m1", &["a"]));
    f.ok(join("m2", &["a"]));
    f.ok(beat("m1", 2, parts(&[(1, &[0, 1])])));
    // m1 does not revoke within its rebalance timeout (60 s); m2 keeps heartbeating.
    let later = f.now + Duration::from_secs(30);
    assert!(f.group.tick(later, &settings()).is_empty());
    f.now = later;
    f.ok(beat("m2", 3, Assignment::new()));
    let fenced = f.group.tick(f.now + Duration::from_secs(31), &settings());
    assert_eq!(fenced, vec!["m1".to_string()]);
    // m2's session then lapses too.
    let fenced = f.group.tick(f.now + Duration::from_secs(46), &settings());
    assert_eq!(fenced, vec!["m2".to_string()]);
    assert!(f.group.is_empty());
}

#[tokio::test]
async fn a_static_member_leaving_for_now_keeps_its_partitions_for_its_successor() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    let mut hb = join("p1", &["a"]);
    hb.instance_id = Some("i".into());
    f.ok(hb);
    let left = f
        .group
        .leave("p1", Some("i"), LEAVE_STATIC_EPOCH, &settings())
        .unwrap();
    assert_eq!(left.member_epoch, -2);
    assert_eq!(
        f.group.group_epoch, 2,
        "a temporary leave does not rebalance"
    );
    // A new process with the same instance id takes the place, and the partitions.
    let mut hb = join("p2", &["a"]);
    hb.instance_id = Some("i".into());
    let r = f.ok(hb);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(parts(&[(1, &[0, 1])])));
    assert!(!f.group.members.contains_key("p1"));
    // The old process is fenced by the new one.
    let mut old = beat("p1", 2, Assignment::new());
    old.instance_id = Some("i".into());
    assert_eq!(f.send(old).unwrap_err().code(), 82);
}

#[tokio::test]
async fn a_static_member_still_in_the_group_keeps_its_instance_id() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    let mut hb = join("p1", &["a"]);
    hb.instance_id = Some("i".into());
    f.ok(hb.clone());
    hb.member_id = "p2".into();
    assert_eq!(f.send(hb).unwrap_err().code(), 111);
    let mut unknown = beat("p3", 1, Assignment::new());
    unknown.instance_id = Some("other".into());
    assert_eq!(
        f.send(unknown).unwrap_err().to_string(),
        "Instance id other is unknown."
    );
}

#[tokio::test]
async fn a_new_topic_or_more_partitions_bump_the_group_epoch() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    f.ok(join("m1", &["a", "b"]));
    assert_eq!(f.group.group_epoch, 2);
    f.topics = topics(&[("a", 1, 1), ("b", 2, 2)]);
    let r = f.ok(beat("m1", 2, parts(&[(1, &[0])])));
    assert_eq!(f.group.group_epoch, 3);
    assert_eq!(r.assignment, Some(parts(&[(1, &[0]), (2, &[0, 1])])));
    // An unrelated topic changes nothing.
    f.topics.insert(
        "c".into(),
        TopicMeta {
            id: topic_id(3),
            partitions: 1,
        },
    );
    f.ok(beat("m1", 3, parts(&[(1, &[0]), (2, &[0, 1])])));
    assert_eq!(f.group.group_epoch, 3);
}

#[tokio::test]
async fn a_regex_subscribes_to_matching_topics_only() {
    let mut f = Fixture::new(topics(&[
        ("orders-1", 1, 1),
        ("orders-2", 2, 1),
        ("other", 3, 1),
    ]));
    let regex = |id: &str| {
        let mut hb = join(id, &[]);
        hb.subscribed_topic_names = None;
        hb.subscribed_topic_regex = Some("orders-.*".into());
        hb
    };
    // As in Kafka, the expression is resolved after the heartbeat that brings it: the member
    // joins with nothing, and the group moves to a new epoch to assign what it matches.
    let r = f.ok(regex("m1"));
    assert_eq!((r.member_epoch, r.assignment), (1, Some(Assignment::new())));
    assert_eq!(f.group.group_epoch, 2);
    assert_eq!(f.group.state(), ConsumerGroupState::Assigning);
    let r = f.ok(beat("m1", 1, Assignment::new()));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(parts(&[(1, &[0]), (2, &[0])])));
    // A second member with the same expression: resolved again after its join, as Kafka.
    let r = f.ok(regex("m2"));
    assert_eq!((r.member_epoch, f.group.group_epoch), (2, 3));
    // The whole name must match, as re2j's matches().
    let regex = TopicRegex::new("orders").unwrap();
    assert!(!regex.matches("orders-1"));
    assert!(!TopicRegex::new("__.*")
        .unwrap()
        .matches("__consumer_offsets"));
    assert!(f.group.is_subscribed_to("orders-2"));
    assert!(!f.group.is_subscribed_to("other"));
}

#[tokio::test]
async fn the_group_refuses_members_beyond_its_maximum_size() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    let mut s = settings();
    s.max_size = 1;
    let now = f.now;
    f.group
        .heartbeat(join("m1", &["a"]), &f.topics, &s, now, String::new)
        .unwrap();
    let err = f
        .group
        .heartbeat(join("m2", &["a"]), &f.topics, &s, now, String::new);
    assert_eq!(err.unwrap_err().code(), 81);
    // A member already in is not refused.
    f.group
        .heartbeat(
            beat("m1", 2, parts(&[(1, &[0])])),
            &f.topics,
            &s,
            now,
            String::new,
        )
        .unwrap();
}

#[tokio::test]
async fn offset_commits_check_the_member_epoch() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    f.ok(join("m1", &["a"]));
    assert!(f.group.validate_commit("m1", 2, 9).is_ok());
    assert_eq!(f.group.validate_commit("m1", 1, 9).unwrap_err().code(), 113);
    assert_eq!(f.group.validate_commit("x", 2, 9).unwrap_err().code(), 25);
    assert_eq!(f.group.validate_commit("", -1, 9).unwrap_err().code(), 25);
    assert_eq!(f.group.validate_commit("m1", 2, 8).unwrap_err().code(), 35);
    assert!(f.group.validate_fetch(None, -1).is_ok());
    assert_eq!(
        f.group.validate_fetch(Some("m1"), 3).unwrap_err().code(),
        113
    );
    f.group.leave("m1", None, LEAVE_EPOCH, &settings()).unwrap();
    assert!(
        f.group.validate_commit("", -1, 9).is_ok(),
        "an empty group takes simple commits"
    );
}

#[test]
fn heartbeat_fields_are_validated_as_kafka_does() {
    let assignors = vec!["uniform".to_string(), "range".to_string()];
    let check = |hb: &Heartbeat, version| validate("g", hb, version, &assignors);
    let msg = |r: Result<(), BrokerError>| r.unwrap_err().to_string();
    let good = join("m", &["a"]);
    assert!(check(&good, 1).is_ok());
    let mut hb = good.clone();
    hb.member_id.clear();
    assert_eq!(msg(check(&hb, 1)), "MemberId can't be empty.");
    assert!(
        check(&hb, 0).is_ok(),
        "v0 lets the coordinator name the member"
    );
    assert_eq!(
        msg(validate("", &good, 1, &assignors)),
        "GroupId can't be empty."
    );
    let mut hb = good.clone();
    hb.instance_id = Some(String::new());
    assert_eq!(msg(check(&hb, 1)), "InstanceId can't be empty.");
    let mut hb = good.clone();
    hb.rack_id = Some(String::new());
    assert_eq!(msg(check(&hb, 1)), "RackId can't be empty.");
    let mut hb = good.clone();
    hb.rebalance_timeout_ms = None;
    assert_eq!(
        msg(check(&hb, 1)),
        "RebalanceTimeoutMs must be provided in first request."
    );
    let mut hb = good.clone();
    hb.owned = Some(parts(&[(1, &[0])]));
    assert_eq!(
        msg(check(&hb, 1)),
        "TopicPartitions must be empty when (re-)joining."
    );
    let mut hb = good.clone();
    hb.subscribed_topic_names = None;
    assert!(msg(check(&hb, 1)).starts_with("Either SubscribedTopicNames"));
    let mut hb = beat("m", -2, Assignment::new());
    assert_eq!(msg(check(&hb, 1)), "InstanceId can't be null.");
    hb.member_epoch = -3;
    assert_eq!(msg(check(&hb, 1)), "MemberEpoch is invalid.");
    let mut hb = good.clone();
    hb.server_assignor = Some("sticky".into());
    assert_eq!(check(&hb, 1).unwrap_err().code(), 112);
    let mut hb = good.clone();
    hb.subscribed_topic_regex = Some("(".into());
    assert_eq!(check(&hb, 1).unwrap_err().code(), 128);
}

fn member<'a>(id: &'a str, subscribed: &[u8], current: &'a Assignment) -> AssignorMember<'a> {
    AssignorMember {
        member_id: id,
        instance_id: None,
        subscribed: subscribed.iter().map(|t| topic_id(*t)).collect(),
        current,
    }
}

#[test]
fn range_gives_contiguous_ranges_the_first_members_one_more() {
    let none = Assignment::new();
    let members = [member("a", &[1, 2], &none), member("b", &[1, 2], &none)];
    let partitions = [(topic_id(1), 3), (topic_id(2), 2)].into_iter().collect();
    let result = assignor::assign("range", &members, &partitions);
    assert_eq!(result["a"], parts(&[(1, &[0, 1]), (2, &[0])]));
    assert_eq!(result["b"], parts(&[(1, &[2]), (2, &[1])]));
}

#[test]
fn uniform_keeps_what_members_have_and_balances() {
    let a_has = parts(&[(1, &[0, 1, 2, 3])]);
    let none = Assignment::new();
    let members = [member("a", &[1], &a_has), member("b", &[1], &none)];
    let partitions = [(topic_id(1), 4)].into_iter().collect();
    let result = assignor::assign("uniform", &members, &partitions);
    assert_eq!(result["a"], parts(&[(1, &[0, 1])]));
    assert_eq!(result["b"], parts(&[(1, &[2, 3])]));
}

#[test]
fn uniform_balances_members_with_different_subscriptions() {
    let none = Assignment::new();
    let members = [member("a", &[1, 2], &none), member("b", &[2], &none)];
    let partitions = [(topic_id(1), 2), (topic_id(2), 2)].into_iter().collect();
    let result = assignor::assign("uniform", &members, &partitions);
    let count = |id: &str| result[id].values().map(|s| s.len()).sum::<usize>();
    assert_eq!((count("a"), count("b")), (2, 2));
    assert_eq!(result["a"][&topic_id(1)].len(), 2);
}

#[tokio::test]
async fn the_group_uses_the_assignor_most_members_name() {
    let mut f = Fixture::new(topics(&[("a", 1, 1)]));
    let mut hb = join("m1", &["a"]);
    hb.server_assignor = Some("range".into());
    f.ok(hb);
    assert_eq!(f.group.assignor(&settings()), "range");
    f.group.leave("m1", None, LEAVE_EPOCH, &settings()).unwrap();
    assert_eq!(f.group.assignor(&settings()), "uniform");
}

#[tokio::test]
async fn a_static_member_that_left_for_now_goes_when_its_session_lapses() {
    let mut f = Fixture::new(topics(&[("a", 1, 2)]));
    let mut hb = join("p1", &["a"]);
    hb.instance_id = Some("i".into());
    f.ok(hb);
    f.ok(join("m2", &["a"]));
    f.group
        .leave("p1", Some("i"), LEAVE_STATIC_EPOCH, &settings())
        .unwrap();
    assert_eq!(f.group.members["p1"].epoch, LEAVE_STATIC_EPOCH);
    // Still a member, still assigned, until its session lapses; then the group moves on.
    let epoch = f.group.group_epoch;
    assert!(f.group.target["p1"].values().any(|s| !s.is_empty()));
    let fenced = f.group.tick(f.now + Duration::from_secs(46), &settings());
    assert!(fenced.contains(&"p1".to_string()));
    assert!(f.group.static_member("i").is_none());
    assert!(f.group.group_epoch > epoch);
}
