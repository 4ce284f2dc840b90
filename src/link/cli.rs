//! `samsa link promote` and `samsa link status`: the operator's side of cluster links, as a
//! Kafka admin client of the destination cluster. Promoting is deleting the topic config
//! `samsa.link.name` (IncrementalAlterConfigs), what `kafka-configs --alter --delete-config`
//! does too; the status lists the mirror topics and their links (DescribeConfigs).

use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::source;
use crate::peer::PeerConnection;
use crate::topics::config::MIRROR_LINK_KEY;

const TIMEOUT: Duration = Duration::from_secs(30);
const TOPIC_RESOURCE: i8 = 2;
/// IncrementalAlterConfigs' DELETE operation.
const DELETE: i8 = 1;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn error(code: i16, message: Option<StrBytes>) -> Option<String> {
    let err = ResponseError::try_from_code(code)?;
    Some(match message {
        Some(message) => format!("{err:?}: {message}"),
        None => format!("{err:?}"),
    })
}

async fn connect(bootstrap: &str) -> anyhow::Result<PeerConnection> {
    PeerConnection::connect(bootstrap, "samsa-link-cli", TIMEOUT)
        .await
        .with_context(|| format!("cannot reach {bootstrap}"))
}

/// Stops mirroring `topics` and makes them writable.
pub async fn promote(bootstrap: &str, topics: &[String]) -> anyhow::Result<()> {
    let mut conn = connect(bootstrap).await?;
    let resources = topics
        .iter()
        .map(|topic| {
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(topic))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(MIRROR_LINK_KEY))
                    .with_config_operation(DELETE)])
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(resources);
    let response = conn
        .send(&request, INCREMENTAL_ALTER_CONFIGS_VERSION, TIMEOUT)
        .await?;
    let mut failed = false;
    for answer in response.responses {
        match error(answer.error_code, answer.error_message) {
            None => println!("promoted {}", answer.resource_name),
            Some(err) => {
                eprintln!("cannot promote {}: {err}", answer.resource_name);
                failed = true;
            }
        }
    }
    if failed {
        bail!("some topics were not promoted");
    }
    Ok(())
}

/// Prints every mirror topic with its link and partition count.
pub async fn status(bootstrap: &str) -> anyhow::Result<()> {
    let mut conn = connect(bootstrap).await?;
    let metadata = source::metadata(&mut conn, TIMEOUT).await?;
    if metadata.topics.is_empty() {
        println!("no topics");
        return Ok(());
    }
    let resources = metadata
        .topics
        .keys()
        .map(|topic| {
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(topic))
                .with_configuration_keys(Some(vec![str_bytes(MIRROR_LINK_KEY)]))
        })
        .collect();
    let request = DescribeConfigsRequest::default().with_resources(resources);
    let response = conn
        .send(&request, DESCRIBE_CONFIGS_VERSION, TIMEOUT)
        .await?;
    println!("{:<40} {:<20} PARTITIONS", "TOPIC", "LINK");
    let mut mirrors = 0;
    for result in response.results {
        let topic = result.resource_name.to_string();
        let link = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == MIRROR_LINK_KEY)
            .and_then(|c| c.value.as_ref())
            .filter(|v| !v.is_empty());
        if let Some(link) = link {
            let partitions = metadata.topics.get(&topic).map_or(0, Vec::len);
            println!("{topic:<40} {link:<20} {partitions}");
            mirrors += 1;
        }
    }
    println!("{mirrors} mirror topics; lag and state per partition: samsa_link_partition_lag and samsa_link_partition_state on /metrics");
    Ok(())
}
