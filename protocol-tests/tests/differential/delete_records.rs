//! DeleteRecords: moving the log start, the high-watermark shorthand, and out-of-range and
//! unknown partitions; ListOffsets and Fetch then see the new start.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{
    fetch_request, list_offsets_request, produce_request, topic_name,
};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

fn request(topic: &str, partition: i32, offset: i64) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])])
}

#[test]
fn delete_records() {
    let mut d = Differential::start("delete_records");
    for v in ends(ApiKey::DeleteRecords) {
        let topic = d.topic(&format!("t{v}"));
        d.create_topic(&topic, 1, &[]);
        for i in 0..3 {
            let records = batch(&messages(&format!("b{i}"), 3, *T0 + i));
            d.compare("setup-produce", 9, |s| {
                produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, 9)
            });
        }
        // Offsets 0..9 in batches of three.
        let t = topic.as_str();
        d.compare("to-offset", v, |_| request(t, 0, 4));
        d.compare("earliest-after", 10, |_| list_offsets_request(t, 0, -2));
        d.compare("fetch-below-start", 4, |s| {
            fetch_request(&topic_ref(s, t), 0, 1, 4)
        });
        d.compare("fetch-at-start", 4, |s| {
            fetch_request(&topic_ref(s, t), 0, 4, 4)
        });
        d.compare("backwards", v, |_| request(t, 0, 2));
        d.compare("beyond-high-watermark", v, |_| request(t, 0, 10));
        d.compare("negative", v, |_| request(t, 0, -5));
        d.compare("high-watermark", v, |_| request(t, 0, -1));
        d.compare("earliest-after-all", 10, |_| list_offsets_request(t, 0, -2));
        d.compare("unknown-partition", v, |_| request(t, 3, 0));
        d.compare("unknown-topic", v, |_| request(&UNKNOWN.name, 0, 0));
    }
    d.finish();
}
