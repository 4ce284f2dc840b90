//! Hostile input against a live broker: frames crafted to make a decoder allocate without
//! bound, and a crowd of connections sending garbage, must cost the sender its own
//! connection and nothing else.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use samsa_protocol_tests::BrokerProcess;

/// Metadata v0 whose topic array claims 2^31-1 entries: a decoder that trusts the count
/// asks for tens of gigabytes before reading the first entry.
const HUGE_ARRAY: &[u8] = &[0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0];

/// The same lie in a flexible version's compact array (Metadata v12, varint count).
const HUGE_COMPACT_ARRAY: &[u8] = &[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07, 0];

#[test]
fn lying_array_counts_close_only_that_connection() {
    let broker = BrokerProcess::start("").unwrap();
    let mut bystander = broker.connect().unwrap();
    for frame in [HUGE_ARRAY, HUGE_COMPACT_ARRAY] {
        let mut attacker = broker.connect().unwrap();
        attacker.send_frame(frame).unwrap();
        assert!(attacker.is_closed_by_peer(), "a malformed frame must close its connection");
        bystander
            .send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .expect("the broker keeps serving other connections");
    }
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
                    let Ok(mut stream) = TcpStream::connect(&addr) else { continue };
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                    let len = (next() % 300) as usize;
                    let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    let _ = match round % 4 {
                        // Random bytes, length prefix and all.
                        0 => stream.write_all(&noise),
                        // A plausible length prefix, then a truncated body.
                        1 => stream.write_all(&[0, 0, 1, 0]).and_then(|_| stream.write_all(&noise)),
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
        client.send(&samsa_protocol_tests::client::api_versions_request(), 3).unwrap();
    }
    for attacker in attackers {
        attacker.join().unwrap();
    }
    client.send(&samsa_protocol_tests::client::api_versions_request(), 3).unwrap();
    broker.connect().unwrap().send(&ApiVersionsRequest::default(), 0).unwrap();
}
