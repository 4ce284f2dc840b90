//! Hostile input against a live broker: frames crafted to make a decoder allocate without
//! bound, and a crowd of connections sending garbage, must cost the sender its own
//! connection and nothing else.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsRequest;
use samsa_protocol_tests::client::{
    create_topic, fetch_records, only_partition, produce, produce_request, LATEST_PRODUCE,
};
use samsa_protocol_tests::BrokerProcess;

/// Metadata v0 whose topic array claims 2^31-1 entries: a decoder that trusts the count
/// asks for tens of gigabytes before reading the first entry.
const HUGE_ARRAY: &[u8] = &[0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0];

/// The same lie in a flexible version's compact array (Metadata v12, varint count).
const HUGE_COMPACT_ARRAY: &[u8] = &[
    0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07, 0,
];

#[test]
fn lying_array_counts_close_only_that_connection() {
    let broker = BrokerProcess::start("").unwrap();
    let mut bystander = broker.connect().unwrap();
    for frame in [HUGE_ARRAY, HUGE_COMPACT_ARRAY] {
        let mut attacker = broker.connect().unwrap();
        attacker.send_frame(frame).unwrap();
        assert!(
            attacker.is_closed_by_peer(),
            "a malformed frame must close its connection"
        );
        bystander
            .send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .expect("the broker keeps serving other connections");
    }
}

/// One snappy-compressed RecordBatch v2 whose records section is `body`, with a valid CRC.
fn snappy_batch(body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0); // base offset
    b.put_i32((49 + body.len()) as i32); // batch length: from the leader epoch on
    b.put_i32(0); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // CRC, filled in below
    b.put_i16(2); // attributes: snappy
    b.put_i32(0); // last offset delta
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1); // producer id
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(1); // record count
    b.put_slice(body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// A compacted topic must look at every record's key, so the broker decompresses what a
/// producer sends. A snappy block header claiming 4 GiB is refused (INVALID_RECORD, as any
/// undecodable batch there) before anything is allocated, and the broker goes on serving.
/// The other codecs' bound is unit-tested in samsa-storage.
#[test]
fn decompression_bombs_are_refused_not_allocated() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "bombed", 1, &[("cleanup.policy", "compact")]).unwrap();
    let forged_length: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let response = conn
        .send(
            &produce_request(&topic, 0, snappy_batch(forged_length), -1, LATEST_PRODUCE),
            LATEST_PRODUCE,
        )
        .unwrap();
    let result = only_partition(&response).unwrap();
    assert_eq!(result.error_code, 87, "INVALID_RECORD, got {result:?}");
    // The broker is alive and the topic still takes good data.
    let good = samsa_protocol_tests::batches::batch(&samsa_protocol_tests::batches::messages(
        "k",
        3,
        1_700_000_000_000,
    ));
    assert_eq!(produce(&mut conn, &topic, 0, good).unwrap(), 0);
    assert_eq!(fetch_records(&mut conn, &topic, 0, 0).unwrap().len(), 3);
}

#[test]
fn a_crowd_of_garbage_connections_does_not_disturb_a_client() {
    let broker = BrokerProcess::start("").unwrap();
    let addr = broker.addr.clone();
    let attackers: Vec<_> = (0..16u64)
        .map(|seed| {
            let addr = addr.clone();
            thread::spawn(move || {
                // A small deterministic generator: each attacker sends different noise.
                let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = move || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                for round in 0..20 {
                    let Ok(mut stream) = TcpStream::connect(&addr) else {
                        continue;
                    };
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                    let len = (next() % 300) as usize;
                    let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    let _ = match round % 4 {
                        // Random bytes, length prefix and all.
                        0 => stream.write_all(&noise),
                        // A plausible length prefix, then a truncated body.
                        1 => stream
                            .write_all(&[0, 0, 1, 0])
                            .and_then(|_| stream.write_all(&noise)),
                        // An oversized length prefix.
                        2 => stream.write_all(&[0x7f, 0xff, 0xff, 0xff]),
                        // Slow drip: one byte at a time.
                        _ => noise.iter().take(12).try_for_each(|b| {
                            thread::sleep(Duration::from_millis(5));
                            stream.write_all(&[*b])
                        }),
                    };
                }
            })
        })
        .collect();
    // Meanwhile a well-behaved client keeps working, on one connection, without an error.
    let mut client = broker.connect().unwrap();
    for _ in 0..200 {
        client
            .send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .unwrap();
    }
    for attacker in attackers {
        attacker.join().unwrap();
    }
    client
        .send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
    broker
        .connect()
        .unwrap()
        .send(&ApiVersionsRequest::default(), 0)
        .unwrap();
}
