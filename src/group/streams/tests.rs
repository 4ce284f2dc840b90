use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::topology::{Subtopology, TopicInfo, TopicPartitions, Topology};
use super::*;

fn settings() -> StreamsSettings {
    StreamsSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        max_size: 10,
        num_standby_replicas: 0,
        initial_rebalance_delay: Duration::ZERO,
        assignment_interval: Duration::ZERO,
        task_offset_interval: Duration::from_secs(60),
        acceptable_recovery_lag: 10_000,
    }
}

/// The word count's topology: words re-keyed through a repartition topic, then counted.
fn word_count() -> Topology {
    let info = |name: &str| TopicInfo {
        name: name.to_owned(),
        ..TopicInfo::default()
    };
    let subs = [
        Subtopology {
            id: "0".into(),
            source_topics: vec!["in".into()],
            repartition_sink_topics: vec!["app-repartition".into()],
            ..Subtopology::default()
        },
        Subtopology {
            id: "1".into(),
            repartition_source_topics: vec![info("app-repartition")],
            state_changelog_topics: vec![info("app-changelog")],
            ..Subtopology::default()
        },
    ];
    Topology {
        epoch: 0,
        subtopologies: subs.into_iter().map(|s| (s.id.clone(), s)).collect(),
    }
}

fn join(id: &str, process: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: Some(30_000),
        topology: Some(word_count()),
        owned: Some(Tasks::default()),
        process_id: Some(process.into()),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Tasks) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        owned: Some(owned.clone()),
        ..Heartbeat::default()
    }
}

fn all_topics() -> TopicPartitions {
    TopicPartitions::from([
        ("in".to_owned(), 3),
        ("app-repartition".to_owned(), 3),
        ("app-changelog".to_owned(), 3),
    ])
}

fn count(t: &TaskSet) -> usize {
    t.values().map(|s| s.len()).sum()
}

#[test]
fn missing_source_then_internal_topics_then_tasks() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let r = g
        .heartbeat(join("m1", "p1"), &TopicPartitions::new(), &settings(), now)
        .unwrap();
    assert_eq!(r.statuses[0].code, StatusCode::MissingSourceTopics);
    assert_eq!(r.statuses[0].detail, "Source topics in are missing.");
    assert_eq!(g.state(), StreamsGroupState::NotReady);
    assert!(r.to_create.is_empty());

    // The source exists: the internal topics take its partition count.
    let topics = TopicPartitions::from([("in".to_owned(), 3)]);
    let r = g
        .heartbeat(
            beat("m1", r.member_epoch, &Tasks::default()),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    assert_eq!(r.statuses.len(), 1, "{:?}", r.statuses);
    assert_eq!(r.statuses[0].code, StatusCode::MissingInternalTopics);
    let created: BTreeMap<String, i32> = r
        .to_create
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    assert_eq!(
        created,
        BTreeMap::from([("app-changelog".into(), 3), ("app-repartition".into(), 3)])
    );

    // Every topic exists: all six tasks go to the one member.
    let r = g
        .heartbeat(
            beat("m1", r.member_epoch, &Tasks::default()),
            &all_topics(),
            &settings(),
            now,
        )
        .unwrap();
    assert!(r.statuses.is_empty(), "{:?}", r.statuses);
    let tasks = r.assignment.expect("an assignment");
    assert_eq!(count(&tasks.active), 6);
    assert_eq!(g.state(), StreamsGroupState::Stable);
}

#[test]
fn a_task_moves_only_after_its_owner_revoked_it() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let topics = all_topics();
    let r1 = g
        .heartbeat(join("m1", "p1"), &topics, &settings(), now)
        .unwrap();
    let m1_tasks = r1.assignment.clone().unwrap();
    assert_eq!(count(&m1_tasks.active), 6);

    // A second member joins: the target splits, but m2 gets nothing m1 still runs.
    let r2 = g
        .heartbeat(join("m2", "p2"), &topics, &settings(), now)
        .unwrap();
    assert_eq!(count(&r2.assignment.clone().unwrap().active), 0);
    assert_eq!(g.state(), StreamsGroupState::Reconciling);

    // m1 is asked to revoke half (it keeps its epoch until it has).
    let r1 = g
        .heartbeat(
            beat("m1", r1.member_epoch, &m1_tasks),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    let kept = r1.assignment.clone().unwrap();
    assert_eq!(count(&kept.active), 3);
    assert_eq!(r1.member_epoch, 2);
    let r2b = g
        .heartbeat(
            beat("m2", r2.member_epoch, &Tasks::default()),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    assert!(r2b.assignment.is_none(), "nothing released yet");

    // m1 acknowledges; then m2 gets the released tasks.
    let r1 = g
        .heartbeat(
            beat("m1", r1.member_epoch, &kept),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    assert_eq!(r1.member_epoch, g.assignment_epoch);
    let r2c = g
        .heartbeat(
            beat("m2", r2b.member_epoch, &Tasks::default()),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    let got = r2c.assignment.unwrap();
    assert_eq!(count(&got.active), 3);
    for (sub, ps) in &got.active {
        assert!(kept.active.get(sub).is_none_or(|k| k.is_disjoint(ps)));
    }
    assert_eq!(g.state(), StreamsGroupState::Stable);

    // m2 leaves: m1 gets everything back at a new epoch.
    g.leave("m2", None, LEAVE_EPOCH, false).unwrap();
    let r1 = g
        .heartbeat(
            beat("m1", r1.member_epoch, &kept),
            &topics,
            &settings(),
            now,
        )
        .unwrap();
    assert_eq!(count(&r1.assignment.unwrap().active), 6);
}

#[test]
fn epochs_and_topology_errors() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let topics = all_topics();
    let r = g
        .heartbeat(join("m1", "p1"), &topics, &settings(), now)
        .unwrap();
    let err = g
        .heartbeat(
            beat("m1", r.member_epoch + 1, &Tasks::default()),
            &topics,
            &settings(),
            now,
        )
        .unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::FencedMemberEpoch(_)),
        "{err:?}"
    );
    let err = g
        .heartbeat(
            beat("nobody", 1, &Tasks::default()),
            &topics,
            &settings(),
            now,
        )
        .unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::UnknownMember(_)),
        "{err:?}"
    );
    // Another topology at the same epoch is refused.
    let mut other = join("m2", "p2");
    other.topology.as_mut().unwrap().subtopologies.remove("1");
    let err = g.heartbeat(other, &topics, &settings(), now).unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::InvalidRequest(_)),
        "{err:?}"
    );
    // A task that does not exist.
    let bad = Tasks {
        active: TaskSet::from([("0".to_owned(), [7].into())]),
        ..Tasks::default()
    };
    let err = g
        .heartbeat(beat("m1", r.member_epoch, &bad), &topics, &settings(), now)
        .unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::InvalidRequest(_)),
        "{err:?}"
    );
}

#[test]
fn copartitioned_sources_must_agree() {
    let mut t = word_count();
    let sub = t.subtopologies.get_mut("0").unwrap();
    sub.source_topics.push("other".into());
    sub.copartition_groups.push(topology::CopartitionGroup {
        source_topics: vec![0, 1],
        repartition_source_topics: vec![],
    });
    let mut topics = all_topics();
    topics.insert("other".into(), 5);
    let c = topology::configure(&t, &topics).unwrap();
    let status = c.status.unwrap();
    assert_eq!(status.code, StatusCode::IncorrectlyPartitionedTopics);
    assert_eq!(
        status.detail,
        "Following topics do not have the same number of partitions: [{in=3, other=5}]"
    );
}

#[test]
fn the_first_assignment_waits_for_the_initial_delay() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let s = StreamsSettings {
        initial_rebalance_delay: Duration::from_secs(3),
        ..settings()
    };
    let r = g
        .heartbeat(join("m1", "p1"), &all_topics(), &s, now)
        .unwrap();
    assert_eq!(r.statuses[0].code, StatusCode::AssignmentDelayed);
    assert_eq!(count(&r.assignment.unwrap().active), 0);
    g.tick(now + Duration::from_secs(4), &s);
    let r = g
        .heartbeat(
            beat("m1", r.member_epoch, &Tasks::default()),
            &all_topics(),
            &s,
            now + Duration::from_secs(4),
        )
        .unwrap();
    assert_eq!(count(&r.assignment.unwrap().active), 6);
}

#[test]
fn a_static_member_comes_back_under_a_new_id_with_its_tasks() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let topics = all_topics();
    let mut first = join("m1", "p1");
    first.instance_id = Some("i1".into());
    let r = g.heartbeat(first, &topics, &settings(), now).unwrap();
    let owned = r.assignment.clone().unwrap();
    assert_eq!(count(&owned.active), 6);

    // The same instance restarted (same process id) while the first still runs.
    let mut rival = join("m2", "p1");
    rival.instance_id = Some("i1".into());
    let err = g
        .heartbeat(rival.clone(), &topics, &settings(), now)
        .unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::UnreleasedInstanceId(_)),
        "{err:?}"
    );

    // The first leaves for now (-2): its tasks stay with the group; the new process takes
    // its place, tasks included, without a new epoch.
    let epoch = g.group_epoch;
    g.leave("m1", Some("i1"), LEAVE_STATIC_EPOCH, false)
        .unwrap();
    let r2 = g.heartbeat(rival, &topics, &settings(), now).unwrap();
    assert_eq!(r2.assignment.unwrap(), owned);
    assert_eq!(g.group_epoch, epoch);
    assert!(!g.members.contains_key("m1"));
    // The old member id is fenced.
    let mut old = beat("m1", r.member_epoch, &owned);
    old.instance_id = Some("i1".into());
    let err = g.heartbeat(old, &topics, &settings(), now).unwrap_err();
    assert!(
        matches!(err, crate::error::BrokerError::FencedInstance(_)),
        "{err:?}"
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_fenced_and_its_tasks_move() {
    let mut g = StreamsGroup::new("g");
    let now = Instant::now();
    let topics = all_topics();
    let r1 = g
        .heartbeat(join("m1", "p1"), &topics, &settings(), now)
        .unwrap();
    let later = now + Duration::from_secs(30);
    let r2 = g
        .heartbeat(join("m2", "p2"), &topics, &settings(), later)
        .unwrap();
    let fenced = g.tick(now + Duration::from_secs(46), &settings());
    assert_eq!(fenced, vec!["m1".to_owned()]);
    let r2 = g
        .heartbeat(
            beat("m2", r2.member_epoch, &Tasks::default()),
            &topics,
            &settings(),
            later,
        )
        .unwrap();
    assert_eq!(count(&r2.assignment.unwrap().active), 6);
    let _ = r1;
}
