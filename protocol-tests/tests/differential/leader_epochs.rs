//! OffsetForLeaderEpoch: where an epoch ends, for consumers and followers, on logs with and
//! without data, and for what does not exist.

use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetForLeaderEpochRequest};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{produce_request, topic_name};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

fn request(topic: &str, partition: i32, epoch: i32, current: i32) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])])
}

#[test]
fn offset_for_leader_epoch() {
    let mut d = Differential::start("leader_epochs");
    let topic = d.topic("t");
    let empty = d.topic("empty");
    d.create_topic(&topic, 1, &[]);
    d.create_topic(&empty, 1, &[]);
    for i in 0..2 {
        let records = batch(&messages(&format!("b{i}"), 3, *T0 + i));
        d.compare("setup-produce", 9, |s| {
            produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, 9)
        });
    }
    for v in ends(ApiKey::OffsetForLeaderEpoch) {
        let t = topic.as_str();
        d.compare("current-epoch", v, |_| request(t, 0, 0, -1));
        d.compare("newer-epoch", v, |_| request(t, 0, 4, -1));
        d.compare("no-epoch", v, |_| request(t, 0, -1, -1));
        d.compare("empty-log", v, |_| request(&empty, 0, 0, -1));
        d.compare("current-leader-epoch-matches", v, |_| request(t, 0, 0, 0));
        d.compare("current-leader-epoch-unknown", v, |_| request(t, 0, 0, 2));
        d.compare("unknown-partition", v, |_| request(t, 5, 0, -1));
        d.compare("unknown-topic", v, |_| request(&UNKNOWN.name, 0, 0, -1));
        if v >= 3 {
            d.compare("from-follower", v, |_| {
                request(t, 0, 0, -1).with_replica_id(BrokerId(5))
            });
        }
    }
    d.finish();
}
