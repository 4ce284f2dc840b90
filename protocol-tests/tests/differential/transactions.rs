//! Transactions: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and the
//! operator APIs, on the happy path and each refusal, at the lowest and highest version
//! samsa serves. Producer ids are each broker's own: setup learns both, and each request
//! names its side's.

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{messages, producer_batch, Producer};
use samsa_protocol_tests::client::{produce_request, str_bytes, topic_name};
use samsa_protocol_tests::differential::{Differential, Side};

use crate::{ends, topic_ref, T0, UNKNOWN};

const TIMEOUT_MS: i32 = 60_000;

/// A transactional producer's id and epoch on each broker.
#[derive(Clone, Copy)]
pub struct Ids {
    pub samsa: (i64, i16),
    pub kafka: (i64, i16),
}

impl Ids {
    pub fn of(&self, side: &Side) -> (i64, i16) {
        if side.name == "samsa" {
            self.samsa
        } else {
            self.kafka
        }
    }
}

pub fn init_request(id: Option<&str>, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(id.map(|i| TransactionalId(str_bytes(i))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Setup, not compared: InitProducerId on both until each answers (Kafka loads its
/// transaction state partitions after the first lookup; samsa replays its own at start).
pub fn init_both(d: &mut Differential, id: &str) -> Ids {
    d.await_transaction_coordinator(id).unwrap();
    let mut got = Vec::new();
    for side in [&mut d.samsa, &mut d.kafka] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = side
                .conn
                .send(&init_request(Some(id), TIMEOUT_MS), 5)
                .unwrap();
            if r.error_code == 0 {
                got.push((r.producer_id.0, r.producer_epoch));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: InitProducerId error {}",
                side.name,
                r.error_code
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ids {
        samsa: got[0],
        kafka: got[1],
    }
}

fn add_request(
    id: &str,
    (pid, epoch): (i64, i16),
    topics: &[(&str, i32)],
    version: i16,
    verify_only: bool,
) -> AddPartitionsToTxnRequest {
    let topics: Vec<AddPartitionsToTxnTopic> = topics
        .iter()
        .map(|(t, p)| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(t))
                .with_partitions(vec![*p])
        })
        .collect();
    if version >= 4 {
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_verify_only(verify_only)
                .with_topics(topics),
        ])
    } else {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(topics)
    }
}

pub fn end_request(id: &str, (pid, epoch): (i64, i16), commit: bool) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

fn stale((pid, epoch): (i64, i16)) -> (i64, i16) {
    (pid, epoch + 3)
}

#[test]
fn init_producer_id() {
    let mut d = Differential::start("init_producer_id");
    let id = d.topic("init");
    init_both(&mut d, &id);
    for v in ends(ApiKey::InitProducerId) {
        d.compare("idempotent", v, |_| init_request(None, TIMEOUT_MS));
        d.compare("transactional", v, |_| init_request(Some(&id), TIMEOUT_MS));
        d.compare("timeout-too-long", v, |_| init_request(Some(&id), 900_001));
        d.compare("timeout-zero", v, |_| init_request(Some(&id), 0));
        d.compare("empty-id", v, |_| init_request(Some(""), TIMEOUT_MS));
    }
    d.finish();
}

#[test]
fn add_partitions_and_end_txn() {
    let mut d = Differential::start("add_partitions_and_end_txn");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    for v in ends(ApiKey::AddPartitionsToTxn) {
        let id = d.topic(&format!("add-v{v}"));
        let ids = init_both(&mut d, &id);
        let batched = v >= 4;
        d.compare("unknown-id", v, |s| {
            add_request(&d_unknown(), ids.of(s), &[(&topic, 0)], v, false)
        });
        d.compare("stale-epoch", v, |s| {
            add_request(&id, stale(ids.of(s)), &[(&topic, 0)], v, false)
        });
        // Kafka lists the topics of an answer in hash-map order: compared sorted.
        d.compare_part(
            "unknown-topic",
            v,
            |s| add_request(&id, ids.of(s), &[(&topic, 0), (&UNKNOWN.name, 0)], v, false),
            |r| {
                r.results_by_topic_v3_and_below
                    .sort_by(|a, b| a.name.0.cmp(&b.name.0));
                for t in &mut r.results_by_transaction {
                    t.topic_results.sort_by(|a, b| a.name.0.cmp(&b.name.0));
                }
            },
        );
        if batched {
            d.compare("verify-not-added", v, |s| {
                add_request(&id, ids.of(s), &[(&topic, 0)], v, true)
            });
        }
        d.compare("add", v, |s| {
            add_request(&id, ids.of(s), &[(&topic, 0)], v, false)
        });
        d.compare("add-again", v, |s| {
            add_request(&id, ids.of(s), &[(&topic, 0), (&topic, 1)], v, false)
        });
        if batched {
            d.compare("verify-added", v, |s| {
                add_request(&id, ids.of(s), &[(&topic, 1)], v, true)
            });
        }
    }
    for v in ends(ApiKey::EndTxn) {
        let id = d.topic(&format!("end-v{v}"));
        let ids = init_both(&mut d, &id);
        d.compare("end-empty", v, |s| end_request(&id, ids.of(s), true));
        d.compare("end-unknown-id", v, |s| {
            end_request(&d_unknown(), ids.of(s), true)
        });
        for side in [&mut d.samsa, &mut d.kafka] {
            let r = side
                .conn
                .send(&add_request(&id, ids.of(side), &[(&topic, 0)], 3, false), 3)
                .unwrap();
            assert_eq!(
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
                0
            );
        }
        // A batch in the transaction, so the commit writes a marker after data.
        d.compare("produce-in-txn", 9, |s| {
            let (pid, epoch) = ids.of(s);
            let records = producer_batch(
                &messages("txn", 2, *T0),
                Producer::transactional(pid, epoch, 0),
            );
            produce_request(&topic_ref(s, &topic), 0, records, -1, 9)
                .with_transactional_id(Some(TransactionalId(str_bytes(&id))))
        });
        d.compare("end-stale-epoch", v, |s| {
            end_request(&id, stale(ids.of(s)), true)
        });
        d.compare("commit", v, |s| end_request(&id, ids.of(s), true));
        // Kafka writes markers after answering, samsa before: wait until both are done.
        await_complete(&mut d, &id);
        d.compare("commit-again", v, |s| end_request(&id, ids.of(s), true));
        d.compare("abort-after-commit", v, |s| {
            end_request(&id, ids.of(s), false)
        });
    }
    d.compare("producers", 0, |_| {
        DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(topic_name(&topic))
                .with_partition_indexes(vec![1, 9]),
            TopicRequest::default()
                .with_name(topic_name(&UNKNOWN.name))
                .with_partition_indexes(vec![0]),
        ])
    });
    d.finish();
}

/// Setup, not compared: DescribeTransactions on both until `id` is CompleteCommit.
fn await_complete(d: &mut Differential, id: &str) {
    await_state(d, id, "CompleteCommit");
}

/// Setup, not compared: DescribeTransactions on both until `id` is in `state`.
pub fn await_state(d: &mut Differential, id: &str, state: &str) {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str_bytes(id))]);
    for side in [&mut d.samsa, &mut d.kafka] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while side.conn.send(&request, 0).unwrap().transaction_states[0]
            .transaction_state
            .as_str()
            != state
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {id} never reached {state}",
                side.name
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn d_unknown() -> String {
    format!("no-such-transactional-id-{}", UNKNOWN.name)
}

#[test]
fn add_offsets_and_operator_views() {
    let mut d = Differential::start("add_offsets_and_operator_views");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    for v in ends(ApiKey::AddOffsetsToTxn) {
        let id = d.topic(&format!("offsets-v{v}"));
        let ids = init_both(&mut d, &id);
        let request = |(pid, epoch): (i64, i16)| {
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes(&id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(str_bytes(&group)))
        };
        d.compare("stale-epoch", v, |s| request(stale(ids.of(s))));
        d.compare("add-offsets", v, |s| request(ids.of(s)));
    }
    let open = d.topic("open");
    let ids = init_both(&mut d, &open);
    for side in [&mut d.samsa, &mut d.kafka] {
        let r = side
            .conn
            .send(
                &add_request(&open, ids.of(side), &[(&topic, 0)], 3, false),
                3,
            )
            .unwrap();
        assert_eq!(
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            0
        );
    }
    let missing = d.topic("missing");
    d.compare("describe", 0, |_| {
        DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(str_bytes(&open)),
            TransactionalId(str_bytes(&missing)),
        ])
    });
    // Kafka is shared by the whole suite: only this test's ids are compared.
    let probe = d.topic("x");
    let run = probe.rsplit('-').next().unwrap_or_default().to_owned();
    for v in ends(ApiKey::ListTransactions) {
        let ours = |r: &mut ListTransactionsResponse| {
            r.transaction_states
                .retain(|t| t.transactional_id.0.ends_with(run.as_str()));
            r.transaction_states
                .sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
        };
        d.compare_part(
            "all",
            v,
            |_| ListTransactionsRequest::default().with_duration_filter(-1),
            ours,
        );
        d.compare_part(
            "ongoing-and-unknown-state",
            v,
            |_| {
                ListTransactionsRequest::default()
                    .with_state_filters(vec![str_bytes("Ongoing"), str_bytes("Bogus")])
                    .with_duration_filter(-1)
            },
            ours,
        );
        if v >= 2 {
            // The whole id must match; an empty pattern filters nothing.
            let open_by_pattern = format!(".*-open-{run}");
            for (case, pattern) in [
                ("pattern-whole-id", open_by_pattern.as_str()),
                ("pattern-part-of-id", "open"),
                ("pattern-empty", ""),
                ("pattern-invalid", "(open"),
            ] {
                d.compare_part(
                    case,
                    v,
                    |_| {
                        ListTransactionsRequest::default()
                            .with_duration_filter(-1)
                            .with_transactional_id_pattern(Some(str_bytes(pattern)))
                    },
                    ours,
                );
            }
        }
        if v >= 1 {
            d.compare_part(
                "running-an-hour",
                v,
                |_| ListTransactionsRequest::default().with_duration_filter(3_600_000),
                ours,
            );
        }
    }
    d.finish();
}
