//! DescribeCluster, and the brokers and controller that it and Metadata show: the unfenced
//! registered brokers and the quorum's leader (a single node is both).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use samsa_metadata::state::Broker as RegisteredBroker;

use super::Session;
use super::{allowed_on_cluster, authorized_operations, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;

/// `endpoint_type` 1 asks for brokers; 2 (controllers) is for KRaft controller clients.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

/// A broker as clients are told of it.
pub(super) struct Endpoint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl From<RegisteredBroker> for Endpoint {
    fn from(b: RegisteredBroker) -> Endpoint {
        Endpoint {
            id: b.id,
            host: b.host,
            port: i32::from(b.port),
            rack: b.rack,
            fenced: b.fenced,
        }
    }
}

/// The brokers clients may use (and the fenced ones when asked for), as [`seen_from`] gives
/// them.
pub(super) fn visible_brokers(
    broker: &Broker,
    session: &Session,
    include_fenced: bool,
) -> Vec<Endpoint> {
    broker
        .cluster
        .brokers(include_fenced)
        .into_iter()
        .map(|registered| seen_from(broker, session, registered))
        .collect()
}

/// `registered` as the client of `session` should reach it: this broker at the listener the
/// client came through, as Kafka answers with the endpoints of the request's listener;
/// another broker at the address it registered.
pub(super) fn seen_from(
    broker: &Broker,
    session: &Session,
    registered: RegisteredBroker,
) -> Endpoint {
    let mut endpoint = Endpoint::from(registered);
    if endpoint.id == broker.node_id() {
        let (host, port) = &session.listener.advertised;
        (endpoint.host, endpoint.port) = (host.clone(), *port);
    }
    endpoint
}

/// The brokers among `ids` (leaders a NOT_LEADER_OR_FOLLOWER answer points at), for the
/// `node_endpoints` of Produce and Fetch (KIP-951): clients go to a new leader without
/// waiting for a metadata refresh.
pub(super) fn leader_endpoints(
    broker: &Broker,
    ids: impl IntoIterator<Item = i32>,
) -> Vec<Endpoint> {
    let wanted: std::collections::BTreeSet<i32> = ids.into_iter().filter(|id| *id >= 0).collect();
    // Most answers name no leader: they cost neither a copy of the brokers nor a lookup.
    if wanted.is_empty() {
        return Vec::new();
    }
    let metadata = broker.cluster.metadata();
    wanted
        .iter()
        .filter_map(|id| metadata.brokers.get(id))
        .filter(|b| !b.fenced)
        .cloned()
        .map(Endpoint::from)
        .collect()
}

/// A topic not (yet) in this broker's registry: unknown, unless the cluster metadata this
/// node applied has it (created a moment ago, not reconciled here yet), which a client
/// should take as a leader it must look up again, NOT_LEADER_OR_FOLLOWER.
pub(super) fn missing_topic(
    broker: &Broker,
    name: Option<&str>,
    id: Option<uuid::Uuid>,
    unknown: BrokerError,
) -> BrokerError {
    let metadata = broker.cluster.metadata();
    let known = match (name, id) {
        (Some(name), _) => metadata.topics.contains_key(name),
        (None, Some(id)) => metadata.topics.values().any(|t| t.id == *id.as_bytes()),
        (None, None) => false,
    };
    if known {
        BrokerError::NotLeaderOrFollower
    } else {
        unknown
    }
}

/// The active controller: the quorum's leader, -1 while there is none.
pub(super) fn controller_id(broker: &Broker) -> BrokerId {
    BrokerId(broker.cluster.controller_id())
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
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
    if !allowed_on_cluster(broker, session, Operation::Describe) {
        let err = BrokerError::from(AuthError::ClusterDenied);
        return response
            .with_error_code(err.code())
            .with_controller_id(BrokerId(-1));
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
    // Only v2 asks for fenced brokers, and only v2 has `is_fenced` to mark them.
    let brokers = visible_brokers(broker, session, request.include_fenced_brokers)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
                .with_is_fenced(b.fenced)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(broker.topics.cluster_id()))
        .with_cluster_authorized_operations(operations)
        .with_controller_id(controller_id(broker))
        .with_brokers(brokers)
}
