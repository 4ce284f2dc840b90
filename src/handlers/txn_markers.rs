//! WriteTxnMarkers: a transaction coordinator (another broker) has the commit or abort
//! markers of transactions appended to partitions this broker leads, each answered once the
//! partition's in-sync replicas hold it (see [`crate::txn::markers::append_marker`]).

use std::time::Duration;

use futures_util::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use tokio::time::Instant;

use super::allowed_on_cluster;
use super::Session;
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::txn::markers::{append_marker, Marker};

/// ALTER on the cluster, or else CLUSTER_ACTION, as Kafka 4 asks; every partition of a
/// refused request answers CLUSTER_AUTHORIZATION_FAILED. The markers are written side by
/// side. As in Kafka, markers of one producer id share one result.
pub async fn write(
    broker: &Broker,
    session: &Session,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let may = allowed_on_cluster(broker, session, Operation::Alter)
        || allowed_on_cluster(broker, session, Operation::ClusterAction);
    let deadline = Instant::now() + Duration::from_millis(broker.config.request_timeout_ms);
    let appends = req.markers.iter().map(|m| {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
            transaction_version: i16::from(m.transaction_version),
        };
        let partitions = m.topics.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (&t.name, *p)));
        join_all(partitions.map(move |(topic, index)| async move {
            let written = match may {
                true => append_marker(&broker.topics, &broker.groups, marker, (topic, index), deadline).await,
                false => Err(AuthError::ClusterDenied.into()),
            };
            if let Err(err) = &written {
                tracing::debug!(topic = %topic.0, partition = index, producer_id = marker.producer_id, "transaction marker refused: {err}");
            }
            (topic, index, written.err().map_or(0, |err: BrokerError| err.code()))
        }))
    });
    let answered = join_all(appends).await;
    let mut results: Vec<WritableTxnMarkerResult> = Vec::new();
    for (m, partitions) in req.markers.iter().zip(answered) {
        let at = match results.iter().position(|r| r.producer_id == m.producer_id) {
            Some(at) => at,
            None => {
                results.push(
                    WritableTxnMarkerResult::default()
                        .with_producer_id(ProducerId(m.producer_id.0)),
                );
                results.len() - 1
            }
        };
        for (topic, index, code) in partitions {
            add_result(&mut results[at].topics, topic, index, code);
        }
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}

fn add_result(
    topics: &mut Vec<WritableTxnMarkerTopicResult>,
    topic: &TopicName,
    index: i32,
    code: i16,
) {
    let at = match topics.iter().position(|t| &t.name == topic) {
        Some(at) => at,
        None => {
            topics.push(WritableTxnMarkerTopicResult::default().with_name(topic.clone()));
            topics.len() - 1
        }
    };
    let partitions = &mut topics[at].partitions;
    // The same partition twice: Kafka keeps the last answer.
    partitions.retain(|p| p.partition_index != index);
    partitions.push(
        WritableTxnMarkerPartitionResult::default()
            .with_partition_index(index)
            .with_error_code(code),
    );
}
