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
