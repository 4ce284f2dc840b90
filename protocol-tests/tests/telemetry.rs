//! Client telemetry (KIP-714) on the wire: what a default broker answers, pushed metrics on
//! `/metrics` with who pushed them, Kafka's error codes for a client that misbehaves, and
//! the bounds that keep a hostile client from growing the broker's memory.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use samsa_protocol_tests::client::{api_versions_request, str_bytes};
use samsa_protocol_tests::metrics::{self, sample};
use samsa_protocol_tests::telemetry::{
    gauges, get_subscriptions, histogram, metrics_data, push, push_request, summary,
};
use samsa_protocol_tests::{free_port, BrokerProcess, Connection};
use uuid::Uuid;

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;
const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
const TELEMETRY_TOO_LARGE: i16 = 118;

const QUEUE_TIME: &str = "org.apache.kafka.producer.record.queue.time.avg";

fn lists_telemetry(conn: &mut Connection) -> bool {
    let response: ApiVersionsResponse = conn.send(&api_versions_request(), 3).unwrap();
    let listed = |key: ApiKey| response.api_keys.iter().any(|k| k.api_key == key as i16);
    assert_eq!(
        listed(ApiKey::GetTelemetrySubscriptions),
        listed(ApiKey::PushTelemetry)
    );
    listed(ApiKey::GetTelemetrySubscriptions)
}

/// A broker with one subscription to the Java producer's metrics, a minute apart.
fn subscribed_broker(extra: &str) -> (BrokerProcess, u16) {
    let port = free_port();
    let broker = BrokerProcess::start(&format!(
        "metrics_listen = \"127.0.0.1:{port}\"\n{extra}\n\
         [[telemetry.subscription]]\nname = \"producers\"\n\
         metrics = [\"org.apache.kafka.producer.\"]\ninterval_ms = 60000\n"
    ))
    .unwrap();
    (broker, port)
}

fn scrape(port: u16) -> String {
    metrics::get(port, "/metrics").unwrap().1
}

fn await_scrape(port: u16, what: &str, until: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(port);
        if until(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_default_broker_answers_but_does_not_advertise() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    assert!(!lists_telemetry(&mut conn));
    let answer = get_subscriptions(&mut conn, Uuid::nil());
    assert_eq!(answer.error_code, 0);
    assert!(!answer.client_instance_id.is_nil());
    assert!(answer.requested_metrics.is_empty());
    assert_eq!(answer.push_interval_ms, 300_000);
    assert_eq!(answer.telemetry_max_bytes, 1_048_576);
    assert_eq!(answer.accepted_compression_types, vec![4, 3, 1, 2]);
    assert!(answer.delta_temporality);
    // Asking again within the interval is too soon.
    let again = get_subscriptions(&mut conn, answer.client_instance_id);
    assert_eq!(again.error_code, THROTTLING_QUOTA_EXCEEDED);
}

#[test]
fn pushed_metrics_appear_with_who_pushed_them() {
    let (broker, port) = subscribed_broker("");
    let mut conn = broker.connect().unwrap();
    assert!(lists_telemetry(&mut conn));
    let answer = get_subscriptions(&mut conn, Uuid::nil());
    assert_eq!(answer.error_code, 0);
    assert_eq!(
        answer.requested_metrics,
        vec![str_bytes("org.apache.kafka.producer.")]
    );
    assert_eq!(answer.push_interval_ms, 60_000);
    let id = answer.client_instance_id;
    let payload = gauges(
        &[(QUEUE_TIME, 4.5), ("not.subscribed", 1.0)],
        &[("node.id", "1")],
    );
    let code = push(
        &mut conn,
        &push_request(id, answer.subscription_id, 0, payload),
    );
    assert_eq!(code, 0);
    let text = scrape(port);
    let instance = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
    };
    let series = format!(
        "org_apache_kafka_producer_record_queue_time_avg{{client_instance_id=\"{instance}\",\
         client_id=\"protocol-tests\",principal=\"User:ANONYMOUS\",node_id=\"1\"}}"
    );
    assert_eq!(sample(&text, &series), Some(4.5), "{text}");
    assert!(!text.contains("not_subscribed"), "{text}");
    // The instance goes with the connection that created it, and its series with it.
    drop(conn);
    await_scrape(port, "series of a closed connection", |t| {
        !t.contains("queue_time_avg{")
    });
}

#[test]
fn a_misbehaving_client_gets_kafkas_error_codes() {
    let (broker, _) = subscribed_broker("");
    let mut conn = broker.connect().unwrap();
    // Each case on a fresh instance, whose first push may follow its get at once.
    let fresh = |conn: &mut Connection| {
        let answer = get_subscriptions(conn, Uuid::nil());
        assert_eq!(answer.error_code, 0);
        (answer.client_instance_id, answer.subscription_id)
    };
    let (id, sub) = fresh(&mut conn);
    assert_eq!(push(&mut conn, &push_request(id, sub, 0, Vec::new())), 0);
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 0, Vec::new())),
        THROTTLING_QUOTA_EXCEEDED,
        "a second push within the interval"
    );
    let (id, sub) = fresh(&mut conn);
    assert_eq!(
        push(&mut conn, &push_request(id, sub ^ 1, 0, Vec::new())),
        UNKNOWN_SUBSCRIPTION_ID
    );
    // After that the client may ask for its subscription again at once.
    assert_eq!(get_subscriptions(&mut conn, id).error_code, 0);
    let (id, sub) = fresh(&mut conn);
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 7, Vec::new())),
        UNSUPPORTED_COMPRESSION_TYPE
    );
    let (id, sub) = fresh(&mut conn);
    let large = gauges(&[(QUEUE_TIME, 1.0)], &[("pad", &"x".repeat(1_100_000))]);
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 0, large)),
        TELEMETRY_TOO_LARGE
    );
    let (id, sub) = fresh(&mut conn);
    assert_eq!(
        push(
            &mut conn,
            &push_request(id, sub, 0, b"\xff\xff\xff\xff".to_vec())
        ),
        INVALID_RECORD,
        "not a protobuf"
    );
    let (id, sub) = fresh(&mut conn);
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 1, b"not gzip".to_vec())),
        INVALID_RECORD,
        "not the codec it claims"
    );
    // 64 MiB of zeros is a few kilobytes of zstd, well under the 1 MiB push limit: the
    // broker stops decompressing at its bound (16 times the limit) instead of growing.
    let (id, sub) = fresh(&mut conn);
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 4, bomb)),
        INVALID_RECORD
    );
    // A terminating push may come early; nothing may follow it.
    let (id, sub) = fresh(&mut conn);
    assert_eq!(push(&mut conn, &push_request(id, sub, 0, Vec::new())), 0);
    let mut last = push_request(id, sub, 0, Vec::new());
    last.terminating = true;
    assert_eq!(push(&mut conn, &last), 0);
    assert_eq!(
        push(&mut conn, &push_request(id, sub, 0, Vec::new())),
        INVALID_REQUEST
    );
    assert_eq!(
        push(&mut conn, &push_request(Uuid::nil(), sub, 0, Vec::new())),
        INVALID_REQUEST,
        "the zero id"
    );
    // The broker is still serving.
    assert_eq!(get_subscriptions(&mut conn, Uuid::nil()).error_code, 0);
}

#[test]
fn series_are_capped_per_client_and_in_total() {
    let (broker, port) =
        subscribed_broker("[telemetry]\nmax_series_per_client = 3\nmax_series = 5\n");
    let names: Vec<String> = (0..10)
        .map(|i| format!("org.apache.kafka.producer.m{i}"))
        .collect();
    let metrics: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut conn = broker.connect().unwrap();
        let answer = get_subscriptions(&mut conn, Uuid::nil());
        let request = push_request(
            answer.client_instance_id,
            answer.subscription_id,
            0,
            gauges(&metrics, &[]),
        );
        assert_eq!(push(&mut conn, &request), 0);
        conns.push(conn);
    }
    let text = scrape(port);
    assert_eq!(
        sample(&text, "samsa_client_telemetry_series"),
        Some(5.0),
        "{text}"
    );
    // 7 over the per-client cap from the first two, 10 from the third (the total is full).
    assert_eq!(
        sample(&text, "samsa_client_telemetry_series_dropped_total"),
        Some(7.0 + 8.0 + 10.0),
        "{text}"
    );
}

#[test]
fn histograms_and_summaries_are_exposed_in_prometheus_form() {
    // The histogram's 5 samples and the summary's 4 fit; a wider histogram does not.
    let (broker, port) = subscribed_broker("[telemetry]\nmax_series_per_client = 9\n");
    let mut conn = broker.connect().unwrap();
    let answer = get_subscriptions(&mut conn, Uuid::nil());
    let payload = metrics_data(&[
        histogram(
            "org.apache.kafka.producer.request.latency",
            &[10.0, 100.0],
            &[3, 2, 1],
            250.5,
        ),
        summary(
            "org.apache.kafka.producer.batch.size",
            &[(0.5, 512.0), (0.99, 4096.0)],
            40,
            30_000.0,
        ),
        // Bounds not ascending: this point is dropped, the push is not.
        histogram(
            "org.apache.kafka.producer.bad",
            &[5.0, 1.0],
            &[1, 1, 1],
            3.0,
        ),
        histogram(
            "org.apache.kafka.producer.wide",
            &[1.0, 2.0],
            &[1, 1, 1],
            3.0,
        ),
    ]);
    let request = push_request(
        answer.client_instance_id,
        answer.subscription_id,
        0,
        payload,
    );
    assert_eq!(push(&mut conn, &request), 0);
    let text = scrape(port);
    let instance = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(answer.client_instance_id.as_bytes())
    };
    let who = format!(
        "client_instance_id=\"{instance}\",client_id=\"protocol-tests\",principal=\"User:ANONYMOUS\""
    );
    let latency = "org_apache_kafka_producer_request_latency";
    assert!(
        text.contains(&format!("# TYPE {latency} histogram\n")),
        "{text}"
    );
    for (le, count) in [("10", 3.0), ("100", 5.0), ("+Inf", 6.0)] {
        let series = format!("{latency}_bucket{{{who},le=\"{le}\"}}");
        assert_eq!(sample(&text, &series), Some(count), "{series}\n{text}");
    }
    assert_eq!(
        sample(&text, &format!("{latency}_sum{{{who}}}")),
        Some(250.5)
    );
    assert_eq!(
        sample(&text, &format!("{latency}_count{{{who}}}")),
        Some(6.0)
    );
    let size = "org_apache_kafka_producer_batch_size";
    assert!(text.contains(&format!("# TYPE {size} summary\n")), "{text}");
    for (quantile, value) in [("0.5", 512.0), ("0.99", 4096.0)] {
        let series = format!("{size}{{{who},quantile=\"{quantile}\"}}");
        assert_eq!(sample(&text, &series), Some(value), "{series}\n{text}");
    }
    assert_eq!(
        sample(&text, &format!("{size}_sum{{{who}}}")),
        Some(30_000.0)
    );
    assert_eq!(sample(&text, &format!("{size}_count{{{who}}}")), Some(40.0));
    assert!(!text.contains("producer_bad"), "{text}");
    assert!(!text.contains("producer_wide"), "{text}");
    assert_eq!(
        sample(&text, "samsa_client_telemetry_series"),
        Some(9.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "samsa_client_telemetry_series_dropped_total"),
        Some(1.0),
        "{text}"
    );
}
