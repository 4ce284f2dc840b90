//! DeleteRecords: moves partitions' log start forward, making the records below it unreadable
//! and letting their segments go.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::allowed;
use super::Session;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;

/// The low watermark reported for a partition that failed.
const INVALID_LOW_WATERMARK: i64 = -1;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let may_delete = allowed(
                broker,
                session,
                Operation::Delete,
                ResourceType::Topic,
                &topic.name,
            );
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let mirror = broker
                        .topics
                        .get(&topic.name)
                        .and_then(|t| t.configs.mirror_link().map(str::to_owned));
                    let result = if let (true, Some(link)) = (may_delete, mirror) {
                        Err(super::produce::mirror_is_read_only(&topic.name, &link))
                    } else if may_delete {
                        broker
                            .topics
                            .partition(&topic.name, p.partition_index)
                            .and_then(|partition| partition.delete_records_before(p.offset))
                    } else {
                        Err(AuthError::TopicDenied.into())
                    };
                    let (low_watermark, code) = match result {
                        Ok(low_watermark) => (low_watermark, 0),
                        Err(err) => (INVALID_LOW_WATERMARK, BrokerError::code(&err)),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(code)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
