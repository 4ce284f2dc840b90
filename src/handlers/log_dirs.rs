//! DescribeLogDirs: the broker's data directory (samsa keeps every replica in one), the size of
//! each replica in it, and the disk's size and free space. kafka-reassign-partitions and
//! kafka-log-dirs read it.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

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
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(shown.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (size, space available to the broker) of the file system holding `dir`, in bytes.
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}
