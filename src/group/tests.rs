//! Unit tests of the rebalance state machine, driven with explicit time.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::state::{Group, GroupSettings, GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use crate::error::BrokerError;

const NO_DELAY: GroupSettings = GroupSettings {
    initial_rebalance_delay: Duration::ZERO,
};
const SESSION: Duration = Duration::from_secs(10);

pub(super) fn request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: false,
    }
}

struct Harness {
    group: Group,
    now: Instant,
    settings: GroupSettings,
    next_id: u32,
}

impl Harness {
    fn new(settings: GroupSettings) -> Harness {
        Harness {
            group: Group::new("g", 0),
            now: Instant::now(),
            settings,
            next_id: 0,
        }
    }

    fn join(&mut self, req: JoinRequest) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        self.group.join(req, tx, self.now, 0, &self.settings, id);
        rx
    }

    fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        let assignments = assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect();
        self.group
            .sync(member, None, generation, None, None, assignments, tx);
        // The coordinator's write of the assignment, done at once.
        self.group.assignment_stored(generation);
        rx
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.group.tick(self.now, 0, &self.settings);
    }

    /// Joins a fresh dynamic member and returns its id once the rebalance settles.
    fn join_alone(&mut self) -> String {
        let mut rx = self.join(request("", &["range"]));
        rx.try_recv().expect("answered").expect("joined").member_id
    }
}

#[test]
fn unknown_member_gets_an_id_first_then_joins_as_leader() {
    let mut h = Harness::new(NO_DELAY);
    let mut req = request("", &["range"]);
    req.require_known_member_id = true;
    let err = h.join(req.clone()).try_recv().unwrap().unwrap_err();
    assert!(matches!(err.error, BrokerError::MemberIdRequired));
    assert_eq!(h.group.state, GroupState::Empty);
    req.member_id = err.member_id.clone();
    let joined = h.join(req).try_recv().unwrap().unwrap();
    assert_eq!(joined.member_id, err.member_id);
    assert_eq!(joined.leader, err.member_id);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.protocol, "range");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
}

#[test]
fn a_second_member_rebalances_and_the_leader_assigns() {
    let mut h = Harness::new(NO_DELAY);
    let a = h.join_alone();
    h.sync(&a, 1, &[(&a, "all")]).try_recv().unwrap().unwrap();
    assert_eq!(h.group.state, GroupState::Stable);

    let mut b_join = h.join(request("", &["range"]));
    assert!(b_join.try_recv().is_err(), "b waits for a to rejoin");
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    assert!(matches!(
        h.group.heartbeat(&a, None, 1, h.now),
        Err(BrokerError::RebalanceInProgress)
    ));

    let a_joined = h.join(request(&a, &["range"])).try_recv().unwrap().unwrap();
    let b_joined = b_join.try_recv().unwrap().unwrap();
    assert_eq!((a_joined.generation, b_joined.generation), (2, 2));
    assert_eq!(a_joined.leader, a);
    assert_eq!(a_joined.members.len(), 2);
    assert!(b_joined.members.is_empty());

    let b = b_joined.member_id;
    let mut b_sync = h.sync(&b, 2, &[]);
    assert!(b_sync.try_recv().is_err(), "follower waits for the leader");
    assert!(matches!(
        h.group.heartbeat(&b, None, 1, h.now),
        Err(BrokerError::IllegalGeneration)
    ));
    h.sync(&a, 2, &[(&a, "p0"), (&b, "p1")])
        .try_recv()
        .unwrap()
        .unwrap();
    assert_eq!(
        b_sync.try_recv().unwrap().unwrap().assignment,
        Bytes::from("p1")
    );
    assert_eq!(h.group.state, GroupState::Stable);
    assert!(h.group.take_dirty(), "a completed rebalance is persisted");
    h.group.heartbeat(&b, None, 2, h.now).unwrap();
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances() {
    let mut h = Harness::new(NO_DELAY);
    let a = h.join_alone();
    h.sync(&a, 1, &[]).try_recv().unwrap().unwrap();
    let mut b_join = h.join(request("", &["range"]));
    h.join(request(&a, &["range"])).try_recv().unwrap().unwrap();
    let b = b_join.try_recv().unwrap().unwrap().member_id;
    h.sync(&a, 2, &[]).try_recv().unwrap().unwrap();
    h.sync(&b, 2, &[]).try_recv().unwrap().unwrap();

    h.advance(SESSION / 2);
    h.group.heartbeat(&a, None, 2, h.now).unwrap();
    h.advance(SESSION / 2 + Duration::from_millis(1));
    assert!(!h.group.members.contains_key(&b), "b stopped heartbeating");
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    assert!(matches!(
        h.group.heartbeat(&b, None, 2, h.now),
        Err(BrokerError::UnknownMemberId)
    ));
    let rejoined = h.join(request(&a, &["range"])).try_recv().unwrap().unwrap();
    assert_eq!(rejoined.generation, 3);
    assert_eq!(rejoined.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_in_time_are_dropped() {
    let mut h = Harness::new(NO_DELAY);
    let a = h.join_alone();
    h.sync(&a, 1, &[]).try_recv().unwrap().unwrap();
    let mut b_join = h.join(request("", &["range"]));
    // a keeps heartbeating but never rejoins; the rebalance timeout (30 s) ends the wait.
    for _ in 0..4 {
        h.advance(Duration::from_secs(8));
        let _ = h.group.heartbeat(&a, None, 1, h.now);
    }
    let b = b_join.try_recv().unwrap().unwrap();
    assert_eq!(b.leader, b.member_id);
    assert!(!h.group.members.contains_key(&a));
}

#[test]
fn leaving_during_sync_restarts_the_rebalance() {
    let mut h = Harness::new(NO_DELAY);
    let a = h.join_alone();
    h.sync(&a, 1, &[]).try_recv().unwrap().unwrap();
    let mut b_join = h.join(request("", &["range"]));
    h.join(request(&a, &["range"])).try_recv().unwrap().unwrap();
    let b = b_join.try_recv().unwrap().unwrap().member_id;
    let mut b_sync = h.sync(&b, 2, &[]);
    h.group.leave(&a, None, h.now, 0, &h.settings).unwrap();
    assert!(matches!(
        b_sync.try_recv().unwrap(),
        Err(BrokerError::RebalanceInProgress)
    ));
    assert!(matches!(
        h.group.leave(&a, None, h.now, 0, &h.settings),
        Err(BrokerError::UnknownMemberId)
    ));
    h.group.leave(&b, None, h.now, 0, &h.settings).unwrap();
    assert_eq!(h.group.state, GroupState::Empty);
    assert!(h.group.take_dirty());
}

#[test]
fn a_static_member_replaces_its_old_self_without_rebalancing() {
    let mut h = Harness::new(NO_DELAY);
    let mut req = request("", &["range"]);
    req.instance_id = Some("i1".into());
    let first = h.join(req.clone()).try_recv().unwrap().unwrap();
    h.sync(&first.member_id, 1, &[(&first.member_id, "mine")])
        .try_recv()
        .unwrap()
        .unwrap();

    let second = h.join(req).try_recv().unwrap().unwrap();
    assert_ne!(second.member_id, first.member_id);
    assert_eq!(second.generation, 1, "no rebalance");
    assert_eq!(h.group.state, GroupState::Stable);
    assert!(matches!(
        h.group.heartbeat(&first.member_id, Some("i1"), 1, h.now),
        Err(BrokerError::FencedInstanceId)
    ));
    let (tx, mut rx) = oneshot::channel();
    h.group
        .sync(&second.member_id, Some("i1"), 1, None, None, vec![], tx);
    assert_eq!(
        rx.try_recv().unwrap().unwrap().assignment,
        Bytes::from("mine")
    );
    assert!(matches!(
        h.group
            .leave(&first.member_id, Some("i1"), h.now, 0, &h.settings),
        Err(BrokerError::FencedInstanceId)
    ));
    h.group
        .leave("", Some("i1"), h.now, 0, &h.settings)
        .unwrap();
    assert_eq!(h.group.state, GroupState::Empty);
}

#[test]
fn the_protocol_every_member_supports_wins_the_vote() {
    let mut h = Harness::new(GroupSettings {
        initial_rebalance_delay: Duration::from_millis(100),
    });
    let mut a = h.join(request("", &["range", "roundrobin"]));
    let mut b = h.join(request("", &["roundrobin", "range"]));
    let mut c = h.join(request("", &["roundrobin"]));
    let mut d = h.join(request("", &["sticky"]));
    assert!(matches!(
        d.try_recv().unwrap().unwrap_err().error,
        BrokerError::InconsistentGroupProtocol
    ));
    assert!(
        a.try_recv().is_err(),
        "the initial delay holds the first rebalance"
    );
    h.advance(Duration::from_millis(100));
    let a = a.try_recv().unwrap().unwrap();
    assert_eq!(a.protocol, "roundrobin");
    assert_eq!(a.members.len(), 3);
    assert_eq!(b.try_recv().unwrap().unwrap().leader, a.member_id);
    assert_eq!(c.try_recv().unwrap().unwrap().generation, 1);
}

#[test]
fn offsets_commits_are_fenced_by_generation_and_membership() {
    let mut h = Harness::new(NO_DELAY);
    // A group without members takes simple commits.
    h.group.validate_commit("", None, -1, 9).unwrap();
    let a = h.join_alone();
    assert!(matches!(
        h.group.validate_commit(&a, None, 1, 9),
        Err(BrokerError::RebalanceInProgress)
    ));
    h.sync(&a, 1, &[]).try_recv().unwrap().unwrap();
    h.group.validate_commit(&a, None, 1, 9).unwrap();
    assert!(matches!(
        h.group.validate_commit(&a, None, 0, 9),
        Err(BrokerError::IllegalGeneration)
    ));
    assert!(matches!(
        h.group.validate_commit("", None, -1, 9),
        Err(BrokerError::UnknownMemberId)
    ));
    assert!(matches!(
        h.group.validate_commit("x", None, 1, 9),
        Err(BrokerError::UnknownMemberId)
    ));
}

#[test]
fn pending_member_ids_lapse_after_the_session_timeout() {
    let mut h = Harness::new(NO_DELAY);
    let mut req = request("", &["range"]);
    req.require_known_member_id = true;
    let id = h
        .join(req.clone())
        .try_recv()
        .unwrap()
        .unwrap_err()
        .member_id;
    h.advance(SESSION);
    req.member_id = id;
    let err = h.join(req).try_recv().unwrap().unwrap_err();
    assert!(matches!(err.error, BrokerError::UnknownMemberId));
}

#[test]
fn a_leader_rejoining_before_it_assigned_gets_the_members_again() {
    let mut h = Harness::new(NO_DELAY);
    let leader = h.join_alone();
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
    // Its first JoinGroup answer was lost: the same join again, nothing changed.
    let again = h
        .join(request(&leader, &["range"]))
        .try_recv()
        .unwrap()
        .unwrap();
    assert_eq!(again.generation, 1);
    assert_eq!(again.leader, leader);
    assert_eq!(
        again.members.len(),
        1,
        "the leader needs the members to assign"
    );
    assert!(!again.skip_assignment);
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
}

/// A coordinator over a real, loaded offsets topic in `dir`, completing joins at once.
fn loaded_coordinator(dir: &std::path::Path) -> std::sync::Arc<super::GroupCoordinator> {
    loaded_coordinator_with(dir, crate::config::MigrationPolicy::Bidirectional)
}

pub(super) fn loaded_coordinator_with(
    dir: &std::path::Path,
    migration: crate::config::MigrationPolicy,
) -> std::sync::Arc<super::GroupCoordinator> {
    let config = crate::config::Config {
        data_dir: dir.to_owned(),
        group_initial_rebalance_delay_ms: 0,
        group_consumer_migration_policy: migration,
        ..crate::config::Config::default()
    };
    let config = std::sync::Arc::new(config);
    let topics = std::sync::Arc::new(crate::topics::TopicRegistry::open(config.clone()).unwrap());
    let partitions = config.offsets_topic_num_partitions;
    topics
        .create_led_here(super::store::OFFSETS_TOPIC, partitions, Default::default())
        .unwrap();
    let groups = super::GroupCoordinator::new(config, topics);
    for partition in 0..partitions {
        groups.load_partition(partition).unwrap();
    }
    std::sync::Arc::new(groups)
}

/// The expiry drops an empty group under its lock. A JoinGroup that looked the group up
/// just before must not answer COORDINATOR_NOT_AVAILABLE for it: it joins a new group.
#[test]
fn a_join_racing_the_expiry_of_its_new_group_joins_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let groups = loaded_coordinator(dir.path());
    let mut doomed = groups.lock_live("g", || Ok(())).unwrap();
    let arc = super::LockedGroup::mutex(&doomed);
    let joiner = {
        let groups = groups.clone();
        std::thread::spawn(move || {
            let (tx, rx) = oneshot::channel();
            groups
                .join("g", request("", &["range"]), &Default::default(), tx)
                .unwrap();
            rx.blocking_recv().unwrap()
        })
    };
    // The joiner holds the doomed group (map, guard, our clone, its clone) and waits for the lock.
    while crate::lock_order::OrderedArcMutex::strong_count(&arc) < 4 {
        std::thread::yield_now();
    }
    groups.drop_group(&mut doomed).unwrap();
    drop(doomed);
    let joined = joiner
        .join()
        .unwrap()
        .expect("joined, not COORDINATOR_NOT_AVAILABLE");
    assert_eq!(joined.generation, 1);
    assert_eq!(groups.describe("g").unwrap().unwrap().members.len(), 1);
}

/// Between MEMBER_ID_REQUIRED and the member's second JoinGroup the group is empty and
/// has no offsets; the expiry must not drop it then, or the second join is refused.
#[test]
fn the_expiry_keeps_a_group_whose_member_is_joining() {
    let dir = tempfile::tempdir().unwrap();
    let groups = loaded_coordinator(dir.path());
    let first = JoinRequest {
        require_known_member_id: true,
        ..request("", &["range"])
    };
    let (tx, mut rx) = oneshot::channel();
    groups.join("g", first, &Default::default(), tx).unwrap();
    let refused = rx.try_recv().unwrap().unwrap_err();
    assert!(matches!(refused.error, BrokerError::MemberIdRequired));
    groups.expire_offsets();
    let (tx, mut rx) = oneshot::channel();
    groups
        .join(
            "g",
            request(&refused.member_id, &["range"]),
            &Default::default(),
            tx,
        )
        .unwrap();
    assert_eq!(rx.try_recv().unwrap().expect("joined").generation, 1);
}

/// Shutdown answers parked requests under each group's lock with the map's released: the
/// expiry takes the map under a group's lock, so holding both the other way could deadlock.
#[test]
fn shutdown_answers_a_parked_join_with_not_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let groups = loaded_coordinator(dir.path());
    let (tx, mut rx) = oneshot::channel();
    groups
        .join("g", request("", &["range"]), &Default::default(), tx)
        .unwrap();
    assert_eq!(rx.try_recv().unwrap().expect("joined").generation, 1);
    // A second member waits for the first to rejoin.
    let (tx, mut rx) = oneshot::channel();
    groups
        .join("g", request("", &["range"]), &Default::default(), tx)
        .unwrap();
    assert!(rx.try_recv().is_err());
    groups.shutdown();
    let parked = rx.try_recv().unwrap().unwrap_err();
    assert!(matches!(parked.error, BrokerError::NotCoordinator));
}

/// A consumer-protocol member joining a classic group with members: refused with Kafka's
/// reasons (`validateOnlineUpgrade`) when the policy forbids the upgrade, and when a member's
/// embedded consumer protocol does not decode (`convertToConsumerGroup`).
#[test]
fn a_classic_group_with_members_refuses_a_consumer_member_with_kafkas_reason() {
    use crate::config::MigrationPolicy;
    use crate::group::consumer::{Assignment, Heartbeat, TopicImage};
    let joining = Heartbeat {
        member_id: "m".into(),
        member_epoch: 0,
        rebalance_timeout_ms: Some(30_000),
        subscribed_topic_names: Some(Vec::new()),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    };
    for (policy, why) in [
        (
            MigrationPolicy::Disabled,
            "because online upgrade is disabled.",
        ),
        (
            MigrationPolicy::Downgrade,
            "because online upgrade is disabled.",
        ),
        (
            MigrationPolicy::Bidirectional,
            "because the embedded consumer protocol is malformed.",
        ),
        (
            MigrationPolicy::Upgrade,
            "because the embedded consumer protocol is malformed.",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let groups = loaded_coordinator_with(dir.path(), policy);
        let (tx, mut rx) = oneshot::channel();
        groups
            .join("g", request("", &["range"]), &Default::default(), tx)
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().expect("joined").generation, 1);
        let refused = groups
            .consumer_heartbeat("g", joining.clone(), 1, &TopicImage::new())
            .unwrap_err();
        assert!(
            matches!(&refused, BrokerError::NoSuchGroup(m) if m.ends_with(why)),
            "{policy:?}: {refused:?}"
        );
    }
}
