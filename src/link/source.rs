//! The link's client of the source cluster: what it reads there (Metadata, DescribeConfigs,
//! ListOffsets, Fetch, the groups' committed offsets and the ACLs), as a Kafka consumer and admin
//! client would, over the broker's own peer connections (`crate::peer`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, DescribeAclsRequest, DescribeConfigsRequest, FetchRequest, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::auth::{AclBinding, Operation, PatternType, Permission, ResourceType};
use crate::peer::{ClientError, PeerConnection};
use crate::topics::TopicConfig;

const METADATA_VERSION: i16 = 12;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 4;
/// v12: the first with the last fetched epoch, so the source can say where its log diverged.
const FETCH_VERSION: i16 = 12;
const EARLIEST: i64 = -2;
/// DescribeConfigs' config source of a topic's own override (DYNAMIC_TOPIC_CONFIG).
const TOPIC_OVERRIDE: i8 = 1;
const TOPIC_RESOURCE: i8 = 2;
/// A consumer's replica id: the source treats the link as a client, not a replica.
const CONSUMER: i32 = -1;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("source answered {0:?}")]
    Answer(ResponseError),
    #[error("source answered an unknown error code {0}")]
    Unknown(i16),
    #[error(transparent)]
    Secure(#[from] super::secure::SecureError),
}

fn check(code: i16) -> Result<(), SourceError> {
    match code {
        0 => Ok(()),
        code => Err(ResponseError::try_from_code(code)
            .map_or(SourceError::Unknown(code), SourceError::Answer)),
    }
}

/// The source cluster as its Metadata describes it.
#[derive(Debug, Clone, Default)]
pub struct SourceMetadata {
    /// Broker id → `host:port`.
    pub brokers: BTreeMap<i32, String>,
    /// Topic → each partition's leader (-1: none), in partition order.
    pub topics: BTreeMap<String, Vec<i32>>,
}

impl SourceMetadata {
    pub fn leader_addr(&self, topic: &str, partition: i32) -> Option<&str> {
        let leader = *self
            .topics
            .get(topic)?
            .get(usize::try_from(partition).ok()?)?;
        self.brokers.get(&leader).map(String::as_str)
    }
}

/// What one fetch of one partition brought.
#[derive(Debug)]
pub enum Fetched {
    Records {
        records: Bytes,
        high_watermark: i64,
    },
    /// The source's log does not hold the epoch we last fetched up to where we are: it was
    /// truncated (an unclean election there) and ours has records it does not.
    Diverged {
        epoch: i32,
        end_offset: i64,
    },
    OutOfRange,
}

pub async fn metadata(
    conn: &mut PeerConnection,
    timeout: Duration,
) -> Result<SourceMetadata, SourceError> {
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = conn.send(&request, METADATA_VERSION, timeout).await?;
    let mut metadata = SourceMetadata::default();
    for broker in response.brokers {
        metadata
            .brokers
            .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
    }
    for topic in response.topics {
        let Some(name) = topic.name else { continue };
        if topic.error_code != 0 || topic.is_internal {
            continue;
        }
        let mut partitions = topic.partitions;
        partitions.sort_by_key(|p| p.partition_index);
        // A gap in the partition indexes would shift every leader after it: skip the topic
        // until the source answers with all of them.
        if partitions
            .iter()
            .enumerate()
            .any(|(i, p)| p.partition_index != i as i32)
        {
            continue;
        }
        let leaders = partitions
            .iter()
            .map(|p| if p.error_code == 0 { p.leader_id.0 } else { -1 })
            .collect();
        metadata.topics.insert(name.0.to_string(), leaders);
    }
    Ok(metadata)
}

/// The topic's own config overrides at the source that samsa knows, each valid here.
pub async fn topic_configs(
    conn: &mut PeerConnection,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, SourceError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)]);
    let response = conn
        .send(&request, DESCRIBE_CONFIGS_VERSION, timeout)
        .await?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or(SourceError::Answer(ResponseError::UnknownServerError))?;
    check(result.error_code)?;
    let mut configs = BTreeMap::new();
    for entry in result.configs {
        let (name, Some(value)) = (entry.name.to_string(), entry.value) else {
            continue;
        };
        if entry.config_source != TOPIC_OVERRIDE
            || !TopicConfig::is_known(&name)
            || name == crate::topics::config::MIRROR_LINK_KEY
        {
            continue;
        }
        // A value samsa would refuse (another broker's wider range) is left to the default.
        let one = BTreeMap::from([(name.clone(), value.to_string())]);
        if TopicConfig::validated(one).is_ok() {
            configs.insert(name, value.to_string());
        }
    }
    Ok(configs)
}

/// The partition's log start offset at the source.
pub async fn log_start(
    conn: &mut PeerConnection,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<i64, SourceError> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(CONSUMER))
        .with_isolation_level(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(EARLIEST)])]);
    let response = conn.send(&request, LIST_OFFSETS_VERSION, timeout).await?;
    let answer = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(SourceError::Answer(ResponseError::UnknownServerError))?;
    check(answer.error_code)?;
    Ok(answer.offset)
}

/// Where one fetch of one partition starts: `offset`, after a batch of `last_fetched_epoch`
/// (-1: unknown), which the source checks its log against.
pub struct FetchAt<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub last_fetched_epoch: i32,
}

/// Fetches one partition READ_UNCOMMITTED (up to the high watermark, transactions and their
/// markers as they are), quoting the epoch of the batch before the offset so a source whose
/// log diverged says so.
pub async fn fetch(
    conn: &mut PeerConnection,
    at: FetchAt<'_>,
    max_bytes: i32,
    max_wait_ms: i32,
    timeout: Duration,
) -> Result<Fetched, SourceError> {
    let FetchAt {
        topic,
        partition,
        offset,
        last_fetched_epoch,
    } = at;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(CONSUMER))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_partition_max_bytes(max_bytes)])]);
    let response = conn.send(&request, FETCH_VERSION, timeout).await?;
    check(response.error_code)?;
    let data = response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or(SourceError::Answer(ResponseError::UnknownServerError))?;
    if data.error_code == ResponseError::OffsetOutOfRange.code() {
        return Ok(Fetched::OutOfRange);
    }
    check(data.error_code)?;
    if data.diverging_epoch.epoch >= 0 {
        return Ok(Fetched::Diverged {
            epoch: data.diverging_epoch.epoch,
            end_offset: data.diverging_epoch.end_offset,
        });
    }
    Ok(Fetched::Records {
        records: data.records.unwrap_or_default(),
        high_watermark: data.high_watermark,
    })
}

const LIST_GROUPS_VERSION: i16 = 4;
const FIND_COORDINATOR_VERSION: i16 = 3;
const OFFSET_FETCH_VERSION: i16 = 7;

/// The consumer groups one source broker coordinates.
pub async fn list_groups(
    conn: &mut PeerConnection,
    timeout: Duration,
) -> Result<Vec<String>, SourceError> {
    let response = conn
        .send(
            &kafka_protocol::messages::ListGroupsRequest::default(),
            LIST_GROUPS_VERSION,
            timeout,
        )
        .await?;
    check(response.error_code)?;
    Ok(response
        .groups
        .into_iter()
        .map(|g| g.group_id.0.to_string())
        .collect())
}

/// `host:port` of the source broker that coordinates `group`.
pub async fn group_coordinator(
    conn: &mut PeerConnection,
    group: &str,
    timeout: Duration,
) -> Result<String, SourceError> {
    let request = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = conn
        .send(&request, FIND_COORDINATOR_VERSION, timeout)
        .await?;
    check(response.error_code)?;
    Ok(format!("{}:{}", response.host, response.port))
}

/// One committed offset at the source: topic, partition, offset, its leader epoch, metadata.
pub type SourceOffset = (String, i32, i64, i32, Option<String>);

/// Every committed offset of `group`, asked of its coordinator.
pub async fn committed_offsets(
    conn: &mut PeerConnection,
    group: &str,
    timeout: Duration,
) -> Result<Vec<SourceOffset>, SourceError> {
    let request = kafka_protocol::messages::OffsetFetchRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
            group.to_string(),
        )))
        .with_topics(None)
        .with_require_stable(true);
    let response = conn.send(&request, OFFSET_FETCH_VERSION, timeout).await?;
    check(response.error_code)?;
    let mut offsets = Vec::new();
    for topic in response.topics {
        for p in topic.partitions {
            if p.error_code != 0 || p.committed_offset < 0 {
                continue;
            }
            offsets.push((
                topic.name.0.to_string(),
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.metadata.map(|m| m.to_string()),
            ));
        }
    }
    Ok(offsets)
}

const DESCRIBE_ACLS_VERSION: i16 = 1;
/// Kafka's ANY in DescribeAcls' filter fields (resource, pattern, operation, permission).
const ANY: i8 = 1;

/// Every ACL binding the source holds (a match-any filter); the ones this broker cannot
/// represent (codes it does not know) are left out.
pub async fn describe_acls(
    conn: &mut PeerConnection,
    timeout: Duration,
) -> Result<Vec<AclBinding>, SourceError> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let response = conn.send(&request, DESCRIBE_ACLS_VERSION, timeout).await?;
    check(response.error_code)?;
    let mut bindings = Vec::new();
    for resource in response.resources {
        let (Some(resource_type), Some(pattern_type)) = (
            ResourceType::from_code(resource.resource_type),
            PatternType::from_code(resource.pattern_type),
        ) else {
            continue;
        };
        for acl in resource.acls {
            let (Some(operation), Some(permission)) = (
                Operation::from_code(acl.operation),
                Permission::from_code(acl.permission_type),
            ) else {
                continue;
            };
            bindings.push(AclBinding {
                resource_type,
                name: resource.resource_name.to_string(),
                pattern_type,
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation,
                permission,
            });
        }
    }
    Ok(bindings)
}
