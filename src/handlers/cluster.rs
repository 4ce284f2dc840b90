//! DescribeCluster: this one broker, as the whole cluster and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{allowed, authorized_operations, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::network::Session;

/// `endpoint_type` 1 asks for brokers; 2 (controllers) is for KRaft controller clients.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn describe(broker: &Broker, session: &Session, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let operations = authorized_operations(
        broker,
        session,
        request.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.topics.cluster_id()))
        .with_cluster_authorized_operations(operations);
    if !allowed(broker, session, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        let err = BrokerError::from(AuthError::ClusterDenied);
        return response.with_error_code(err.code()).with_controller_id(BrokerId(-1));
    }
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        // A broker answers for brokers only; the controller endpoints are asked of controllers.
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(str_bytes("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")))
            .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
            .with_cluster_id(str_bytes(""))
            .with_controller_id(BrokerId(-1))
            .with_cluster_authorized_operations(operations);
    }
    let (host, port) = &session.listener.advertised;
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.topics.cluster_id()))
        .with_cluster_authorized_operations(operations)
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(host.clone()))
            .with_port(*port)])
}
