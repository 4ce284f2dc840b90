//! The coordinator's side of online migration: a classic group upgraded by a
//! consumer-protocol member, its classic member told to rejoin, and the group turned classic
//! again when that member leaves (or kept a consumer group when the policy allows no
//! downgrade), what is written surviving a reload of the partition.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::consumer::{Assignment, Heartbeat, TopicImage, TopicMeta};
use super::tests::{loaded_coordinator_with, request};
use super::GroupState;
use crate::config::MigrationPolicy;
use crate::error::BrokerError;

fn topics() -> TopicImage {
    let meta = TopicMeta {
        id: Uuid::from_bytes([3; 16]),
        partitions: 2,
    };
    [("t".to_owned(), meta)].into_iter().collect()
}

fn subscription() -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

fn consumer_member(epoch: i32) -> Heartbeat {
    Heartbeat {
        member_id: "m".into(),
        member_epoch: epoch,
        rebalance_timeout_ms: (epoch == 0).then_some(30_000),
        subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_owned()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    }
}

/// A classic group of one member at generation 1, then a consumer-protocol member "m".
fn upgraded(
    policy: MigrationPolicy,
    dir: &std::path::Path,
) -> (std::sync::Arc<super::GroupCoordinator>, String) {
    let groups = loaded_coordinator_with(dir, policy);
    let mut join = request("", &["range"]);
    join.protocols[0].1 = subscription();
    let (tx, mut rx) = oneshot::channel();
    groups.join("g", join, &topics(), tx).unwrap();
    let joined = rx.try_recv().unwrap().expect("joined");
    let (tx, _rx) = oneshot::channel();
    let id = joined.member_id.clone();
    groups
        .sync("g", &id, None, 1, None, None, vec![], &topics(), tx)
        .unwrap();
    let _ = groups
        .consumer_heartbeat("g", consumer_member(0), 1, &topics())
        .unwrap();
    let described = groups.consumer_describe("g").unwrap();
    assert_eq!(described.members.len(), 2);
    assert!(described
        .members
        .iter()
        .any(|m| m.classic && m.member_id == id));
    (groups, id)
}

#[test]
fn the_last_consumer_member_leaving_turns_the_group_classic_again() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, classic) = upgraded(MigrationPolicy::Bidirectional, dir.path());
    // The group moved on: the classic member must rejoin.
    assert!(matches!(
        groups.heartbeat("g", &classic, None, 1),
        Err(BrokerError::RebalanceInProgress)
    ));
    let epoch = groups.consumer_describe("g").unwrap().group_epoch;
    let _ = groups
        .consumer_heartbeat("g", consumer_member(-1), 1, &topics())
        .unwrap();
    assert!(
        groups.consumer_describe("g").is_err(),
        "still a consumer group"
    );
    let summary = groups.describe("g").unwrap().expect("a classic group");
    assert_eq!(summary.state, GroupState::PreparingRebalance);
    assert_eq!(summary.protocol_type, "consumer");
    assert_eq!(summary.members.len(), 1);
    // The classic member's generation is the consumer group's epoch from before.
    assert!(matches!(
        groups.heartbeat("g", &classic, None, epoch),
        Err(BrokerError::RebalanceInProgress)
    ));
    groups.shutdown();
    drop(groups);
    // Reloaded: a classic group with its member, no consumer group left.
    let groups = loaded_coordinator_with(dir.path(), MigrationPolicy::Bidirectional);
    assert!(groups.consumer_describe("g").is_err());
    let summary = groups.describe("g").unwrap().expect("a classic group");
    assert_eq!(summary.members.len(), 1);
    assert_eq!(summary.members[0].member_id, classic);
}

#[test]
fn without_downgrades_the_group_stays_a_consumer_group_of_classic_members() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, classic) = upgraded(MigrationPolicy::Upgrade, dir.path());
    let _ = groups
        .consumer_heartbeat("g", consumer_member(-1), 1, &topics())
        .unwrap();
    let described = groups.consumer_describe("g").unwrap();
    assert_eq!(described.members.len(), 1);
    assert!(described.members[0].classic);
    groups.shutdown();
    drop(groups);
    let groups = loaded_coordinator_with(dir.path(), MigrationPolicy::Upgrade);
    let described = groups.consumer_describe("g").unwrap();
    assert_eq!(described.members[0].member_id, classic);
    assert!(
        described.members[0].classic,
        "the classic metadata survives a reload"
    );
}
