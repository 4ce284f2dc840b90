//! Log compaction on the wire: a `cleanup.policy=compact` topic converges to the last value
//! per key at unchanged offsets, keyless records are refused, and `__consumer_offsets` stays
//! small however often one offset is committed. The cleaner runs every 100 ms here; tests
//! poll with a deadline for its result.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{self, base_timestamp, Message};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, only_fetched, only_partition, produce, produce_request, str_bytes,
    topic_name, TopicRef, LATEST_PRODUCE,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const CONFIG: &str = "log_cleaner_interval_ms = 100\ngroup_initial_rebalance_delay_ms = 0\noffsets_topic_segment_bytes = 1024\n";
const DEADLINE: Duration = Duration::from_secs(30);
/// Fetch v12 names topics, so internal topics can be read without looking up their id.
const FETCH_BY_NAME: i16 = 12;

/// (offset, key, value) of every record from the log start to the high watermark, fetching
/// batch by batch and advancing by each batch's last offset, as consumers do.
fn read_all(conn: &mut Connection, topic: &TopicRef) -> Result<Vec<(i64, String, Option<String>)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let response = conn.send(
            &fetch_request(topic, 0, offset, FETCH_BY_NAME),
            FETCH_BY_NAME,
        )?;
        let data = only_fetched(&response)?;
        ensure!(
            data.error_code == 0,
            "fetch {} at {offset}: error {}",
            topic.name,
            data.error_code
        );
        let records = data.records.clone().unwrap_or_default();
        if records.is_empty() {
            return Ok(out);
        }
        for fetched in batches::decode(&records)? {
            if fetched.offset >= offset {
                let text =
                    |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                out.push((
                    fetched.offset,
                    text(&fetched.message.key).unwrap_or_default(),
                    text(&fetched.message.value),
                ));
            }
        }
        offset = end_of_batches(&records).context("no whole batch")?;
        if offset >= data.high_watermark {
            return Ok(out);
        }
    }
}

/// The offset after the last batch: base offset + lastOffsetDelta + 1.
fn end_of_batches(mut bytes: &[u8]) -> Option<i64> {
    let mut end = None;
    while bytes.len() >= 61 {
        let base = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let size = 12 + i32::from_be_bytes(bytes[8..12].try_into().ok()?) as usize;
        let delta = i32::from_be_bytes(bytes[23..27].try_into().ok()?);
        end = Some(base + i64::from(delta) + 1);
        bytes = bytes.get(size..)?;
    }
    end
}

fn poll_until<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(done) = check().unwrap() {
            return done;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_compacted_topic_keeps_the_last_value_per_key() {
    let broker = BrokerProcess::start(CONFIG).unwrap();
    let mut conn = broker.connect().unwrap();
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "600"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    let topic = create_topic(&mut conn, "table", 1, &configs).unwrap();
    let ts = base_timestamp();
    for round in 0..20 {
        let messages: Vec<Message> = (0..5)
            .map(|k| Message::new(&format!("k{k}"), &format!("r{round}"), ts))
            .collect();
        let compression = [
            kafka_protocol::records::Compression::None,
            kafka_protocol::records::Compression::Gzip,
        ][round % 2];
        produce(
            &mut conn,
            &topic,
            0,
            batches::batch_with(&messages, compression),
        )
        .unwrap();
    }
    // Unique keys after the overwrites, so the overwrites all end up in sealed segments.
    for i in 0..20 {
        produce(
            &mut conn,
            &topic,
            0,
            batches::batch(&[Message::new(&format!("filler{i}"), "x", ts)]),
        )
        .unwrap();
    }
    // The cleaner runs every 100 ms and may already be at work, so what must survive is
    // worked out from what was written rather than read back first: the last round's values
    // (offsets 95..100, round 19) and every filler, each at the offset it was written at.
    let expected: Vec<_> = (0..5)
        .map(|k| (95 + k, format!("k{k}"), Some("r19".to_owned())))
        .chain((0..20).map(|i| (100 + i, format!("filler{i}"), Some("x".to_owned()))))
        .collect();

    let after = poll_until("the overwrites to be compacted away", || {
        let records = read_all(&mut conn, &topic)?;
        Ok((records.len() == 25).then_some(records))
    });
    assert_eq!(after, expected);
    // A fetch at a removed offset answers from the next batch kept.
    let response = conn
        .send(&fetch_request(&topic, 0, 3, FETCH_BY_NAME), FETCH_BY_NAME)
        .unwrap();
    let first =
        batches::decode(only_fetched(&response).unwrap().records.as_ref().unwrap()).unwrap();
    assert_eq!(
        first.iter().find(|f| f.offset >= 3).map(|f| f.offset),
        Some(95)
    );
}

#[test]
fn keyless_records_are_refused_by_compacted_topics_only() {
    let broker = BrokerProcess::start(CONFIG).unwrap();
    let mut conn = broker.connect().unwrap();
    let compacted = create_topic(
        &mut conn,
        "compacted",
        1,
        &[("cleanup.policy", "compact,delete")],
    )
    .unwrap();
    let plain = create_topic(&mut conn, "plain", 1, &[]).unwrap();
    let keyless = Message {
        key: None,
        ..Message::new("", "no key", base_timestamp())
    };
    let records = batches::batch(&[Message::new("k", "v", base_timestamp()), keyless]);
    let response = conn
        .send(
            &produce_request(&compacted, 0, records.clone(), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(
        only_partition(&response).unwrap().error_code,
        E::InvalidRecord.code()
    );
    assert_eq!(
        read_all(&mut conn, &compacted).unwrap(),
        vec![],
        "nothing of the batch is written"
    );
    assert_eq!(produce(&mut conn, &plain, 0, records).unwrap(), 0);
}

fn commit(conn: &mut Connection, group: &str, topic: &str, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(str_bytes(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response = conn.send(&request, 8).unwrap();
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

fn committed(conn: &mut Connection, group: &str, topic: &str) -> i64 {
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0])]))]);
    let response = conn.send(&request, 9).unwrap();
    assert_eq!(response.groups[0].error_code, 0);
    response.groups[0].topics[0].partitions[0].committed_offset
}

/// Group APIs answer COORDINATOR_LOAD_IN_PROGRESS until the offsets topic is replayed.
fn wait_loaded(conn: &mut Connection) {
    poll_until("the coordinator to load", || {
        Ok((conn.send(&ListGroupsRequest::default(), 0)?.error_code == 0).then_some(()))
    });
}

fn log_bytes(broker: &BrokerProcess, partition_dir: &str) -> u64 {
    let dir = broker.data_dir.path().join("data").join(partition_dir);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| p.metadata().unwrap().len())
        .sum()
}

#[test]
fn committed_offsets_stay_bounded() {
    let mut broker = BrokerProcess::start(CONFIG).unwrap();
    let mut conn = broker.connect().unwrap();
    wait_loaded(&mut conn);
    create_topic(&mut conn, "orders", 1, &[]).unwrap();
    const COMMITS: i64 = 300;
    for offset in 0..COMMITS {
        commit(&mut conn, "steady", "orders", offset);
    }
    let offsets_topic = TopicRef {
        name: "__consumer_offsets".into(),
        id: Default::default(),
    };
    // 300 commits of one key take ~60 segments of 1 KiB; cleaned, a handful of records is left.
    let left = poll_until("__consumer_offsets to be compacted", || {
        let records = read_all(&mut conn, &offsets_topic)?;
        Ok((records.len() <= 10).then_some(records))
    });
    assert!(!left.is_empty());
    assert!(
        log_bytes(&broker, "__consumer_offsets-0") < 4 * 1024,
        "{} bytes",
        log_bytes(&broker, "__consumer_offsets-0")
    );
    assert_eq!(committed(&mut conn, "steady", "orders"), COMMITS - 1);

    // The compacted topic replays to the same state.
    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    wait_loaded(&mut conn);
    assert_eq!(committed(&mut conn, "steady", "orders"), COMMITS - 1);
    commit(&mut conn, "steady", "orders", COMMITS);
    assert_eq!(committed(&mut conn, "steady", "orders"), COMMITS);
}
