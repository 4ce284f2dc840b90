//! DescribeConfigs for topics and for this broker.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{allowed, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::network::Session;
use crate::error::BrokerError;
use crate::topics::config::{broker_entries, ConfigEntry};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let may = |rt, name: &str| allowed(broker, session, Operation::DescribeConfigs, rt, name);
    let include = Include {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = match resource.resource_type {
                RESOURCE_TOPIC if !may(ResourceType::Topic, &resource.resource_name) => {
                    Err(AuthError::TopicDenied.into())
                }
                RESOURCE_TOPIC => topic_entries(broker, &resource.resource_name),
                RESOURCE_BROKER if !may(ResourceType::Cluster, CLUSTER_NAME) => Err(AuthError::ClusterDenied.into()),
                RESOURCE_BROKER => broker_entries_for(broker, &resource.resource_name),
                other => Err(BrokerError::UnsupportedResource(other)),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match entries {
                Ok(entries) => {
                    let keys = resource.configuration_keys;
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                        .map(|e| encode(e, include, version))
                        .collect();
                    result.with_configs(configs)
                }
                Err(err) => result
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    let topic = broker.topics.get(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
    Ok(topic.configs.entries(&broker.config))
}

fn broker_entries_for(broker: &Broker, name: &str) -> Result<Vec<ConfigEntry>, BrokerError> {
    // An empty name asks for the cluster-wide defaults, which on one node are this broker's.
    if !name.is_empty() && name != broker.node_id().to_string() {
        return Err(BrokerError::InvalidRequest(format!("Broker id {name} is not this broker")));
    }
    Ok(broker_entries(&broker.config))
}

/// DescribeConfigs v3 added the value type and documentation.
const FIRST_VERSION_WITH_TYPES: i16 = 3;

#[derive(Clone, Copy)]
struct Include {
    synonyms: bool,
    documentation: bool,
}

fn encode(entry: ConfigEntry, include: Include, version: i16) -> DescribeConfigsResourceResult {
    let synonyms = if include.synonyms {
        entry
            .synonyms
            .iter()
            .map(|synonym| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(synonym.name))
                    .with_value(Some(str_bytes(synonym.value.clone())))
                    .with_source(synonym.source.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.code())
        .with_synonyms(synonyms)
        .with_documentation(None);
    if version >= FIRST_VERSION_WITH_TYPES {
        result = result.with_config_type(entry.config_type as i8);
        if include.documentation {
            result = result.with_documentation(Some(str_bytes(entry.doc)));
        }
    }
    result
}
