//! Unit tests of transactional offset commits: pending until the transaction ends, made
//! committed or dropped by its end, and rebuilt from `__consumer_offsets` on start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::load::replay;
use super::state::{restored_member, CommittedOffset, Group, GroupState};
use super::store::{OffsetKey, Replayed, ReplayedRecord, TxnProducer};
use super::txn_offsets::{validate, OpenTransactions, TransactionCheck, TxnCommit};
use super::{GroupCoordinator, PendingCommit};
use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::topics::{Isolation, TopicRegistry};
use samsa_storage::BatchHeader;

const GROUP: &str = "g";

pub(super) fn offset(value: i64) -> CommittedOffset {
    CommittedOffset {
        offset: value,
        leader_epoch: -1,
        metadata: Some(String::new()),
        commit_timestamp: 1,
        expire_timestamp: None,
        record_offset: -1,
    }
}

fn txn(producer_id: i64) -> TxnCommit<'static> {
    TxnCommit {
        group_id: GROUP,
        transactional_id: "t",
        producer_id,
        producer_epoch: 0,
        member_id: "",
        instance_id: None,
        generation: -1,
    }
}

/// A coordinator over a real offsets topic in `dir`, loaded.
fn coordinator(
    dir: &std::path::Path,
    retention_minutes: i64,
) -> (GroupCoordinator, Arc<TopicRegistry>) {
    let config = Arc::new(Config {
        data_dir: dir.to_owned(),
        offsets_topic_num_partitions: 3,
        offsets_retention_minutes: retention_minutes,
        ..Config::default()
    });
    let topics = Arc::new(TopicRegistry::open(config.clone()).expect("registry"));
    let groups = GroupCoordinator::new(config, topics.clone());
    crate::testing::coordinate_everything(&topics, &groups, None);
    (groups, topics)
}

/// Waits for a commit's acknowledgement, which on one node is there as soon as it is written.
fn acked(pending: Result<PendingCommit>) {
    let acknowledged = pending.unwrap().acknowledged().now_or_never();
    acknowledged
        .expect("replicated at once on a single node")
        .unwrap();
}

fn committed(groups: &GroupCoordinator, partition: i32) -> Option<i64> {
    let fetched = groups
        .fetch(
            GROUP,
            Some(vec![("t".into(), vec![partition])]),
            false,
            None,
        )
        .unwrap();
    fetched[0].offset.as_ref().map(|o| o.offset)
}

fn unstable(groups: &GroupCoordinator, partition: i32) -> bool {
    groups
        .fetch(GROUP, Some(vec![("t".into(), vec![partition])]), true, None)
        .unwrap()[0]
        .unstable
}

fn offsets_partition(groups: &GroupCoordinator) -> i32 {
    groups.partition_of(GROUP)
}

#[test]
fn pending_offsets_show_only_after_commit_and_never_after_abort() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 60);
    acked(groups.commit_transactional(&txn(7), vec![("t".into(), 0, offset(5))]));
    assert_eq!(committed(&groups, 0), None);
    assert!(unstable(&groups, 0));
    assert!(!unstable(&groups, 1));

    let here = offsets_partition(&groups);
    groups.complete_transaction((here + 1) % 3, 7, true);
    assert!(
        unstable(&groups, 0),
        "a marker in another partition ends nothing here"
    );
    groups.complete_transaction(here, 7, true);
    assert_eq!(committed(&groups, 0), Some(5));
    assert!(!unstable(&groups, 0));

    acked(groups.commit_transactional(&txn(8), vec![("t".into(), 0, offset(9))]));
    groups.complete_transaction(here, 8, false);
    assert_eq!(committed(&groups, 0), Some(5));
    assert!(!unstable(&groups, 0));
}

#[test]
fn the_most_recent_record_wins_between_plain_and_transactional_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 60);
    let here = offsets_partition(&groups);
    acked(groups.commit_transactional(&txn(7), vec![("t".into(), 0, offset(5))]));
    acked(groups.commit(GROUP, "", None, -1, vec![("t".into(), 0, offset(100))], 9));
    groups.complete_transaction(here, 7, true);
    assert_eq!(
        committed(&groups, 0),
        Some(100),
        "the plain commit came later"
    );

    acked(groups.commit(GROUP, "", None, -1, vec![("t".into(), 1, offset(100))], 9));
    acked(groups.commit_transactional(&txn(8), vec![("t".into(), 1, offset(6))]));
    groups.complete_transaction(here, 8, true);
    assert_eq!(committed(&groups, 1), Some(6), "the transaction came later");
}

#[test]
fn pending_offsets_survive_a_reload_and_end_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (groups, _topics) = coordinator(dir.path(), 60);
        acked(groups.commit(GROUP, "", None, -1, vec![("t".into(), 0, offset(1))], 9));
        acked(groups.commit_transactional(&txn(7), vec![("t".into(), 0, offset(5))]));
    }
    let (groups, _topics) = coordinator(dir.path(), 60);
    assert_eq!(committed(&groups, 0), Some(1));
    assert!(unstable(&groups, 0));
    groups.complete_transaction(offsets_partition(&groups), 7, true);
    assert_eq!(committed(&groups, 0), Some(5));
}

#[test]
fn transactional_batches_carry_the_producer() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, topics) = coordinator(dir.path(), 60);
    let producer = TxnProducer {
        producer_id: 42,
        producer_epoch: 3,
    };
    let mut commit = txn(42);
    commit.producer_epoch = 3;
    acked(groups.commit_transactional(&commit, vec![("t".into(), 0, offset(5))]));
    let partition = topics.get(super::store::OFFSETS_TOPIC).unwrap().partitions
        [offsets_partition(&groups) as usize]
        .clone();
    let read = partition
        .read(0, 1 << 20, Isolation::ReadUncommitted)
        .unwrap();
    let header = BatchHeader::parse(&read.records).unwrap();
    assert_eq!(
        (header.producer_id, header.producer_epoch),
        (producer.producer_id, producer.producer_epoch)
    );
    assert_eq!(header.base_sequence, 0);
    assert_ne!(header.attributes & (1 << 4), 0, "transactional bit");
    assert_eq!(header.attributes & (1 << 5), 0, "not a control batch");
}

fn record(offset: i64, producer_id: Option<i64>, entry: Replayed) -> ReplayedRecord {
    ReplayedRecord {
        partition: 0,
        offset,
        producer_id,
        entry,
        legacy: false,
    }
}

fn key(partition: i32) -> OffsetKey {
    OffsetKey {
        g: GROUP.into(),
        t: "t".into(),
        p: partition,
    }
}

#[test]
fn replay_applies_commits_drops_aborts_and_keeps_open_transactions() {
    let mut groups = std::collections::HashMap::new();
    let mut open = OpenTransactions::new();
    let records = [
        record(0, Some(1), Replayed::Offset(key(0), Some(offset(5)))),
        record(1, Some(2), Replayed::Offset(key(1), Some(offset(6)))),
        record(2, Some(3), Replayed::Offset(key(2), Some(offset(7)))),
        record(
            3,
            None,
            Replayed::TxnEnd {
                producer_id: 1,
                commit: true,
            },
        ),
        record(
            4,
            None,
            Replayed::TxnEnd {
                producer_id: 2,
                commit: false,
            },
        ),
    ];
    for r in records {
        replay(&mut groups, &mut open, r, Instant::now(), |_| 0);
    }
    let group: &Group = &groups[GROUP];
    assert_eq!(
        group
            .offsets
            .get(&("t".into(), 0))
            .map(|o| (o.offset, o.record_offset)),
        Some((5, 0))
    );
    assert!(!group.offsets.contains_key(&("t".into(), 1)));
    assert!(!group.offsets.contains_key(&("t".into(), 2)));
    assert!(
        group.pending.contains("t", 2),
        "no marker yet: still pending"
    );
    assert!(!group.pending.contains("t", 0) && !group.pending.contains("t", 1));
    assert_eq!(open.keys().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn a_tombstone_in_the_log_drops_pending_offsets() {
    let mut groups = std::collections::HashMap::new();
    let mut open = OpenTransactions::new();
    let records = [
        record(0, Some(1), Replayed::Offset(key(0), Some(offset(5)))),
        record(1, None, Replayed::Offset(key(0), None)),
        record(
            2,
            None,
            Replayed::TxnEnd {
                producer_id: 1,
                commit: true,
            },
        ),
    ];
    for r in records {
        replay(&mut groups, &mut open, r, Instant::now(), |_| 0);
    }
    assert!(groups[GROUP].offsets.is_empty());
    assert!(groups[GROUP].pending.is_empty());
}

#[test]
fn offset_delete_and_group_delete_take_pending_offsets_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 60);
    let here = offsets_partition(&groups);
    acked(groups.commit_transactional(
        &txn(7),
        vec![("t".into(), 0, offset(5)), ("t".into(), 1, offset(6))],
    ));
    let results = groups.delete_offsets(GROUP, vec![("t".into(), 0)]).unwrap();
    assert!(results[0].2.is_ok());
    assert!(!unstable(&groups, 0));
    groups.delete(GROUP).unwrap();
    groups.complete_transaction(here, 7, true);
    assert_eq!(committed(&groups, 0), None);
    assert_eq!(committed(&groups, 1), None);
    drop(groups);
    let (groups, _topics) = coordinator(dir.path(), 60);
    assert!(!unstable(&groups, 1), "nothing comes back on reload");
}

#[test]
fn expiry_keeps_offsets_and_groups_an_open_transaction_touches() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 0);
    acked(groups.commit(
        GROUP,
        "",
        None,
        -1,
        vec![("t".into(), 0, offset(1)), ("t".into(), 1, offset(1))],
        9,
    ));
    acked(groups.commit_transactional(&txn(7), vec![("t".into(), 0, offset(5))]));
    groups.expire_offsets();
    assert_eq!(
        committed(&groups, 0),
        Some(1),
        "a transaction is about to replace it"
    );
    assert_eq!(committed(&groups, 1), None);
    acked(groups.commit_transactional(&txn(8), vec![("t".into(), 2, offset(5))]));
    groups.complete_transaction(offsets_partition(&groups), 7, false);
    groups.expire_offsets();
    assert!(
        groups.list().groups.iter().any(|g| g.id == GROUP),
        "pending offsets keep the group"
    );
}

struct Refuse;

impl TransactionCheck for Refuse {
    fn verify_then(
        &self,
        _: &str,
        _: i64,
        _: i16,
        _: i32,
        _: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        Err(BrokerError::IllegalGeneration)
    }
}

#[test]
fn the_transaction_check_runs_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 60);
    groups.set_transaction_check(Arc::new(Refuse));
    let err = groups
        .commit_transactional(&txn(7), vec![("t".into(), 0, offset(5))])
        .unwrap_err();
    assert!(matches!(err, BrokerError::IllegalGeneration));
    assert!(!unstable(&groups, 0));
}

#[test]
fn members_are_checked_as_kafka_checks_transactional_commits() {
    let mut group = Group::new(GROUP, 0);
    assert!(
        validate(&group, "", None, -1).is_ok(),
        "a group only storing offsets"
    );
    assert!(matches!(
        validate(&group, "m", None, 1),
        Err(BrokerError::UnknownMemberId)
    ));
    let member = restored_member(
        "m".into(),
        Some("i".into()),
        "c".into(),
        "h".into(),
        Duration::from_secs(10),
        Duration::from_secs(10),
        "consumer".into(),
        vec![("range".into(), Bytes::new())],
        Bytes::new(),
        Instant::now(),
    );
    group.restore_member(member);
    group.generation = 2;
    group.state = GroupState::CompletingRebalance;
    assert!(
        validate(&group, "", None, -1).is_ok(),
        "v0-2 send no member"
    );
    assert!(
        validate(&group, "m", Some("i"), 2).is_ok(),
        "no REBALANCE_IN_PROGRESS for transactions"
    );
    assert!(matches!(
        validate(&group, "m", Some("i"), 1),
        Err(BrokerError::IllegalGeneration)
    ));
    assert!(matches!(
        validate(&group, "x", Some("i"), 2),
        Err(BrokerError::FencedInstanceId)
    ));
    assert!(matches!(
        validate(&group, "m", Some("j"), 2),
        Err(BrokerError::UnknownMemberId)
    ));
    assert!(matches!(
        validate(&group, "x", None, 2),
        Err(BrokerError::UnknownMemberId)
    ));
}

#[test]
fn a_missing_group_with_a_generation_is_an_illegal_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, _topics) = coordinator(dir.path(), 60);
    let mut commit = txn(7);
    commit.generation = 1;
    commit.member_id = "m";
    let err = groups
        .commit_transactional(&commit, vec![("t".into(), 0, offset(5))])
        .unwrap_err();
    assert!(matches!(err, BrokerError::IllegalGeneration));
}
