//! ApiVersions: the response itself, and every range samsa advertises against Kafka's.

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, DescribeClusterRequest};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::tree::Difference;
use samsa_protocol_tests::differential::Differential;

use crate::ends;

fn request(name: &str) -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(str_bytes(name))
        .with_client_software_version(str_bytes("1.0"))
}

#[test]
fn api_versions() {
    let mut d = Differential::start("api_versions");
    for v in ends(ApiKey::ApiVersions) {
        d.compare("plain", v, |_| request("samsa-protocol-tests"));
        if v >= 3 {
            d.compare("invalid-client-software-name", v, |_| request("bad name!"));
        }
    }
    d.finish();
}

/// v5 (KIP-1242): a client that names the cluster and node it means to reach is sent back to
/// its bootstrap servers (REBOOTSTRAP_REQUIRED) when this is another cluster or another node.
#[test]
fn api_versions_naming_the_target() {
    let mut d = Differential::start("api_versions_target");
    let mut cluster_ids = HashMap::new();
    for side in [&mut d.samsa, &mut d.kafka] {
        let cluster = side
            .conn
            .send(&DescribeClusterRequest::default(), 0)
            .expect("DescribeCluster");
        cluster_ids.insert(side.name, cluster.cluster_id.to_string());
    }
    let v = 5;
    let target = |cluster: Option<&str>, node: i32| {
        request("samsa-protocol-tests")
            .with_cluster_id(cluster.map(str_bytes))
            .with_node_id(node)
    };
    d.compare("this-cluster-this-node", v, |side| {
        target(Some(&cluster_ids[side.name]), side.node_id)
    });
    d.compare("this-cluster-other-node", v, |side| {
        target(Some(&cluster_ids[side.name]), side.node_id + 100)
    });
    d.compare("this-cluster-no-node", v, |side| {
        target(Some(&cluster_ids[side.name]), -1)
    });
    d.compare("other-cluster-this-node", v, |side| {
        target(Some("AAAAAAAAAAAAAAAAAAAAAA"), side.node_id)
    });
    d.compare("no-cluster-other-node", v, |side| {
        target(None, side.node_id + 100)
    });
    d.finish();
}

/// Every range samsa advertises must lie inside Kafka's, or a client that works against
/// samsa may pick a version Kafka never defined (or removed, KIP-896).
#[test]
fn advertised_ranges_lie_inside_kafkas() {
    let mut d = Differential::start("api_ranges");
    let kafka = d
        .kafka
        .conn
        .send(&request("samsa-protocol-tests"), 3)
        .expect("Kafka's ApiVersions");
    let samsa = d
        .samsa
        .conn
        .send(&request("samsa-protocol-tests"), 3)
        .expect("samsa's ApiVersions");
    for ours in &samsa.api_keys {
        let (key, min, max) = (ours.api_key, ours.min_version, ours.max_version);
        let key = ApiKey::try_from(key).expect("samsa lists only APIs it knows");
        let theirs = kafka.api_keys.iter().find(|k| k.api_key == key as i16);
        let inside = theirs.is_some_and(|k| k.min_version <= min && max <= k.max_version);
        let case = format!("range-{key:?}");
        if inside {
            d.ran(&case);
        } else {
            d.record(
                &case,
                Difference {
                    path: format!("api_keys[{key:?}]"),
                    samsa: format!("{min}..={max}"),
                    kafka: theirs.map_or("<absent>".into(), |k| {
                        format!("{}..={}", k.min_version, k.max_version)
                    }),
                },
            );
        }
    }
    d.finish();
}
