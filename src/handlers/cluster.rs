//! DescribeCluster: this one broker, as the whole cluster and its controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::Broker;
use crate::network::Session;

/// `endpoint_type` 1 asks for brokers; 2 (controllers) is for KRaft controller clients.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn describe(broker: &Broker, session: &Session, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.topics.cluster_id()))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        let error = ResponseError::UnsupportedEndpointType;
        return response
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(format!(
                "endpoint type {} is not supported by a broker",
                request.endpoint_type
            ))))
            .with_controller_id(BrokerId(-1));
    }
    let (host, port) = &session.listener.advertised;
    response.with_controller_id(BrokerId(broker.node_id())).with_brokers(vec![
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(host.clone()))
            .with_port(*port),
    ])
}
