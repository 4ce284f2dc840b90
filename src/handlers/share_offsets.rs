//! DescribeShareGroupOffsets (90), as Kafka's `KafkaApis.handleDescribeShareGroupOffsets`
//! and `GroupCoordinatorService.describeShareGroup(All)Offsets`: per group, UNSUPPORTED_VERSION
//! while `share.version` is 0, GROUP_AUTHORIZATION_FAILED without DESCRIBE on it; each
//! share-partition's start offset and leader epoch come from the share coordinator's summary
//! (`Persister::read_summary`), and v1's lag is the partition's end offset less the start
//! offset less the records after it whose delivery is complete (-1 while either is unknown).
//! Without topics, every share-partition the group has initialized is described.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as Group,
    DescribeShareGroupOffsetsResponsePartition as PartitionAnswer,
    DescribeShareGroupOffsetsResponseTopic as TopicAnswer,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::consumer_group::topic_image;
use super::share_group::share_enabled;
use super::{allowed, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::share::state::SharePartitionKey;

pub async fn describe(
    broker: &Broker,
    session: &Session,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::new();
    for g in req.groups {
        let group_id = g.group_id.to_string();
        let base = Group::default().with_group_id(g.group_id.clone());
        if !share_enabled(broker) {
            groups
                .push(base.with_error_code(BrokerError::UnsupportedVersion(String::new()).code()));
            continue;
        }
        if !allowed(
            broker,
            session,
            Operation::Describe,
            ResourceType::Group,
            &group_id,
        ) {
            groups.push(base.with_error_code(BrokerError::from(AuthError::GroupDenied).code()));
            continue;
        }
        let image = topic_image(broker);
        // (name, id, partitions) to describe.
        let wanted: Vec<(String, Option<Uuid>, BTreeSet<i32>)> = match g.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| {
                    let name = t.topic_name.to_string();
                    let id = image.get(&name).map(|m| m.id);
                    (name, id, t.partitions.into_iter().collect())
                })
                .collect(),
            None => match broker.groups.share_initialized_partitions(&group_id) {
                Ok(Some(initialized)) => initialized
                    .into_iter()
                    .map(|(id, (name, partitions))| (name, Some(id), partitions))
                    .collect(),
                Ok(None) => Vec::new(),
                Err(err) => {
                    groups.push(
                        base.with_error_code(err.code())
                            .with_error_message(err.message().map(str_bytes)),
                    );
                    continue;
                }
            },
        };
        let mut topics = Vec::new();
        for (name, id, partitions) in wanted {
            let answer = |p: i32| PartitionAnswer::default().with_partition_index(p);
            let failed = |err: BrokerError, partitions: &BTreeSet<i32>| -> Vec<PartitionAnswer> {
                partitions
                    .iter()
                    .map(|p| {
                        answer(*p)
                            .with_start_offset(-1)
                            .with_leader_epoch(-1)
                            .with_error_code(err.code())
                            .with_error_message(err.message().map(str_bytes))
                    })
                    .collect()
            };
            let may_describe = allowed(
                broker,
                session,
                Operation::Describe,
                ResourceType::Topic,
                &name,
            );
            let results = match id {
                _ if !may_describe => failed(AuthError::TopicDenied.into(), &partitions),
                // Kafka asks the share coordinator anyway, which has no state for it.
                None => partitions
                    .iter()
                    .map(|p| {
                        answer(*p)
                            .with_start_offset(-1)
                            .with_leader_epoch(0)
                            .with_lag(-1)
                    })
                    .collect(),
                Some(topic_id) => {
                    let mut out = Vec::new();
                    for p in &partitions {
                        out.push(describe_partition(broker, &group_id, &name, topic_id, *p).await);
                    }
                    out
                }
            };
            topics.push(
                TopicAnswer::default()
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_topic_id(id.unwrap_or_default())
                    .with_partitions(results),
            );
        }
        groups.push(base.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

async fn describe_partition(
    broker: &Broker,
    group_id: &str,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
) -> PartitionAnswer {
    let key = SharePartitionKey {
        group_id: group_id.to_owned(),
        topic_id,
        partition,
    };
    let answer = PartitionAnswer::default().with_partition_index(partition);
    let summary = match broker.share_state.read_summary(&key, -1).await {
        Ok(summary) => summary,
        // No state (never initialized): nothing is known of it yet.
        Err(BrokerError::UnknownTopicOrPartition) => {
            return answer
                .with_start_offset(-1)
                .with_leader_epoch(-1)
                .with_lag(-1)
        }
        Err(err) => {
            return answer
                .with_start_offset(-1)
                .with_leader_epoch(-1)
                .with_error_code(err.code())
                .with_error_message(err.message().map(str_bytes))
        }
    };
    let end = broker
        .topics
        .partition(topic, partition)
        .and_then(|p| p.offsets())
        .map(|o| o.high_watermark)
        .ok();
    let lag = match end {
        Some(end) if summary.start_offset >= 0 && summary.delivery_complete_count >= 0 => {
            end - summary.start_offset - i64::from(summary.delivery_complete_count)
        }
        _ => -1,
    };
    answer
        .with_start_offset(summary.start_offset)
        .with_leader_epoch(summary.leader_epoch)
        .with_lag(lag)
}
