//! One thin handler per API: a decoded request and the broker state in, a response out.
//! The dispatch table below is the only place that knows which handler serves which key.

pub mod admin;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod fetch;
pub mod group;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod produce;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::network::Session;
use crate::protocol::Request;

/// Serves one request. Only APIs in [`crate::protocol::versions::SUPPORTED`] get this far.
pub async fn handle(broker: &Arc<Broker>, session: &Session, request: Request) -> ResponseKind {
    let version = request.version();
    let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
    match request.body {
        RequestKind::ApiVersions(req) => ResponseKind::ApiVersions(api_versions::handle(&req, version)),
        RequestKind::Metadata(req) => ResponseKind::Metadata(metadata::handle(broker, session, req, version)),
        RequestKind::Produce(req) => ResponseKind::Produce(produce::handle(broker, req, version)),
        RequestKind::Fetch(req) => ResponseKind::Fetch(fetch::handle(broker, req, version).await),
        RequestKind::ListOffsets(req) => ResponseKind::ListOffsets(list_offsets::handle(broker, req, version)),
        RequestKind::CreateTopics(req) => ResponseKind::CreateTopics(admin::create_topics(broker, req, version)),
        RequestKind::DeleteTopics(req) => ResponseKind::DeleteTopics(admin::delete_topics(broker, req, version)),
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, req))
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, req, version))
        }
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(group::find_coordinator(broker, session, req, version))
        }
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(group::join(broker, req, version, &client_id, session.peer).await)
        }
        RequestKind::SyncGroup(req) => ResponseKind::SyncGroup(group::sync(broker, req, version).await),
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(group::heartbeat(broker, req)),
        RequestKind::LeaveGroup(req) => ResponseKind::LeaveGroup(group::leave(broker, req, version)),
        RequestKind::DescribeGroups(req) => ResponseKind::DescribeGroups(group::describe(broker, req, version)),
        RequestKind::ListGroups(req) => ResponseKind::ListGroups(group::list(broker, req, version)),
        RequestKind::DeleteGroups(req) => ResponseKind::DeleteGroups(group::delete(broker, req)),
        RequestKind::OffsetCommit(req) => ResponseKind::OffsetCommit(offsets::commit(broker, req, version)),
        RequestKind::OffsetFetch(req) => ResponseKind::OffsetFetch(offsets::fetch(broker, req, version)),
        RequestKind::OffsetDelete(req) => ResponseKind::OffsetDelete(offsets::delete(broker, req)),
        RequestKind::DescribeCluster(req) => ResponseKind::DescribeCluster(cluster::describe(broker, session, req)),
        other => unreachable!("{other:?} is not in the supported table"),
    }
}

/// Kafka's "authorized operations were not requested" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Bit set of every cluster operation (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE): without an authorizer a client
/// may do all of them, and Kafka says so when asked.
pub const ALL_CLUSTER_OPERATIONS: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
