//! StreamsGroupTopologyDescriptionUpdate (KIP-1331): a streams group member pushes the
//! description of its topology, as Kafka's `KafkaApis.handleStreamsGroupTopologyDescriptionUpdate`
//! and `GroupCoordinatorService.streamsGroupTopologyDescriptionUpdate` take it:
//! UNSUPPORTED_VERSION while the finalized `streams.version` is 0, READ on the group, then
//! UNSUPPORTED_VERSION (with Kafka's message) unless a description store is configured
//! (`group_streams_topology_description_store`), empty ids INVALID_REQUEST, and the
//! coordinator's checks (GROUP_ID_NOT_FOUND, UNKNOWN_MEMBER_ID, INVALID_REQUEST for another
//! topology epoch or an unknown node type). Also the wire form StreamsGroupDescribe v1
//! gives a stored description.

use kafka_protocol::messages::streams_group_describe_response as describe;
use kafka_protocol::messages::streams_group_topology_description_update_request as update;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::off_event_loop;
use super::streams_group::may_join;
use super::{str_bytes, Session};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::streams::description::{
    GlobalStore, Node, NodeKind, Subtopology, TopologyDescription,
};
use crate::group::streams::no_description_store;

fn answer(result: Result<(), BrokerError>) -> StreamsGroupTopologyDescriptionUpdateResponse {
    match result {
        Ok(()) => StreamsGroupTopologyDescriptionUpdateResponse::default(),
        Err(err) => StreamsGroupTopologyDescriptionUpdateResponse::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes)),
    }
}

pub async fn update(
    broker: &Broker,
    session: &Session,
    req: StreamsGroupTopologyDescriptionUpdateRequest,
) -> StreamsGroupTopologyDescriptionUpdateResponse {
    answer(push(broker, session, req).await)
}

async fn push(
    broker: &Broker,
    session: &Session,
    req: StreamsGroupTopologyDescriptionUpdateRequest,
) -> Result<(), BrokerError> {
    let group_id = req.group_id.to_string();
    may_join(broker, session, &group_id)?;
    if !broker.groups.topology_descriptions_enabled() {
        return Err(no_description_store());
    }
    let blank = |s: &str| s.trim().is_empty();
    if blank(&req.member_id) {
        return Err(BrokerError::InvalidRequest(
            "MemberId can't be empty.".to_owned(),
        ));
    }
    if blank(&group_id) {
        return Err(BrokerError::InvalidRequest(
            "GroupId can't be empty.".to_owned(),
        ));
    }
    let groups = broker.groups.clone();
    let written = off_event_loop(move || {
        groups.streams_topology_description_update(
            &group_id,
            &req.member_id,
            req.topology_epoch,
            || description(&req.topology_description),
        )
    });
    written.await?.acknowledged().await
}

/// Kafka's `StreamsGroupTopologyDescriptionConverter.fromRequest`.
fn description(d: &update::TopologyDescription) -> Result<TopologyDescription, BrokerError> {
    let subtopologies = d
        .subtopologies
        .iter()
        .map(|s| {
            Ok(Subtopology {
                id: s.subtopology_id.to_string(),
                nodes: s.nodes.iter().map(node).collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, BrokerError>>()?;
    let global_stores = d
        .global_stores
        .iter()
        .map(|g| {
            let (source, processor) = (node(&g.source)?, node(&g.processor)?);
            if source.kind != NodeKind::Source || processor.kind != NodeKind::Processor {
                return Err(BrokerError::InvalidRequest(
                    "Global store must be composed of a source and a processor node.".to_owned(),
                ));
            }
            Ok(GlobalStore { source, processor })
        })
        .collect::<Result<_, _>>()?;
    Ok(TopologyDescription {
        subtopologies,
        global_stores,
    })
}

fn node(n: &update::TopologyDescriptionNode) -> Result<Node, BrokerError> {
    let kind = NodeKind::of(n.node_type).ok_or_else(|| {
        BrokerError::InvalidRequest(format!("Unknown topology node type: {}", n.node_type))
    })?;
    let names = |v: &[StrBytes]| v.iter().map(|s| s.to_string()).collect();
    Ok(Node::new(
        n.name.to_string(),
        kind,
        n.source_topics.iter().map(|t| t.to_string()).collect(),
        n.sink_topic.as_ref().map(|t| t.to_string()),
        names(&n.stores),
        names(&n.successors),
    ))
}

/// A stored description as StreamsGroupDescribe v1 carries it (Kafka's
/// `StreamsGroupTopologyDescriptionConverter.toDescribeResponse`).
pub fn described(d: &TopologyDescription) -> describe::TopologyDescription {
    describe::TopologyDescription::default()
        .with_subtopologies(
            d.subtopologies
                .iter()
                .map(|s| {
                    describe::TopologyDescriptionSubtopology::default()
                        .with_subtopology_id(str_bytes(s.id.clone()))
                        .with_nodes(s.nodes.iter().map(described_node).collect())
                })
                .collect(),
        )
        .with_global_stores(
            d.global_stores
                .iter()
                .map(|g| {
                    describe::TopologyDescriptionGlobalStore::default()
                        .with_source(described_node(&g.source))
                        .with_processor(described_node(&g.processor))
                })
                .collect(),
        )
}

fn described_node(n: &Node) -> describe::TopologyDescriptionNode {
    let strs = |v: &[String]| v.iter().map(|s| str_bytes(s.clone())).collect();
    describe::TopologyDescriptionNode::default()
        .with_name(str_bytes(n.name.clone()))
        .with_node_type(n.kind as i8)
        .with_source_topics(
            n.source_topics
                .iter()
                .map(|t| TopicName(str_bytes(t.clone())))
                .collect(),
        )
        .with_sink_topic(n.sink_topic.clone().map(|t| TopicName(str_bytes(t))))
        .with_stores(strs(&n.stores))
        .with_successors(strs(&n.successors))
}
