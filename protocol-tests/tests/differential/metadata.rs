//! Metadata and DescribeCluster: what a client learns about the cluster and its topics.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, MetadataRequest};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::differential::Differential;

use crate::{ends, INVALID_NAME, UNKNOWN};

fn by_names(names: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create)
}

#[test]
fn metadata() {
    let mut d = Differential::start("metadata");
    let topic = d.topic("t");
    d.create_topic(&topic, 3, &[]);
    for v in ends(ApiKey::Metadata) {
        d.compare("one-topic", v, |_| by_names(&[&topic], false));
        // Before v4 every named topic may be auto-created; from v4 the client says.
        d.compare("unknown-topic-no-auto-create", v, |_| {
            by_names(&[&UNKNOWN.name], false)
        });
        let auto = d.topic(&format!("auto-v{v}"));
        d.compare("unknown-topic-auto-create", v, |_| by_names(&[&auto], true));
        d.compare("invalid-name", v, |_| by_names(&[INVALID_NAME], true));
        d.compare("known-and-unknown", v, |_| {
            by_names(&[&topic, &UNKNOWN.name], false)
        });
        if v >= 8 {
            d.compare("authorized-operations", v, |_| {
                by_names(&[&topic], false).with_include_topic_authorized_operations(true)
            });
        }
        if v >= 10 {
            d.compare("by-topic-id", v, |s| {
                MetadataRequest::default().with_topics(Some(vec![
                    MetadataRequestTopic::default().with_topic_id(s.id(&topic))
                ]))
            });
        }
    }
    d.finish();
}

#[test]
fn describe_cluster() {
    let mut d = Differential::start("describe_cluster");
    for v in ends(ApiKey::DescribeCluster) {
        d.compare("plain", v, |_| DescribeClusterRequest::default());
        d.compare("authorized-operations", v, |_| {
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)
        });
        if v >= 1 {
            // endpoint_type 2 asks for controllers, which a broker listener does not serve.
            d.compare("controller-endpoints", v, |_| {
                DescribeClusterRequest::default().with_endpoint_type(2)
            });
        }
    }
    d.finish();
}

/// DescribeQuorum: the shape of the answer (its numbers are each broker's own: epochs,
/// offsets, times, addresses), and the errors for anything but the metadata partition.
#[test]
fn describe_quorum() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

    let mut d = Differential::start("describe_quorum");
    let ask = |topics: &[(&str, &[i32])]| {
        DescribeQuorumRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    TopicData::default()
                        .with_topic_name(topic_name(name))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|&p| PartitionData::default().with_partition_index(p))
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    // One voter on both; the numbers that are each broker's own (ids, epochs, offsets,
    // times) become marks of their presence, and the controller endpoints are dropped.
    let shape = |r: &mut DescribeQuorumResponse| {
        for t in &mut r.topics {
            for p in &mut t.partitions {
                p.leader_epoch = i32::from(p.leader_epoch > 0);
                p.high_watermark = i64::from(p.high_watermark > 0);
                for v in p.current_voters.iter_mut().chain(p.observers.iter_mut()) {
                    v.replica_id.0 = i32::from(v.replica_id.0 >= 0);
                    v.replica_directory_id = Default::default();
                    v.log_end_offset = i64::from(v.log_end_offset > 0);
                    v.last_fetch_timestamp = i64::from(v.last_fetch_timestamp > 0);
                    v.last_caught_up_timestamp = i64::from(v.last_caught_up_timestamp > 0);
                }
            }
        }
        r.nodes.clear();
    };
    for v in ends(ApiKey::DescribeQuorum) {
        d.compare_part(
            "metadata-log",
            v,
            |_| ask(&[("__cluster_metadata", &[0])]),
            shape,
        );
        d.compare_part(
            "wrong-partition",
            v,
            |_| ask(&[("__cluster_metadata", &[1])]),
            shape,
        );
        d.compare_part("wrong-topic", v, |_| ask(&[(&UNKNOWN.name, &[0])]), shape);
        d.compare_part("no-topic", v, |_| ask(&[]), shape);
        d.compare_part(
            "two-partitions",
            v,
            |_| ask(&[("__cluster_metadata", &[0, 1])]),
            shape,
        );
    }
    d.finish();
}

/// UnregisterBroker of a broker id neither cluster has (unregistering the one live broker
/// would only make it register again).
#[test]
fn unregister_broker() {
    use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};

    let mut d = Differential::start("unregister_broker");
    d.compare("unknown-broker", 0, |_| {
        UnregisterBrokerRequest::default().with_broker_id(BrokerId(999))
    });
    d.compare("negative-id", 0, |_| {
        UnregisterBrokerRequest::default().with_broker_id(BrokerId(-5))
    });
    d.finish();
}
