//! The persister's calls sent to the share coordinator on another broker: one
//! Initialize/Read/Write/Delete/ReadSummaryShareGroupState request for one share-partition,
//! as Kafka's `PersisterStateManager` sends them, and the answer or refusal read back.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::shard::WriteData;
use super::state::{Answer, SharePartitionKey, ShareState, StateBatch, StateSummary};
use crate::error::BrokerError;
use crate::peer::PeerPool;

/// One call of the persister.
pub enum StateRequest {
    Initialize { state_epoch: i32, start_offset: i64 },
    Read { leader_epoch: i32 },
    Write(WriteData),
    Summary { leader_epoch: i32 },
    Delete,
}

pub struct Remote {
    peers: PeerPool,
    timeout: Duration,
}

/// The answer's code and message as the persister's error, `Ok` for none.
fn refusal(code: i16, message: Option<&StrBytes>) -> Result<(), BrokerError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    Err(BrokerError::ShareState {
        error,
        message: message.map_or_else(|| super::kafka_words(error).to_owned(), |m| m.to_string()),
    })
}

fn network(err: impl std::fmt::Display) -> BrokerError {
    tracing::info!("cannot reach the share coordinator: {err}");
    // The persister looks the coordinator up again, as Kafka's does after a network error.
    BrokerError::CoordinatorNotAvailable
}

fn group(key: &SharePartitionKey) -> StrBytes {
    StrBytes::from_string(key.group_id.clone())
}

/// The one partition of an answer about one share-partition.
macro_rules! only_partition {
    ($response:expr) => {
        $response
            .results
            .first()
            .and_then(|r| r.partitions.first())
            .ok_or(BrokerError::CoordinatorNotAvailable)?
    };
}

impl Remote {
    pub fn new(local: i32, timeout: Duration) -> Remote {
        Remote {
            peers: PeerPool::new(format!("samsa-share-persister-{local}")),
            timeout,
        }
    }

    async fn ask<R>(
        &self,
        addr: &str,
        request: &R,
        version: i16,
    ) -> Result<R::Response, BrokerError>
    where
        R: kafka_protocol::protocol::Request
            + kafka_protocol::protocol::Encodable
            + kafka_protocol::protocol::HeaderVersion,
        R::Response: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::HeaderVersion,
    {
        self.peers
            .send(addr, request, version, self.timeout)
            .await
            .map_err(network)
    }

    pub(super) async fn send(
        &self,
        addr: &str,
        key: &SharePartitionKey,
        request: &StateRequest,
    ) -> Result<Answer, BrokerError> {
        let (topic, partition) = (key.topic_id, key.partition);
        match request {
            StateRequest::Initialize {
                state_epoch,
                start_offset,
            } => {
                use initialize_share_group_state_request::*;
                let req = InitializeShareGroupStateRequest::default()
                    .with_group_id(group(key))
                    .with_topics(vec![InitializeStateData::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![PartitionData::default()
                            .with_partition(partition)
                            .with_state_epoch(*state_epoch)
                            .with_start_offset(*start_offset)])]);
                let resp = self.ask(addr, &req, 0).await?;
                let p = only_partition!(resp);
                refusal(p.error_code, p.error_message.as_ref()).map(|()| Answer::Done)
            }
            StateRequest::Read { leader_epoch } => {
                use read_share_group_state_request::*;
                let req = ReadShareGroupStateRequest::default()
                    .with_group_id(group(key))
                    .with_topics(vec![ReadStateData::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![PartitionData::default()
                            .with_partition(partition)
                            .with_leader_epoch(*leader_epoch)])]);
                let resp = self.ask(addr, &req, 0).await?;
                let p = only_partition!(resp);
                refusal(p.error_code, p.error_message.as_ref())?;
                Ok(Answer::State(ShareState {
                    state_epoch: p.state_epoch,
                    leader_epoch: *leader_epoch,
                    start_offset: p.start_offset,
                    delivery_complete_count: -1,
                    batches: p
                        .state_batches
                        .iter()
                        .map(|b| StateBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            delivery_state: b.delivery_state,
                            delivery_count: b.delivery_count,
                        })
                        .collect(),
                }))
            }
            StateRequest::Write(data) => {
                use write_share_group_state_request::*;
                let batches = data
                    .batches
                    .iter()
                    .map(|b| {
                        StateBatch::default()
                            .with_first_offset(b.first_offset)
                            .with_last_offset(b.last_offset)
                            .with_delivery_state(b.delivery_state)
                            .with_delivery_count(b.delivery_count)
                    })
                    .collect();
                let req = WriteShareGroupStateRequest::default()
                    .with_group_id(group(key))
                    .with_topics(vec![WriteStateData::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![PartitionData::default()
                            .with_partition(partition)
                            .with_state_epoch(data.state_epoch)
                            .with_leader_epoch(data.leader_epoch)
                            .with_start_offset(data.start_offset)
                            .with_delivery_complete_count(data.delivery_complete_count)
                            .with_state_batches(batches)])]);
                let resp = self.ask(addr, &req, 1).await?;
                let p = only_partition!(resp);
                refusal(p.error_code, p.error_message.as_ref()).map(|()| Answer::Done)
            }
            StateRequest::Summary { leader_epoch } => {
                use read_share_group_state_summary_request::*;
                let req = ReadShareGroupStateSummaryRequest::default()
                    .with_group_id(group(key))
                    .with_topics(vec![ReadStateSummaryData::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![PartitionData::default()
                            .with_partition(partition)
                            .with_leader_epoch(*leader_epoch)])]);
                let resp = self.ask(addr, &req, 1).await?;
                let p = only_partition!(resp);
                refusal(p.error_code, p.error_message.as_ref())?;
                Ok(Answer::Summary(StateSummary {
                    state_epoch: p.state_epoch,
                    leader_epoch: p.leader_epoch,
                    start_offset: p.start_offset,
                    delivery_complete_count: p.delivery_complete_count,
                }))
            }
            StateRequest::Delete => {
                use delete_share_group_state_request::*;
                let req = DeleteShareGroupStateRequest::default()
                    .with_group_id(group(key))
                    .with_topics(vec![DeleteStateData::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![
                            PartitionData::default().with_partition(partition)
                        ])]);
                let resp = self.ask(addr, &req, 0).await?;
                let p = only_partition!(resp);
                refusal(p.error_code, p.error_message.as_ref()).map(|()| Answer::Done)
            }
        }
    }
}
