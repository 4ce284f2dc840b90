//! Offsets committed inside a transaction (TxnOffsetCommit) on the wire: hidden from
//! OffsetFetch until the transaction ends (UNSTABLE_OFFSET_COMMIT for consumers requiring
//! stable offsets), refused with Kafka 4.4's error codes, pending across a crash.
//!
//! Tests named `needs_txn_*` end transactions with EndTxn, or need the transaction
//! coordinator to verify producers: they fail until branch `txn` (InitProducerId,
//! AddOffsetsToTxn, EndTxn) is merged. The others run with or without it: they use a real
//! producer id when the broker hands them out, and a made-up one otherwise.

use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{create_topic, str_bytes, topic_name, wait_groups_loaded};
use samsa_protocol_tests::{BrokerProcess, Connection};

const TOPIC: &str = "orders";
const DEADLINE: Duration = Duration::from_secs(20);
const LATEST_TXN_OFFSET_COMMIT: i16 = 4;

fn start() -> BrokerProcess {
    let broker = BrokerProcess::start("").unwrap();
    wait_loaded(&broker);
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, TOPIC, 2, &[]).unwrap();
    broker
}

fn wait_loaded(broker: &BrokerProcess) {
    wait_groups_loaded(&mut broker.connect().unwrap()).unwrap();
}

/// A transactional producer with `group`'s offsets partition in its transaction.
#[derive(Clone, Copy)]
struct Producer<'a> {
    transactional_id: &'a str,
    id: i64,
    epoch: i16,
}

fn serves(conn: &mut Connection, key: ApiKey) -> bool {
    let r = conn.send(&ApiVersionsRequest::default(), 0).unwrap();
    r.api_keys.iter().any(|k| k.api_key == key as i16)
}

fn init_producer<'a>(conn: &mut Connection, transactional_id: &'a str) -> Producer<'a> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(transactional_id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let until = Instant::now() + DEADLINE;
    loop {
        let r = conn.send(&request, 4).unwrap();
        if r.error_code == 0 {
            return Producer {
                transactional_id,
                id: r.producer_id.0,
                epoch: r.producer_epoch,
            };
        }
        assert!(
            Instant::now() < until,
            "InitProducerId kept failing with {}",
            r.error_code
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn add_offsets(conn: &mut Connection, producer: Producer, group: &str) {
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(producer.transactional_id)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_group_id(GroupId(str_bytes(group)));
    assert_eq!(conn.send(&request, 3).unwrap().error_code, 0);
}

/// A producer whose transaction may commit `group`'s offsets: a real one once samsa has a
/// transaction coordinator, a made-up one before (nothing verifies it then).
fn producer_for<'a>(conn: &mut Connection, transactional_id: &'a str, group: &str) -> Producer<'a> {
    if !serves(conn, ApiKey::InitProducerId) {
        return Producer {
            transactional_id,
            id: 4000,
            epoch: 0,
        };
    }
    let producer = init_producer(conn, transactional_id);
    add_offsets(conn, producer, group);
    producer
}

fn end_txn(conn: &mut Connection, producer: Producer, commit: bool) {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(producer.transactional_id)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    assert_eq!(conn.send(&request, 3).unwrap().error_code, 0);
}

struct Commit<'a> {
    group: &'a str,
    generation: i32,
    member: &'a str,
    metadata: String,
}

fn commit_of(group: &str) -> Commit<'_> {
    Commit {
        group,
        generation: -1,
        member: "",
        metadata: "m".into(),
    }
}

/// TxnOffsetCommit of (topic, partition, offset); the error code of each partition.
fn txn_commit(
    conn: &mut Connection,
    version: i16,
    producer: Producer,
    commit: &Commit,
    offsets: &[(&str, i32, i64)],
) -> Vec<i16> {
    let topics = offsets
        .iter()
        .map(|(topic, partition, offset)| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_metadata(Some(str_bytes(&commit.metadata)))])
        })
        .collect();
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(producer.transactional_id)))
        .with_group_id(GroupId(str_bytes(commit.group)))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_generation_id_or_member_epoch(if version >= 3 { commit.generation } else { -1 })
        .with_member_id(str_bytes(if version >= 3 { commit.member } else { "" }))
        .with_topics(topics);
    let response = conn.send(&request, version).unwrap();
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// OffsetFetch v7 of `TOPIC` partitions 0 and 1: (offset, error code) of each.
fn fetch(conn: &mut Connection, group: &str, require_stable: bool) -> Vec<(i64, i16)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0, 1])]));
    let response = conn.send(&request, 7).unwrap();
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect()
}

const UNSTABLE: i16 = 88;

fn await_fetch(conn: &mut Connection, group: &str, expected: &[(i64, i16)]) {
    let until = Instant::now() + DEADLINE;
    loop {
        let got = fetch(conn, group, true);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < until,
            "OffsetFetch still answers {got:?}, not {expected:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn offsets_in_an_open_transaction_are_hidden_and_unstable() {
    assert_eq!(E::UnstableOffsetCommit.code(), UNSTABLE);
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = producer_for(&mut conn, "t-hidden", "hidden");
    for version in 0..=LATEST_TXN_OFFSET_COMMIT {
        let codes = txn_commit(
            &mut conn,
            version,
            producer,
            &commit_of("hidden"),
            &[(TOPIC, 0, 5)],
        );
        assert_eq!(codes, vec![0], "v{version}");
    }
    assert_eq!(fetch(&mut conn, "hidden", false), vec![(-1, 0), (-1, 0)]);
    assert_eq!(
        fetch(&mut conn, "hidden", true),
        vec![(-1, UNSTABLE), (-1, 0)]
    );

    // OffsetFetch v8 asks per group; the flag is top-level.
    let request = OffsetFetchRequest::default()
        .with_require_stable(true)
        .with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("hidden")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(TOPIC))
                .with_partition_indexes(vec![0])]))]);
    let response = conn.send(&request, 8).unwrap();
    let partition = &response.groups[0].topics[0].partitions[0];
    assert_eq!(
        (partition.committed_offset, partition.error_code),
        (-1, UNSTABLE)
    );

    // Asking for everything lists committed partitions only, as Kafka does.
    let all = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes("hidden")))
        .with_require_stable(true)
        .with_topics(None);
    assert!(conn.send(&all, 7).unwrap().topics.is_empty());
}

#[test]
fn bad_commits_get_kafkas_error_codes() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = producer_for(&mut conn, "t-errors", "errors");
    let v = LATEST_TXN_OFFSET_COMMIT;
    let codes = txn_commit(
        &mut conn,
        v,
        producer,
        &commit_of("errors"),
        &[("no-such-topic", 0, 1), (TOPIC, 7, 1), (TOPIC, 0, 1)],
    );
    let unknown = E::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![unknown, unknown, 0]);

    let mut big = commit_of("errors");
    big.metadata = "x".repeat(5000);
    assert_eq!(
        txn_commit(&mut conn, v, producer, &big, &[(TOPIC, 0, 1)]),
        vec![E::OffsetMetadataTooLarge.code()]
    );

    // A generation for a group that does not exist: Kafka's ILLEGAL_GENERATION. Once the
    // group exists (a simple one, from the commit above), an unknown member.
    let mut member = commit_of("errors-new");
    member.generation = 1;
    member.member = "m";
    if serves(&mut conn, ApiKey::InitProducerId) {
        add_offsets(&mut conn, producer, "errors-new");
    }
    assert_eq!(
        txn_commit(&mut conn, v, producer, &member, &[(TOPIC, 0, 1)]),
        vec![E::IllegalGeneration.code()]
    );
    let mut unknown_member = commit_of("errors");
    unknown_member.generation = 1;
    unknown_member.member = "m";
    assert_eq!(
        txn_commit(&mut conn, v, producer, &unknown_member, &[(TOPIC, 0, 1)]),
        vec![E::UnknownMemberId.code()]
    );
}

#[test]
fn pending_offsets_survive_a_crash_as_pending() {
    let mut broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = producer_for(&mut conn, "t-crash", "crash");
    assert_eq!(
        txn_commit(
            &mut conn,
            3,
            producer,
            &commit_of("crash"),
            &[(TOPIC, 1, 9)]
        ),
        vec![0]
    );
    broker.crash_and_restart().unwrap();
    wait_loaded(&broker);
    let mut conn = broker.connect().unwrap();
    assert_eq!(
        fetch(&mut conn, "crash", true),
        vec![(-1, 0), (-1, UNSTABLE)]
    );
    assert_eq!(fetch(&mut conn, "crash", false), vec![(-1, 0), (-1, 0)]);
}

#[test]
fn needs_txn_committed_transaction_makes_its_offsets_the_groups() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = init_producer(&mut conn, "t-commit");
    add_offsets(&mut conn, producer, "commit");
    assert_eq!(
        txn_commit(
            &mut conn,
            3,
            producer,
            &commit_of("commit"),
            &[(TOPIC, 0, 5), (TOPIC, 1, 6)]
        ),
        vec![0, 0]
    );
    end_txn(&mut conn, producer, true);
    await_fetch(&mut conn, "commit", &[(5, 0), (6, 0)]);
}

#[test]
fn needs_txn_aborted_transaction_drops_its_offsets() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = init_producer(&mut conn, "t-abort");
    add_offsets(&mut conn, producer, "abort");
    assert_eq!(
        txn_commit(
            &mut conn,
            3,
            producer,
            &commit_of("abort"),
            &[(TOPIC, 0, 5)]
        ),
        vec![0]
    );
    end_txn(&mut conn, producer, false);
    await_fetch(&mut conn, "abort", &[(-1, 0), (-1, 0)]);
}

#[test]
fn needs_txn_a_crashed_brokers_pending_offsets_commit_after_restart() {
    let mut broker = start();
    let mut conn = broker.connect().unwrap();
    let producer = init_producer(&mut conn, "t-restart");
    add_offsets(&mut conn, producer, "restart");
    assert_eq!(
        txn_commit(
            &mut conn,
            3,
            producer,
            &commit_of("restart"),
            &[(TOPIC, 0, 5)]
        ),
        vec![0]
    );
    broker.crash_and_restart().unwrap();
    wait_loaded(&broker);
    let mut conn = broker.connect().unwrap();
    end_txn(&mut conn, producer, true);
    await_fetch(&mut conn, "restart", &[(5, 0), (-1, 0)]);
}

/// What Kafka 4.4 answers when the transaction coordinator does not vouch for the producer.
#[test]
fn needs_txn_producers_are_verified_with_the_transaction_coordinator() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let stranger = Producer {
        transactional_id: "t-unknown",
        id: 999_999,
        epoch: 0,
    };
    for version in 0..=LATEST_TXN_OFFSET_COMMIT {
        let codes = txn_commit(
            &mut conn,
            version,
            stranger,
            &commit_of("verify"),
            &[(TOPIC, 0, 1)],
        );
        assert_eq!(
            codes,
            vec![E::InvalidProducerIdMapping.code()],
            "v{version}"
        );
    }
    let producer = init_producer(&mut conn, "t-verify");
    // The offsets partition is not in the transaction yet (no AddOffsetsToTxn).
    assert_eq!(
        txn_commit(
            &mut conn,
            3,
            producer,
            &commit_of("verify"),
            &[(TOPIC, 0, 1)]
        ),
        vec![E::InvalidTxnState.code()]
    );
    assert_eq!(
        txn_commit(
            &mut conn,
            4,
            producer,
            &commit_of("verify"),
            &[(TOPIC, 0, 1)]
        ),
        vec![E::TransactionAbortable.code()]
    );
    add_offsets(&mut conn, producer, "verify");
    let stale = Producer {
        epoch: producer.epoch + 1,
        ..producer
    };
    assert_eq!(
        txn_commit(&mut conn, 4, stale, &commit_of("verify"), &[(TOPIC, 0, 1)]),
        vec![E::InvalidProducerEpoch.code()]
    );
    let other = Producer {
        transactional_id: "t-other",
        ..producer
    };
    assert_eq!(
        txn_commit(&mut conn, 4, other, &commit_of("verify"), &[(TOPIC, 0, 1)]),
        vec![E::InvalidProducerIdMapping.code()]
    );
    assert_eq!(fetch(&mut conn, "verify", true), vec![(-1, 0), (-1, 0)]);
}
