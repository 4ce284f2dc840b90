//! Idempotent producers over the wire: Produce with a producer id, epoch and sequence (no
//! InitProducerId needed, as Kafka accepts a producer id it has not seen), retries answered
//! with the original offsets and not written twice, gaps and stale epochs refused with
//! Kafka's codes, all of it across restarts; and an open transaction holding back the last
//! stable offset, across a crash too. The sequence/epoch scenario runs against the reference Kafka too, so the
//! expected codes are Kafka's own.

use std::sync::LazyLock;

use samsa_protocol_tests::batches::{self, messages, producer_batch, Producer};
use samsa_protocol_tests::client::{
    create_topic, fetch_records, fetch_request, list_offset, list_offsets_request, only_fetched,
    only_partition, produce_request, str_bytes, TopicRef, LATEST_FETCH, LATEST_LIST_OFFSETS,
    LATEST_PRODUCE,
};
use samsa_protocol_tests::differential::kafka_bootstrap;
use samsa_protocol_tests::{BrokerProcess, Connection};

const NONE: i16 = 0;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const LATEST: i64 = -1;
const READ_COMMITTED: i8 = 1;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

/// A batch of `count` records of `producer`; the same arguments give the same bytes, as a
/// producer's retry does.
fn batch_of(producer: Producer, count: usize) -> bytes::Bytes {
    let first_ts = *T0 + i64::from(producer.base_sequence.max(0));
    let prefix = format!(
        "p{}e{}s{}",
        producer.id, producer.epoch, producer.base_sequence
    );
    producer_batch(&messages(&prefix, count, first_ts), producer)
}

/// Produces and returns (error code, base offset, log append time).
fn send(
    conn: &mut Connection,
    topic: &TopicRef,
    producer: Producer,
    count: usize,
) -> (i16, i64, i64) {
    send_request(conn, topic, producer, count, None)
}

fn send_request(
    conn: &mut Connection,
    topic: &TopicRef,
    producer: Producer,
    count: usize,
    transactional_id: Option<&str>,
) -> (i16, i64, i64) {
    let request = produce_request(topic, 0, batch_of(producer, count), -1, LATEST_PRODUCE)
        .with_transactional_id(
            transactional_id.map(|id| kafka_protocol::messages::TransactionalId(str_bytes(id))),
        );
    let response = conn.send(&request, LATEST_PRODUCE).unwrap();
    let answer = only_partition(&response).unwrap();
    (
        answer.error_code,
        answer.base_offset,
        answer.log_append_time_ms,
    )
}

/// InitProducerId for `id`, retried while the coordinator loads, then AddPartitionsToTxn
/// of `topic`-0: the producer id and epoch to write in the transaction with.
fn begin_transaction(conn: &mut Connection, id: &str, topic: &str) -> (i64, i16) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId,
    };
    let txn_id = || TransactionalId(str_bytes(id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (producer_id, epoch) = loop {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = conn.send(&request, 5).unwrap();
        match response.error_code {
            NONE => break (response.producer_id.0, response.producer_epoch),
            COORDINATOR_LOAD_IN_PROGRESS if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => panic!("InitProducerId: error {other}"),
        }
    };
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id())
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(samsa_protocol_tests::client::topic_name(topic))
            .with_partitions(vec![0])]);
    let response = conn.send(&add, 3).unwrap();
    assert_eq!(
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        NONE
    );
    (producer_id, epoch)
}

fn record_count(conn: &mut Connection, topic: &TopicRef) -> usize {
    fetch_records(conn, topic, 0, 0).unwrap().len()
}

/// A new topic the broker leads: Kafka elects the leader shortly after CreateTopics answers.
fn fresh_topic(conn: &mut Connection, name: &str) -> TopicRef {
    let topic = create_topic(conn, name, 1, &[]).unwrap();
    for _ in 0..100 {
        let answer = list_offset(conn, name, 0, LATEST, LATEST_LIST_OFFSETS).unwrap();
        match answer.error_code {
            NONE => return topic,
            NOT_LEADER_OR_FOLLOWER | 3 | 5 => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            other => panic!("ListOffsets on the new topic {name}: error {other}"),
        }
    }
    panic!("no leader for {name}");
}

/// The rules of one producer's sequences and epochs, identical on samsa and on Kafka.
fn sequences_retries_gaps_and_epochs(conn: &mut Connection, topic: &TopicRef) {
    let pid = 4_000_000 + i64::from(std::process::id());
    let p = |epoch, seq| Producer::idempotent(pid, epoch, seq);
    let first = send(conn, topic, p(0, 0), 3);
    assert_eq!(first.0, NONE, "{first:?}");
    assert_eq!(first.1, 0);
    assert_eq!(send(conn, topic, p(0, 3), 2).0, NONE);

    // Retries: the original base offset, no error, and (as Kafka answers) the original
    // batch's max timestamp as log append time.
    let retry = send(conn, topic, p(0, 3), 2);
    assert_eq!(retry, (NONE, 3, *T0 + 3 + 1), "retry of the second batch");
    assert_eq!(
        send(conn, topic, p(0, 0), 3),
        (NONE, 0, *T0 + 2),
        "retry of the first batch"
    );
    assert_eq!(
        record_count(conn, topic),
        5,
        "retries are not written again"
    );

    let refused =
        |conn: &mut Connection, epoch, seq, count| send(conn, topic, p(epoch, seq), count).0;
    assert_eq!(refused(conn, 0, 10, 1), OUT_OF_ORDER_SEQUENCE_NUMBER, "gap");
    assert_eq!(
        refused(conn, 0, 0, 2),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "same first sequence, other last"
    );
    assert_eq!(
        refused(conn, 1, 5, 1),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a new epoch starts at 0"
    );
    assert_eq!(send(conn, topic, p(1, 0), 1), (NONE, 5, -1), "new epoch");
    assert_eq!(
        refused(conn, 0, 5, 1),
        INVALID_PRODUCER_EPOCH,
        "stale epoch"
    );
    assert_eq!(
        refused(conn, 0, 0, 3),
        INVALID_PRODUCER_EPOCH,
        "a stale epoch's retry"
    );
    // A producer id this partition never saw may start at any sequence (KIP-360).
    let stranger = Producer::idempotent(pid + 1, 3, 42);
    assert_eq!(send(conn, topic, stranger, 1), (NONE, 6, -1));

    let fetched = fetch_records(conn, topic, 0, 0).unwrap();
    let offsets: Vec<i64> = fetched.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, (0..7).collect::<Vec<_>>());
    let latest = list_offset(conn, &topic.name, 0, LATEST, LATEST_LIST_OFFSETS).unwrap();
    assert_eq!(latest.offset, 7);
}

#[test]
fn samsa_applies_kafkas_sequence_and_epoch_rules() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = fresh_topic(&mut conn, "idempotent");
    sequences_retries_gaps_and_epochs(&mut conn, &topic);
}

#[test]
fn the_reference_kafka_applies_the_same_rules() {
    let mut conn = Connection::open(&kafka_bootstrap()).unwrap();
    let name = format!("idempotent-{}", uuid::Uuid::new_v4());
    let topic = fresh_topic(&mut conn, &name);
    sequences_retries_gaps_and_epochs(&mut conn, &topic);
}

#[test]
fn retries_are_recognised_after_clean_and_killed_restarts() {
    let mut broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = fresh_topic(&mut conn, "restarts");
    let p = |seq| Producer::idempotent(77, 2, seq);
    assert_eq!(send(&mut conn, &topic, p(0), 2).0, NONE);
    assert_eq!(send(&mut conn, &topic, p(2), 3).0, NONE);
    // Sequences 0..5 were written before the restarts; each round writes one more.
    for (next_seq, how) in (5..).zip(["SIGTERM", "SIGKILL"]) {
        drop(conn);
        match how {
            "SIGTERM" => broker.restart().unwrap(),
            _ => broker.crash_and_restart().unwrap(),
        }
        conn = broker.connect().unwrap();
        let before = record_count(&mut conn, &topic);
        assert_eq!(
            send(&mut conn, &topic, p(2), 3).1,
            2,
            "{how}: retry answered with the original"
        );
        assert_eq!(
            send(&mut conn, &topic, p(0), 2).1,
            0,
            "{how}: retry answered with the original"
        );
        assert_eq!(
            record_count(&mut conn, &topic),
            before,
            "{how}: retries not written"
        );
        assert_eq!(
            send(&mut conn, &topic, p(next_seq + 1), 1).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            "{how}"
        );
        assert_eq!(
            send(&mut conn, &topic, Producer::idempotent(77, 1, 0), 1).0,
            INVALID_PRODUCER_EPOCH,
            "{how}"
        );
        let (code, base, _) = send(&mut conn, &topic, p(next_seq), 1);
        assert_eq!(
            (code, base),
            (NONE, before as i64),
            "{how}: the next batch carries on"
        );
    }
}

/// The producer state behind the last stable offset is rebuilt from the log after a crash.
/// The transaction goes through InitProducerId and AddPartitionsToTxn first, as Kafka's
/// partition verification (and samsa's) requires of a transactional Produce.
#[test]
fn an_open_transaction_holds_the_last_stable_offset() {
    let mut broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = fresh_topic(&mut conn, "transactions");
    assert_eq!(
        send(&mut conn, &topic, Producer::idempotent(5, 0, 0), 2).0,
        NONE
    );
    let (producer_id, epoch) = begin_transaction(&mut conn, "raw-txn", &topic.name);
    let txn = Producer::transactional(producer_id, epoch, 0);
    assert_eq!(
        send_request(&mut conn, &topic, txn, 3, Some("raw-txn")).1,
        2
    );
    assert_eq!(
        send(&mut conn, &topic, Producer::idempotent(5, 0, 2), 1).1,
        5
    );

    for restart in [None, Some("SIGKILL")] {
        if restart.is_some() {
            drop(conn);
            broker.crash_and_restart().unwrap();
            conn = broker.connect().unwrap();
        }
        let what = restart.unwrap_or("before restarting");
        let committed = conn
            .send(
                &fetch_request(&topic, 0, 0, LATEST_FETCH).with_isolation_level(READ_COMMITTED),
                LATEST_FETCH,
            )
            .unwrap();
        let data = only_fetched(&committed).unwrap();
        assert_eq!(
            (data.high_watermark, data.last_stable_offset),
            (6, 2),
            "{what}"
        );
        let records = batches::decode(data.records.as_ref().unwrap()).unwrap();
        assert_eq!(records.len(), 2, "{what}: read_committed stops at the LSO");
        assert_eq!(
            data.aborted_transactions.as_deref(),
            Some(&[][..]),
            "{what}"
        );

        let uncommitted = fetch_request(&topic, 0, 0, LATEST_FETCH);
        let response = conn.send(&uncommitted, LATEST_FETCH).unwrap();
        let data = only_fetched(&response).unwrap();
        assert_eq!(data.last_stable_offset, 2, "{what}");
        assert_eq!(
            batches::decode(data.records.as_ref().unwrap())
                .unwrap()
                .len(),
            6,
            "{what}"
        );

        let latest = |conn: &mut Connection, isolation: i8| {
            let request =
                list_offsets_request(&topic.name, 0, LATEST).with_isolation_level(isolation);
            let response = conn.send(&request, LATEST_LIST_OFFSETS).unwrap();
            response.topics[0].partitions[0].offset
        };
        assert_eq!(latest(&mut conn, READ_COMMITTED), 2, "{what}");
        assert_eq!(latest(&mut conn, 0), 6, "{what}");
    }
}
