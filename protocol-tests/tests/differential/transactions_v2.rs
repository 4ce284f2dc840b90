//! Transactions v2 (KIP-890 part 2), as a transaction.version 2 producer drives them: Produce
//! v12+ and TxnOffsetCommit v5+ to partitions and groups it never added (the leader has them
//! added), EndTxn v5 bumping the epoch at every end (a retry recognised by the epoch before
//! the bump, the wrong outcome or a stale epoch refused, an abort with nothing open), and
//! WriteTxnMarkers v2 markers checked strictly against the partition's producer epoch.

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{messages, producer_batch, Producer};
use samsa_protocol_tests::client::{produce_request, str_bytes, topic_name};
use samsa_protocol_tests::differential::{Differential, Side};

use crate::transactions::{await_state, end_request, init_both, init_request};
use crate::{topic_ref, T0, UNKNOWN};

const END_V2: i16 = 5;

fn produce(
    side: &Side,
    id: &str,
    topic: &str,
    (partition, version): (i32, i16),
    (pid, epoch): (i64, i16),
    sequence: i32,
) -> ProduceRequest {
    let records = producer_batch(
        &messages("txn", 2, *T0),
        Producer::transactional(pid, epoch, sequence),
    );
    produce_request(&topic_ref(side, topic), partition, records, -1, version)
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
}

/// TxnOffsetCommit of offset 1 of partition 0 of `topic`; v6 names the topic by `side`'s id
/// (`known` false: by an id no topic has).
fn offsets(
    side: &Side,
    (id, group, topic): (&str, &str, &str),
    (pid, epoch): (i64, i16),
    version: i16,
    known: bool,
) -> TxnOffsetCommitRequest {
    let mut named = TxnOffsetCommitRequestTopic::default().with_name(topic_name(topic));
    if version >= 6 {
        named = named.with_topic_id(if known {
            topic_ref(side, topic).id
        } else {
            UNKNOWN.id
        });
    }
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_group_id(GroupId(str_bytes(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(str_bytes(""))
        .with_topics(vec![named.with_partitions(vec![
            TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1),
        ])])
}

/// A transaction.version 2 marker; a coordinator epoch above any the partition has seen.
fn marker_v2(topic: &str, (pid, epoch): (i64, i16)) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(true)
        .with_coordinator_epoch(1_000)
        .with_transaction_version(2)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])])])
}

fn bumped((pid, epoch): (i64, i16), by: i16) -> (i64, i16) {
    (pid, epoch + by)
}

fn produce_code(r: &ProduceResponse) -> i16 {
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn transactions_v2() {
    let mut d = Differential::start("transactions_v2");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let id = d.topic("v2");
    let ids = init_both(&mut d, &id);

    // A partition the producer never added: the leader adds it.
    let (written, _) = d.compare("produce-v12-adds", 12, |s| {
        produce(s, &id, &topic, (0, 12), ids.of(s), 0)
    });
    assert_eq!(produce_code(written.response().unwrap()), 0);
    d.compare("produce-v12-stale-epoch", 12, |s| {
        produce(s, &id, &topic, (1, 12), bumped(ids.of(s), 3), 0)
    });
    let names = (id.as_str(), group.as_str(), topic.as_str());
    d.compare("txn-offset-commit-v5-adds-group", 5, |s| {
        offsets(s, names, ids.of(s), 5, true)
    });
    d.compare("txn-offset-commit-v6-topic-id", 6, |s| {
        offsets(s, names, ids.of(s), 6, true)
    });
    d.compare("txn-offset-commit-v6-unknown-topic-id", 6, |s| {
        offsets(s, names, ids.of(s), 6, false)
    });
    // Kafka lists the transaction's topics in hash-set order: compared sorted. Which offsets
    // partition a group maps to depends on each broker's offsets.topic.num.partitions: only
    // that there is one is compared.
    d.compare_part(
        "describe-ongoing",
        0,
        |_| {
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(str_bytes(&id))])
        },
        |r| {
            for t in &mut r.transaction_states {
                t.topics.sort_by(|a, b| a.topic.0.cmp(&b.topic.0));
                for topic in t.topics.iter_mut().filter(|t| t.topic.0.starts_with("__")) {
                    topic.partitions = vec![topic.partitions.len() as i32];
                }
            }
        },
    );
    d.compare("end-stale-epoch", END_V2, |s| {
        end_request(&id, bumped(ids.of(s), 3), true)
    });
    // The commit bumps the epoch and says so.
    d.compare("commit", END_V2, |s| end_request(&id, ids.of(s), true));
    await_state(&mut d, &id, "CompleteCommit");
    d.compare("commit-retried", END_V2, |s| {
        end_request(&id, ids.of(s), true)
    });
    d.compare("abort-after-commit-retried", END_V2, |s| {
        end_request(&id, ids.of(s), false)
    });
    d.compare("commit-nothing-open", END_V2, |s| {
        end_request(&id, bumped(ids.of(s), 1), true)
    });
    // An abort with nothing open is taken (the producer cannot know whether a leader added
    // a partition) and bumps the epoch again.
    d.compare("abort-nothing-open", END_V2, |s| {
        end_request(&id, bumped(ids.of(s), 1), false)
    });
    await_state(&mut d, &id, "CompleteAbort");
    d.compare("abort-retried", END_V2, |s| {
        end_request(&id, bumped(ids.of(s), 1), false)
    });
    d.compare("end-old-epoch", END_V2, |s| {
        end_request(&id, ids.of(s), false)
    });

    // The next transaction, at the twice-bumped epoch, from sequence 0 (Produce v13 names
    // the topic by id).
    let (next, _) = d.compare("produce-next-transaction", 13, |s| {
        produce(s, &id, &topic, (0, 13), bumped(ids.of(s), 2), 0)
    });
    assert_eq!(produce_code(next.response().unwrap()), 0);
    // Its partition holds an open transaction at the epoch: a transaction.version 2 marker
    // at that epoch is refused, one epoch later is taken.
    let (refused, _) = d.compare("marker-v2-same-epoch", 2, |s| {
        marker_v2(&topic, bumped(ids.of(s), 2))
    });
    let code = refused.response().unwrap().markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH");
    d.compare("marker-v2-newer-epoch", 2, |s| {
        marker_v2(&topic, bumped(ids.of(s), 3))
    });
    d.compare("marker-v2-retried", 2, |s| {
        marker_v2(&topic, bumped(ids.of(s), 3))
    });
    d.compare("marker-v2-older-epoch", 2, |s| {
        marker_v2(&topic, bumped(ids.of(s), 2))
    });

    // A new producer with the id while a transaction is open: the coordinator aborts it at
    // a bumped epoch (by the cluster's transaction.version, 2 on both) and asks the new one
    // to retry.
    let fenced = d.topic("fenced");
    let open = init_both(&mut d, &fenced);
    d.compare("fence-open-transaction", 12, |s| {
        produce(s, &fenced, &topic, (1, 12), open.of(s), 0)
    });
    d.compare("fence-init", 5, |_| init_request(Some(&fenced), 60_000));
    await_state(&mut d, &fenced, "CompleteAbort");
    let describe = |id: &str| {
        DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(str_bytes(id))])
    };
    d.compare("fence-aborted", 0, |_| describe(&fenced));
    d.compare("fence-init-again", 5, |_| {
        init_request(Some(&fenced), 60_000)
    });
    d.compare("fence-old-producer", END_V2, |s| {
        end_request(&fenced, open.of(s), true)
    });

    d.compare("producers", 0, |_| {
        DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name(&topic))
            .with_partition_indexes(vec![0, 1])])
    });
    d.finish();
}
