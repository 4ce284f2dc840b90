use super::*;
use crate::config::telemetry::SubscriptionConfig;

/// A wall-clock time: Kafka's first-request checks compare against 0.
const T: i64 = 1_700_000_000_000;

fn client(client_id: &str) -> ClientIdentity {
    ClientIdentity {
        client_id: client_id.into(),
        software_name: Some("apache-kafka-java".into()),
        software_version: Some("4.4.0".into()),
        source_address: "127.0.0.1".into(),
        source_port: "50000".into(),
        principal: "User:ANONYMOUS".into(),
    }
}

fn telemetry(interval_ms: i32, matches: &[&str]) -> (ClientTelemetry, Arc<ClientSeries>) {
    let config = TelemetryConfig {
        max_bytes: 1000,
        subscriptions: vec![SubscriptionConfig {
            name: "all".into(),
            metrics: vec!["org.apache.kafka.producer.".into()],
            interval_ms,
            matches: matches.iter().map(|m| m.to_string()).collect(),
        }],
        ..Default::default()
    };
    let series = Arc::new(ClientSeries::default());
    (ClientTelemetry::new(&config, series.clone()), series)
}

fn push(id: Uuid, subscription_id: i32) -> Push {
    Push {
        client_instance_id: id,
        subscription_id,
        terminating: false,
        compression: 0,
        metrics: Bytes::new(),
    }
}

#[test]
fn too_soon_is_throttled_but_the_first_push_may_come_at_once() {
    let (t, _) = telemetry(1_000, &[]);
    let me = client("a");
    let answer = t.subscriptions(Uuid::nil(), &me, 1, T + 10_000).unwrap();
    assert!(!answer.client_instance_id.is_nil());
    assert_eq!(answer.subscribed.interval_ms, 1_000);
    let id = answer.client_instance_id;
    assert_eq!(
        t.subscriptions(id, &me, 1, T + 10_500).unwrap_err(),
        TelemetryError::ThrottlingQuotaExceeded
    );
    let sub = answer.subscribed.id;
    t.push(push(id, sub), &me, 1, T + 10_600).unwrap();
    assert_eq!(
        t.push(push(id, sub), &me, 1, T + 11_000).unwrap_err(),
        TelemetryError::ThrottlingQuotaExceeded
    );
    t.push(push(id, sub), &me, 1, T + 11_600).unwrap();
    // A terminating push is never too soon; nothing may follow it.
    let mut last = push(id, sub);
    last.terminating = true;
    t.push(last, &me, 1, T + 11_700).unwrap();
    assert_eq!(
        t.push(push(id, sub), &me, 1, T + 20_000).unwrap_err(),
        TelemetryError::InvalidRequest
    );
}

#[test]
fn checks_come_in_kafka_order() {
    let (t, _) = telemetry(1_000, &[]);
    let me = client("a");
    let answer = t.subscriptions(Uuid::nil(), &me, 1, T + 10_000).unwrap();
    let id = answer.client_instance_id;
    let sub = answer.subscribed.id;
    assert_eq!(
        t.push(push(id, sub ^ 1), &me, 1, T + 10_001).unwrap_err(),
        TelemetryError::UnknownSubscriptionId
    );
    // After UNKNOWN_SUBSCRIPTION_ID the client may ask again at once (which, as in Kafka,
    // does not count as a get: the next push still waits an interval after the last).
    t.subscriptions(id, &me, 1, T + 10_002).unwrap();
    let mut bad_codec = push(id, sub);
    bad_codec.compression = 9;
    assert_eq!(
        t.push(bad_codec, &me, 1, T + 11_001).unwrap_err(),
        TelemetryError::UnsupportedCompressionType
    );
    t.subscriptions(id, &me, 1, T + 11_002).unwrap();
    let mut large = push(id, sub);
    large.metrics = Bytes::from(vec![0u8; 1001]);
    assert_eq!(
        t.push(large, &me, 1, T + 12_001).unwrap_err(),
        TelemetryError::TelemetryTooLarge
    );
    assert_eq!(
        t.push(push(Uuid::nil(), sub), &me, 1, T + 12_002)
            .unwrap_err(),
        TelemetryError::InvalidRequest
    );
}

#[test]
fn undecodable_metrics_are_an_invalid_record_and_good_ones_are_exposed() {
    let (t, series) = telemetry(1_000, &[]);
    let me = client("a");
    let answer = t.subscriptions(Uuid::nil(), &me, 1, T + 10_000).unwrap();
    let (id, sub) = (answer.client_instance_id, answer.subscribed.id);
    let mut garbage = push(id, sub);
    garbage.metrics = Bytes::from_static(b"\xff\xff\xff\xff");
    assert_eq!(
        t.push(garbage, &me, 1, T + 10_001).unwrap_err(),
        TelemetryError::InvalidRecord
    );
    t.subscriptions(id, &me, 1, T + 11_001).unwrap();
    let mut good = push(id, sub);
    good.metrics = Bytes::from(otlp::tests_payload());
    t.push(good, &me, 1, T + 11_002).unwrap();
    let mut text = String::new();
    series.render(&mut text);
    assert!(
        text.contains("org_apache_kafka_producer_record_queue_time_avg{client_instance_id="),
        "{text}"
    );
    assert!(
        text.contains("# HELP org_apache_kafka_producer_record_queue_time_avg The average time"),
        "{text}"
    );
    assert!(
        text.contains("client_id=\"a\",principal=\"User:ANONYMOUS\",node_id=\"1\"} 2.5"),
        "{text}"
    );
    assert!(
        text.contains(",principal=\"User:ANONYMOUS\",group_id=\"orders\"} 1\n"),
        "{text}"
    );
    t.connection_closed(1);
    let mut text = String::new();
    series.render(&mut text);
    assert!(!text.contains("queue_time"), "{text}");
    assert_eq!(t.instance_count(), 0);
}

#[test]
fn instances_expire_after_three_intervals_or_a_minute() {
    let (t, _) = telemetry(1_000, &[]);
    let me = client("a");
    t.subscriptions(Uuid::nil(), &me, 1, T + 10_000).unwrap();
    t.subscriptions(Uuid::nil(), &me, 2, T + 69_000).unwrap();
    assert_eq!(t.instance_count(), 2);
    t.subscriptions(Uuid::nil(), &me, 3, T + 70_001).unwrap();
    assert_eq!(t.instance_count(), 2, "the first expired");
}

#[test]
fn matching_selects_clients() {
    let (t, _) = telemetry(
        1_000,
        &[
            "client_id=prod-.*",
            "client_software_name=apache-kafka-java",
        ],
    );
    let matched = t
        .subscriptions(Uuid::nil(), &client("prod-1"), 1, T + 10_000)
        .unwrap();
    assert_eq!(
        matched.subscribed.metrics,
        vec!["org.apache.kafka.producer.".to_owned()]
    );
    let other = t
        .subscriptions(Uuid::nil(), &client("test-1"), 2, T + 10_000)
        .unwrap();
    assert!(other.subscribed.metrics.is_empty());
    assert_eq!(other.subscribed.interval_ms, 300_000);
}

/// A payload of one metric per `data`, named `org.apache.kafka.producer.<name>`.
fn distribution_payload(metrics: Vec<(&str, otlp::Data)>) -> Bytes {
    use prost::Message;
    let metrics = metrics
        .into_iter()
        .map(|(name, data)| otlp::Metric {
            name: format!("org.apache.kafka.producer.{name}"),
            description: String::new(),
            data: Some(data),
        })
        .collect();
    let data = otlp::MetricsData {
        resource_metrics: vec![otlp::ResourceMetrics {
            resource: None,
            scope_metrics: vec![otlp::ScopeMetrics { metrics }],
        }],
    };
    Bytes::from(data.encode_to_vec())
}

fn histogram(bounds: &[f64], counts: &[u64], sum: f64) -> otlp::Data {
    otlp::Data::Histogram(distribution::Histogram {
        data_points: vec![distribution::HistogramDataPoint {
            attributes: vec![otlp::KeyValue {
                key: "le".into(),
                value: Some(otlp::AnyValue {
                    value: Some(otlp::Scalar::String("shadowed".into())),
                }),
            }],
            count: counts.iter().sum(),
            sum: Some(sum),
            bucket_counts: counts.to_vec(),
            explicit_bounds: bounds.to_vec(),
        }],
        aggregation_temporality: otlp::DELTA,
    })
}

fn summary(quantiles: &[(f64, f64)], count: u64, sum: f64) -> otlp::Data {
    otlp::Data::Summary(distribution::Summary {
        data_points: vec![distribution::SummaryDataPoint {
            attributes: Vec::new(),
            count,
            sum,
            quantile_values: quantiles
                .iter()
                .map(|&(quantile, value)| distribution::ValueAtQuantile { quantile, value })
                .collect(),
        }],
    })
}

#[test]
fn histograms_and_summaries_are_exposed_and_bad_points_dropped() {
    let (t, series) = telemetry(1_000, &[]);
    let me = client("a");
    let answer = t.subscriptions(Uuid::nil(), &me, 1, T + 10_000).unwrap();
    let (id, sub) = (answer.client_instance_id, answer.subscribed.id);
    let exponential = otlp::Data::ExponentialHistogram(distribution::ExponentialHistogram {
        data_points: vec![distribution::ExponentialHistogramDataPoint {
            attributes: Vec::new(),
            count: 4,
            sum: Some(10.0),
        }],
        aggregation_temporality: 2,
    });
    let first = distribution_payload(vec![
        ("latency", histogram(&[1.0, 5.0], &[1, 2, 3], 20.0)),
        ("size", summary(&[(0.5, 3.0), (0.99, 9.0)], 6, 20.0)),
        ("exp", exponential),
        ("descending", histogram(&[5.0, 1.0], &[1, 2, 3], 1.0)),
        ("short", histogram(&[1.0, 5.0], &[1, 2], 1.0)),
        ("nan", summary(&[(0.5, f64::NAN)], 1, 1.0)),
        ("unordered", summary(&[(0.9, 1.0), (0.5, 1.0)], 1, 1.0)),
    ]);
    let push_at = |metrics: Bytes, at: i64| {
        let mut p = push(id, sub);
        p.metrics = metrics;
        t.push(p, &me, 1, at).unwrap();
        let mut text = String::new();
        series.render(&mut text);
        text
    };
    let text = push_at(first, T + 10_001);
    let labels = format!(
        "{{client_instance_id=\"{}\",client_id=\"a\",principal=\"User:ANONYMOUS\"",
        kafka_uuid(id)
    );
    let name = "org_apache_kafka_producer_latency";
    let expected = format!(
        "# TYPE {name} histogram\n\
         {name}_bucket{labels},le=\"1\"}} 1\n\
         {name}_bucket{labels},le=\"5\"}} 3\n\
         {name}_bucket{labels},le=\"+Inf\"}} 6\n\
         {name}_sum{labels}}} 20\n\
         {name}_count{labels}}} 6\n"
    );
    assert!(text.contains(&expected), "{text}");
    let name = "org_apache_kafka_producer_size";
    let expected = format!(
        "# TYPE {name} summary\n\
         {name}{labels},quantile=\"0.5\"}} 3\n\
         {name}{labels},quantile=\"0.99\"}} 9\n\
         {name}_sum{labels}}} 20\n\
         {name}_count{labels}}} 6\n"
    );
    assert!(text.contains(&expected), "{text}");
    let name = "org_apache_kafka_producer_exp";
    let expected = format!(
        "{name}_bucket{labels},le=\"+Inf\"}} 4\n\
         {name}_sum{labels}}} 10\n\
         {name}_count{labels}}} 4\n"
    );
    assert!(text.contains(&expected), "{text}");
    for dropped in ["descending", "short", "nan", "unordered"] {
        assert!(!text.contains(&format!("producer_{dropped}")), "{text}");
    }
    assert!(!text.contains("shadowed"), "{text}");
    // 5 histogram samples, 4 summary, 3 exponential.
    assert!(
        text.contains("samsa_client_telemetry_series 12\n"),
        "{text}"
    );

    // A delta of the same layout adds up; the summary is replaced.
    let second = distribution_payload(vec![
        ("latency", histogram(&[1.0, 5.0], &[0, 1, 1], 7.0)),
        ("size", summary(&[(0.5, 4.0)], 8, 30.0)),
    ]);
    let text = push_at(second, T + 11_002);
    let name = "org_apache_kafka_producer_latency";
    assert!(
        text.contains(&format!("{name}_bucket{labels},le=\"5\"}} 4\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}_count{labels}}} 8\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}_sum{labels}}} 27\n")),
        "{text}"
    );
    assert!(
        !text.contains("quantile=\"0.99\""),
        "the summary is replaced: {text}"
    );
    assert!(
        text.contains("samsa_client_telemetry_series 11\n"),
        "{text}"
    );

    // New bounds replace the buckets rather than adding series beside them.
    let third = distribution_payload(vec![("latency", histogram(&[2.0], &[1, 1], 3.0))]);
    let text = push_at(third, T + 12_003);
    assert!(!text.contains("le=\"5\""), "{text}");
    assert!(
        text.contains(&format!("{name}_bucket{labels},le=\"2\"}} 1\n")),
        "{text}"
    );
    assert!(
        text.contains("samsa_client_telemetry_series 10\n"),
        "{text}"
    );
}

#[test]
fn bucket_counts_and_bounds_count_against_the_message_budget() {
    // 150k bounds and 150k counts, packed: 2.4 MB, few messages, many numbers.
    let n = 150_000;
    let bounds: Vec<f64> = (0..n).map(f64::from).collect();
    let counts = vec![0u64; n as usize + 1];
    let payload = distribution_payload(vec![("wide", histogram(&bounds, &counts, 0.0))]);
    let err = otlp::decode(0, payload, 1 << 20).unwrap_err();
    assert!(err.contains("messages"), "{err}");
}
