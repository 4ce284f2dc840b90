//! Fetch: reads within, at and beyond the log, and of what does not exist.

use kafka_protocol::messages::{ApiKey, BrokerId};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{fetch_request, produce_request, versions};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

#[test]
fn fetch() {
    let mut d = Differential::start("fetch");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    for (i, count) in [3, 2].into_iter().enumerate() {
        let records = batch(&messages(&format!("b{i}"), count, *T0 + i as i64));
        d.compare("setup-produce", 9, |s| {
            produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, 9)
        });
    }
    // Partition 0 holds offsets 0..5 in two batches; partition 1 is empty.
    for v in ends(ApiKey::Fetch) {
        let read = |d: &mut Differential, case: &str, name: &str, partition: i32, offset: i64| {
            d.compare(case, v, |s| {
                let t = if name == UNKNOWN.name {
                    UNKNOWN.clone()
                } else {
                    topic_ref(s, name)
                };
                fetch_request(&t, partition, offset, v)
            });
        };
        read(&mut d, "from-start", &topic, 0, 0);
        read(&mut d, "inside-first-batch", &topic, 0, 1);
        read(&mut d, "second-batch", &topic, 0, 3);
        read(&mut d, "at-high-watermark", &topic, 0, 5);
        read(&mut d, "beyond-high-watermark", &topic, 0, 9);
        read(&mut d, "negative-offset", &topic, 0, -1);
        read(&mut d, "empty-partition", &topic, 1, 0);
        read(&mut d, "unknown-partition", &topic, 7, 0);
        read(&mut d, "unknown-topic", &UNKNOWN.name, 0, 0);
        d.compare("tiny-partition-max-bytes", v, |s| {
            let mut r = fetch_request(&topic_ref(s, &topic), 0, 0, v);
            r.topics[0].partitions[0].partition_max_bytes = 10;
            r
        });
        d.compare("two-partitions", v, |s| {
            let mut r = fetch_request(&topic_ref(s, &topic), 0, 2, v);
            let mut second = r.topics[0].partitions[0].clone();
            second.partition = 1;
            r.topics[0].partitions.push(second);
            r
        });
    }
    // The partition's leader epoch as the fetcher knows it (v9+): older than the leader's is
    // fenced, newer is unknown, -1 skips the check.
    for v in [9, *versions(ApiKey::Fetch).end()] {
        for (case, epoch) in [
            ("epoch-none", -1),
            ("epoch-current", 0),
            ("epoch-future", 3),
        ] {
            d.compare(case, v, |s| {
                let mut r = fetch_request(&topic_ref(s, &topic), 0, 0, v);
                r.topics[0].partitions[0].current_leader_epoch = epoch;
                r
            });
        }
    }
    // A fetch claiming to come from a follower, from a broker that holds no replica.
    for v in [11, *versions(ApiKey::Fetch).end()] {
        d.compare("from-unknown-replica", v, |s| {
            let mut r = fetch_request(&topic_ref(s, &topic), 0, 0, v);
            if v >= 15 {
                r.replica_state.replica_id = BrokerId(5);
                r.replica_state.replica_epoch = 1;
            } else {
                r.replica_id = BrokerId(5);
            }
            r
        });
    }
    d.finish();
}
