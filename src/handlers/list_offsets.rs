//! ListOffsets: the earliest, latest, or timestamp-matched offset of each partition.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::allowed;
use super::Session;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::topics::Partition;

/// Special timestamps a client may ask for instead of a real one.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

const READ_COMMITTED: i8 = 1;

/// ListOffsets v4 added the leader epoch of the returned offset.
const FIRST_VERSION_WITH_EPOCH: i16 = 4;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // Since v2 a read_committed consumer's "latest" is the last stable offset.
    let read_committed = version >= 2 && request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let found = if allowed(
                broker,
                session,
                Operation::Describe,
                ResourceType::Topic,
                &topic.name,
            ) {
                broker
                    .topics
                    .get(&topic.name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)
            } else {
                Err(AuthError::TopicDenied.into())
            };
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = match &found {
                        Ok(t) => t
                            .partition(p.partition_index)
                            .ok_or(BrokerError::UnknownTopicOrPartition)
                            .and_then(|partition| {
                                check_timestamp_version(p.timestamp, version).map(|_| partition)
                            })
                            .and_then(|partition| {
                                partition
                                    .check_leader_epoch(p.current_leader_epoch)
                                    .map(|()| partition)
                            })
                            .and_then(|partition| partition.ensure_leader().map(|()| partition))
                            .and_then(|partition| {
                                let (offset, timestamp) =
                                    lookup(partition, p.timestamp, read_committed)?;
                                Ok((offset, timestamp, partition.leader_epoch()))
                            }),
                        Err(BrokerError::Auth(_)) => Err(AuthError::TopicDenied.into()),
                        Err(_) => Err(BrokerError::UnknownTopicOrPartition),
                    };
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match answer {
                        Ok((offset, timestamp, epoch)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(
                                if offset >= 0 && version >= FIRST_VERSION_WITH_EPOCH {
                                    epoch
                                } else {
                                    -1
                                },
                            ),
                        Err(err) => response
                            .with_error_code(err.code())
                            .with_offset(-1)
                            .with_timestamp(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Each special timestamp came with a ListOffsets version; an older request that uses it is
/// refused with UNSUPPORTED_VERSION, as Kafka does, rather than answered by guesswork.
fn check_timestamp_version(timestamp: i64, version: i16) -> Result<(), BrokerError> {
    let first_version = match timestamp {
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        // v10 added no timestamp (KIP-1075: the broker answers remote lookups later).
        EARLIEST_PENDING_UPLOAD => 11,
        _ => return Ok(()),
    };
    if version < first_version {
        return Err(BrokerError::UnsupportedVersion(format!(
            "timestamp {timestamp} needs ListOffsets v{first_version} or later"
        )));
    }
    Ok(())
}

/// (offset, timestamp) for one partition; -1 timestamps where Kafka reports none.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), BrokerError> {
    let offsets = partition.offsets()?;
    match timestamp {
        LATEST if read_committed => Ok((offsets.last_stable, -1)),
        LATEST => Ok((offsets.high_watermark, -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((offsets.log_start, -1)),
        // No tiered storage: nothing is pending upload and nothing is tiered.
        EARLIEST_PENDING_UPLOAD | LATEST_TIERED => Ok((-1, -1)),
        MAX_TIMESTAMP => Ok(partition.max_timestamp()?.unwrap_or((-1, -1))),
        ts if ts >= 0 => Ok(partition.offset_for_timestamp(ts)?.unwrap_or((-1, -1))),
        other => Err(BrokerError::InvalidRequest(format!(
            "invalid timestamp {other}"
        ))),
    }
}
