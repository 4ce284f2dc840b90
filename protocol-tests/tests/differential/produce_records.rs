//! Produce where the broker looks inside the batch: a topic's `compression.type` recompressing
//! what producers send (read back and compared batch by batch: codec, header, records), and
//! the per-record refusals of KIP-467 (record_errors, error codes and error_message texts).

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, FetchResponse, InitProducerIdRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::records::Compression;
use samsa_protocol_tests::batches::{self, batch, batch_with, messages, Message, Producer};
use samsa_protocol_tests::client::{fetch_request, produce_request};
use samsa_protocol_tests::differential::normalise::timestamp_bounds;
use samsa_protocol_tests::differential::{Answer, Differential, Side};

use crate::{ends, topic_ref, T0};

const HOUR: i64 = 3_600_000;

const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

/// The producer's records: keys, a null value, headers, timestamps out of order.
fn varied(prefix: &str) -> Vec<Message> {
    let mut m = messages(prefix, 4, *T0);
    m[1].value = None;
    m[2] = m[2].clone().with_header("h", "x").with_header("n", "y");
    m[3].timestamp = *T0 - 5;
    m
}

/// Replaces each fetched partition's records by their description, so batches compare by
/// what they hold and not by the compressor's bytes.
fn described(response: &mut FetchResponse) {
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            if let Some(records) = &partition.records {
                let text = batches::describe(records).unwrap_or_else(|e| format!("<{e:#}>"));
                partition.records = Some(Bytes::from(text));
            }
        }
    }
}

/// An idempotent producer id on each broker (InitProducerId without a transactional id).
fn producer_ids(d: &mut Differential) -> [(i64, i16); 2] {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its producer id manager has a block.
    [&mut d.samsa, &mut d.kafka].map(|side| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = side.conn.send(&request, 4).unwrap();
            if r.error_code == 0 {
                return (r.producer_id.0, r.producer_epoch);
            }
            assert!(
                r.error_code == 14 && std::time::Instant::now() < deadline,
                "InitProducerId on {}: {r:?}",
                side.name
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
}

fn side_ids(side: &Side, ids: &[(i64, i16); 2]) -> (i64, i16) {
    if side.name == "samsa" {
        ids[0]
    } else {
        ids[1]
    }
}

#[test]
fn compression() {
    let mut d = Differential::start("compression");
    let ids = producer_ids(&mut d);
    let targets = ["uncompressed", "gzip", "snappy", "lz4", "zstd", "producer"];
    let mut topics = Vec::new();
    for target in targets {
        let topic = d.topic(target);
        let mut configs = vec![("compression.type", target)];
        // A level other than the default where the codec has one.
        match target {
            "gzip" => configs.push(("compression.gzip.level", "1")),
            "zstd" => configs.push(("compression.zstd.level", "-3")),
            _ => {}
        }
        d.create_topic(&topic, 1, &configs);
        topics.push(topic);
    }
    let v = *ends(ApiKey::Produce).last().unwrap();
    for topic in &topics {
        for (i, (name, codec)) in CODECS.into_iter().enumerate() {
            let records = batch_with(&varied(name), codec);
            d.compare(&format!("produce-{name}"), v, |s| {
                produce_request(&topic_ref(s, topic), 0, records.clone(), -1, v)
            });
            // The same from an idempotent producer: id, epoch and sequence carry over.
            d.compare(&format!("idempotent-{name}"), v, |s| {
                let (id, epoch) = side_ids(s, &ids);
                let producer = Producer::idempotent(id, epoch, 4 * i as i32);
                let records = encode_as(&varied(name), codec, producer);
                produce_request(&topic_ref(s, topic), 0, records, -1, v)
            });
        }
        // Every batch read back: in the topic's codec, with the producer's fields and records.
        for fetch in ends(ApiKey::Fetch) {
            d.compare_part(
                "read-back",
                fetch,
                |s| fetch_request(&topic_ref(s, topic), 0, 0, fetch),
                described,
            );
        }
    }
    // Kafka checks the recompressed batch against max.message.bytes again.
    let small = d.topic("small");
    d.create_topic(
        &small,
        1,
        &[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "2000"),
        ],
    );
    let big = batch_with(
        &[Message {
            key: None,
            value: Some(Bytes::from(vec![b'z'; 5000])),
            timestamp: *T0,
            headers: vec![],
        }],
        Compression::Gzip,
    );
    d.compare("grows-too-large", v, |s| {
        produce_request(&topic_ref(s, &small), 0, big.clone(), -1, v)
    });
    d.finish();
}

fn encode_as(messages: &[Message], codec: Compression, producer: Producer) -> Bytes {
    batches::producer_batch_with(messages, codec, producer)
}

/// Both answers' texts, which `compare` only checks for presence: KIP-467's are Kafka's own
/// words, so they must match exactly.
fn same_texts(case: &str, answers: &(Answer<ProduceResponse>, Answer<ProduceResponse>)) {
    let texts = |a: &Answer<ProduceResponse>| {
        let p = &a.response().expect(case).responses[0].partition_responses[0];
        let records: Vec<_> = p
            .record_errors
            .iter()
            .map(|e| {
                let text = e.batch_index_error_message.as_deref().map(timestamp_bounds);
                (e.batch_index, text)
            })
            .collect();
        (p.error_code, p.error_message.clone(), records)
    };
    assert_eq!(
        texts(&answers.0),
        texts(&answers.1),
        "{case}: samsa, then Kafka"
    );
}

/// `batch` marked LogAppendTime by its producer, with this max timestamp.
fn producer_log_append_time(batch: &Bytes, max_timestamp: i64) -> Bytes {
    let mut b = batch.to_vec();
    let attributes = i16::from_be_bytes([b[21], b[22]]) | 1 << 3;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[test]
fn record_errors() {
    let mut d = Differential::start("record_errors");
    let compacted = d.topic("compacted");
    d.create_topic(&compacted, 1, &[("cleanup.policy", "compact")]);
    let appended = d.topic("append-time");
    d.create_topic(&appended, 1, &[("message.timestamp.type", "LogAppendTime")]);
    let plain = d.topic("plain");
    d.create_topic(&plain, 1, &[]);
    let zstd = d.topic("zstd");
    d.create_topic(
        &zstd,
        1,
        &[("compression.type", "zstd"), ("cleanup.policy", "compact")],
    );

    let recent = d.topic("recent");
    d.create_topic(&recent, 1, &[("message.timestamp.before.max.ms", "600000")]);
    let mut future = messages("f", 3, *T0);
    future[1].timestamp = *T0 + 2 * HOUR;
    let keyless_future: Vec<Message> = future
        .iter()
        .map(|m| Message {
            key: None,
            ..m.clone()
        })
        .collect();

    let keyless = |m: &Message| Message {
        key: None,
        ..m.clone()
    };
    let mut some_keyless = messages("k", 4, *T0);
    some_keyless[1] = keyless(&some_keyless[1]);
    some_keyless[3] = keyless(&some_keyless[3]);
    let all_keyless: Vec<Message> = messages("n", 5, *T0).iter().map(keyless).collect();
    let keyed = batch(&messages("ok", 2, *T0));
    let cases: Vec<(&str, &String, Bytes)> = vec![
        ("keyless-some", &compacted, batch(&some_keyless)),
        (
            "keyless-gzip",
            &compacted,
            batch_with(&some_keyless, Compression::Gzip),
        ),
        // More than three: the message shows the first three, record_errors all.
        ("keyless-all", &compacted, batch(&all_keyless)),
        // Recompressed for the topic, then refused for its keys.
        (
            "keyless-recompressed",
            &zstd,
            batch_with(&some_keyless, Compression::Lz4),
        ),
        (
            "producer-append-time-on-append-time-topic",
            &appended,
            producer_log_append_time(&keyed, *T0),
        ),
        (
            "producer-append-time-without-timestamp",
            &plain,
            producer_log_append_time(&keyed, -1),
        ),
        // Both faults: the missing key is named for that record.
        (
            "keyless-and-append-time",
            &compacted,
            producer_log_append_time(&batch(&some_keyless), -1),
        ),
        // Kept, as CreateTime with the batch's max timestamp.
        (
            "producer-append-time-kept",
            &plain,
            producer_log_append_time(&keyed, *T0 + 7),
        ),
        // Kafka's default message.timestamp.after.max.ms: an hour ahead of its clock.
        ("two-hours-ahead", &plain, batch(&future)),
        (
            "too-old-for-the-topic",
            &recent,
            batch(&messages("old", 3, *T0 - HOUR)),
        ),
        // The key is named first.
        ("keyless-and-ahead", &compacted, batch(&keyless_future)),
        ("after-refusals", &compacted, keyed.clone()),
    ];
    for v in ends(ApiKey::Produce) {
        for (case, topic, records) in &cases {
            let answers = d.compare(case, v, |s| {
                produce_request(&topic_ref(s, topic), 0, records.clone(), -1, v)
            });
            same_texts(case, &answers);
        }
    }
    for topic in [&compacted, &plain, &zstd, &recent] {
        let v = *ends(ApiKey::Fetch).last().unwrap();
        d.compare_part(
            "contents",
            v,
            |s| fetch_request(&topic_ref(s, topic), 0, 0, v),
            described,
        );
    }
    d.finish();
}
