//! UnregisterBroker (KIP-500's `kafka-cluster unregister`): an operator removes a broker's
//! registration, through the controller, as Kafka's ControllerApis do. A broker still
//! running registers again at its next heartbeat.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let outcome = if allowed_on_cluster(broker, session, Operation::Alter) {
        broker.cluster.unregister_broker(request.broker_id.0).await
    } else {
        Err(AuthError::ClusterDenied.into())
    };
    match outcome {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(err) => UnregisterBrokerResponse::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes)),
    }
}
