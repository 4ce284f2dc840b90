//! DescribeLogDirs: the broker's data directory (samsa keeps every replica in one), the size of
//! each replica in it, and the disk's size and free space. kafka-reassign-partitions and
//! kafka-log-dirs read it. AlterReplicaLogDirs, which moves replicas between a broker's
//! directories: with one directory, every replica is already where it can be.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};

use super::Session;
use super::{allowed_on_cluster, str_bytes};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// From v3 an unauthorized request is told so; before, it gets no directories.
const FIRST_VERSION_WITH_ERROR: i16 = 3;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    if !allowed_on_cluster(broker, session, Operation::Describe) {
        let response = DescribeLogDirsResponse::default();
        if version >= FIRST_VERSION_WITH_ERROR {
            return response.with_error_code(BrokerError::from(AuthError::ClusterDenied).code());
        }
        return response;
    }
    // None: every replica here.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for topic in broker.topics.all() {
        let asked = match &wanted {
            None => None,
            Some(wanted) => match wanted.get(&topic.name) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .partitions
            .iter()
            .filter(|p| asked.is_none_or(|a| a.contains(&p.index)))
            .filter_map(|p| {
                let stats = p.stats().ok()?;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(stats.size_bytes as i64)
                        // Only a future replica (one being moved between directories) lags.
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                )
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = &broker.config.data_dir;
    let (total, usable) = disk_space(dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(shown_dir(broker)))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The data directory as DescribeLogDirs names it and AlterReplicaLogDirs must: absolute,
/// as Kafka's log dirs are.
fn shown_dir(broker: &Broker) -> String {
    let dir = &broker.config.data_dir;
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    shown.display().to_string()
}

/// AlterReplicaLogDirs: ALTER on the cluster, as Kafka asks. A directory other than the
/// data directory is LOG_DIR_NOT_FOUND; a replica this broker holds is already in the one
/// directory asked for (Kafka's answer to a move into the replica's own directory); one it
/// does not hold is REPLICA_NOT_AVAILABLE, and a partition no topic has is
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn alter(
    broker: &Broker,
    session: &Session,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let may = allowed_on_cluster(broker, session, Operation::Alter);
    let ours = shown_dir(broker);
    let metadata = broker.cluster.published();
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in &request.dirs {
        for topic in &dir.topics {
            let partitions = topic.partitions.iter().map(|&index| {
                let outcome = if !may {
                    Err(AuthError::ClusterDenied.into())
                } else if dir.path.as_str() != ours {
                    Err(BrokerError::LogDirNotFound(format!(
                        "no log directory {}",
                        dir.path
                    )))
                } else if !metadata
                    .topics
                    .get(topic.name.as_str())
                    .is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len())
                {
                    Err(BrokerError::UnknownTopicOrPartition)
                } else if broker.topics.partition(&topic.name, index).is_err() {
                    Err(BrokerError::ReplicaNotAvailable)
                } else {
                    Ok(())
                };
                AlterReplicaLogDirPartitionResult::default()
                    .with_partition_index(index)
                    .with_error_code(outcome.err().map_or(0, |e: BrokerError| e.code()))
            });
            let partitions: Vec<_> = partitions.collect();
            match results.iter_mut().find(|r| r.topic_name == topic.name) {
                Some(result) => result.partitions.extend(partitions),
                None => results.push(
                    AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(topic.name.clone())
                        .with_partitions(partitions),
                ),
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

/// (size, space available to the broker) of the file system holding `dir`, in bytes.
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}
