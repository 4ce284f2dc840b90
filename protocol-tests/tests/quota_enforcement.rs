//! Client quotas enforced (KIP-13, KIP-124, KIP-219, KIP-599, KIP-612): a client over its
//! quota gets `throttle_time_ms` and a muted connection, a throttled fetch still carries
//! its records, an exhausted controller mutation quota refuses with THROTTLING_QUOTA_EXCEEDED,
//! and an IP over its connection creation rate has its connections closed unserved.
//! The throttles asserted here are tens of seconds long, so that nothing depends on how
//! fast the machine is; the rates themselves are measured by the compat suite.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use samsa_protocol_tests::batches::{batch, messages, Message};
use samsa_protocol_tests::client::{
    create_request, create_topic, fetch_request, only_partition, produce, produce_request,
    TopicRef, LATEST_PRODUCE,
};
use samsa_protocol_tests::{free_port, metrics, BrokerProcess, Connection};

const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// Sets quotas on one entity (`[("client-id", Some("x"))]`, `[("ip", None)]` for the
/// default ip) with AlterClientQuotas, as `kafka-configs --alter --add-config` does.
fn set_quota(conn: &mut Connection, entity: &[(&str, Option<&str>)], quotas: &[(&str, f64)]) {
    let entity = entity
        .iter()
        .map(|(kind, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_string((*kind).to_owned()))
                .with_entity_name(name.map(|n| StrBytes::from_string(n.to_owned())))
        })
        .collect();
    let ops = quotas
        .iter()
        .map(|(key, value)| {
            OpData::default()
                .with_key(StrBytes::from_string((*key).to_owned()))
                .with_value(*value)
        })
        .collect();
    let request = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)]);
    let response = conn.send(&request, 1).unwrap();
    for entry in &response.entries {
        assert_eq!(entry.error_code, 0, "{entry:?}");
    }
}

/// One batch of about `bytes` bytes of values.
fn big_batch(bytes: usize) -> bytes::Bytes {
    let value = "x".repeat(1000);
    let messages: Vec<Message> = (0..bytes / 1000)
        .map(|i| Message::new(&format!("k{i}"), &value, 0))
        .collect();
    batch(&messages)
}

fn connect_as(broker: &BrokerProcess, client_id: &str) -> Connection {
    let mut conn = broker.connect().unwrap();
    conn.set_client_id(client_id);
    conn
}

#[test]
fn a_producer_over_its_byte_rate_is_throttled_muted_and_alone() {
    let port = free_port();
    let mut broker =
        BrokerProcess::start(&format!("metrics_listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let mut admin = broker.connect().unwrap();
    set_quota(
        &mut admin,
        &[("client-id", Some("greedy"))],
        &[("producer_byte_rate", 1024.0)],
    );
    let topic = create_topic(&mut admin, "throttled", 1, &[]).unwrap();

    // 200 KB against 1 KB/s, measured over about ten seconds: minutes of throttle.
    let mut greedy = connect_as(&broker, "greedy");
    let records = big_batch(200_000);
    let response = greedy
        .send(
            &produce_request(&topic, 0, records, -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(only_partition(&response).unwrap().error_code, 0);
    assert!(
        response.throttle_time_ms > 60_000,
        "throttle_time_ms {}",
        response.throttle_time_ms
    );

    // Muted: the next request is not answered while the throttle lasts...
    greedy.send_only(&ApiVersionsRequest::default(), 3).unwrap();
    assert!(!greedy
        .response_arrives_within(Duration::from_secs(2))
        .unwrap());
    // ...while another client is served at once, unthrottled.
    let mut polite = connect_as(&broker, "polite");
    let other = polite
        .send(
            &produce_request(&topic, 0, batch(&messages("p", 3, 0)), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    assert_eq!(other.throttle_time_ms, 0);
    assert_eq!(only_partition(&other).unwrap().error_code, 0);

    // The throttle shows per entity on /metrics.
    let throttled = metrics::scrape(
        port,
        "samsa_client_quota_throttles_total{client_id=\"greedy\",quota=\"producer_byte_rate\",user=\"\"}",
    )
    .unwrap();
    assert_eq!(throttled, Some(1.0));

    // A muted connection does not hold up shutdown.
    let stopping = Instant::now();
    assert_eq!(broker.terminate().unwrap(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "shutdown waited for a throttle"
    );
}

#[test]
fn a_fetch_over_the_consumer_byte_rate_carries_its_records_and_a_throttle() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    set_quota(
        &mut admin,
        &[("client-id", Some("reader"))],
        &[("consumer_byte_rate", 10_240.0)],
    );
    let topic = create_topic(&mut admin, "fetched", 1, &[]).unwrap();
    for _ in 0..10 {
        produce(&mut admin, &topic, 0, big_batch(40_000)).unwrap();
    }

    let mut reader = connect_as(&broker, "reader");
    let mut offset = 0;
    let mut fetches = 0;
    let throttled = loop {
        let response = reader
            .send(&fetch_request(&topic, 0, offset, 16), 16)
            .unwrap();
        fetches += 1;
        let data = &response.responses[0].partitions[0];
        let records = data.records.clone().unwrap_or_default();
        assert!(
            !records.is_empty(),
            "fetch {fetches} came back empty (throttle {} ms)",
            response.throttle_time_ms
        );
        // A consumer under a quota gets a quarter window's worth (2.5 KB) a fetch, beyond
        // the one batch a fetch always returns whole: one 40 KB batch here.
        assert!(records.len() < 45_000, "{} bytes", records.len());
        offset = last_offset(&records) + 1;
        if response.throttle_time_ms > 0 {
            break response;
        }
    };
    // The young sensor lets ten windows' worth (100 KB) through before it throttles; the
    // throttled fetch is the one that crossed the quota, and it came with its records.
    assert!(fetches >= 2, "throttled at fetch {fetches}");
    assert_eq!(throttled.error_code, 0);
}

/// The offset after the last batch of `records`.
fn last_offset(mut records: &[u8]) -> i64 {
    let mut last = -1;
    while records.len() >= 12 {
        let base = i64::from_be_bytes(records[..8].try_into().unwrap());
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(records[23..27].try_into().unwrap());
        last = base + i64::from(delta);
        records = &records[(12 + len).min(records.len())..];
    }
    last
}

#[test]
fn an_exhausted_mutation_quota_refuses_or_throttles_by_version() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    set_quota(
        &mut admin,
        &[("client-id", Some("creator"))],
        &[("controller_mutation_rate", 1.0)],
    );
    // The bucket holds 11 partitions (11 windows at 1 a second); one request may take it
    // below zero, as in Kafka...
    let mut creator = connect_as(&broker, "creator");
    let first = creator.send(&create_request("wide", 40), 7).unwrap();
    assert_eq!(first.topics[0].error_code, 0, "{first:?}");
    // ...and then the strict versions refuse, saying how long to wait...
    let mut again = connect_as(&broker, "creator");
    let refused = again.send(&create_request("refused", 1), 7).unwrap();
    assert_eq!(
        refused.topics[0].error_code, THROTTLING_QUOTA_EXCEEDED,
        "{refused:?}"
    );
    assert!(refused.throttle_time_ms > 20_000, "{refused:?}");
    // ...while CreateTopics before v6 creates and throttles.
    let mut older = connect_as(&broker, "creator");
    let permitted = older.send(&create_request("permitted", 1), 5).unwrap();
    assert_eq!(permitted.topics[0].error_code, 0, "{permitted:?}");
    assert!(permitted.throttle_time_ms > 20_000, "{permitted:?}");
    // Another client id has its own quota (none).
    let mut other = broker.connect().unwrap();
    let free = other.send(&create_request("free", 40), 7).unwrap();
    assert_eq!(free.topics[0].error_code, 0);
    assert_eq!(free.throttle_time_ms, 0);
    let _ = TopicRef::unknown();
}

#[test]
fn request_time_over_its_percentage_is_throttled_for_at_most_a_window() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    // 0.1 % of a thread: a millisecond of work every second.
    set_quota(
        &mut admin,
        &[("client-id", Some("busy"))],
        &[("request_percentage", 0.1)],
    );
    admin.set_client_id("setup");
    create_topic(&mut admin, "described", 50, &[]).unwrap();
    let mut busy = connect_as(&broker, "busy");
    let throttle = (0..100_000)
        .map(|_| busy.send(&MetadataRequest::default(), 12).unwrap())
        .map(|r| r.throttle_time_ms)
        .find(|&ms| ms > 0)
        .expect("a busy client was never throttled");
    // Kafka bounds a request-time throttle by one quota window.
    assert!(throttle <= 1000, "throttle_time_ms {throttle}");
}

#[test]
fn connections_over_the_ip_creation_rate_are_closed_unserved() {
    let broker = BrokerProcess::start("").unwrap();
    let mut admin = broker.connect().unwrap();
    set_quota(
        &mut admin,
        &[("ip", None)],
        &[("connection_creation_rate", 1.0)],
    );
    // About ten windows' worth are admitted at once, then the rate holds.
    let mut kept = Vec::new();
    let refused = (0..100).find_map(|_| {
        let mut conn = broker.connect().unwrap();
        match conn.send(&ApiVersionsRequest::default(), 3) {
            Ok(_) => {
                kept.push(conn);
                None
            }
            Err(_) => Some(kept.len()),
        }
    });
    let admitted = refused.expect("no connection was ever refused");
    assert!(admitted >= 5, "only {admitted} admitted");
}
