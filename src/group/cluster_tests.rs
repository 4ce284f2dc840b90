//! Unit tests of the coordinator in a cluster: it coordinates the groups of the offsets
//! partitions it has loaded, forgets them when it unloads one, and acknowledges writes only
//! once the partition's in-sync replicas hold them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::state::{JoinOutcome, JoinRequest, SyncOutcome};
use super::store::OFFSETS_TOPIC;
use super::txn_tests::offset;
use super::{GroupCoordinator, GroupState};
use crate::config::Config;
use crate::error::BrokerError;
use crate::topics::{Partition, TopicRegistry};

const PARTITIONS: i32 = 3;

/// A cluster-mode coordinator over a real registry in `dir` whose offsets topic exists (the
/// controller made it), with nothing loaded yet.
fn coordinator(dir: &std::path::Path) -> (GroupCoordinator, Arc<TopicRegistry>) {
    let config = config(dir);
    let topics = Arc::new(TopicRegistry::open(config.clone()).expect("registry"));
    topics
        .create_led_here(OFFSETS_TOPIC, PARTITIONS, Default::default())
        .expect("offsets topic");
    follow_all(&topics);
    let groups = GroupCoordinator::new(config, topics.clone());
    (groups, topics)
}

/// The configuration of the coordinators these tests build over `dir`.
fn config(dir: &std::path::Path) -> Arc<Config> {
    Arc::new(Config {
        data_dir: dir.to_owned(),
        offsets_topic_num_partitions: PARTITIONS,
        group_initial_rebalance_delay_ms: 0,
        offsets_commit_timeout_ms: 100,
        ..Config::default()
    })
}

/// Every offsets partition followed (broker 2 leads them), as the reconciler leaves the
/// partitions another broker coordinates.
fn follow_all(topics: &TopicRegistry) {
    for partition in 0..PARTITIONS {
        offsets_partition(topics, partition).become_follower(2, 0);
    }
}

/// Leads `partition` alone and loads it, as the reconciler does when it gains one.
fn lead(groups: &GroupCoordinator, topics: &TopicRegistry, partition: i32) {
    let led = offsets_partition(topics, partition);
    led.become_leader(led.leader_epoch() + 1, &[1], &[1], 1)
        .unwrap();
    groups.load_partition(partition).unwrap();
}

/// A group id that lives in offsets partition `partition`.
fn group_in(groups: &GroupCoordinator, partition: i32) -> String {
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| groups.partition_of(g) == partition)
        .unwrap()
}

fn offsets_partition(topics: &TopicRegistry, partition: i32) -> Arc<Partition> {
    topics.partition(OFFSETS_TOPIC, partition).unwrap()
}

/// Leads `partition` with a follower that never fetches: its high watermark stands still.
fn stall(topics: &TopicRegistry, partition: i32) -> Arc<Partition> {
    let partition = offsets_partition(topics, partition);
    partition.become_leader(1, &[1, 2], &[1, 2], 1).unwrap();
    partition
}

fn request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: false,
    }
}

fn join(groups: &GroupCoordinator, group: &str, member_id: &str) -> oneshot::Receiver<JoinOutcome> {
    let (tx, rx) = oneshot::channel();
    groups
        .join(group, request(member_id), &Default::default(), tx)
        .unwrap();
    rx
}

fn sync(
    groups: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
) -> oneshot::Receiver<SyncOutcome> {
    let (tx, rx) = oneshot::channel();
    let assignment = vec![(member.to_owned(), Bytes::from_static(b"all"))];
    groups
        .sync(
            group,
            member,
            None,
            generation,
            None,
            None,
            assignment,
            &Default::default(),
            tx,
        )
        .unwrap();
    rx
}

/// A member alone in a Stable group.
fn stable_member(groups: &GroupCoordinator, group: &str) -> String {
    let joined = join(groups, group, "").try_recv().unwrap().unwrap();
    sync(groups, group, &joined.member_id, joined.generation)
        .try_recv()
        .unwrap()
        .unwrap();
    joined.member_id
}

async fn commit(groups: &GroupCoordinator, group: &str, value: i64) -> Result<(), BrokerError> {
    groups
        .commit(group, "", None, -1, vec![("t".into(), 0, offset(value))], 9)?
        .acknowledged()
        .await
}

fn committed(groups: &GroupCoordinator, group: &str) -> Result<Option<i64>, BrokerError> {
    let fetched = groups.fetch(group, Some(vec![("t".into(), vec![0])]), false, None)?;
    Ok(fetched[0].offset.as_ref().map(|o| o.offset))
}

#[tokio::test]
async fn groups_of_partitions_not_loaded_here_are_not_coordinated_here() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let (a, b) = (group_in(&groups, 0), group_in(&groups, 1));
    let (tx, _rx) = oneshot::channel();
    assert!(matches!(
        groups.join(&a, request(""), &Default::default(), tx),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        commit(&groups, &a, 1).await,
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        committed(&groups, &a),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        groups.describe(&a),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        groups.heartbeat(&a, "m", None, 1),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        groups.delete(&a),
        Err(BrokerError::NotCoordinator)
    ));

    lead(&groups, &topics, 0);
    commit(&groups, &a, 5).await.unwrap();
    assert_eq!(committed(&groups, &a).unwrap(), Some(5));
    assert!(
        matches!(
            commit(&groups, &b, 1).await,
            Err(BrokerError::NotCoordinator)
        ),
        "partition 1 is not loaded"
    );
    let listing = groups.list();
    assert!(listing.error.is_none());
    assert_eq!(
        listing
            .groups
            .iter()
            .map(|g| g.id.clone())
            .collect::<Vec<_>>(),
        vec![a]
    );
}

#[tokio::test]
async fn a_broker_about_to_coordinate_a_group_says_it_is_loading() {
    // Another broker created the offsets topic and named this one the leader of the group's
    // partition before this one applied the topic: the client is to retry here.
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let topics = Arc::new(TopicRegistry::open(config.clone()).unwrap());
    let groups = GroupCoordinator::new(config, topics.clone());
    let a = group_in(&groups, 0);
    assert!(matches!(
        committed(&groups, &a),
        Err(BrokerError::CoordinatorLoadInProgress)
    ));

    // The topic applied, the partition led, its load not begun yet.
    topics
        .create_led_here(OFFSETS_TOPIC, PARTITIONS, Default::default())
        .unwrap();
    follow_all(&topics);
    assert!(
        matches!(committed(&groups, &a), Err(BrokerError::NotCoordinator)),
        "led elsewhere"
    );
    offsets_partition(&topics, 0)
        .become_leader(1, &[1], &[1], 1)
        .unwrap();
    let (tx, _rx) = oneshot::channel();
    assert!(matches!(
        groups.join(&a, request(""), &Default::default(), tx),
        Err(BrokerError::CoordinatorLoadInProgress)
    ));
    assert!(matches!(
        committed(&groups, &a),
        Err(BrokerError::CoordinatorLoadInProgress)
    ));
    assert!(matches!(
        commit(&groups, &a, 1).await,
        Err(BrokerError::CoordinatorLoadInProgress)
    ));

    groups.load_partition(0).unwrap();
    assert_eq!(committed(&groups, &a).unwrap(), None);
}

#[tokio::test]
async fn a_loaded_partition_serves_the_offsets_and_members_its_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let (a, b) = (group_in(&groups, 0), group_in(&groups, 1));
    lead(&groups, &topics, 0);
    lead(&groups, &topics, 1);
    commit(&groups, &a, 7).await.unwrap();
    commit(&groups, &b, 8).await.unwrap();
    let member = stable_member(&groups, &a);
    drop(groups);

    // Another broker's coordinator, leading partition 0 only, from the same log.
    follow_all(&topics);
    let groups = GroupCoordinator::new(config(dir.path()), topics.clone());
    lead(&groups, &topics, 0);
    assert_eq!(committed(&groups, &a).unwrap(), Some(7));
    let described = groups.describe(&a).unwrap().unwrap();
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(
        described
            .members
            .iter()
            .map(|m| m.member_id.clone())
            .collect::<Vec<_>>(),
        vec![member.clone()]
    );
    groups.heartbeat(&a, &member, None, 1).unwrap();
    assert!(matches!(
        committed(&groups, &b),
        Err(BrokerError::NotCoordinator)
    ));
}

#[tokio::test]
async fn unloading_answers_parked_requests_and_forgets_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let (a, b) = (group_in(&groups, 0), group_in(&groups, 1));
    lead(&groups, &topics, 0);
    lead(&groups, &topics, 1);
    commit(&groups, &a, 3).await.unwrap();
    commit(&groups, &b, 4).await.unwrap();
    let first = stable_member(&groups, &a);
    // A second member waits for the first to rejoin.
    let mut parked = join(&groups, &a, "");
    assert!(parked.try_recv().is_err());

    offsets_partition(&topics, 0).become_follower(2, 2);
    groups.unload_partition(0);
    let answer = parked.await.unwrap().unwrap_err();
    assert!(matches!(answer.error, BrokerError::NotCoordinator));
    assert!(matches!(
        groups.heartbeat(&a, &first, None, 1),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        committed(&groups, &a),
        Err(BrokerError::NotCoordinator)
    ));
    assert!(matches!(
        commit(&groups, &a, 9).await,
        Err(BrokerError::NotCoordinator)
    ));
    assert_eq!(
        committed(&groups, &b).unwrap(),
        Some(4),
        "partition 1 stays loaded"
    );
    assert_eq!(groups.list().groups.len(), 1);

    // Led here again: the log has the stable membership and the offset, not the parked join.
    lead(&groups, &topics, 0);
    assert_eq!(committed(&groups, &a).unwrap(), Some(3));
    let described = groups.describe(&a).unwrap().unwrap();
    assert_eq!(described.members.len(), 1);
    groups.heartbeat(&a, &first, None, 1).unwrap();
}

#[tokio::test]
async fn a_commit_the_replicas_do_not_take_in_time_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let a = group_in(&groups, 0);
    let partition = stall(&topics, 0);
    groups.load_partition(0).unwrap();
    // Kafka's GroupMetadataManager: a timed-out append sends the client to find the coordinator.
    assert!(matches!(
        commit(&groups, &a, 5).await,
        Err(BrokerError::CoordinatorNotAvailable)
    ));

    // Once the follower has fetched past it, a commit is acknowledged.
    let pending = groups
        .commit(&a, "", None, -1, vec![("t".into(), 0, offset(6))], 9)
        .unwrap();
    let end = partition.offsets().unwrap().log_end;
    partition.record_follower_fetch(2, end, 0).unwrap();
    pending.acknowledged().await.unwrap();

    // A partition this broker no longer leads: NOT_COORDINATOR, as for NOT_LEADER_OR_FOLLOWER.
    partition.become_follower(2, 2);
    assert!(matches!(
        commit(&groups, &a, 7).await,
        Err(BrokerError::NotCoordinator)
    ));
}

#[tokio::test]
async fn the_assignment_is_answered_once_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let a = group_in(&groups, 0);
    let partition = stall(&topics, 0);
    groups.load_partition(0).unwrap();
    let joined = join(&groups, &a, "").try_recv().unwrap().unwrap();
    let mut synced = sync(&groups, &a, &joined.member_id, joined.generation);
    assert!(synced.try_recv().is_err(), "waits for the replicas");
    assert_eq!(
        groups.describe(&a).unwrap().unwrap().state,
        GroupState::CompletingRebalance
    );

    let end = partition.offsets().unwrap().log_end;
    partition.record_follower_fetch(2, end, 0).unwrap();
    assert_eq!(
        synced.await.unwrap().unwrap().assignment,
        Bytes::from_static(b"all")
    );
    assert_eq!(
        groups.describe(&a).unwrap().unwrap().state,
        GroupState::Stable
    );
}

#[tokio::test]
async fn an_assignment_not_replicated_in_time_rebalances_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path());
    let a = group_in(&groups, 0);
    stall(&topics, 0);
    groups.load_partition(0).unwrap();
    let joined = join(&groups, &a, "").try_recv().unwrap().unwrap();
    let synced = sync(&groups, &a, &joined.member_id, joined.generation);
    // Kafka's storeGroup: a timed-out write is REBALANCE_IN_PROGRESS, and the group rebalances.
    assert!(matches!(
        synced.await.unwrap(),
        Err(BrokerError::RebalanceInProgress)
    ));
    assert_eq!(
        groups.describe(&a).unwrap().unwrap().state,
        GroupState::PreparingRebalance
    );
}

#[test]
fn a_cluster_coordinator_never_creates_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    });
    let topics = Arc::new(TopicRegistry::open(config.clone()).unwrap());
    let groups = GroupCoordinator::new(config, topics.clone());
    assert!(matches!(
        groups.load_partition(0),
        Err(BrokerError::UnknownTopicOrPartition)
    ));
    assert!(topics.get(OFFSETS_TOPIC).is_none());
}
