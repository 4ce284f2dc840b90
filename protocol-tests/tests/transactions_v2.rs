//! Transactions v2 (KIP-890 part 2) across brokers: a transaction.version 2 producer writes
//! (Produce v13) to a partition led by a broker that does not coordinate its transactional
//! id, without AddPartitionsToTxn; that leader has the coordinator add the partition
//! (AddPartitionsToTxn v5 between brokers), and EndTxn v5 at the coordinator bumps the epoch
//! and ends the transaction in the partition with a transaction.version 2 marker.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{self, messages, producer_batch, Producer};
use samsa_protocol_tests::client::{
    last_stable_offset, only_partition, produce_request, str_bytes, topic_name, TopicRef,
};
use samsa_protocol_tests::cluster::{partition, TestCluster};
use samsa_protocol_tests::Connection;

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const PRODUCE_V2: i16 = 13;
const END_TXN_V2: i16 = 5;

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(str_bytes(id))
}

/// The broker coordinating transactional id `id`.
fn coordinator_of(conn: &mut Connection, id: &str) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = FindCoordinatorRequest::default()
            .with_key(str_bytes(id))
            .with_key_type(1);
        let response = conn.send(&request, 3)?;
        if response.error_code == 0 {
            return Ok(response.node_id.0);
        }
        if Instant::now() > deadline {
            bail!("FindCoordinator({id}): error {}", response.error_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn init(conn: &mut Connection, id: &str) -> Result<(i64, i16)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = conn.send(&request, 5)?;
        match response.error_code {
            0 => return Ok((response.producer_id.0, response.producer_epoch)),
            COORDINATOR_LOAD_IN_PROGRESS | NOT_COORDINATOR | CONCURRENT_TRANSACTIONS
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100))
            }
            code => bail!("InitProducerId: error {code}"),
        }
    }
}

fn produce(
    conn: &mut Connection,
    (topic, index): (&TopicRef, i32),
    id: &str,
    (producer_id, epoch): (i64, i16),
    text: &str,
) -> Result<i16> {
    let records = producer_batch(
        &messages(text, 2, batches::base_timestamp()),
        Producer::transactional(producer_id, epoch, 0),
    );
    let request = produce_request(topic, index, records, -1, PRODUCE_V2)
        .with_transactional_id(Some(txn_id(id)));
    Ok(only_partition(&conn.send(&request, PRODUCE_V2)?)?.error_code)
}

/// EndTxn v5: the error code and the producer id and epoch the producer goes on with.
fn end(
    conn: &mut Connection,
    id: &str,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> Result<(i16, (i64, i16))> {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let response = conn.send(&request, END_TXN_V2)?;
    Ok((
        response.error_code,
        (response.producer_id.0, response.producer_epoch),
    ))
}

/// The partition's producer state for `producer_id`: its epoch and open transaction start.
fn producer_state(
    conn: &mut Connection,
    (topic, index): (&str, i32),
    producer_id: i64,
) -> Result<(i16, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(vec![index])]);
    let response = conn.send(&request, 0)?;
    let p = &response.topics[0].partitions[0];
    let state = p
        .active_producers
        .iter()
        .find(|s| s.producer_id.0 == producer_id)
        .context("the producer in the partition's state")?;
    Ok((state.producer_epoch as i16, state.current_txn_start_offset))
}

fn await_lso(conn: &mut Connection, topic: (&str, i32), wanted: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while last_stable_offset(conn, topic.0, topic.1)? != wanted {
        if Instant::now() > deadline {
            bail!("the last stable offset never reached {wanted}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn a_leader_has_the_remote_coordinator_add_its_partition() -> Result<()> {
    let cluster = TestCluster::start(3, "")?;
    let topic = cluster.create_topic(1, "v2-remote", 3, 1, &[], &[1, 2, 3])?;
    let id = "v2-remote".to_owned();
    let coordinator = coordinator_of(&mut cluster.connect(1)?, &id)?;
    // A partition led by another broker than the id's coordinator.
    let m = cluster.metadata(1, &[&topic.name])?;
    let (index, leader) = (0..3)
        .filter_map(|i| partition(&m, &topic.name, i).map(|p| (i, p.leader_id.0)))
        .find(|(_, leader)| *leader != coordinator)
        .context("a partition led elsewhere")?;
    let mut at_coordinator = cluster.connect(coordinator)?;
    let mut at_leader = cluster.connect(leader)?;
    let (tp, at) = ((&topic, index), (topic.name.as_str(), index));
    let producer = init(&mut at_coordinator, &id)?;

    // No AddPartitionsToTxn: the leader has the partition added and takes the batch.
    assert_eq!(produce(&mut at_leader, tp, &id, producer, "first")?, 0);
    assert_eq!(last_stable_offset(&mut at_leader, at.0, at.1)?, 0);
    // A stale epoch is refused by the coordinator, passed on as Kafka's leader does.
    let stale = (producer.0, producer.1 + 3);
    assert_eq!(produce(&mut at_leader, tp, &id, stale, "stale")?, 47);

    let (code, next) = end(&mut at_coordinator, &id, producer, true)?;
    assert_eq!(code, 0);
    assert_eq!(
        next,
        (producer.0, producer.1 + 1),
        "the commit bumps the epoch"
    );
    // The marker (at the bumped epoch, transaction.version 2) reached the leader.
    await_lso(&mut at_leader, at, 3)?;
    assert_eq!(
        producer_state(&mut at_leader, at, producer.0)?,
        (next.1, -1)
    );

    // The next transaction, at the new epoch from sequence 0, aborted.
    assert_eq!(produce(&mut at_leader, tp, &id, next, "second")?, 0);
    let (code, after) = end(&mut at_coordinator, &id, next, false)?;
    assert_eq!((code, after), (0, (producer.0, producer.1 + 2)));
    await_lso(&mut at_leader, at, 6)?;
    assert_eq!(
        producer_state(&mut at_leader, at, producer.0)?,
        (after.1, -1)
    );
    Ok(())
}
