//! Incremental fetch sessions (KIP-227): a full fetch at epoch 0 opens a session, later
//! fetches send only what changed and are answered only what changed, partitions are
//! forgotten, every session error has its code, and the cache holds only so many sessions.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchRequest, FetchResponse};
use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, forgetting as forget, produce, session_fetch_request as fetch, TopicRef,
    FIRST_VERSION_WITH_TOPIC_IDS, LATEST_FETCH,
};
use samsa_protocol_tests::metrics::scrape;
use samsa_protocol_tests::{free_port, BrokerProcess, Connection};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
const UNKNOWN_TOPIC_ID: i16 = 100;

static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);
/// How long a parked fetch must stay silent before the test believes it is parked.
const PARKED: Duration = Duration::from_millis(300);

fn start(extra: &str) -> BrokerProcess {
    BrokerProcess::start(&format!("auto_create_topics = false\n{extra}")).unwrap()
}

/// (partition, number of records) of every partition in the answer, in order.
fn answered(response: &FetchResponse) -> Vec<(i32, usize)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let records = p.records.as_ref().map_or(0, |r| {
                batches::decode(r).map(|b| b.len()).unwrap_or(usize::MAX)
            });
            (p.partition_index, records)
        })
        .collect()
}

fn ok(conn: &mut Connection, request: &FetchRequest, version: i16) -> FetchResponse {
    let response = conn.send(request, version).unwrap();
    assert_eq!(response.error_code, 0, "v{version}: {response:?}");
    response
}

fn refused(conn: &mut Connection, request: &FetchRequest, version: i16, code: i16) {
    let response = conn.send(request, version).unwrap();
    assert_eq!(response.error_code, code, "v{version}: {response:?}");
    assert_eq!(response.session_id, 0, "v{version}");
    assert!(response.responses.is_empty(), "v{version}");
}

#[test]
fn a_session_answers_only_what_changed() {
    let broker = start("");
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "incremental", 3, &[]).unwrap();
    // Where each partition ends: every round starts its session there.
    let mut ends = [0i64; 3];
    for version in [7, 12, FIRST_VERSION_WITH_TOPIC_IDS, LATEST_FETCH] {
        let base = produce(&mut conn, &topic, 0, batch(&messages("a", 2, *T0))).unwrap();
        ends[0] = base + 2;
        let all = [(0, base), (1, ends[1]), (2, ends[2])];
        let full = ok(&mut conn, &fetch(&topic, &all, version, 0, 0), version);
        let id = full.session_id;
        assert_ne!(id, 0, "v{version}: epoch 0 opens a session");
        assert_eq!(
            answered(&full),
            [(0, 2), (1, 0), (2, 0)],
            "v{version}: a full fetch answers everything"
        );

        // The fetcher moves past what it got; nothing else changed, so nothing comes back.
        let next = ok(
            &mut conn,
            &fetch(&topic, &[(0, ends[0])], version, id, 1),
            version,
        );
        assert_eq!(next.session_id, id, "v{version}");
        assert_eq!(answered(&next), [], "v{version}");

        // A record on partition 1: only it comes back, from the offset the session remembers.
        let p1 = produce(&mut conn, &topic, 1, batch(&messages("b", 1, *T0))).unwrap();
        ends[1] = p1 + 1;
        let next = ok(&mut conn, &fetch(&topic, &[], version, id, 2), version);
        assert_eq!(answered(&next), [(1, 1)], "v{version}");
        let data = &next.responses[0].partitions[0];
        assert_eq!(data.high_watermark, ends[1], "v{version}");
        let next = ok(
            &mut conn,
            &fetch(&topic, &[(1, ends[1])], version, id, 3),
            version,
        );
        assert_eq!(answered(&next), [], "v{version}");

        // A wrong epoch changes nothing: the right one still works after it.
        let wrong = fetch(&topic, &[], version, id, 9);
        refused(&mut conn, &wrong, version, INVALID_FETCH_SESSION_EPOCH);

        // Partition 2 forgotten: its new records are not sent.
        let forgetting = forget(fetch(&topic, &[], version, id, 4), &topic, &[2], version);
        assert_eq!(
            answered(&ok(&mut conn, &forgetting, version)),
            [],
            "v{version}"
        );
        ends[2] = produce(&mut conn, &topic, 2, batch(&messages("c", 1, *T0))).unwrap() + 1;
        let next = ok(&mut conn, &fetch(&topic, &[], version, id, 5), version);
        assert_eq!(answered(&next), [], "v{version}: partition 2 was forgotten");

        // A final fetch (-1) closes the session and is answered without one.
        let last = ok(
            &mut conn,
            &fetch(&topic, &[(0, ends[0])], version, id, -1),
            version,
        );
        assert_eq!(last.session_id, 0, "v{version}");
        assert_eq!(answered(&last), [(0, 0)], "v{version}");
        let gone = fetch(&topic, &[], version, id, 6);
        refused(&mut conn, &gone, version, FETCH_SESSION_ID_NOT_FOUND);
    }
}

#[test]
fn session_errors() {
    let broker = start("");
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "errors", 1, &[]).unwrap();
    // An id never given out, and 0 (no session) with a positive epoch.
    for id in [12345, 0, -5, i32::MAX] {
        let request = fetch(&topic, &[], LATEST_FETCH, id, 1);
        refused(
            &mut conn,
            &request,
            LATEST_FETCH,
            FETCH_SESSION_ID_NOT_FOUND,
        );
    }
    // A session by topic id continued by name (v12), and the reverse.
    for (open, go_on) in [(LATEST_FETCH, 12), (12, LATEST_FETCH)] {
        let id = ok(&mut conn, &fetch(&topic, &[(0, 0)], open, 0, 0), open).session_id;
        assert_ne!(id, 0);
        let request = fetch(&topic, &[], go_on, id, 1);
        refused(&mut conn, &request, go_on, FETCH_SESSION_TOPIC_ID_ERROR);
        // The session is still there, at the same epoch.
        ok(&mut conn, &fetch(&topic, &[], open, id, 1), open);
    }
    // A full fetch at epoch 0 naming a session closes it and opens another.
    let id = open(&mut conn, &topic, 1, 0);
    let again = open(&mut conn, &topic, 1, id);
    assert_ne!(again, 0);
    assert_ne!(again, id);
    let old = fetch(&topic, &[], LATEST_FETCH, id, 1);
    refused(&mut conn, &old, LATEST_FETCH, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn an_unknown_topic_id_is_answered_every_time() {
    let broker = start("");
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "known", 1, &[]).unwrap();
    let v = LATEST_FETCH;
    let id = ok(&mut conn, &fetch(&topic, &[(0, 0)], v, 0, 0), v).session_id;
    let unknown = TopicRef::unknown();
    let added = ok(&mut conn, &fetch(&unknown, &[(0, 0)], v, id, 1), v);
    assert_eq!(added.responses.len(), 1);
    assert_eq!(added.responses[0].topic_id, unknown.id);
    assert_eq!(
        added.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_ID
    );
    // Errors are always sent; the known partition, unchanged, is not.
    let again = ok(&mut conn, &fetch(&topic, &[], v, id, 2), v);
    assert_eq!(again.responses.len(), 1);
    assert_eq!(again.responses[0].topic_id, unknown.id);
    assert_eq!(
        again.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_ID
    );
}

#[test]
fn forgetting_every_partition_closes_the_session() {
    let broker = start("");
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "emptied", 2, &[]).unwrap();
    let v = LATEST_FETCH;
    let id = ok(&mut conn, &fetch(&topic, &[(0, 0), (1, 0)], v, 0, 0), v).session_id;
    let request = forget(fetch(&topic, &[], v, id, 1), &topic, &[0, 1], v);
    let closed = ok(&mut conn, &request, v);
    assert_eq!(closed.session_id, 0, "answered without a session");
    let request = fetch(&topic, &[], v, id, 2);
    refused(&mut conn, &request, v, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn an_incremental_fetch_naming_no_partition_waits_on_its_session() {
    let broker = start("");
    let mut producer = broker.connect().unwrap();
    let topic = create_topic(&mut producer, "parked", 2, &[]).unwrap();
    let mut consumer = broker.connect().unwrap();
    let v = LATEST_FETCH;
    let id = ok(&mut consumer, &fetch(&topic, &[(0, 0), (1, 0)], v, 0, 0), v).session_id;
    let request = fetch(&topic, &[], v, id, 1)
        .with_max_wait_ms(10_000)
        .with_min_bytes(1);
    let sent_at = Instant::now();
    let correlation = consumer.send_only(&request, v).unwrap();
    assert!(
        !consumer.response_arrives_within(PARKED).unwrap(),
        "answered with nothing new"
    );
    let sent = messages("wake", 1, *T0);
    produce(&mut producer, &topic, 1, batch(&sent)).unwrap();
    let response = consumer.receive::<FetchRequest>(v, correlation).unwrap();
    assert!(
        sent_at.elapsed() < Duration::from_secs(8),
        "waited for the timeout"
    );
    assert_eq!(response.session_id, id);
    assert_eq!(answered(&response), [(1, 1)]);
    let fetched = batches::decode(
        response.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap(),
    );
    assert_eq!(batches::messages_of(&fetched.unwrap()), sent);
}

/// A full fetch at epoch 0 of `partitions` partitions of `topic`, closing session `closing`
/// (0 for none): the new session's id.
fn open(conn: &mut Connection, topic: &TopicRef, partitions: i32, closing: i32) -> i32 {
    let all: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    let request = fetch(topic, &all, LATEST_FETCH, closing, 0);
    ok(conn, &request, LATEST_FETCH).session_id
}

#[test]
fn a_full_cache_opens_no_session_until_one_can_be_evicted() {
    let port = free_port();
    // One session per shard; an idle session may be evicted after 2 s.
    let broker = start(&format!(
        "metrics_listen = \"127.0.0.1:{port}\"\n\
         max_incremental_fetch_session_cache_slots = 8\n\
         min_incremental_fetch_session_eviction_ms = 2000\n"
    ));
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "crowded", 2, &[]).unwrap();
    let ids: Vec<i32> = (0..8).map(|_| open(&mut conn, &topic, 1, 0)).collect();
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    assert_eq!(
        scrape(port, "samsa_incremental_fetch_sessions").unwrap(),
        Some(8.0)
    );
    assert_eq!(
        scrape(port, "samsa_incremental_fetch_partitions_cached").unwrap(),
        Some(8.0)
    );
    // Full: a new session, even a larger one, cannot evict young ones.
    assert_eq!(
        open(&mut conn, &topic, 2, 0),
        0,
        "no room: answered without a session"
    );
    // Once some session has been idle long enough, a new one evicts it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let id = open(&mut conn, &topic, 1, 0);
        if id != 0 {
            break id;
        }
        assert!(Instant::now() < deadline, "no session was ever evicted");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!ids.contains(&id));
    let evicted: Vec<i32> = ids
        .iter()
        .copied()
        .filter(|&old| {
            let r = conn.send(&fetch(&topic, &[], LATEST_FETCH, old, 1), LATEST_FETCH);
            r.unwrap().error_code == FETCH_SESSION_ID_NOT_FOUND
        })
        .collect();
    assert_eq!(evicted.len(), 1, "one session evicted: {evicted:?}");
    assert_eq!(
        scrape(port, "samsa_incremental_fetch_session_evictions_total").unwrap(),
        Some(1.0)
    );
    assert_eq!(
        scrape(port, "samsa_incremental_fetch_sessions").unwrap(),
        Some(8.0)
    );
}

#[test]
fn the_partition_budget_bounds_what_sessions_cache() {
    // 16 partitions over 8 shards: 2 a shard.
    let broker = start("max_incremental_fetch_session_cache_partitions = 16\n");
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "budget", 3, &[]).unwrap();
    assert_eq!(
        open(&mut conn, &topic, 3, 0),
        0,
        "larger than a shard's share"
    );
    let id = open(&mut conn, &topic, 2, 0);
    assert_ne!(id, 0);
    // Growing past it closes the session: answered without one, the request's partitions.
    let grown = ok(
        &mut conn,
        &fetch(&topic, &[(2, 0)], LATEST_FETCH, id, 1),
        LATEST_FETCH,
    );
    assert_eq!(grown.session_id, 0);
    assert_eq!(answered(&grown), [(2, 0)]);
    let request = fetch(&topic, &[], LATEST_FETCH, id, 2);
    refused(
        &mut conn,
        &request,
        LATEST_FETCH,
        FETCH_SESSION_ID_NOT_FOUND,
    );
}
