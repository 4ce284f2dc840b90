//! ListOffsets: earliest, latest, by timestamp, max timestamp, and missing partitions.

use kafka_protocol::messages::ApiKey;
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{list_offsets_request, produce_request, versions};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

#[test]
fn list_offsets() {
    let mut d = Differential::start("list_offsets");
    let topic = d.topic("t");
    let empty = d.topic("empty");
    d.create_topic(&topic, 1, &[]);
    d.create_topic(&empty, 1, &[]);
    for i in 0..2 {
        let records = batch(&messages(&format!("b{i}"), 3, *T0 + 10 * i));
        d.compare("setup-produce", 9, |s| {
            produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, 9)
        });
    }
    // Offsets 0..6, timestamps T0..T0+2 and T0+10..T0+12.
    let t0 = *T0;
    for v in ends(ApiKey::ListOffsets) {
        for (case, ts) in [
            ("latest", -1),
            ("earliest", -2),
            ("max-timestamp", -3),
            ("earliest-local", -4),
            ("by-timestamp-first", t0),
            ("by-timestamp-between-batches", t0 + 5),
            ("by-timestamp-after-all", t0 + 1_000_000),
        ] {
            d.compare(case, v, |_| list_offsets_request(&topic, 0, ts));
            d.compare(&format!("empty-{case}"), v, |_| {
                list_offsets_request(&empty, 0, ts)
            });
        }
        d.compare("unknown-partition", v, |_| {
            list_offsets_request(&topic, 4, -1)
        });
        d.compare("unknown-topic", v, |_| {
            list_offsets_request(&UNKNOWN.name, 0, -1)
        });
    }
    // The tiered-storage timestamps on a broker without tiered storage, and the version
    // each needs: latest tiered (-5) from v9 (KIP-1005), earliest pending upload (-6)
    // from v11 (KIP-1023).
    for v in [8, 9, 10, *versions(ApiKey::ListOffsets).end()] {
        for (case, ts) in [("latest-tiered", -5), ("earliest-pending-upload", -6)] {
            d.compare(case, v, |_| list_offsets_request(&topic, 0, ts));
            d.compare(&format!("empty-{case}"), v, |_| {
                list_offsets_request(&empty, 0, ts)
            });
        }
    }
    // The leader epoch the client believes current (v4+).
    for v in [4, *versions(ApiKey::ListOffsets).end()] {
        for (case, epoch) in [
            ("epoch-none", -1),
            ("epoch-current", 0),
            ("epoch-future", 3),
        ] {
            d.compare(case, v, |_| {
                let mut r = list_offsets_request(&topic, 0, -1);
                r.topics[0].partitions[0].current_leader_epoch = epoch;
                r
            });
        }
    }
    d.finish();
}
