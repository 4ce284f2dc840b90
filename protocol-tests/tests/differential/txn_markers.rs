//! WriteTxnMarkers, as a tool (or another broker's coordinator) sends it to one broker: a
//! marker written, an unknown topic or partition, a marker from an older coordinator epoch
//! or producer epoch than the partition has seen, no markers at all, and a principal with
//! neither ALTER nor CLUSTER_ACTION on the cluster.

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::differential::{Answer, Differential};

use crate::{ends, UNKNOWN};

/// Made up: a partition takes markers of producers it has not seen.
const PRODUCER_ID: i64 = 777_000;

fn marker(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    topic: &str,
    partition: i32,
) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_result(true)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])])])
}

/// The one partition's error code in samsa's answer, so that a case cannot pass by both
/// brokers refusing it alike for some other reason.
fn code(answer: &Answer<WriteTxnMarkersResponse>) -> i16 {
    let response = answer.response().expect("an answer");
    response.markers[0].topics[0].partitions[0].error_code
}

#[test]
fn write_txn_markers() {
    let mut d = Differential::start("write_txn_markers");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    for v in ends(ApiKey::WriteTxnMarkers) {
        let base = PRODUCER_ID + i64::from(v) * 10;
        assert_eq!(
            code(&d.compare("written", v, |_| marker(base, 0, 3, &topic, 0)).0),
            0
        );
        d.compare("again", v, |_| marker(base, 0, 3, &topic, 0));
        let fenced = d.compare("older-coordinator-epoch", v, |_| {
            marker(base, 0, 2, &topic, 0)
        });
        assert_eq!(code(&fenced.0), 52, "TRANSACTION_COORDINATOR_FENCED");
        d.compare("newer-producer-epoch", v, |_| {
            marker(base + 1, 5, 0, &topic, 1)
        });
        let stale = d.compare("older-producer-epoch", v, |_| {
            marker(base + 1, 4, 0, &topic, 1)
        });
        assert_eq!(code(&stale.0), 47, "INVALID_PRODUCER_EPOCH");
        d.compare("unknown-topic", v, |_| {
            marker(base + 2, 0, 0, &UNKNOWN.name, 0)
        });
        d.compare("unknown-partition", v, |_| {
            marker(base + 2, 0, 0, &topic, 7)
        });
        d.compare("no-markers", v, |_| WriteTxnMarkersRequest::default());
    }
    d.finish();
}

/// alice is authenticated but has no ACLs: every partition is refused on both.
#[test]
fn write_txn_markers_unauthorized() {
    let mut d = Differential::start_sasl("write_txn_markers_unauthorized");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    d.use_sasl_listeners();
    d.login("alice");
    for v in ends(ApiKey::WriteTxnMarkers) {
        d.compare("denied", v, |_| marker(PRODUCER_ID, 0, 0, &topic, 0));
        d.compare("denied-unknown-topic", v, |_| {
            marker(PRODUCER_ID, 0, 0, &UNKNOWN.name, 0)
        });
    }
    d.finish();
}
