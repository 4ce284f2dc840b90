//! DescribeConfigs for topics and for this broker.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::topics::config::{broker_entries, ConfigSource};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// A config entry before it is filtered and encoded.
struct Entry {
    name: String,
    value: String,
    source: ConfigSource,
    read_only: bool,
}

pub fn describe(broker: &Broker, request: DescribeConfigsRequest, _version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => topic_entries(broker, &resource.resource_name),
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
                        .map(|e| encode(e, request.include_synonyms))
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

fn topic_entries(broker: &Broker, name: &str) -> Result<Vec<Entry>, BrokerError> {
    let topic = broker.topics.get(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
    Ok(topic
        .configs
        .entries(&broker.config)
        .into_iter()
        .map(|e| Entry {
            name: e.name.to_owned(),
            value: e.value,
            source: e.source,
            read_only: false,
        })
        .collect())
}

fn broker_entries_for(broker: &Broker, name: &str) -> Result<Vec<Entry>, BrokerError> {
    // An empty name asks for the cluster-wide defaults, which on one node are this broker's.
    if !name.is_empty() && name != broker.node_id().to_string() {
        return Err(BrokerError::InvalidRequest(format!("Broker id {name} is not this broker")));
    }
    Ok(broker_entries(&broker.config)
        .into_iter()
        .map(|(name, value, read_only)| Entry {
            name: name.to_owned(),
            value,
            source: ConfigSource::StaticBroker,
            read_only,
        })
        .collect())
}

fn encode(entry: Entry, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        vec![DescribeConfigsSynonym::default()
            .with_name(str_bytes(entry.name.clone()))
            .with_value(Some(str_bytes(entry.value.clone())))
            .with_source(entry.source.code())]
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.code())
        .with_synonyms(synonyms)
}
