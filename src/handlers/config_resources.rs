//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources, KIP-714): the names of
//! every resource that has configs, by type, as Kafka's `handleListConfigResources` lists
//! them, so `kafka-configs --describe --all` and Admin.listConfigResources find them.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::cluster::visible_brokers;
use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// Kafka's ConfigResource.Type ids.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// v0 lists client metrics resources only; v1 any type Kafka has configs for.
fn supported(version: i16) -> &'static [i8] {
    match version {
        0 => &[CLIENT_METRICS],
        _ => &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP],
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    let refused =
        |err: BrokerError| ListConfigResourcesResponse::default().with_error_code(err.code());
    if !allowed_on_cluster(broker, session, Operation::DescribeConfigs) {
        return refused(AuthError::ClusterDenied.into());
    }
    let supported = supported(version);
    let wanted: Vec<i8> = match request.resource_types.is_empty() {
        true => supported.to_vec(),
        false => request.resource_types,
    };
    // As Kafka, a type it has no configs for makes the whole request UNSUPPORTED_VERSION.
    if let Some(other) = wanted.iter().find(|t| !supported.contains(t)) {
        return refused(BrokerError::UnsupportedVersion(format!(
            "resource type {other} has no configs to list"
        )));
    }
    let mut resources = Vec::new();
    let mut add = |name: String, resource_type: i8| {
        resources.push(
            ConfigResource::default()
                .with_resource_name(str_bytes(name))
                .with_resource_type(resource_type),
        );
    };
    // Kafka's order of types. Groups are listed once they have configs of their own; client
    // metrics subscriptions only once configured, which samsa cannot do yet.
    for resource_type in [BROKER_LOGGER, BROKER] {
        if wanted.contains(&resource_type) {
            for endpoint in visible_brokers(broker, session, false) {
                add(endpoint.id.to_string(), resource_type);
            }
        }
    }
    let metadata = broker.cluster.published();
    if wanted.contains(&TOPIC) {
        for topic in metadata.topics.keys() {
            add(topic.clone(), TOPIC);
        }
    }
    if wanted.contains(&GROUP) {
        for group in metadata.group_configs.keys() {
            add(group.clone(), GROUP);
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
