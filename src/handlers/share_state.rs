//! The share coordinator's inter-broker APIs (KIP-932): Initialize, Read, Write, Delete and
//! ReadSummary ShareGroupState, served by [`crate::share::coordinator::ShareCoordinator`]
//! for the share-partitions whose `__share_group_state` partition this broker leads.
//!
//! As Kafka's `KafkaApis` and `ShareCoordinatorService`: CLUSTER_ACTION is required (else
//! every partition answers CLUSTER_AUTHORIZATION_FAILED); a request without topics, with a
//! topic without partitions, or without a group id gets an empty answer; each partition is
//! then answered by its coordinator (NOT_COORDINATOR elsewhere, COORDINATOR_LOAD_IN_PROGRESS
//! while it loads). Kafka answers them at every share.version, and so does samsa.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{allowed_on_cluster, Session};
use crate::auth::Operation;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::share::state::{partition_known, SharePartitionKey};
use crate::share::{kafka_words, WriteData};

/// Why a partition was not served: its code and Kafka's message.
fn failure(err: &BrokerError) -> (i16, Option<StrBytes>) {
    let message = match err {
        BrokerError::ShareState { message, .. } => message.clone(),
        other => kafka_words(other.response_error()).to_owned(),
    };
    (err.code(), Some(StrBytes::from_string(message)))
}

fn denied() -> (i16, Option<StrBytes>) {
    let error = ResponseError::ClusterAuthorizationFailed;
    (
        error.code(),
        Some(StrBytes::from_static_str(kafka_words(error))),
    )
}

/// Whether the request is answered empty, as Kafka's service answers it.
fn nothing_to_do(group: &StrBytes, partitions_per_topic: impl IntoIterator<Item = usize>) -> bool {
    let counts: Vec<usize> = partitions_per_topic.into_iter().collect();
    counts.is_empty() || counts.contains(&0) || group.trim().is_empty()
}

fn key(group: &StrBytes, topic_id: Uuid, partition: i32) -> SharePartitionKey {
    SharePartitionKey {
        group_id: group.to_string(),
        topic_id,
        partition,
    }
}

fn known(broker: &Broker, topic_id: Uuid, partition: i32) -> bool {
    partition_known(&broker.cluster.published(), topic_id, partition)
}

pub async fn initialize(
    broker: &Broker,
    session: &Session,
    req: InitializeShareGroupStateRequest,
) -> InitializeShareGroupStateResponse {
    use initialize_share_group_state_response::*;
    let may = allowed_on_cluster(broker, session, Operation::ClusterAction);
    if may && nothing_to_do(&req.group_id, req.topics.iter().map(|t| t.partitions.len())) {
        return InitializeShareGroupStateResponse::default();
    }
    let coordinator = broker.share_state.coordinator();
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let k = key(&req.group_id, topic.topic_id, p.partition);
            let outcome = if may {
                let known = known(broker, topic.topic_id, p.partition);
                coordinator
                    .initialize(&k, p.state_epoch, p.start_offset, known)
                    .await
                    .map_err(|e| failure(&e))
            } else {
                Err(denied())
            };
            let (code, message) = outcome.err().unwrap_or((0, None));
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    InitializeShareGroupStateResponse::default().with_results(results)
}

pub async fn read(
    broker: &Broker,
    session: &Session,
    req: ReadShareGroupStateRequest,
) -> ReadShareGroupStateResponse {
    use read_share_group_state_response::*;
    let may = allowed_on_cluster(broker, session, Operation::ClusterAction);
    if may && nothing_to_do(&req.group_id, req.topics.iter().map(|t| t.partitions.len())) {
        return ReadShareGroupStateResponse::default();
    }
    let coordinator = broker.share_state.coordinator();
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let k = key(&req.group_id, topic.topic_id, p.partition);
            let base = PartitionResult::default().with_partition(p.partition);
            let outcome = if may {
                let known = known(broker, topic.topic_id, p.partition);
                coordinator
                    .read(&k, p.leader_epoch, known)
                    .await
                    .map_err(|e| failure(&e))
            } else {
                Err(denied())
            };
            partitions.push(match outcome {
                Ok(state) => base
                    .with_state_epoch(state.state_epoch)
                    .with_start_offset(state.start_offset)
                    .with_state_batches(
                        state
                            .batches
                            .iter()
                            .map(|b| {
                                StateBatch::default()
                                    .with_first_offset(b.first_offset)
                                    .with_last_offset(b.last_offset)
                                    .with_delivery_state(b.delivery_state)
                                    .with_delivery_count(b.delivery_count)
                            })
                            .collect(),
                    ),
                Err((code, message)) => base.with_error_code(code).with_error_message(message),
            });
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateResponse::default().with_results(results)
}

pub async fn write(
    broker: &Broker,
    session: &Session,
    req: WriteShareGroupStateRequest,
    version: i16,
) -> WriteShareGroupStateResponse {
    use write_share_group_state_response::*;
    let may = allowed_on_cluster(broker, session, Operation::ClusterAction);
    if may && nothing_to_do(&req.group_id, req.topics.iter().map(|t| t.partitions.len())) {
        return WriteShareGroupStateResponse::default();
    }
    let coordinator = broker.share_state.coordinator();
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let k = key(&req.group_id, topic.topic_id, p.partition);
            let outcome = if may {
                let data = WriteData {
                    state_epoch: p.state_epoch,
                    leader_epoch: p.leader_epoch,
                    start_offset: p.start_offset,
                    // v0 has no count: Kafka reads the field's default, -1.
                    delivery_complete_count: if version >= 1 {
                        p.delivery_complete_count
                    } else {
                        -1
                    },
                    batches: p
                        .state_batches
                        .iter()
                        .map(|b| crate::share::state::StateBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            delivery_state: b.delivery_state,
                            delivery_count: b.delivery_count,
                        })
                        .collect(),
                };
                let known = known(broker, topic.topic_id, p.partition);
                coordinator
                    .write(&k, &data, known)
                    .await
                    .map_err(|e| failure(&e))
            } else {
                Err(denied())
            };
            let (code, message) = outcome.err().unwrap_or((0, None));
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    WriteShareGroupStateResponse::default().with_results(results)
}

pub async fn delete(
    broker: &Broker,
    session: &Session,
    req: DeleteShareGroupStateRequest,
) -> DeleteShareGroupStateResponse {
    use delete_share_group_state_response::*;
    let may = allowed_on_cluster(broker, session, Operation::ClusterAction);
    if may && nothing_to_do(&req.group_id, req.topics.iter().map(|t| t.partitions.len())) {
        return DeleteShareGroupStateResponse::default();
    }
    let coordinator = broker.share_state.coordinator();
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let k = key(&req.group_id, topic.topic_id, p.partition);
            let outcome = if may {
                let known = known(broker, topic.topic_id, p.partition);
                coordinator.delete(&k, known).await.map_err(|e| failure(&e))
            } else {
                Err(denied())
            };
            let (code, message) = outcome.err().unwrap_or((0, None));
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        results.push(
            DeleteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    DeleteShareGroupStateResponse::default().with_results(results)
}

pub async fn read_summary(
    broker: &Broker,
    session: &Session,
    req: ReadShareGroupStateSummaryRequest,
) -> ReadShareGroupStateSummaryResponse {
    use read_share_group_state_summary_response::*;
    let may = allowed_on_cluster(broker, session, Operation::ClusterAction);
    if may && nothing_to_do(&req.group_id, req.topics.iter().map(|t| t.partitions.len())) {
        return ReadShareGroupStateSummaryResponse::default();
    }
    let coordinator = broker.share_state.coordinator();
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let k = key(&req.group_id, topic.topic_id, p.partition);
            let base = PartitionResult::default().with_partition(p.partition);
            let outcome = if may {
                let known = known(broker, topic.topic_id, p.partition);
                coordinator.summary(&k, known).map_err(|e| failure(&e))
            } else {
                Err(denied())
            };
            partitions.push(match outcome {
                Ok(s) => base
                    .with_state_epoch(s.state_epoch)
                    .with_leader_epoch(s.leader_epoch)
                    .with_start_offset(s.start_offset)
                    .with_delivery_complete_count(s.delivery_complete_count),
                Err((code, message)) => base.with_error_code(code).with_error_message(message),
            });
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateSummaryResponse::default().with_results(results)
}
