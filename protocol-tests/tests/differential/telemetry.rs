//! Client telemetry (KIP-714): GetTelemetrySubscriptions and PushTelemetry against a Kafka
//! 4.4 without a telemetry exporter (which answers both without listing them), with no
//! subscription and then with two. The instance ids are chosen per run and sent to both, so
//! the subscription ids (a hash over the instance id and the subscription) compare exactly.
//!
//! Kafka takes subscriptions as CLIENT_METRICS config resources, samsa from its config file;
//! both are given the same two, matching only this run's instance ids (the Kafka is shared).

use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    incremental_alter_configs_request, ApiKey, GetTelemetrySubscriptionsRequest,
    GetTelemetrySubscriptionsResponse, IncrementalAlterConfigsRequest,
};
use samsa_protocol_tests::client::{str_bytes, versions};
use samsa_protocol_tests::differential::{Answer, Differential, Side};
use samsa_protocol_tests::telemetry::{gauges, push_request};
use uuid::Uuid;

const CLIENT_METRICS: i8 = 16;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// Instance ids of this run: six random bytes (eight base64 characters, the prefix a
/// subscription matches) and a counter.
struct Ids {
    prefix: [u8; 6],
    next: u64,
}

impl Ids {
    fn new() -> Ids {
        let random = Uuid::new_v4();
        let mut prefix = [0u8; 6];
        prefix.copy_from_slice(&random.as_bytes()[..6]);
        Ids { prefix, next: 1 }
    }

    fn next(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&self.prefix);
        bytes[8..].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        Uuid::from_bytes(bytes)
    }

    /// The regex matching every id of this run (Kafka's text form of a Uuid).
    fn pattern(&self) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.prefix);
        format!("{text}.*")
    }
}

fn get(id: Uuid) -> GetTelemetrySubscriptionsRequest {
    GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id)
}

/// The subscription id `side` gave in `answer`.
fn subscription_of(answer: &Answer<GetTelemetrySubscriptionsResponse>) -> i32 {
    answer.response().map_or(0, |r| r.subscription_id)
}

/// Each side's subscription id for the instance, as each answered.
struct PerSide {
    samsa: i32,
    kafka: i32,
}

impl PerSide {
    fn of(
        answers: (
            Answer<GetTelemetrySubscriptionsResponse>,
            Answer<GetTelemetrySubscriptionsResponse>,
        ),
    ) -> PerSide {
        PerSide {
            samsa: subscription_of(&answers.0),
            kafka: subscription_of(&answers.1),
        }
    }

    fn on(&self, side: &Side) -> i32 {
        if side.name == "samsa" {
            self.samsa
        } else {
            self.kafka
        }
    }
}

/// The cases run with and without subscriptions: a get, a push each way it can go wrong.
fn every_case(d: &mut Differential, ids: &mut Ids) {
    let v = *versions(ApiKey::GetTelemetrySubscriptions).end();
    // An id the broker assigns is random: only whether there is one is compared.
    d.compare_part(
        "assigned",
        v,
        |_| get(Uuid::nil()),
        |r| {
            if !r.client_instance_id.is_nil() {
                r.client_instance_id = Uuid::from_u128(1);
                r.subscription_id = 1;
            }
        },
    );
    let a = ids.next();
    let sub = PerSide::of(d.compare("named", v, |_| get(a)));
    d.compare("too-soon", v, |_| get(a));
    let p = *versions(ApiKey::PushTelemetry).end();
    let push = |id: Uuid, sub: &PerSide, side: &Side, codec: i8, metrics: Vec<u8>| {
        push_request(id, sub.on(side), codec, metrics)
    };
    d.compare("push-first", p, |s| push(a, &sub, s, 0, Vec::new()));
    d.compare("push-too-soon", p, |s| push(a, &sub, s, 0, Vec::new()));
    d.compare("push-terminating", p, |s| {
        push(a, &sub, s, 0, Vec::new()).with_terminating(true)
    });
    d.compare("push-after-terminating", p, |s| {
        push(a, &sub, s, 0, Vec::new())
    });

    let b = ids.next();
    let sub = PerSide::of(d.compare("named-b", v, |_| get(b)));
    d.compare("push-unknown-subscription", p, |s| {
        push_request(b, sub.on(s) ^ 1, 0, Vec::new())
    });
    d.compare("get-after-unknown-subscription", v, |_| get(b));

    let c = ids.next();
    let sub = PerSide::of(d.compare("named-c", v, |_| get(c)));
    d.compare("push-unknown-codec", p, |s| push(c, &sub, s, 9, Vec::new()));
    d.compare("get-after-unknown-codec", v, |_| get(c));

    let e = ids.next();
    let sub = PerSide::of(d.compare("named-e", v, |_| get(e)));
    let large = gauges(
        &[("org.apache.kafka.producer.x", 1.0)],
        &[("pad", &"x".repeat(1_100_000))],
    );
    d.compare("push-too-large", p, |s| push(e, &sub, s, 0, large.clone()));

    let f = ids.next();
    let sub = PerSide::of(d.compare("named-f", v, |_| get(f)));
    let good = gauges(
        &[("org.apache.kafka.producer.record.queue.time.avg", 2.0)],
        &[],
    );
    d.compare("push-metrics", p, |s| push(f, &sub, s, 0, good.clone()));

    // A push from an instance the broker has not seen creates it there.
    let g = ids.next();
    d.compare("push-unseen-instance", p, |_| {
        push_request(g, 0, 0, Vec::new())
    });
    d.compare("push-zero-id", p, |_| {
        push_request(Uuid::nil(), 0, 0, Vec::new())
    });
}

/// One test, the two halves in turn: Kafka re-evaluates every instance when any
/// subscription changes (a fresh instance: no push yet, not terminating), so the half
/// without subscriptions must not run while the other sets or deletes its own.
#[test]
fn telemetry() {
    without_subscriptions();
    with_subscriptions();
}

fn without_subscriptions() {
    let mut ids = Ids::new();
    let mut d = Differential::start("telemetry_default");
    every_case(&mut d, &mut ids);
    d.finish();
}

/// (name, metrics, interval.ms) of the two subscriptions; both match this run's ids.
const SUBSCRIPTIONS: [(&str, &[&str], i32); 2] = [
    (
        "clients",
        &[
            "org.apache.kafka.producer.",
            "org.apache.kafka.consumer.",
            "org.apache.kafka.admin.",
        ],
        60_000,
    ),
    (
        "latency",
        &[
            "org.apache.kafka.producer.record.queue.time.avg",
            "org.apache.kafka.consumer.fetch",
        ],
        30_000,
    ),
];

fn alter_subscriptions(
    name_prefix: &str,
    pattern: &str,
    delete: bool,
) -> IncrementalAlterConfigsRequest {
    let resources = SUBSCRIPTIONS
        .iter()
        .map(|(name, metrics, interval)| {
            let config = |key: &str, value: String| {
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_config_operation(if delete { DELETE } else { SET })
                    .with_name(str_bytes(key))
                    .with_value(Some(str_bytes(&value)))
            };
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(CLIENT_METRICS)
                .with_resource_name(str_bytes(&format!("{name_prefix}-{name}")))
                .with_configs(vec![
                    config("metrics", metrics.join(",")),
                    config("interval.ms", interval.to_string()),
                    config("match", format!("client_instance_id={pattern}")),
                ])
        })
        .collect();
    IncrementalAlterConfigsRequest::default().with_resources(resources)
}

fn samsa_subscriptions(pattern: &str) -> String {
    let mut toml = String::new();
    for (name, metrics, interval) in SUBSCRIPTIONS {
        let metrics: Vec<String> = metrics.iter().map(|m| format!("\"{m}\"")).collect();
        toml.push_str(&format!(
            "[[telemetry.subscription]]\nname = \"{name}\"\nmetrics = [{}]\ninterval_ms = {interval}\n\
             match = [\"client_instance_id={pattern}\"]\n",
            metrics.join(", ")
        ));
    }
    toml
}

fn with_subscriptions() {
    let mut ids = Ids::new();
    let pattern = ids.pattern();
    let mut d =
        Differential::start_configured("telemetry_subscribed", &samsa_subscriptions(&pattern));
    let name_prefix = format!("samsa-differential-{}", &pattern[..8]);
    let answer = d
        .kafka
        .conn
        .send(&alter_subscriptions(&name_prefix, &pattern, false), 1)
        .expect("Kafka's IncrementalAlterConfigs");
    for resource in &answer.responses {
        assert_eq!(resource.error_code, 0, "{answer:?}");
    }
    // Kafka's broker picks the subscriptions up from its metadata a moment later: probe
    // with ids of this run until one is subscribed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let probe = d.kafka.conn.send(&get(ids.next()), 0).unwrap();
        if !probe.requested_metrics.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Kafka never applied the subscriptions: {probe:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    every_case(&mut d, &mut ids);
    // Another client's id matches neither subscription.
    let v = *versions(ApiKey::GetTelemetrySubscriptions).end();
    let outsider = Uuid::new_v4();
    d.compare("unmatched", v, |_| get(outsider));
    let _ = d
        .kafka
        .conn
        .send(&alter_subscriptions(&name_prefix, &pattern, true), 1);
    d.finish();
}
