//! Requests most tests need, built right for the version they are sent at, plus one-call
//! helpers for setting up state (a topic, some records) that a test is not about.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, FetchResponse,
    ListOffsetsRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::batches::{self, Fetched};
use crate::Connection;

/// What samsa must advertise in ApiVersions: (API key, lowest, highest version).
pub const SERVED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 11),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ApiVersions, 0, 5),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 5),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 1),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::UnregisterController, 0, 0),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::CreateDelegationToken, 1, 3),
    (ApiKey::RenewDelegationToken, 1, 2),
    (ApiKey::ExpireDelegationToken, 1, 2),
    (ApiKey::DescribeDelegationToken, 1, 3),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 10),
    (ApiKey::OffsetFetch, 1, 10),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 3),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::StreamsGroupHeartbeat, 0, 1),
    (ApiKey::StreamsGroupDescribe, 0, 1),
    (ApiKey::StreamsGroupTopologyDescriptionUpdate, 0, 0),
    (ApiKey::TxnOffsetCommit, 0, 6),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Share groups (KIP-932), listed whatever `share.version` is, as Kafka lists them.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    (ApiKey::InitializeShareGroupState, 0, 0),
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 1),
    (ApiKey::DeleteShareGroupState, 0, 0),
    (ApiKey::ReadShareGroupStateSummary, 0, 1),
];

/// Served always, but advertised only when a telemetry subscription is configured, as Kafka
/// lists them only with a telemetry exporter (KIP-714).
pub const TELEMETRY_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
];

/// Every version samsa serves of `key`.
pub fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let &(_, min, max) = SERVED_APIS
        .iter()
        .chain(TELEMETRY_APIS)
        .find(|(k, _, _)| *k == key)
        .unwrap_or_else(|| panic!("{key:?} is not served"));
    min..=max
}

/// Produce v13 and Fetch v13 name topics by id instead of by name (KIP-516).
pub const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
pub const LATEST_PRODUCE: i16 = 13;
pub const LATEST_FETCH: i16 = 18;
pub const LATEST_LIST_OFFSETS: i16 = 10;

/// A topic as requests address it: by name, or from v13 of Produce and Fetch by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRef {
    pub name: String,
    pub id: Uuid,
}

impl TopicRef {
    /// A topic that does not exist: a fresh name and a random id.
    pub fn unknown() -> TopicRef {
        TopicRef {
            name: format!("no-such-topic-{}", Uuid::new_v4().simple()),
            id: Uuid::new_v4(),
        }
    }
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// Config overrides of a CreateTopics topic.
pub fn topic_configs(configs: &[(&str, &str)]) -> Vec<CreatableTopicConfig> {
    configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect()
}

/// A CreateTopics request for one topic of `partitions` partitions, one replica each.
pub fn create_request(name: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
}

/// Creates a topic with CreateTopics v7 and returns it with its id; fails on any error code.
pub fn create_topic(
    conn: &mut Connection,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<TopicRef> {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(topic_configs(configs))]);
    let response = conn.send(&request, 7)?;
    let result = response
        .topics
        .first()
        .context("CreateTopics answered no topic")?;
    ensure!(
        result.error_code == 0,
        "creating {name}: error {} {:?}",
        result.error_code,
        result.error_message
    );
    ensure!(
        !result.topic_id.is_nil(),
        "CreateTopics v7 gave {name} no id"
    );
    Ok(TopicRef {
        name: name.to_owned(),
        id: result.topic_id,
    })
}

/// Deletes a topic by name with DeleteTopics v6; fails on any error code.
pub fn delete_topic(conn: &mut Connection, name: &str) -> Result<()> {
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name)))
        ])
        .with_timeout_ms(5000);
    let response = conn.send(&request, 6)?;
    let result = response
        .responses
        .first()
        .context("DeleteTopics answered no topic")?;
    ensure!(
        result.error_code == 0,
        "deleting {name}: error {} {:?}",
        result.error_code,
        result.error_message
    );
    Ok(())
}

/// A Produce request for one partition, naming the topic the way `version` does.
pub fn produce_request(
    topic: &TopicRef,
    partition: i32,
    records: Bytes,
    acks: i16,
    version: i16,
) -> ProduceRequest {
    let mut data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records))]);
    data = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
        data.with_topic_id(topic.id)
    } else {
        data.with_name(topic_name(&topic.name))
    };
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![data])
}

/// The single partition response of a single-partition produce.
pub fn only_partition(response: &ProduceResponse) -> Result<&PartitionProduceResponse> {
    ensure!(
        response.responses.len() == 1,
        "expected one topic, got {:?}",
        response.responses
    );
    let topic = &response.responses[0];
    ensure!(
        topic.partition_responses.len() == 1,
        "expected one partition, got {topic:?}"
    );
    Ok(&topic.partition_responses[0])
}

/// Produces one batch with acks=-1 and returns its base offset; fails on any error code.
pub fn produce(
    conn: &mut Connection,
    topic: &TopicRef,
    partition: i32,
    records: Bytes,
) -> Result<i64> {
    let response = conn.send(
        &produce_request(topic, partition, records, -1, LATEST_PRODUCE),
        LATEST_PRODUCE,
    )?;
    let result = only_partition(&response)?;
    ensure!(
        result.error_code == 0,
        "produce to {}-{partition}: {result:?}",
        topic.name
    );
    Ok(result.base_offset)
}

/// A full (sessionless) Fetch of one partition that answers at once, naming the topic the way `version` does.
pub fn fetch_request(topic: &TopicRef, partition: i32, offset: i64, version: i16) -> FetchRequest {
    session_fetch_request(topic, &[(partition, offset)], version, 0, -1)
}

/// A Fetch that answers at once, in fetch session `id` at `epoch` (KIP-227; id 0 and epoch
/// -1 for none), of `partitions` (index, fetch offset) of `topic`; none names no topic.
pub fn session_fetch_request(
    topic: &TopicRef,
    partitions: &[(i32, i64)],
    version: i16,
    id: i32,
    epoch: i32,
) -> FetchRequest {
    let wanted = partitions
        .iter()
        .map(|&(partition, offset)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let mut topics = Vec::new();
    if !partitions.is_empty() {
        let topic = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
            FetchTopic::default().with_topic_id(topic.id)
        } else {
            FetchTopic::default().with_topic(topic_name(&topic.name))
        };
        topics.push(topic.with_partitions(wanted));
    }
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(4 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// `request` also asking its session to forget `partitions` of `topic`.
pub fn forgetting(
    request: FetchRequest,
    topic: &TopicRef,
    partitions: &[i32],
    version: i16,
) -> FetchRequest {
    let forgotten = ForgottenTopic::default().with_partitions(partitions.to_vec());
    let forgotten = if version >= FIRST_VERSION_WITH_TOPIC_IDS {
        forgotten.with_topic_id(topic.id)
    } else {
        forgotten.with_topic(topic_name(&topic.name))
    };
    request.with_forgotten_topics_data(vec![forgotten])
}

/// The single partition of a single-partition fetch.
pub fn only_fetched(response: &FetchResponse) -> Result<&PartitionData> {
    ensure!(
        response.responses.len() == 1,
        "expected one topic, got {:?}",
        response.responses
    );
    let topic = &response.responses[0];
    ensure!(
        topic.partitions.len() == 1,
        "expected one partition, got {topic:?}"
    );
    Ok(&topic.partitions[0])
}

/// Every record of a partition from `offset` on (one fetch), decoded; fails on any error code.
pub fn fetch_records(
    conn: &mut Connection,
    topic: &TopicRef,
    partition: i32,
    offset: i64,
) -> Result<Vec<Fetched>> {
    let response = conn.send(
        &fetch_request(topic, partition, offset, LATEST_FETCH),
        LATEST_FETCH,
    )?;
    let data = only_fetched(&response)?;
    ensure!(
        data.error_code == 0,
        "fetch {}-{partition}: error {}",
        topic.name,
        data.error_code
    );
    batches::decode(
        data.records
            .as_ref()
            .context("fetch returned null records")?,
    )
}

/// A ListOffsets request for one partition and one timestamp (or -1 latest, -2 earliest, -3 max timestamp).
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

/// Where a read_committed consumer may read up to in partition `partition` of `topic`:
/// ListOffsets (latest, read_committed) on `conn`.
pub fn last_stable_offset(
    conn: &mut crate::Connection,
    topic: &str,
    partition: i32,
) -> Result<i64> {
    let request = list_offsets_request(topic, partition, -1).with_isolation_level(1);
    let answer = conn.send(&request, 7)?.topics[0].partitions[0].clone();
    ensure!(
        answer.error_code == 0,
        "ListOffsets: error {}",
        answer.error_code
    );
    Ok(answer.offset)
}

/// The single partition answer of a single-partition ListOffsets.
pub fn list_offset(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
    timestamp: i64,
    version: i16,
) -> Result<ListOffsetsPartitionResponse> {
    let response = conn.send(&list_offsets_request(topic, partition, timestamp), version)?;
    ensure!(
        response.topics.len() == 1,
        "expected one topic, got {:?}",
        response.topics
    );
    let answer = &response.topics[0];
    ensure!(
        answer.name.as_str() == topic,
        "answer names topic {:?}",
        answer.name
    );
    ensure!(
        answer.partitions.len() == 1,
        "expected one partition, got {answer:?}"
    );
    Ok(answer.partitions[0].clone())
}

/// An ApiVersions request as real clients send it from v3 on: with a software name and
/// version, which Kafka (and samsa) require to be label-safe.
pub fn api_versions_request() -> kafka_protocol::messages::ApiVersionsRequest {
    kafka_protocol::messages::ApiVersionsRequest::default()
        .with_client_software_name(str_bytes("samsa-protocol-tests"))
        .with_client_software_version(str_bytes("1.0"))
}

/// Finalizes `share.version` at `level` (an upgrade, or a safe downgrade to a lower one),
/// for tests of what the share APIs answer at each level.
pub fn set_share_version(conn: &mut Connection, level: i16) -> Result<()> {
    use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
    let request = kafka_protocol::messages::UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(str_bytes("share.version"))
            .with_max_version_level(level)
            .with_upgrade_type(if level == 0 { 2 } else { 1 })]);
    let answer = conn.send(&request, 1)?;
    ensure!(answer.error_code == 0, "{answer:?}");
    ensure!(
        answer.results.iter().all(|r| r.error_code == 0),
        "{answer:?}"
    );
    Ok(())
}

/// Share groups on (`share.version` 2): a new cluster's level in samsa as in Kafka 4.4, so
/// this only makes sure of it before a test that needs them.
pub fn share_groups_on(conn: &mut Connection) -> Result<()> {
    set_share_version(conn, 2)
}

/// Group APIs answer COORDINATOR_LOAD_IN_PROGRESS until the offsets topic is replayed.
pub fn wait_groups_loaded(conn: &mut Connection) -> Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let code = conn
            .send(&kafka_protocol::messages::ListGroupsRequest::default(), 0)?
            .error_code;
        if code == 0 {
            return Ok(());
        }
        ensure!(
            code == kafka_protocol::error::ResponseError::CoordinatorLoadInProgress.code(),
            "ListGroups answered error {code}"
        );
        ensure!(
            std::time::Instant::now() < until,
            "the group coordinator never finished loading"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
