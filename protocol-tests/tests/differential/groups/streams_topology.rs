//! StreamsGroupTopologyDescriptionUpdate (KIP-1331) and the description StreamsGroupDescribe
//! v1 returns. The shared Kafka runs with Kafka's default, no description plugin, where every
//! push is UNSUPPORTED_VERSION once authorized; a Kafka of the test's own runs Kafka's
//! `InMemoryTopologyDescriptionPlugin` against samsa's `memory` store, for the member and
//! epoch checks, the heartbeat asking for a push, and the description described back.

use kafka_protocol::messages::streams_group_topology_description_update_request::{
    TopologyDescription, TopologyDescriptionGlobalStore, TopologyDescriptionNode,
    TopologyDescriptionSubtopology,
};

use super::streams::{beat, describe_streams, join, topology};
use super::*;

const IN_MEMORY_PLUGIN: &str = "org.apache.kafka.server.streams.InMemoryTopologyDescriptionPlugin";

fn node(name: &str, kind: i8) -> TopologyDescriptionNode {
    TopologyDescriptionNode::default()
        .with_name(str_bytes(name))
        .with_node_type(kind)
}

/// Word count's shape: a source, a stateful processor, a sink, and a global store. Names
/// are repeated and fields given to nodes whose kind has none, as a careless client might.
fn description(source: &str) -> TopologyDescription {
    let names = |v: &[&str]| v.iter().map(|s| str_bytes(s)).collect::<Vec<_>>();
    TopologyDescription::default()
        .with_subtopologies(vec![TopologyDescriptionSubtopology::default()
            .with_subtopology_id(str_bytes("0"))
            .with_nodes(vec![
                node("KSTREAM-SOURCE-0000000000", 1)
                    .with_source_topics(vec![topic_name(source), topic_name(source)])
                    .with_stores(names(&["ignored"]))
                    .with_successors(names(&["KSTREAM-AGGREGATE-0000000001"])),
                node("KSTREAM-AGGREGATE-0000000001", 2)
                    .with_stores(names(&["counts", "counts"]))
                    .with_source_topics(vec![topic_name("ignored")])
                    .with_successors(names(&[
                        "KSTREAM-SINK-0000000002",
                        "KSTREAM-SINK-0000000002",
                    ])),
                node("KSTREAM-SINK-0000000002", 3)
                    .with_sink_topic(Some(topic_name("counts-out")))
                    .with_stores(names(&["ignored"])),
            ])])
        .with_global_stores(vec![TopologyDescriptionGlobalStore::default()
            .with_source(
                node("KSTREAM-SOURCE-0000000003", 1)
                    .with_source_topics(vec![topic_name("global")])
                    .with_successors(names(&["KTABLE-SOURCE-0000000004"])),
            )
            .with_processor(
                node("KTABLE-SOURCE-0000000004", 2).with_stores(names(&["global-store"])),
            )])
}

fn push(
    group: &str,
    member: &str,
    epoch: i32,
    d: TopologyDescription,
) -> StreamsGroupTopologyDescriptionUpdateRequest {
    StreamsGroupTopologyDescriptionUpdateRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(str_bytes(member))
        .with_topology_epoch(epoch)
        .with_topology_description(d)
}

/// Without authorized operations: Kafka's include group configs, samsa has none (see the
/// allow-list's `*group*.describe*`).
fn describe_group(group: &str) -> StreamsGroupDescribeRequest {
    describe_streams(&[group]).with_include_authorized_operations(false)
}

fn describe_with_description(group: &str) -> StreamsGroupDescribeRequest {
    describe_group(group).with_include_topology_description(true)
}

fn required(answer: &Answer<StreamsGroupHeartbeatResponse>) -> bool {
    answer
        .response()
        .is_some_and(|r| r.error_code == 0 && r.topology_description_required)
}

/// Members in id order: Kafka lists them in its hash map's.
fn by_member_id(r: &mut StreamsGroupDescribeResponse) {
    for g in &mut r.groups {
        g.members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    }
}

/// Kafka's default: no plugin. Whatever the push, UNSUPPORTED_VERSION once the group may
/// be read; StreamsGroupDescribe v1 says NOT_STORED.
#[test]
fn streams_topology_description_without_store() {
    let mut d = Differential::start_sasl("streams_topology_description_without_store");
    let (group, source) = (d.topic("g"), d.topic("t"));
    d.await_group_coordinator(&group).unwrap();
    let g = group.as_str();
    d.compare("join", 1, |_| join(g, "m1", topology(&source, None)));
    let (pushed, _) = d.compare("push", 0, |_| push(g, "m1", 0, description(&source)));
    assert_eq!(
        pushed.response().map(|r| r.error_code),
        Some(35),
        "UNSUPPORTED_VERSION"
    );
    d.compare("push-unknown-group", 0, |_| {
        push("no-such-group", "m1", 0, description(&source))
    });
    d.compare("push-empty-member", 0, |_| {
        push(g, "", 0, description(&source))
    });
    d.compare("describe", 1, |_| describe_with_description(g));
    d.compare("describe-not-requested", 1, |_| describe_group(g));
    d.use_sasl_listeners();
    d.login("alice");
    let (denied, _) = d.compare("push-unauthorized", 0, |_| {
        push(g, "m1", 0, description(&source))
    });
    assert_eq!(
        denied.response().map(|r| r.error_code),
        Some(30),
        "GROUP_AUTHORIZATION_FAILED"
    );
    d.finish();
}

/// Kafka with its in-memory plugin, samsa with its memory store.
#[test]
fn streams_topology_description_in_memory() {
    let mut d = Differential::start_own_kafka(
        "streams_topology_description_in_memory",
        "group_streams_topology_description_store = \"memory\"\n",
        &[(
            "group.streams.topology.description.plugin.class",
            IN_MEMORY_PLUGIN,
        )],
    );
    let (group, source, classic) = (d.topic("g"), d.topic("t"), d.topic("classic"));
    d.create_topic(&source, 2, &[]);
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&classic).unwrap();
    let g = group.as_str();
    d.compare("push-unknown-group", 0, |_| {
        push(g, "m1", 0, description(&source))
    });
    // The first heartbeat asks for the description, the next ones wait out the back-off.
    let (joined, _) = d.compare("join", 1, |_| join(g, "m1", topology(&source, None)));
    assert!(required(&joined), "the joining member is asked to push");
    let (beat_answer, _) = d.compare("heartbeat", 1, |_| beat(g, "m1", 1));
    assert!(!required(&beat_answer), "not again within the back-off");
    d.compare("join-v0", 0, |_| join(g, "m2", topology(&source, None)));
    d.compare_part(
        "describe-before",
        1,
        |_| describe_with_description(g),
        by_member_id,
    );
    d.compare("push-empty-member", 0, |_| {
        push(g, " ", 0, description(&source))
    });
    d.compare("push-empty-group", 0, |_| {
        push("", "m1", 0, description(&source))
    });
    d.compare("push-unknown-member", 0, |_| {
        push(g, "m9", 0, description(&source))
    });
    d.compare("push-stale-epoch", 0, |_| {
        push(g, "m1", 3, description(&source))
    });
    d.compare("push-unknown-node-type", 0, |_| {
        let mut bad = description(&source);
        bad.subtopologies[0].nodes[1].node_type = 4;
        push(g, "m1", 0, bad)
    });
    d.compare("push-global-store-of-sinks", 0, |_| {
        let mut bad = description(&source);
        bad.global_stores[0].processor.node_type = 3;
        push(g, "m1", 0, bad)
    });
    let (pushed, _) = d.compare("push", 0, |_| push(g, "m1", 0, description(&source)));
    assert_eq!(pushed.response().map(|r| r.error_code), Some(0));
    d.compare("push-again", 0, |_| push(g, "m2", 0, description(&source)));
    let (described, _) = d.compare_part(
        "describe",
        1,
        |_| describe_with_description(g),
        by_member_id,
    );
    let group = &described.response().expect("described").groups[0];
    assert_eq!(group.topology_description_status, 3, "AVAILABLE");
    let stored = group
        .topology_description
        .as_ref()
        .expect("the description");
    assert_eq!(stored.subtopologies[0].nodes.len(), 3);
    assert_eq!(
        stored.subtopologies[0].nodes[1].stores,
        [str_bytes("counts")]
    );
    d.compare_part(
        "describe-not-requested",
        1,
        |_| describe_group(g),
        by_member_id,
    );
    d.compare_part("describe-v0", 0, |_| describe_group(g), by_member_id);
    let (beat_answer, _) = d.compare("heartbeat-stored", 1, |_| beat(g, "m1", 1));
    assert!(!required(&beat_answer));
    // A classic group is no streams group.
    d.compare("join-classic", 9, |_| {
        join_request(
            &classic,
            "",
            Some("i"),
            "connect",
            SESSION_MS,
            &[&source],
            9,
        )
    });
    d.compare("push-classic-group", 0, |_| {
        push(&classic, "m1", 0, description(&source))
    });
    // Deleted with the group: a new group of the same name has none.
    d.compare("leave", 1, |_| beat(g, "m1", -1));
    d.compare("leave-v0", 0, |_| beat(g, "m2", -1));
    d.compare("delete", 2, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)])
    });
    d.compare("rejoin", 1, |_| join(g, "m1", topology(&source, None)));
    let (described, _) = d.compare("describe-rejoined", 1, |_| describe_with_description(g));
    let status = described
        .response()
        .map(|r| r.groups[0].topology_description_status);
    assert_eq!(status, Some(1), "NOT_STORED");
    d.finish();
}
