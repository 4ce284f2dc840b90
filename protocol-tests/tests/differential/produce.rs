//! Produce: appends, and each reason a batch is refused.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use samsa_protocol_tests::batches::{batch, messages, Message};
use samsa_protocol_tests::client::{fetch_request, produce_request};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

#[test]
fn produce() {
    let mut d = Differential::start("produce");
    let topic = d.topic("t");
    let small = d.topic("small");
    d.create_topic(&topic, 1, &[]);
    d.create_topic(&small, 1, &[("max.message.bytes", "1000")]);
    // More in-sync replicas than a one-replica partition can have: Kafka caps the minimum at
    // the replica count (KAFKA-15583), so acks=all is still accepted.
    let strict = d.topic("strict");
    d.create_topic(&strict, 1, &[("min.insync.replicas", "2")]);
    let good = batch(&messages("p", 3, *T0));
    let mut corrupt = BytesMut::from(&good[..]);
    let at = corrupt.len() - 3;
    corrupt[at] ^= 0x20; // a record byte under the CRC
    let corrupt = corrupt.freeze();
    let big = batch(&[Message {
        key: None,
        value: Some(Bytes::from(vec![b'z'; 5000])),
        timestamp: *T0,
        headers: vec![],
    }]);

    for v in ends(ApiKey::Produce) {
        let send =
            |d: &mut Differential, case: &str, name: &str, partition, records: &Bytes, acks| {
                d.compare(case, v, |s| {
                    let t = if name == UNKNOWN.name {
                        UNKNOWN.clone()
                    } else {
                        topic_ref(s, name)
                    };
                    produce_request(&t, partition, records.clone(), acks, v)
                });
            };
        send(&mut d, "acks-all", &topic, 0, &good, -1);
        send(&mut d, "acks-leader", &topic, 0, &good, 1);
        send(&mut d, "unknown-topic", &UNKNOWN.name, 0, &good, -1);
        send(&mut d, "unknown-partition", &topic, 3, &good, -1);
        send(&mut d, "message-too-large", &small, 0, &big, -1);
        send(&mut d, "corrupt-crc", &topic, 0, &corrupt, -1);
        send(&mut d, "invalid-acks", &topic, 0, &good, 2);
        send(&mut d, "min-isr-above-replicas", &strict, 0, &good, -1);
        send(&mut d, "min-isr-acks-leader", &strict, 0, &good, 1);
        send(&mut d, "after-refusals", &topic, 0, &good, -1);
    }
    d.compare("min-isr-contents", 4, |s| {
        fetch_request(&topic_ref(s, &strict), 0, 0, 4)
    });
    d.finish();
}
