//! Transactions end to end against a real broker: InitProducerId, AddPartitionsToTxn,
//! transactional Produce and EndTxn, then what consumers of each isolation level see;
//! fencing, coordinator timeouts, and transaction state across restarts.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{self, messages, producer_batch, Producer};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, list_offsets_request, only_fetched, only_partition,
    produce_request, str_bytes, topic_name, TopicRef, LATEST_FETCH,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTION_ABORTABLE: i16 = 120;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const READ_COMMITTED: i8 = 1;
const CONTROL_ATTRIBUTE: i16 = 0x20;
const TRANSACTIONAL_ATTRIBUTE: i16 = 0x10;

/// A transactional producer as the wire sees it.
struct TxnProducer {
    id: String,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(str_bytes(id))
}

/// InitProducerId v5 until the coordinator has loaded and any fencing abort has finished.
fn init(conn: &mut Connection, id: &str, timeout_ms: i32) -> Result<TxnProducer> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = conn.send(&request, 5)?;
        match response.error_code {
            0 => {
                return Ok(TxnProducer {
                    id: id.to_owned(),
                    producer_id: response.producer_id.0,
                    epoch: response.producer_epoch,
                    sequence: 0,
                })
            }
            COORDINATOR_LOAD_IN_PROGRESS | CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => bail!("InitProducerId for {id}: error {other}"),
        }
    }
}

fn add_partition(
    conn: &mut Connection,
    p: &TxnProducer,
    topic: &str,
    partition: i32,
) -> Result<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(&p.id))
        .with_v3_and_below_producer_id(ProducerId(p.producer_id))
        .with_v3_and_below_producer_epoch(p.epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![partition])]);
    let response = conn.send(&request, 3)?;
    Ok(response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)
}

/// Produces `count` records in `p`'s transaction; the partition's error code and base offset.
fn produce_txn(
    conn: &mut Connection,
    p: &mut TxnProducer,
    topic: &TopicRef,
    partition: i32,
    count: usize,
    version: i16,
) -> Result<(i16, i64)> {
    let producer = Producer {
        id: p.producer_id,
        epoch: p.epoch,
        base_sequence: p.sequence,
        transactional: true,
    };
    let records = producer_batch(&messages(&format!("s{}", p.sequence), count, *T0), producer);
    let request = produce_request(topic, partition, records, -1, version)
        .with_transactional_id(Some(txn_id(&p.id)));
    let response = conn.send(&request, version)?;
    let result = only_partition(&response)?;
    if result.error_code == 0 {
        p.sequence += count as i32;
    }
    Ok((result.error_code, result.base_offset))
}

fn end(conn: &mut Connection, p: &TxnProducer, commit: bool, version: i16) -> Result<i16> {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(&p.id))
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(p.epoch)
        .with_committed(commit);
    Ok(conn.send(&request, version)?.error_code)
}

fn describe(conn: &mut Connection, id: &str) -> Result<TransactionState> {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    Ok(conn.send(&request, 0)?.transaction_states.remove(0))
}

fn fetch(conn: &mut Connection, topic: &TopicRef, isolation: i8) -> Result<PartitionData> {
    let request = fetch_request(topic, 0, 0, LATEST_FETCH).with_isolation_level(isolation);
    let response = conn.send(&request, LATEST_FETCH)?;
    let data = only_fetched(&response)?.clone();
    ensure!(data.error_code == 0, "fetch: error {}", data.error_code);
    Ok(data)
}

/// A batch as fetched: (base offset, attributes, producer id, control type of a marker).
type FetchedBatch = (i64, i16, i64, Option<i16>);

fn batches_of(records: &Bytes) -> Result<Vec<FetchedBatch>> {
    let mut out = Vec::new();
    let mut rest = &records[..];
    while rest.len() >= 61 {
        let len = 12 + i32::from_be_bytes(rest[8..12].try_into()?) as usize;
        ensure!(len <= rest.len(), "truncated batch");
        let batch = &rest[..len];
        let base_offset = i64::from_be_bytes(batch[0..8].try_into()?);
        let attributes = i16::from_be_bytes(batch[21..23].try_into()?);
        let producer_id = i64::from_be_bytes(batch[43..51].try_into()?);
        let control = (attributes & CONTROL_ATTRIBUTE != 0)
            .then(|| {
                let mut set = Bytes::copy_from_slice(batch);
                let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut set).ok()?;
                let key = decoded.records.first()?.key.clone()?;
                Some(i16::from_be_bytes([key[2], key[3]]))
            })
            .flatten();
        out.push((base_offset, attributes, producer_id, control));
        rest = &rest[len..];
    }
    Ok(out)
}

fn latest_committed(conn: &mut Connection, topic: &str) -> Result<i64> {
    let request = list_offsets_request(topic, 0, -1).with_isolation_level(READ_COMMITTED);
    let response = conn.send(&request, 7)?;
    let answer = &response.topics[0].partitions[0];
    ensure!(
        answer.error_code == 0,
        "ListOffsets: error {}",
        answer.error_code
    );
    Ok(answer.offset)
}

fn await_state(conn: &mut Connection, id: &str, state: &str) -> Result<TransactionState> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let described = describe(conn, id)?;
        if described.error_code == 0 && described.transaction_state.as_str() == state {
            return Ok(described);
        }
        if Instant::now() > deadline {
            bail!("{id} never reached {state}: {described:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn committed_and_aborted_transactions_as_consumers_see_them() -> Result<()> {
    let broker = BrokerProcess::start("")?;
    let mut conn = broker.connect()?;
    let topic = create_topic(&mut conn, "txn-visible", 1, &[])?;
    let mut p = init(&mut conn, "visible", 60_000)?;
    assert_eq!(
        (p.epoch, add_partition(&mut conn, &p, &topic.name, 0)?),
        (0, 0)
    );
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 3, 9)?, (0, 0));
    assert_eq!(end(&mut conn, &p, true, 3)?, 0);
    assert_eq!(
        describe(&mut conn, "visible")?.transaction_state.as_str(),
        "CompleteCommit"
    );
    // A retried commit is answered again; an abort of it is not possible.
    assert_eq!(end(&mut conn, &p, true, 3)?, 0);
    assert_eq!(end(&mut conn, &p, false, 3)?, INVALID_TXN_STATE);

    assert_eq!(add_partition(&mut conn, &p, &topic.name, 0)?, 0);
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 2, 9)?, (0, 4));
    assert_eq!(end(&mut conn, &p, false, 4)?, 0);

    let all = fetch(&mut conn, &topic, 0)?;
    let batches = batches_of(all.records.as_ref().context("records")?)?;
    let shape: Vec<(i64, bool, Option<i16>)> = batches
        .iter()
        .map(|(offset, attributes, pid, control)| {
            assert_eq!(*pid, p.producer_id);
            assert!(
                attributes & TRANSACTIONAL_ATTRIBUTE != 0,
                "every batch is transactional"
            );
            (*offset, attributes & CONTROL_ATTRIBUTE != 0, *control)
        })
        .collect();
    // Data, commit marker (type 1), data, abort marker (type 0).
    assert_eq!(
        shape,
        vec![
            (0, false, None),
            (3, true, Some(1)),
            (4, false, None),
            (6, true, Some(0))
        ]
    );
    assert_eq!(all.high_watermark, 7);

    let committed = fetch(&mut conn, &topic, READ_COMMITTED)?;
    assert_eq!(committed.last_stable_offset, 7);
    let aborted: Vec<(i64, i64)> = committed
        .aborted_transactions
        .unwrap_or_default()
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(p.producer_id, 4)]);

    // An open transaction holds read_committed consumers back at its first offset.
    assert_eq!(add_partition(&mut conn, &p, &topic.name, 0)?, 0);
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 1, 9)?, (0, 7));
    assert_eq!(latest_committed(&mut conn, &topic.name)?, 7);
    assert_eq!(
        fetch(&mut conn, &topic, READ_COMMITTED)?.last_stable_offset,
        7
    );
    assert_eq!(fetch(&mut conn, &topic, 0)?.high_watermark, 8);
    assert_eq!(end(&mut conn, &p, true, 4)?, 0);
    assert_eq!(latest_committed(&mut conn, &topic.name)?, 9);
    Ok(())
}

#[test]
fn a_batch_for_a_partition_outside_the_transaction_is_refused() -> Result<()> {
    let broker = BrokerProcess::start("")?;
    let mut conn = broker.connect()?;
    let topic = create_topic(&mut conn, "txn-unadded", 2, &[])?;
    let mut p = init(&mut conn, "unadded", 60_000)?;
    for (version, expected) in [
        (3, INVALID_TXN_STATE),
        (10, INVALID_TXN_STATE),
        (11, TRANSACTION_ABORTABLE),
    ] {
        assert_eq!(
            produce_txn(&mut conn, &mut p, &topic, 0, 1, version)?.0,
            expected,
            "v{version}"
        );
    }
    // Adding partition 0 does not let a batch into partition 1.
    assert_eq!(add_partition(&mut conn, &p, &topic.name, 0)?, 0);
    assert_eq!(
        produce_txn(&mut conn, &mut p, &topic, 1, 1, 9)?.0,
        INVALID_TXN_STATE
    );
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 1, 9)?.0, 0);
    // From Produce v12 the producer is a transaction.version 2 one (KIP-890 part 2), which
    // never adds partitions: the leader has partition 1 added and takes the batch.
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 1, 1, 13)?.0, 0);
    Ok(())
}

#[test]
fn the_transaction_state_topic_is_internal_in_metadata() -> Result<()> {
    let broker = BrokerProcess::start("")?;
    let mut conn = broker.connect()?;
    init(&mut conn, "internal", 60_000)?;
    let listed = conn.send(&MetadataRequest::default().with_topics(None), 12)?;
    let state = listed
        .topics
        .iter()
        .find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "__transaction_state")
        })
        .context("__transaction_state listed once a transactional id is stored")?;
    assert!(
        state.is_internal,
        "Kafka marks it internal, so clients skip it"
    );
    Ok(())
}

#[test]
fn a_new_producer_with_the_same_id_fences_the_old_one() -> Result<()> {
    let broker = BrokerProcess::start("")?;
    let mut conn = broker.connect()?;
    let topic = create_topic(&mut conn, "txn-fenced", 1, &[])?;
    let mut zombie = init(&mut conn, "fenced", 60_000)?;
    assert_eq!(add_partition(&mut conn, &zombie, &topic.name, 0)?, 0);
    assert_eq!(produce_txn(&mut conn, &mut zombie, &topic, 0, 2, 9)?.0, 0);
    // The open transaction is aborted at a bumped epoch first (CONCURRENT_TRANSACTIONS,
    // which `init` retries), then the new producer gets the epoch after that.
    let successor = init(&mut conn, "fenced", 60_000)?;
    assert_eq!(
        (successor.producer_id, successor.epoch),
        (zombie.producer_id, 2)
    );
    assert_eq!(end(&mut conn, &zombie, true, 1)?, INVALID_PRODUCER_EPOCH);
    assert_eq!(end(&mut conn, &zombie, true, 4)?, PRODUCER_FENCED);
    assert_eq!(
        add_partition(&mut conn, &zombie, &topic.name, 0)?,
        PRODUCER_FENCED
    );
    assert_eq!(
        produce_txn(&mut conn, &mut zombie, &topic, 0, 1, 9)?.0,
        INVALID_PRODUCER_EPOCH
    );
    let all = fetch(&mut conn, &topic, 0)?;
    let markers: Vec<Option<i16>> = batches_of(all.records.as_ref().context("records")?)?
        .into_iter()
        .map(|b| b.3)
        .collect();
    assert_eq!(
        markers,
        vec![None, Some(0)],
        "the zombie's transaction was aborted"
    );
    Ok(())
}

#[test]
fn the_coordinator_aborts_a_transaction_past_its_timeout() -> Result<()> {
    let broker =
        BrokerProcess::start("transaction_abort_timed_out_transaction_cleanup_interval_ms = 50\n")?;
    let mut conn = broker.connect()?;
    let topic = create_topic(&mut conn, "txn-timeout", 1, &[])?;
    let mut p = init(&mut conn, "slow", 300)?;
    assert_eq!(add_partition(&mut conn, &p, &topic.name, 0)?, 0);
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 1, 9)?.0, 0);
    let aborted = await_state(&mut conn, "slow", "CompleteAbort")?;
    assert_eq!(
        aborted.producer_epoch,
        p.epoch + 1,
        "the abort fenced the producer"
    );
    assert_eq!(end(&mut conn, &p, true, 4)?, PRODUCER_FENCED);
    assert_eq!(
        fetch(&mut conn, &topic, READ_COMMITTED)?
            .aborted_transactions
            .unwrap_or_default()
            .len(),
        1
    );
    Ok(())
}

#[test]
fn transaction_state_survives_a_restart() -> Result<()> {
    let mut broker = BrokerProcess::start("")?;
    let mut conn = broker.connect()?;
    let topic = create_topic(&mut conn, "txn-restart", 1, &[])?;
    let mut p = init(&mut conn, "durable", 60_000)?;
    let idle = init(&mut conn, "idle", 60_000)?;
    assert_eq!(add_partition(&mut conn, &p, &topic.name, 0)?, 0);
    assert_eq!(produce_txn(&mut conn, &mut p, &topic, 0, 2, 9)?.0, 0);
    broker.restart()?;
    let mut conn = broker.connect()?;
    let open = await_state(&mut conn, "durable", "Ongoing")?;
    assert_eq!(
        (open.producer_id.0, open.producer_epoch),
        (p.producer_id, p.epoch)
    );
    assert_eq!(open.topics.len(), 1);
    assert_eq!(end(&mut conn, &p, true, 4)?, 0);
    assert_eq!(
        describe(&mut conn, "durable")?.transaction_state.as_str(),
        "CompleteCommit"
    );
    // Producer ids are never handed out twice, even to ids created after the restart.
    let fresh = init(&mut conn, "fresh", 60_000)?;
    assert!(
        fresh.producer_id > p.producer_id.max(idle.producer_id),
        "{} reused",
        fresh.producer_id
    );
    let again = init(&mut conn, "idle", 60_000)?;
    assert_eq!(
        (again.producer_id, again.epoch),
        (idle.producer_id, idle.epoch + 1)
    );
    Ok(())
}
