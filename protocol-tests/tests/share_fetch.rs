//! ShareFetch and ShareAcknowledge on a broker process: answered UNSUPPORTED_VERSION while
//! share.version is 0 (an operator turned share groups off), as Kafka 4.4 answers them;
//! served at a new cluster's level, 2, with the share session's rules. What a share-partition does with
//! records is tested in the broker's own tests, where its state can be initialized.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::share_acknowledge_request as ack_request;
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use std::time::{Duration, Instant};

use samsa_protocol_tests::batches::{base_timestamp, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, produce, set_share_version, str_bytes, topic_name, wait_groups_loaded,
};
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

fn fetch(topic: Uuid, member: &str, epoch: i32) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(str_bytes("g"))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![
                FetchPartition::default().with_partition_index(0)
            ])])
}

fn acknowledge(topic: Uuid, member: &str, epoch: i32) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(str_bytes("g"))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![ack_request::AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![
                ack_request::AcknowledgePartition::default().with_partition_index(0)
            ])])
}

#[test]
fn share_fetch_follows_share_version_and_its_sessions() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "queue", 1, &[]).unwrap().id;
    set_share_version(&mut conn, 0).unwrap();
    for v in 1..=2 {
        let refused = conn.send(&fetch(topic, "m", 0), v).unwrap();
        assert_eq!(refused.error_code, E::UnsupportedVersion.code(), "v{v}");
        let refused = conn.send(&acknowledge(topic, "m", 1), v).unwrap();
        assert_eq!(refused.error_code, E::UnsupportedVersion.code(), "v{v}");
    }
    set_share_version(&mut conn, 2).unwrap();
    for v in 1..=2 {
        let member = format!("member-{v}");
        let opened = conn.send(&fetch(topic, &member, 0), v).unwrap();
        assert_eq!(opened.error_code, 0, "v{v}: {opened:?}");
        assert_eq!(opened.acquisition_lock_timeout_ms, 30_000);
        // A full session answers its partition, here not yet initialized by a group.
        assert_eq!(opened.responses[0].partitions.len(), 1);
        let unknown = conn
            .send(&fetch(Uuid::from_u128(1), &member, 1), v)
            .unwrap();
        assert_eq!(unknown.error_code, 0);
        let codes: Vec<i16> = unknown
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code)
            .collect();
        assert!(
            codes.contains(&E::UnknownTopicId.code()),
            "v{v}: {unknown:?}"
        );
        let late = conn.send(&fetch(topic, &member, 1), v).unwrap();
        assert_eq!(late.error_code, E::InvalidShareSessionEpoch.code());
        let acked = conn.send(&acknowledge(topic, &member, 2), v).unwrap();
        assert_eq!(acked.error_code, 0, "v{v}: {acked:?}");
        assert_eq!(acked.responses[0].partitions[0].error_code, 0);
        let closed = conn.send(&acknowledge(topic, &member, -1), v).unwrap();
        assert_eq!(closed.error_code, 0);
        let gone = conn.send(&fetch(topic, &member, 3), v).unwrap();
        assert_eq!(gone.error_code, E::ShareSessionNotFound.code());
    }
    // Turned off again: refused again.
    set_share_version(&mut conn, 0).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = conn.send(&fetch(topic, "m", 0), 1).unwrap();
        if answer.error_code == E::UnsupportedVersion.code() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn join(member: &str) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_member_id(str_bytes(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![topic_name("queue")]))
}

/// Heartbeats as `member` until it is assigned a partition; its epoch then.
fn assigned(conn: &mut Connection, member: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut request = join(member);
    loop {
        let answer = conn.send(&request, 1).unwrap();
        assert_eq!(answer.error_code, 0, "{answer:?}");
        let held = answer
            .assignment
            .as_ref()
            .is_some_and(|a| a.topic_partitions.iter().any(|t| !t.partitions.is_empty()));
        if held {
            return answer.member_epoch;
        }
        assert!(
            Instant::now() < deadline,
            "{member} not assigned: {answer:?}"
        );
        request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes(member))
            .with_member_epoch(answer.member_epoch);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn waiting(mut request: ShareFetchRequest, ms: i32) -> ShareFetchRequest {
    request.max_wait_ms = ms;
    request.min_bytes = 1;
    request
}

fn ranges(answer: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

/// With the group side: members ShareGroupHeartbeat admits fetch the partition it assigns
/// them (its share state initialized by the group coordinator, so reading starts at the end
/// of the log, share.auto.offset.reset's default); a member that leaves the group, and one
/// whose connection closes, have their records released at once, delivered again with
/// delivery count 2.
#[test]
fn members_closing_their_share_session_or_disconnecting_release_their_records() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    wait_groups_loaded(&mut admin).unwrap();
    set_share_version(&mut admin, 2).unwrap();
    let queue = create_topic(&mut admin, "queue", 1, &[]).unwrap();
    let t = queue.id;
    let mut m1 = broker.connect().unwrap();
    let epoch = assigned(&mut m1, "m1");
    // The first fetch loads the share-partition at the log's end (empty), then waits.
    let first = m1.send(&fetch(t, "m1", 0), 1).unwrap();
    assert_eq!(ranges(&first), vec![]);
    produce(
        &mut admin,
        &queue,
        0,
        batch(&messages("r", 3, base_timestamp())),
    )
    .unwrap();
    let got = m1.send(&waiting(fetch(t, "m1", 1), 5000), 1).unwrap();
    assert_eq!(ranges(&got), vec![(0, 2, 1)]);
    assert!(got.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|r| !r.is_empty()));

    // m2 shares the partition; all three records are m1's while its share session lasts.
    // Leaving the group does not release them: Kafka's group coordinator leaves that to
    // the share session's end (or the locks' expiry)...
    let mut m2 = broker.connect().unwrap();
    assigned(&mut m2, "m2");
    let none = m2.send(&waiting(fetch(t, "m2", 0), 200), 1).unwrap();
    assert_eq!(ranges(&none), vec![]);
    let leave = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_member_id(str_bytes("m1"))
        .with_member_epoch(-1);
    let left = m1.send(&leave, 1).unwrap();
    assert_eq!(left.error_code, 0, "{left:?} (epoch {epoch})");
    let still = m2.send(&waiting(fetch(t, "m2", 1), 200), 1).unwrap();
    assert_eq!(ranges(&still), vec![]);
    // ...which the Java consumer's close ends with a final ShareAcknowledge.
    let mut close = acknowledge(t, "m1", -1);
    close.topics.clear();
    let closed = m1.send(&close, 1).unwrap();
    assert_eq!(closed.error_code, 0, "{closed:?}");
    let again = m2.send(&waiting(fetch(t, "m2", 2), 5000), 1).unwrap();
    assert_eq!(ranges(&again), vec![(0, 2, 2)]);

    // m3 takes nothing while m2 holds them; m2's connection closes and m3 gets them.
    let mut m3 = broker.connect().unwrap();
    assigned(&mut m3, "m3");
    let none = m3.send(&waiting(fetch(t, "m3", 0), 200), 1).unwrap();
    assert_eq!(ranges(&none), vec![]);
    drop(m2);
    let third = m3.send(&waiting(fetch(t, "m3", 1), 5000), 1).unwrap();
    assert_eq!(ranges(&third), vec![(0, 2, 3)]);
    // m3 accepts them: nothing is left to deliver.
    let accept = |epoch| {
        acknowledge(t, "m3", epoch).with_topics(vec![ack_request::AcknowledgeTopic::default()
            .with_topic_id(t)
            .with_partitions(vec![ack_request::AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(vec![
                    ack_request::AcknowledgementBatch::default()
                        .with_first_offset(0)
                        .with_last_offset(2)
                        .with_acknowledge_types(vec![1]),
                ])])])
    };
    let accepted = m3.send(&accept(2), 1).unwrap();
    assert_eq!(
        accepted.responses[0].partitions[0].error_code, 0,
        "{accepted:?}"
    );
    let empty = m3.send(&waiting(fetch(t, "m3", 3), 200), 1).unwrap();
    assert_eq!(ranges(&empty), vec![]);
    // Accepted again: they are before the share-partition's start offset now, where Kafka
    // skips acknowledgements and answers success (not INVALID_RECORD_STATE).
    let again = m3.send(&accept(4), 1).unwrap();
    assert_eq!(again.responses[0].partitions[0].error_code, 0, "{again:?}");
}

/// A fetch of both partitions of "queue" for `member`, in its share session at `epoch`.
fn fetch_both(topic: Uuid, member: &str, epoch: i32) -> ShareFetchRequest {
    let mut request = fetch(topic, member, epoch);
    request.topics[0].partitions = (0..2)
        .map(|p| FetchPartition::default().with_partition_index(p))
        .collect();
    request
}

/// (partition, first, last) of each acquired range.
fn acquired(answer: &ShareFetchResponse) -> Vec<(i32, i64, i64)> {
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let mut out: Vec<(i32, i64, i64)> = answer
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| {
            assert_eq!(p.error_code, 0, "{answer:?}");
            p.acquired_records
                .iter()
                .map(|a| (p.partition_index, a.first_offset, a.last_offset))
        })
        .collect();
    out.sort();
    out
}

/// ShareFetch waits as Kafka 4.4's `DelayedShareFetch`: until the bytes readable past each
/// partition's next fetch offset add up to MinBytes (or MaxWaitMs passes, when it acquires
/// what there is); MaxBytes is shared evenly among the partitions, records beyond a
/// partition's share waiting for the next fetch; MaxRecords counts across partitions, the
/// first partition being the session epoch's turn (Kafka's round-robin rotation).
#[test]
fn share_fetch_waits_for_min_bytes_and_shares_max_bytes_and_max_records() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    wait_groups_loaded(&mut admin).unwrap();
    set_share_version(&mut admin, 2).unwrap();
    let queue = create_topic(&mut admin, "queue", 2, &[]).unwrap();
    let t = queue.id;
    let mut m1 = broker.connect().unwrap();
    assigned(&mut m1, "m1");
    let first = m1.send(&fetch_both(t, "m1", 0), 1).unwrap();
    assert_eq!(acquired(&first), vec![]);
    let three = |prefix: &str| batch(&messages(prefix, 3, base_timestamp()));
    let size = three("b0").len() as i32;

    // MinBytes beyond what is there: the fetch waits out MaxWaitMs, then acquires it all.
    produce(&mut admin, &queue, 0, three("b0")).unwrap();
    let mut request = waiting(fetch_both(t, "m1", 1), 500);
    request.min_bytes = 100 * size;
    let started = Instant::now();
    let got = m1.send(&request, 1).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(450), "{got:?}");
    assert_eq!(acquired(&got), vec![(0, 0, 2)]);

    // Bytes add up across partitions: one batch is not MinBytes, the second one is, and
    // the fetch answers then, long before MaxWaitMs.
    let mut request = waiting(fetch_both(t, "m1", 2), 20_000);
    request.min_bytes = size + 1;
    let started = Instant::now();
    let poll = std::thread::spawn(move || (m1.send(&request, 1).unwrap(), m1));
    produce(&mut admin, &queue, 0, three("b1")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!poll.is_finished(), "answered below MinBytes");
    produce(&mut admin, &queue, 1, three("b2")).unwrap();
    let (got, mut m1) = poll.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{got:?}");
    assert_eq!(acquired(&got), vec![(0, 3, 5), (1, 0, 2)]);

    // MaxBytes of two and a half batches: each partition's share is one batch, the rest
    // stays for the next fetch (Kafka's uniform share, whole batches).
    for p in 0..2 {
        for prefix in ["c0", "c1", "c2"] {
            produce(&mut admin, &queue, p, three(prefix)).unwrap();
        }
    }
    let mut request = waiting(fetch_both(t, "m1", 3), 5_000);
    request.max_bytes = 2 * size + size / 2;
    let got = m1.send(&request, 1).unwrap();
    assert_eq!(acquired(&got), vec![(0, 6, 8), (1, 3, 5)]);

    // MaxRecords of one batch: the epoch's first partition takes it, the other nothing.
    // Epoch 4 of two partitions starts at partition 0, epoch 5 at partition 1.
    let mut request = waiting(fetch_both(t, "m1", 4), 5_000);
    request.max_records = 3;
    let got = m1.send(&request, 1).unwrap();
    assert_eq!(acquired(&got), vec![(0, 9, 11)]);
    let mut request = waiting(fetch_both(t, "m1", 5), 5_000);
    request.max_records = 3;
    let got = m1.send(&request, 1).unwrap();
    assert_eq!(acquired(&got), vec![(1, 6, 8)]);
}
