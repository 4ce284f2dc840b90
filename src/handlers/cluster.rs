//! DescribeCluster: this one broker, as the whole cluster and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, ALL_CLUSTER_OPERATIONS, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::Broker;
use crate::network::Session;

/// `endpoint_type` 1 asks for brokers; 2 (controllers) is for KRaft controller clients.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn describe(broker: &Broker, session: &Session, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let operations = if request.include_cluster_authorized_operations {
        ALL_CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
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
