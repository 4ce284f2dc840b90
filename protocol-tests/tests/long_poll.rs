//! Fetch long polling: a consumer waiting on an empty partition is answered as soon as
//! data arrives, and not before min_bytes is met unless max_wait_ms runs out.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;
use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, only_fetched, produce, LATEST_FETCH,
};
use samsa_protocol_tests::BrokerProcess;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);
/// How long a parked fetch must stay silent before the test believes it is parked.
const PARKED: Duration = Duration::from_millis(300);

#[test]
fn parked_fetch_returns_when_another_connection_produces() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut producer = broker.connect().unwrap();
    let topic = create_topic(&mut producer, "poll", 2, &[]).unwrap();
    let mut consumer = broker.connect().unwrap();
    for (round, version) in [4, 11, 12, LATEST_FETCH].into_iter().enumerate() {
        let offset = round as i64;
        // Wait on both partitions; data arrives on the second.
        let mut request = fetch_request(&topic, 1, offset, version)
            .with_max_wait_ms(5000)
            .with_min_bytes(1);
        let other = request.topics[0].partitions[0]
            .clone()
            .with_partition(0)
            .with_fetch_offset(0);
        request.topics[0].partitions.insert(0, other);
        let sent_at = Instant::now();
        let correlation = consumer.send_only(&request, version).unwrap();
        assert!(
            !consumer.response_arrives_within(PARKED).unwrap(),
            "v{version}: fetch answered with no data to return"
        );

        let sent = messages(&format!("wake-{round}"), 1, *T0);
        let produced_at = Instant::now();
        assert_eq!(
            produce(&mut producer, &topic, 1, batch(&sent)).unwrap(),
            offset
        );
        let response = consumer
            .receive::<FetchRequest>(version, correlation)
            .unwrap();
        let answered_at = Instant::now();

        assert!(
            answered_at - produced_at < Duration::from_secs(2),
            "v{version}: answered {:?} after the produce",
            answered_at - produced_at
        );
        assert!(
            answered_at - sent_at < Duration::from_millis(4000),
            "v{version}: waited for the timeout"
        );
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), 2, "v{version}");
        assert_eq!(partitions[1].error_code, 0, "v{version}");
        assert_eq!(partitions[1].high_watermark, offset + 1, "v{version}");
        let fetched = batches::decode(partitions[1].records.as_ref().unwrap()).unwrap();
        assert_eq!(batches::messages_of(&fetched), sent, "v{version}");
        assert_eq!(fetched[0].offset, offset, "v{version}");
        assert!(
            partitions[0].records.as_ref().is_some_and(|r| r.is_empty()),
            "v{version}"
        );
    }
}

#[test]
fn with_no_data_the_fetch_waits_max_wait_then_returns_empty() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "quiet", 1, &[]).unwrap();
    let max_wait = Duration::from_millis(300);
    for version in [4, 12, LATEST_FETCH] {
        let request = fetch_request(&topic, 0, 0, version)
            .with_max_wait_ms(max_wait.as_millis() as i32)
            .with_min_bytes(1);
        let started = Instant::now();
        let response = conn.send(&request, version).unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= max_wait,
            "v{version}: returned after {waited:?}, before max_wait_ms"
        );
        assert!(
            waited < Duration::from_secs(3),
            "v{version}: returned after {waited:?}"
        );
        let data = only_fetched(&response).unwrap();
        assert_eq!(data.error_code, 0, "v{version}");
        assert_eq!(data.high_watermark, 0, "v{version}");
        assert!(
            data.records.as_ref().is_some_and(|r| r.is_empty()),
            "v{version}"
        );
    }
}

#[test]
fn existing_data_is_returned_without_waiting() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "ready", 1, &[]).unwrap();
    produce(&mut conn, &topic, 0, batch(&messages("r", 2, *T0))).unwrap();
    let request = fetch_request(&topic, 0, 0, LATEST_FETCH)
        .with_max_wait_ms(5000)
        .with_min_bytes(1);
    let started = Instant::now();
    let response = conn.send(&request, LATEST_FETCH).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?} with data ready",
        started.elapsed()
    );
    let fetched =
        batches::decode(only_fetched(&response).unwrap().records.as_ref().unwrap()).unwrap();
    assert_eq!(fetched.len(), 2);
}

#[test]
fn fewer_than_min_bytes_waits_for_max_wait_then_returns_what_there_is() {
    let broker = BrokerProcess::start("auto_create_topics = false\n").unwrap();
    let mut producer = broker.connect().unwrap();
    let topic = create_topic(&mut producer, "trickle", 1, &[]).unwrap();
    let mut consumer = broker.connect().unwrap();
    let max_wait = Duration::from_millis(1500);
    let request = fetch_request(&topic, 0, 0, LATEST_FETCH)
        .with_max_wait_ms(max_wait.as_millis() as i32)
        .with_min_bytes(100_000);
    let started = Instant::now();
    let correlation = consumer.send_only(&request, LATEST_FETCH).unwrap();
    let small = messages("small", 1, *T0);
    produce(&mut producer, &topic, 0, batch(&small)).unwrap();
    assert!(
        !consumer
            .response_arrives_within(Duration::from_millis(300))
            .unwrap(),
        "answered with fewer than min_bytes before max_wait_ms"
    );
    let response = consumer
        .receive::<FetchRequest>(LATEST_FETCH, correlation)
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= max_wait, "returned after {waited:?}");
    assert!(
        waited < max_wait + Duration::from_secs(2),
        "returned after {waited:?}"
    );
    let fetched =
        batches::decode(only_fetched(&response).unwrap().records.as_ref().unwrap()).unwrap();
    assert_eq!(batches::messages_of(&fetched), small);
}
