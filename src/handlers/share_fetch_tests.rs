//! ShareFetch and ShareAcknowledge against a broker serving on loopback in this process, its
//! share-partition state initialized through the persister as the group coordinator will
//! initialize it (the share-group side is not here yet).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::share_acknowledge_request as ack_request;
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::config::Config;
use crate::peer::PeerConnection;
use crate::share::state::SharePartitionKey;
use crate::testing::{start_broker, InProcessBroker};
use crate::topics::internal::{encode_batch, record};

const TIMEOUT: Duration = Duration::from_secs(20);
const GROUP: &str = "g";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn records(count: i64) -> Bytes {
    let batch: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record(
                Bytes::from(format!("k{i}")),
                Some(Bytes::from_static(b"v")),
                i,
                0,
            );
            r.sequence = i as i32;
            r
        })
        .collect();
    encode_batch(&batch, "test records").unwrap()
}

struct Setup {
    broker: InProcessBroker,
    conn: PeerConnection,
    topic_id: Uuid,
}

/// A broker with share groups on, topic "t" (one partition) holding `count` records, and
/// group g's share-partition of it initialized at offset 0.
async fn setup(dir: &Path, count: i64, config: Config) -> Setup {
    let broker = start_broker(dir, config).await;
    let mut conn = PeerConnection::connect(&broker.addr, "test", TIMEOUT)
        .await
        .unwrap();
    let features = UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(s("share.version"))
            .with_max_version_level(2)
            .with_upgrade_type(1)]);
    let answer = conn.send(&features, 1, TIMEOUT).await.unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let created = conn.send(&create, 7, TIMEOUT).await.unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;
    if count > 0 {
        produce(&mut conn, count).await;
    }
    let key = SharePartitionKey {
        group_id: GROUP.into(),
        topic_id,
        partition: 0,
    };
    broker
        .broker
        .share_state
        .initialize(&key, 0, 0)
        .await
        .unwrap();
    Setup {
        broker,
        conn,
        topic_id,
    }
}

async fn produce(conn: &mut PeerConnection, count: i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(15_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records(count)))])]);
    let response = conn.send(&request, 9, TIMEOUT).await.unwrap();
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

fn share_fetch(topic: Uuid, member: &str, epoch: i32, wait_ms: i32) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(s(GROUP))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(500)
        .with_batch_size(500)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![
                FetchPartition::default().with_partition_index(0)
            ])])
}

fn with_ack(mut request: ShareFetchRequest, first: i64, last: i64, kind: i8) -> ShareFetchRequest {
    request.topics[0].partitions[0].acknowledgement_batches = vec![AcknowledgementBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(vec![kind])];
    request
}

fn share_ack(
    topic: Uuid,
    member: &str,
    epoch: i32,
    first: i64,
    last: i64,
    kind: i8,
) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(s(GROUP))))
        .with_member_id(Some(s(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![ack_request::AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![ack_request::AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(vec![
                    ack_request::AcknowledgementBatch::default()
                        .with_first_offset(first)
                        .with_last_offset(last)
                        .with_acknowledge_types(vec![kind]),
                ])])])
}

fn metrics(broker: &crate::broker::Broker) -> String {
    let shares = broker.share_leader.snapshot();
    let sessions = broker.share_leader.sessions.len();
    broker
        .metrics
        .share
        .update(&broker.topics, &shares, sessions);
    broker
        .metrics
        .render(&broker.topics, &[], broker.fetch_sessions.stats(), &[])
}

/// Whether `text` has a series of metric `name` (any labels) with `value`.
fn series(text: &str, name: &str, value: &str) -> bool {
    text.lines().any(|l| {
        (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            && l.ends_with(&format!(" {value}"))
    })
}

/// (first, last, delivery count) of each acquired range of the only partition answered.
fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_a_partition_and_released_records_come_back_counted() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        mut conn,
        topic_id: t,
        broker,
    } = setup(dir.path(), 10, Config::default()).await;

    let a = conn
        .send(&share_fetch(t, "member-a", 0, 500), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&a), vec![(0, 9, 1)]);
    assert_eq!(a.acquisition_lock_timeout_ms, 30_000);
    let data = &a.responses[0].partitions[0];
    assert!(data.records.as_ref().is_some_and(|r| !r.is_empty()));

    // Everything is locked by a: b waits its MaxWaitMs and gets nothing, its full session
    // answering the partition all the same.
    let started = Instant::now();
    let b = conn
        .send(&share_fetch(t, "member-b", 0, 300), 1, TIMEOUT)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(acquired(&b), vec![]);
    assert_eq!(b.responses[0].partitions.len(), 1);

    // a releases five through ShareAcknowledge; b's waiting fetch gets them, counted twice.
    let released = conn
        .send(&share_ack(t, "member-a", 1, 0, 4, 2), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(released.error_code, 0);
    assert_eq!(released.responses[0].partitions[0].error_code, 0);
    let b = conn
        .send(&share_fetch(t, "member-b", 1, 2000), 1, TIMEOUT)
        .await
        .unwrap();
    let got = acquired(&b);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|&(f, l, c)| f == l && f < 5 && c == 2));

    // Metrics: a holds five, b five delivered twice; b's acknowledgement counted below.
    let text = metrics(&broker.broker);
    assert!(
        series(&text, "samsa_share_partition_acquired_records", "10"),
        "{text}"
    );
    assert!(
        series(&text, "samsa_share_partition_redelivered_records", "5"),
        "{text}"
    );
    assert!(series(&text, "samsa_share_sessions", "2"), "{text}");

    // b accepts them piggy-backed on its next fetch; a accepting what b holds is refused.
    let refused = conn
        .send(&share_ack(t, "member-a", 2, 0, 0, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        refused.responses[0].partitions[0].error_code,
        E::InvalidRecordState.code()
    );
    let b = conn
        .send(
            &with_ack(share_fetch(t, "member-b", 2, 0), 0, 4, 1),
            1,
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(
        b.responses[0].partitions[0].acknowledge_error_code, 0,
        "{b:?}"
    );
    let text = metrics(&broker.broker);
    assert!(
        series(&text, "samsa_share_acknowledged_records_total", "5"),
        "{text}"
    );
    assert!(
        series(&text, "samsa_share_partition_start_offset", "5"),
        "{text}"
    );

    // a closes its session: the five it holds go back, and b gets them.
    let closed = conn
        .send(&share_fetch(t, "member-a", -1, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(closed.error_code, 0);
    let b = conn
        .send(&share_fetch(t, "member-b", 3, 2000), 1, TIMEOUT)
        .await
        .unwrap();
    // The batch is tracked offset by offset since part of it was released: one range each.
    let expected: Vec<_> = (5..=9).map(|o| (o, o, 2)).collect();
    assert_eq!(acquired(&b), expected);
    // Gone with the session: a's next epoch finds none.
    let gone = conn
        .send(&share_fetch(t, "member-a", 1, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(gone.error_code, E::ShareSessionNotFound.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        mut conn,
        topic_id: t,
        broker,
    } = setup(dir.path(), 0, Config::default()).await;
    let addr = broker.addr.clone();
    let producer = tokio::spawn(async move {
        let mut other = PeerConnection::connect(&addr, "producer", TIMEOUT)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce(&mut other, 3).await;
    });
    let started = Instant::now();
    let got = conn
        .send(&share_fetch(t, "m", 0, 10_000), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&got), vec![(0, 2, 1)]);
    assert!(started.elapsed() < Duration::from_secs(5));
    producer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_returns_the_records_and_the_limit_archives_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        group_share_record_lock_duration_ms: 1000,
        group_share_delivery_count_limit: 2,
        ..Config::default()
    };
    let Setup {
        mut conn,
        topic_id: t,
        broker: _broker,
    } = setup(dir.path(), 1, config).await;
    let first = conn
        .send(&share_fetch(t, "a", 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&first), vec![(0, 0, 1)]);
    assert_eq!(first.acquisition_lock_timeout_ms, 1000);
    // b's long poll wakes when a's lock expires, without new records.
    let started = Instant::now();
    let second = conn
        .send(&share_fetch(t, "b", 0, 10_000), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&second), vec![(0, 0, 2)]);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Released at its second delivery of two: archived, never delivered again.
    let released = conn
        .send(&share_ack(t, "b", 1, 0, 0, 2), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(released.responses[0].partitions[0].error_code, 0);
    let third = conn
        .send(&share_fetch(t, "c", 0, 300), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&third), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_request_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        mut conn,
        topic_id: t,
        broker: _broker,
    } = setup(dir.path(), 1, Config::default()).await;
    let send = |r: ShareFetchRequest| r;
    // Acknowledgements in a session's first fetch.
    let with_acks = conn
        .send(
            &with_ack(send(share_fetch(t, "m", 0, 0)), 0, 0, 1),
            1,
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(with_acks.error_code, E::InvalidRequest.code());
    // No session yet, and an epoch out of turn.
    let none = conn
        .send(&share_fetch(t, "m", 5, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(none.error_code, E::ShareSessionNotFound.code());
    conn.send(&share_fetch(t, "m", 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    let skipped = conn
        .send(&share_fetch(t, "m", 3, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(skipped.error_code, E::InvalidShareSessionEpoch.code());
    let ack_epoch_zero = conn
        .send(&share_ack(t, "m", 0, 0, 0, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        ack_epoch_zero.error_code,
        E::InvalidShareSessionEpoch.code()
    );
    // A member id longer than a UUID's 36 characters.
    let long = conn
        .send(&share_fetch(t, &"x".repeat(37), 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(long.error_code, E::InvalidRequest.code());
    // Bad ranges, an unknown type, an unknown topic id: partition-level errors.
    let backwards = conn
        .send(&share_ack(t, "m", 1, 1, 0, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        backwards.responses[0].partitions[0].error_code,
        E::InvalidRequest.code()
    );
    let renew_v1 = conn
        .send(&share_ack(t, "m", 2, 0, 0, 4), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        renew_v1.responses[0].partitions[0].error_code,
        E::InvalidRequest.code()
    );
    let unknown = conn
        .send(&share_ack(Uuid::from_u128(9), "m", 3, 0, 0, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        unknown.responses[0].partitions[0].error_code,
        E::UnknownTopicId.code()
    );
    // Past what is in flight.
    let past = conn
        .send(&share_ack(t, "m", 4, 0, 5, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        past.responses[0].partitions[0].error_code,
        E::InvalidRequest.code()
    );
    // v2 renews: the lock is extended, the records stay the member's.
    let renew = share_ack(t, "m", 5, 0, 0, 4).with_is_renew_ack(true);
    let renewed = conn.send(&renew, 2, TIMEOUT).await.unwrap();
    assert_eq!(
        renewed.responses[0].partitions[0].error_code, 0,
        "{renewed:?}"
    );
    assert_eq!(renewed.acquisition_lock_timeout_ms, 30_000);
    let accepted = conn
        .send(&share_ack(t, "m", 6, 0, 0, 1), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(accepted.responses[0].partitions[0].error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_session_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        group_share_max_share_sessions: 1,
        ..Config::default()
    };
    let Setup {
        mut conn,
        topic_id: t,
        broker: _broker,
    } = setup(dir.path(), 0, config).await;
    conn.send(&share_fetch(t, "a", 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    let started = Instant::now();
    let full = conn
        .send(&share_fetch(t, "b", 0, 200), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(full.error_code, E::ShareSessionLimitReached.code());
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_the_share_coordinator_refuses_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        mut conn,
        topic_id: t,
        broker,
    } = setup(dir.path(), 2, Config::default()).await;
    let first = conn
        .send(&share_fetch(t, "a", 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&first), vec![(0, 1, 1)]);
    // A new state epoch (as an offsets reset makes): the leader's next write is fenced.
    let key = SharePartitionKey {
        group_id: GROUP.into(),
        topic_id: t,
        partition: 0,
    };
    broker
        .broker
        .share_state
        .initialize(&key, 1, 0)
        .await
        .unwrap();
    let accepted = conn
        .send(&share_ack(t, "a", 1, 0, 1, 1), 1, TIMEOUT)
        .await
        .unwrap();
    // Kafka fails the acknowledgement with the persister's error (FENCED_STATE_EPOCH reads
    // NOT_LEADER_OR_FOLLOWER); had it answered success, the records below would be
    // delivered again after the member was told they were done.
    assert_eq!(
        accepted.responses[0].partitions[0].error_code,
        E::NotLeaderOrFollower.code()
    );
    let again = conn
        .send(&share_fetch(t, "b", 0, 0), 1, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(acquired(&again), vec![(0, 1, 1)]);
}
