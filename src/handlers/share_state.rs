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
use crate::share::coordinator::ShareCoordinator;
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

/// How a request is answered before any of its partitions is looked at.
enum Gate {
    /// No topics, a topic without partitions, or no group id: Kafka's service answers
    /// nothing at all.
    Empty,
    /// Without CLUSTER_ACTION, every partition is CLUSTER_AUTHORIZATION_FAILED.
    Denied,
    Serve,
}

fn gate(
    broker: &Broker,
    session: &Session,
    group: &StrBytes,
    partitions_per_topic: impl IntoIterator<Item = usize>,
) -> Gate {
    if !allowed_on_cluster(broker, session, Operation::ClusterAction) {
        return Gate::Denied;
    }
    let counts: Vec<usize> = partitions_per_topic.into_iter().collect();
    if counts.is_empty() || counts.contains(&0) || group.trim().is_empty() {
        return Gate::Empty;
    }
    Gate::Serve
}

type Refusal = (i16, Option<StrBytes>);

/// One partition of the request served by the coordinator with `op` (given the
/// share-partition and whether the metadata knows its topic partition), unless the gate
/// refused them all.
async fn served<T>(
    gate: &Gate,
    broker: &Broker,
    group: &StrBytes,
    topic_id: Uuid,
    partition: i32,
    op: impl AsyncFnOnce(&ShareCoordinator, SharePartitionKey, bool) -> Result<T, BrokerError>,
) -> Result<T, Refusal> {
    if matches!(gate, Gate::Denied) {
        return Err(denied());
    }
    let key = SharePartitionKey {
        group_id: group.to_string(),
        topic_id,
        partition,
    };
    let known = partition_known(&broker.cluster.published(), topic_id, partition);
    op(broker.share_state.coordinator(), key, known)
        .await
        .map_err(|e| failure(&e))
}

/// The error code and message of a partition's answer: none when it was served.
fn outcome<T>(result: &Result<T, Refusal>) -> Refusal {
    match result {
        Ok(_) => (0, None),
        Err(refusal) => refusal.clone(),
    }
}

pub async fn initialize(
    broker: &Broker,
    session: &Session,
    req: InitializeShareGroupStateRequest,
) -> InitializeShareGroupStateResponse {
    use initialize_share_group_state_response::*;
    let gate = gate(
        broker,
        session,
        &req.group_id,
        req.topics.iter().map(|t| t.partitions.len()),
    );
    if let Gate::Empty = gate {
        return InitializeShareGroupStateResponse::default();
    }
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let served = served(
                &gate,
                broker,
                &req.group_id,
                topic.topic_id,
                p.partition,
                async |c, k, known| c.initialize(&k, p.state_epoch, p.start_offset, known).await,
            )
            .await;
            let (code, message) = outcome(&served);
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
    let gate = gate(
        broker,
        session,
        &req.group_id,
        req.topics.iter().map(|t| t.partitions.len()),
    );
    if let Gate::Empty = gate {
        return ReadShareGroupStateResponse::default();
    }
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let served = served(
                &gate,
                broker,
                &req.group_id,
                topic.topic_id,
                p.partition,
                async |c, k, known| c.read(&k, p.leader_epoch, known).await,
            )
            .await;
            let (code, message) = outcome(&served);
            let mut result = PartitionResult::default()
                .with_partition(p.partition)
                .with_error_code(code)
                .with_error_message(message);
            if let Ok(state) = served {
                let batches = state.batches.iter().map(|b| {
                    StateBatch::default()
                        .with_first_offset(b.first_offset)
                        .with_last_offset(b.last_offset)
                        .with_delivery_state(b.delivery_state)
                        .with_delivery_count(b.delivery_count)
                });
                result = result
                    .with_state_epoch(state.state_epoch)
                    .with_start_offset(state.start_offset)
                    .with_state_batches(batches.collect());
            }
            partitions.push(result);
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
    let gate = gate(
        broker,
        session,
        &req.group_id,
        req.topics.iter().map(|t| t.partitions.len()),
    );
    if let Gate::Empty = gate {
        return WriteShareGroupStateResponse::default();
    }
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
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
            let served = served(
                &gate,
                broker,
                &req.group_id,
                topic.topic_id,
                p.partition,
                async |c, k, known| c.write(&k, &data, known).await,
            )
            .await;
            let (code, message) = outcome(&served);
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
    let gate = gate(
        broker,
        session,
        &req.group_id,
        req.topics.iter().map(|t| t.partitions.len()),
    );
    if let Gate::Empty = gate {
        return DeleteShareGroupStateResponse::default();
    }
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let served = served(
                &gate,
                broker,
                &req.group_id,
                topic.topic_id,
                p.partition,
                async |c, k, known| c.delete(&k, known).await,
            )
            .await;
            let (code, message) = outcome(&served);
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
    let gate = gate(
        broker,
        session,
        &req.group_id,
        req.topics.iter().map(|t| t.partitions.len()),
    );
    if let Gate::Empty = gate {
        return ReadShareGroupStateSummaryResponse::default();
    }
    let mut results = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let served = served(
                &gate,
                broker,
                &req.group_id,
                topic.topic_id,
                p.partition,
                async |c, k, known| c.summary(&k, known),
            )
            .await;
            let (code, message) = outcome(&served);
            let mut result = PartitionResult::default()
                .with_partition(p.partition)
                .with_error_code(code)
                .with_error_message(message);
            if let Ok(s) = served {
                result = result
                    .with_state_epoch(s.state_epoch)
                    .with_leader_epoch(s.leader_epoch)
                    .with_start_offset(s.start_offset)
                    .with_delivery_complete_count(s.delivery_complete_count);
            }
            partitions.push(result);
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateSummaryResponse::default().with_results(results)
}
