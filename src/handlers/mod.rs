//! One thin handler per API: a decoded request and the broker state in, a response out.
//! The dispatch table below is the only place that knows which handler serves which key.

pub mod acl;
pub mod admin;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod elections;
pub mod fetch;
pub mod group;
pub mod leader_epochs;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod reassignments;
pub mod sasl;
pub mod scram;
pub mod transactions;
pub mod txn;
pub mod txn_markers;
pub mod txn_offsets;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::auth::{Operation, ResourceType};
use crate::broker::Broker;
use crate::network::Session;
use crate::protocol::Request;

/// Serves one request. Only APIs in [`crate::protocol::versions::SUPPORTED`] get this far.
/// Each handler checks with the authorizer what the session's principal may do.
pub async fn handle(broker: &Arc<Broker>, session: &mut Session, request: Request) -> ResponseKind {
    let version = request.version();
    let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
    match request.body {
        RequestKind::ApiVersions(req) => {
            ResponseKind::ApiVersions(api_versions::handle(&req, version))
        }
        RequestKind::SaslHandshake(req) => {
            ResponseKind::SaslHandshake(sasl::handshake(broker, session, req, version))
        }
        RequestKind::SaslAuthenticate(req) => {
            ResponseKind::SaslAuthenticate(sasl::authenticate(broker, session, req))
        }
        RequestKind::Metadata(req) => {
            ResponseKind::Metadata(metadata::handle(broker, session, req, version).await)
        }
        RequestKind::Produce(req) => {
            ResponseKind::Produce(produce::handle(broker, session, req, version).await)
        }
        RequestKind::Fetch(req) => {
            ResponseKind::Fetch(fetch::handle(broker, session, req, version).await)
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, session, req, version))
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, session, req, version).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, session, req, version).await)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, session, req).await)
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, session, req, version))
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter(broker, session, req).await,
        ),
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(configs::alter(broker, session, req).await)
        }
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, session, req))
        }
        RequestKind::FindCoordinator(req) => ResponseKind::FindCoordinator(
            group::find_coordinator(broker, session, req, version).await,
        ),
        RequestKind::JoinGroup(req) => ResponseKind::JoinGroup(
            group::join(broker, session, req, version, &client_id, session.peer).await,
        ),
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(group::sync(broker, session, req, version).await)
        }
        RequestKind::Heartbeat(req) => {
            ResponseKind::Heartbeat(group::heartbeat(broker, session, req))
        }
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(group::leave(broker, session, req, version))
        }
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(group::describe(broker, session, req, version))
        }
        RequestKind::ListGroups(req) => {
            ResponseKind::ListGroups(group::list(broker, session, req, version))
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(group::delete(broker, session, req))
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(offsets::commit(broker, session, req, version).await)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(offsets::fetch(broker, session, req, version))
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(offsets::delete(broker, session, req))
        }
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn_offsets::commit(broker, session, req, version).await)
        }
        RequestKind::DescribeCluster(req) => {
            ResponseKind::DescribeCluster(cluster::describe(broker, session, req))
        }
        RequestKind::CreateAcls(req) => {
            ResponseKind::CreateAcls(acl::create(broker, session, req).await)
        }
        RequestKind::DescribeAcls(req) => {
            ResponseKind::DescribeAcls(acl::describe(broker, session, req))
        }
        RequestKind::DeleteAcls(req) => {
            ResponseKind::DeleteAcls(acl::delete(broker, session, req).await)
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            ResponseKind::DescribeUserScramCredentials(scram::describe(broker, session, req))
        }
        RequestKind::AlterUserScramCredentials(req) => {
            ResponseKind::AlterUserScramCredentials(scram::alter(broker, session, req).await)
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(txn::init_producer_id(broker, session, req, version).await)
        }
        RequestKind::AddPartitionsToTxn(req) => ResponseKind::AddPartitionsToTxn(
            txn::add_partitions(broker, session, req, version).await,
        ),
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(broker, session, req, version).await)
        }
        RequestKind::EndTxn(req) => {
            ResponseKind::EndTxn(txn::end(broker, session, req, version).await)
        }
        RequestKind::WriteTxnMarkers(req) => {
            ResponseKind::WriteTxnMarkers(txn_markers::write(broker, session, req).await)
        }
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(transactions::list(broker, session, req))
        }
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(transactions::describe(broker, session, req))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            ResponseKind::OffsetForLeaderEpoch(leader_epochs::handle(broker, session, req))
        }
        RequestKind::DescribeProducers(req) => {
            ResponseKind::DescribeProducers(transactions::describe_producers(broker, session, req))
        }
        RequestKind::DescribeLogDirs(req) => {
            ResponseKind::DescribeLogDirs(log_dirs::handle(broker, session, req, version))
        }
        RequestKind::ElectLeaders(req) => {
            ResponseKind::ElectLeaders(elections::handle(broker, session, req, version).await)
        }
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            reassignments::alter(broker, session, req, version).await,
        ),
        RequestKind::ListPartitionReassignments(req) => {
            ResponseKind::ListPartitionReassignments(reassignments::list(broker, session, req))
        }
        other => unreachable!("{other:?} is not in the supported table"),
    }
}

/// Whether the session's principal may perform `op` on the resource.
pub(crate) fn allowed(
    broker: &Broker,
    session: &Session,
    op: Operation,
    rt: ResourceType,
    name: &str,
) -> bool {
    broker
        .authorizer
        .authorize(&session.principal, &session.host, op, rt, name)
}

/// The `*_authorized_operations` bit set of a resource, or the "not requested" marker.
pub(crate) fn authorized_operations(
    broker: &Broker,
    session: &Session,
    requested: bool,
    rt: ResourceType,
    name: &str,
) -> i32 {
    if requested {
        broker
            .authorizer
            .authorized_operations(&session.principal, &session.host, rt, name)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    }
}

/// Kafka's "authorized operations were not requested" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
