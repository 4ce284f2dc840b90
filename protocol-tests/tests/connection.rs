//! The connection contract: responses come back in request order (even when requests are
//! pipelined), acks=0 produces get none, and a client that breaks the framing or asks for
//! an API samsa does not serve loses its own connection and nobody else's.

use std::sync::LazyLock;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use samsa_protocol_tests::batches::{self, batch, messages, Message};
use samsa_protocol_tests::client::{
    create_topic, fetch_records, fetch_request, list_offsets_request, only_fetched, only_partition,
    produce_request, topic_name, TopicRef,
};
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

/// Record timestamps: recent, so the broker's 7-day retention keeps them.
static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);
const MAX_REQUEST: usize = 4096;

fn start() -> BrokerProcess {
    BrokerProcess::start(&format!(
        "auto_create_topics = false\nsocket_request_max_bytes = {MAX_REQUEST}\n"
    ))
    .unwrap()
}

fn assert_serves(conn: &mut Connection, what: &str) {
    let response = conn
        .send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap_or_else(|e| panic!("{what}: ApiVersions failed: {e:#}"));
    assert_eq!(response.error_code, 0, "{what}");
}

#[test]
fn acks_zero_gets_no_response_and_the_next_request_gets_its_own() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "fire-and-forget", 1, &[]).unwrap();
    let mut produced = Vec::new();
    for version in [3, 8, 9, 13] {
        let sent = messages(&format!("v{version}"), 2, *T0);
        conn.send_only(
            &produce_request(&topic, 0, batch(&sent), 0, version),
            version,
        )
        .unwrap();
        produced.extend(sent);
        // `send` fails if the next frame carries the produce's correlation id.
        assert_serves(&mut conn, &format!("after acks=0 produce v{version}"));
    }
    let fetched = fetch_records(&mut conn, &topic, 0, 0).unwrap();
    assert_eq!(batches::messages_of(&fetched), produced);
}

/// Kafka closes the connection of an acks=0 producer whose produce failed: it has no
/// other way to tell the client, which then refreshes its metadata.
#[test]
fn failed_acks_zero_produce_closes_the_connection() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    conn.send_only(
        &produce_request(&TopicRef::unknown(), 0, batch(&messages("x", 1, *T0)), 0, 9),
        9,
    )
    .unwrap();
    assert!(
        conn.is_closed_by_peer(),
        "connection stayed open after a failed acks=0 produce"
    );
    assert_serves(&mut broker.connect().unwrap(), "new connection");
}

/// What one pipelined request was, and then what its response said.
enum Pipelined {
    ApiVersions,
    Metadata(Uuid),
    /// The message produced, and the base offset it got.
    Produce(Message, i64),
    /// The latest offset ListOffsets reported.
    Latest(i64),
    /// The messages a fetch from offset 0 returned.
    Fetch(Vec<Message>),
}

/// Sends 50 requests of five kinds without reading, then reads the 50 responses; `receive`
/// fails unless each carries the correlation id of the request in the same position.
fn run_pipeline(broker: &BrokerProcess) -> (TopicRef, Vec<Pipelined>) {
    let mut setup = broker.connect().unwrap();
    let topic = create_topic(&mut setup, "pipelined", 1, &[]).unwrap();
    let mut conn = broker.connect().unwrap();
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name("pipelined"))),
    ]));
    let mut sent = Vec::new();
    for i in 0..50 {
        let (kind, id) = match i % 5 {
            0 => (
                None,
                conn.send_only(&samsa_protocol_tests::client::api_versions_request(), 3)
                    .unwrap(),
            ),
            1 => (None, conn.send_only(&metadata, 12).unwrap()),
            2 => {
                let message = Message::new(&format!("k{i}"), &format!("v{i}"), *T0 + i);
                let request =
                    produce_request(&topic, 0, batch(std::slice::from_ref(&message)), -1, 9);
                (Some(message), conn.send_only(&request, 9).unwrap())
            }
            3 => (
                None,
                conn.send_only(&list_offsets_request("pipelined", 0, -1), 7)
                    .unwrap(),
            ),
            _ => (
                None,
                conn.send_only(&fetch_request(&topic, 0, 0, 12), 12)
                    .unwrap(),
            ),
        };
        sent.push((i % 5, kind, id));
    }
    let answers = sent
        .into_iter()
        .enumerate()
        .map(|(i, (kind, message, id))| match kind {
            0 => {
                let response = conn.receive::<ApiVersionsRequest>(3, id).unwrap();
                assert_eq!(response.error_code, 0, "request {i}");
                Pipelined::ApiVersions
            }
            1 => {
                let response = conn.receive::<MetadataRequest>(12, id).unwrap();
                Pipelined::Metadata(response.topics[0].topic_id)
            }
            2 => {
                let response = conn.receive::<ProduceRequest>(9, id).unwrap();
                let answer = only_partition(&response).unwrap();
                assert_eq!(answer.error_code, 0, "request {i}");
                Pipelined::Produce(message.unwrap(), answer.base_offset)
            }
            3 => {
                let response = conn.receive::<ListOffsetsRequest>(7, id).unwrap();
                let answer = &response.topics[0].partitions[0];
                assert_eq!(answer.error_code, 0, "request {i}");
                Pipelined::Latest(answer.offset)
            }
            _ => {
                let response = conn.receive::<FetchRequest>(12, id).unwrap();
                let data = only_fetched(&response).unwrap();
                assert_eq!(data.error_code, 0, "request {i}");
                let fetched = batches::decode(data.records.as_ref().unwrap()).unwrap();
                Pipelined::Fetch(batches::messages_of(&fetched))
            }
        })
        .collect();
    assert_serves(&mut conn, "after the pipeline");
    (topic, answers)
}

#[test]
fn fifty_pipelined_requests_get_their_responses_in_order() {
    let broker = start();
    let (topic, answers) = run_pipeline(&broker);
    assert_eq!(answers.len(), 50);
    let mut offsets = Vec::new();
    for answer in &answers {
        match answer {
            Pipelined::Metadata(id) => assert_eq!(*id, topic.id),
            Pipelined::Produce(_, offset) => offsets.push(*offset),
            _ => {}
        }
    }
    offsets.sort();
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<_>>(),
        "every produce appended once"
    );
}

/// Kafka's protocol guide: on one connection requests are processed in the order sent.
/// So produces append in request order, and each read sees exactly the produces before it.
#[test]
fn pipelined_requests_are_processed_in_the_order_sent() {
    let broker = start();
    let (topic, answers) = run_pipeline(&broker);
    let mut appended = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Pipelined::ApiVersions | Pipelined::Metadata(_) => {}
            Pipelined::Produce(message, offset) => {
                assert_eq!(
                    offset,
                    appended.len() as i64,
                    "request {i}: produce reordered"
                );
                appended.push(message);
            }
            Pipelined::Latest(offset) => {
                assert_eq!(offset, appended.len() as i64, "request {i}: latest offset");
            }
            Pipelined::Fetch(messages) => assert_eq!(messages, appended, "request {i}: fetch"),
        }
    }
    let stored = fetch_records(&mut broker.connect().unwrap(), &topic, 0, 0).unwrap();
    assert_eq!(batches::messages_of(&stored), appended);
}

/// A request header for `key` at `version`, with a v1 header (client id, no tagged fields).
fn header(key: i16, version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(key);
    buf.put_i16(version);
    buf.put_i32(77);
    buf.put_i16(4);
    buf.put_slice(b"test");
    buf
}

/// Sends `bytes` as they are on a fresh connection and asserts the broker closes just that
/// connection: one opened before and one opened after still get answers.
fn assert_closes_only_its_connection(
    broker: &BrokerProcess,
    what: &str,
    bytes: &[u8],
    then_half_close: bool,
) {
    let mut before = broker.connect().unwrap();
    assert_serves(&mut before, what);
    let mut victim = broker.connect().unwrap();
    victim.send_raw(bytes).unwrap();
    if then_half_close {
        victim.shutdown_write().unwrap();
    }
    assert!(victim.is_closed_by_peer(), "{what}: connection left open");
    assert_serves(&mut before, &format!("{what}: connection opened before"));
    assert_serves(
        &mut broker.connect().unwrap(),
        &format!("{what}: connection opened after"),
    );
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut buf = (body.len() as i32).to_be_bytes().to_vec();
    buf.extend_from_slice(body);
    buf
}

#[test]
fn frames_too_short_for_a_header_close_the_connection() {
    let broker = start();
    assert_closes_only_its_connection(&broker, "empty frame", &framed(&[]), false);
    assert_closes_only_its_connection(&broker, "2-byte frame", &framed(&[0, 18]), false);
    assert_closes_only_its_connection(
        &broker,
        "7-byte frame",
        &framed(&[0, 18, 0, 3, 0, 0, 0]),
        false,
    );
}

#[test]
fn truncated_requests_close_the_connection() {
    let broker = start();
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name("some-topic"))),
    ]));
    let mut whole = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(5)
        .with_client_id(Some(StrBytes::from_static_str("t")))
        .encode(&mut whole, 2)
        .unwrap();
    request.encode(&mut whole, 12).unwrap();
    // A well-framed body that ends in the middle of the topic name.
    let cut = &whole[..whole.len() - 8];
    assert_closes_only_its_connection(&broker, "truncated body", &framed(cut), false);
    // A frame whose length promises more than the client ever sends.
    let mut short = 100i32.to_be_bytes().to_vec();
    short.extend_from_slice(&whole[..10]);
    assert_closes_only_its_connection(&broker, "truncated frame", &short, true);
}

#[test]
fn unknown_api_keys_and_unserved_versions_close_the_connection() {
    let broker = start();
    assert_closes_only_its_connection(&broker, "api key 9999", &framed(&header(9999, 0)), false);
    assert_closes_only_its_connection(&broker, "api key -1", &framed(&header(-1, 0)), false);
    let mut produce_v2 = header(ApiKey::Produce as i16, 2);
    produce_v2.put_i16(1); // acks
    produce_v2.put_i32(1000); // timeout
    produce_v2.put_i32(0); // no topics
    assert_closes_only_its_connection(&broker, "Produce v2", &framed(&produce_v2), false);
    assert_closes_only_its_connection(
        &broker,
        "Metadata v14",
        &framed(&header(ApiKey::Metadata as i16, 14)),
        false,
    );
    // A Kafka API samsa does not serve at all.
    assert_closes_only_its_connection(
        &broker,
        "JoinGroup v0",
        &framed(&header(ApiKey::JoinGroup as i16, 0)),
        false,
    );
}

#[test]
fn frame_lengths_out_of_bounds_close_the_connection() {
    let broker = start();
    // Only the prefix is sent: the broker must not wait for a body it will not accept.
    let too_big = (MAX_REQUEST as i32 + 1).to_be_bytes();
    assert_closes_only_its_connection(
        &broker,
        "length over socket_request_max_bytes",
        &too_big,
        false,
    );
    assert_closes_only_its_connection(&broker, "huge length", &i32::MAX.to_be_bytes(), false);
    assert_closes_only_its_connection(&broker, "negative length", &(-1i32).to_be_bytes(), false);
    assert_closes_only_its_connection(
        &broker,
        "most negative length",
        &i32::MIN.to_be_bytes(),
        false,
    );
}

#[test]
fn a_request_at_the_size_limit_is_served() {
    let broker = start();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "at-limit", 1, &[]).unwrap();
    // Grow a produce request until its frame body is exactly the limit.
    let body_len = |value: usize| {
        let message = Message {
            key: None,
            value: Some(vec![b'a'; value].into()),
            timestamp: *T0,
            headers: Vec::new(),
        };
        let request = produce_request(&topic, 0, batch(&[message]), -1, 9);
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(9)
            .with_client_id(Some(StrBytes::from_static_str("protocol-tests")))
            .encode(&mut buf, 2)
            .unwrap();
        request.encode(&mut buf, 9).unwrap();
        (buf.len(), request)
    };
    let mut value = 0;
    while body_len(value + 1).0 <= MAX_REQUEST {
        value += 1;
    }
    let (len, request) = body_len(value);
    assert_eq!(len, MAX_REQUEST, "could not hit the limit exactly");
    let response = conn.send(&request, 9).unwrap();
    assert_eq!(only_partition(&response).unwrap().error_code, 0);
}
