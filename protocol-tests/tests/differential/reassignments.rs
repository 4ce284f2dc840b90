//! AlterPartitionReassignments and ListPartitionReassignments on one broker: a target of the
//! broker itself is already reached, others and cancellations are refused, nothing is listed.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ListPartitionReassignmentsRequest,
};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::differential::Differential;

use crate::{ends, UNKNOWN};

fn alter(
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> AlterPartitionReassignmentsRequest {
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
                )])])
}

#[test]
fn partition_reassignments() {
    let mut d = Differential::start("reassignments");
    let topic = d.topic("moved");
    d.create_topic(&topic, 2, &[]);
    for v in ends(ApiKey::AlterPartitionReassignments) {
        let t = topic.as_str();
        d.compare("to-itself", v, |s| alter(t, 0, Some(&[s.node_id])));
        d.compare("to-an-unknown-broker", v, |s| {
            alter(t, 1, Some(&[s.node_id + 7]))
        });
        d.compare("with-an-unknown-broker", v, |s| {
            alter(t, 1, Some(&[s.node_id, s.node_id + 7]))
        });
        d.compare("empty-target", v, |_| alter(t, 0, Some(&[])));
        d.compare("duplicate-replicas", v, |s| {
            alter(t, 0, Some(&[s.node_id, s.node_id]))
        });
        d.compare("cancel-none-running", v, |_| alter(t, 0, None));
        d.compare("unknown-partition", v, |s| alter(t, 9, Some(&[s.node_id])));
        d.compare("unknown-topic", v, |s| {
            alter(&UNKNOWN.name, 0, Some(&[s.node_id]))
        });
        if v >= 1 {
            d.compare("factor-change-refused", v, |s| {
                alter(t, 0, Some(&[s.node_id, s.node_id + 7]))
                    .with_allow_replication_factor_change(false)
            });
            d.compare("factor-change-allowed", v, |s| {
                alter(t, 0, Some(&[s.node_id])).with_allow_replication_factor_change(true)
            });
        }
    }
    for v in ends(ApiKey::ListPartitionReassignments) {
        d.compare("list-all", v, |_| {
            ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000)
        });
        let listed = vec![ListPartitionReassignmentsTopics::default()
            .with_name(topic_name(&topic))
            .with_partition_indexes(vec![0, 1])];
        d.compare("list-some", v, |_| {
            ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(Some(listed.clone()))
        });
    }
    d.finish();
}
