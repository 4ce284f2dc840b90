//! The share group's heartbeat machine with a controlled clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::*;

fn settings() -> ShareSettings {
    ShareSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        max_size: 3,
    }
}

fn topics() -> TopicImage {
    TopicImage::from([(
        "t".to_owned(),
        TopicMeta {
            id: Uuid::from_u128(7),
            partitions: 3,
        },
    )])
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        subscribed_topic_names: Some(vec!["t".into()]),
        client_id: "c".into(),
        client_host: "/h".into(),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        ..Heartbeat::default()
    }
}

/// Initializes what the group asks for, as the share coordinator would.
fn initialize(group: &mut ShareGroup) -> Option<Initialize> {
    let init = group.to_initialize(&topics(), 0)?;
    let done = init
        .topics
        .iter()
        .map(|(t, (_, ps))| (*t, ps.clone()))
        .collect();
    group.initialized(&done, &topics());
    Some(init)
}

#[test]
fn partitions_are_assigned_once_their_state_is_initialized() {
    let now = Instant::now();
    let mut g = ShareGroup::new("g");
    let first = g.heartbeat(join("a"), &topics(), &settings(), now).unwrap();
    assert_eq!(first.member_epoch, 1);
    assert_eq!(first.assignment, Some(Assignment::new()));
    // New topics start where share.auto.offset.reset says (-1), at the group's epoch.
    let init = initialize(&mut g).unwrap();
    assert_eq!(init.state_epoch, 1);
    assert_eq!(
        init.topics[&Uuid::from_u128(7)],
        (-1, BTreeSet::from([0, 1, 2]))
    );
    assert!(g.to_initialize(&topics(), 0).is_none());
    let second = g
        .heartbeat(beat("a", 1), &topics(), &settings(), now)
        .unwrap();
    assert_eq!(second.member_epoch, 2);
    let all = BTreeMap::from([(Uuid::from_u128(7), BTreeSet::from([0, 1, 2]))]);
    assert_eq!(second.assignment, Some(all));
    // Nothing changed: no assignment in the answer.
    let third = g
        .heartbeat(beat("a", 2), &topics(), &settings(), now)
        .unwrap();
    assert_eq!((third.member_epoch, third.assignment), (2, None));
}

#[test]
fn partitions_added_later_start_at_offset_zero() {
    let now = Instant::now();
    let mut g = ShareGroup::new("g");
    g.heartbeat(join("a"), &topics(), &settings(), now).unwrap();
    initialize(&mut g);
    let mut grown = topics();
    grown.get_mut("t").unwrap().partitions = 4;
    let init = g.to_initialize(&grown, 0).unwrap();
    assert_eq!(init.topics[&Uuid::from_u128(7)], (0, BTreeSet::from([3])));
}

#[test]
fn epochs_are_checked_and_members_fenced() {
    let now = Instant::now();
    let mut g = ShareGroup::new("g");
    g.heartbeat(join("a"), &topics(), &settings(), now).unwrap();
    let err = g
        .heartbeat(beat("a", 5), &topics(), &settings(), now)
        .unwrap_err();
    assert!(matches!(err, BrokerError::FencedMemberEpoch(_)));
    let err = g
        .heartbeat(beat("x", 1), &topics(), &settings(), now)
        .unwrap_err();
    assert!(matches!(err, BrokerError::UnknownMember(_)));
    g.heartbeat(join("b"), &topics(), &settings(), now).unwrap();
    g.heartbeat(join("c"), &topics(), &settings(), now).unwrap();
    let err = g
        .heartbeat(join("d"), &topics(), &settings(), now)
        .unwrap_err();
    assert!(matches!(err, BrokerError::GroupMaxSizeReached(_)));
    // Sessions lapse 45 s after the last heartbeat; the group moves on without them.
    let epoch = g.group_epoch;
    g.heartbeat(
        beat("a", g.members["a"].epoch),
        &topics(),
        &settings(),
        now + Duration::from_secs(30),
    )
    .unwrap();
    let expired = g.expired(now + Duration::from_secs(46));
    assert_eq!(expired, vec!["b".to_owned(), "c".to_owned()]);
    for id in expired {
        g.fence(&id);
    }
    assert_eq!(g.group_epoch, epoch + 2);
    let left = g.leave("a").unwrap();
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    assert_eq!(g.state(), ShareGroupState::Empty);
}

#[test]
fn first_heartbeats_are_validated_as_kafka_does() {
    let bad = |hb: Heartbeat| matches!(validate("g", &hb), Err(BrokerError::InvalidRequest(_)));
    assert!(bad(Heartbeat {
        subscribed_topic_names: None,
        ..join("a")
    }));
    assert!(bad(Heartbeat {
        subscribed_topic_names: Some(vec![]),
        ..join("a")
    }));
    assert!(bad(join("")));
    assert!(bad(beat("a", -2)));
    assert!(bad(Heartbeat {
        rack_id: Some(" ".into()),
        ..join("a")
    }));
    assert!(matches!(
        validate("", &join("a")),
        Err(BrokerError::InvalidRequest(_))
    ));
    assert!(validate("g", &join("a")).is_ok());
    assert!(validate("g", &beat("a", -1)).is_ok());
}

#[test]
fn the_group_is_rebuilt_from_its_records() {
    let now = Instant::now();
    let mut g = ShareGroup::new("g");
    g.heartbeat(join("a"), &topics(), &settings(), now).unwrap();
    initialize(&mut g);
    g.heartbeat(beat("a", 1), &topics(), &settings(), now)
        .unwrap();
    let (records, image) = g.unwritten_records(1);
    g.written(image);
    let mut replayed = ShareGroup::new("g");
    for (key, value) in records {
        let bytes = value.as_ref().map(records::encode_value);
        let value = bytes.map(|b| records::decode_value(&key, &b).unwrap());
        replayed.replay(key, value, now);
    }
    replayed.loaded(now, 0, &settings());
    assert_eq!(replayed.group_epoch, g.group_epoch);
    assert_eq!(replayed.assignment_epoch, g.assignment_epoch);
    assert_eq!(replayed.members["a"].assigned, g.members["a"].assigned);
    assert_eq!(replayed.state_partitions, g.state_partitions);
    // Nothing left to write after a load.
    assert!(replayed.unwritten_records(2).0.is_empty());
    // The member carries on at its epoch.
    let hb = replayed
        .heartbeat(beat("a", 2), &topics(), &settings(), now)
        .unwrap();
    assert_eq!(hb.member_epoch, 2);
}
