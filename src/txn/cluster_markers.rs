//! A cluster's transaction markers: each goes to the current leader of its partition, appended
//! here when this broker leads it, sent with WriteTxnMarkers otherwise. As Kafka's
//! `TransactionMarkerChannelManager` does, a marker refused for a reason that passes (the
//! leader moved, too few in-sync replicas, a timeout, a broker unreachable) is sent again to
//! whichever broker leads the partition then, until it is written; a partition is given up on
//! only when its topic is deleted, and the whole transaction when this broker stops
//! coordinating it or a partition says a newer coordinator (or producer epoch) wrote there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;
use tokio::time::Instant;

use super::markers::{append_marker, Marker, MarkerWriter, StillCoordinating};
use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;
use crate::network::client::{ClientError, PeerConnection};
use crate::topics::TopicRegistry;

/// The only version the `kafka-protocol` crate encodes; Kafka 4 serves it.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// Between two rounds of sending what is still unwritten (Kafka's `retry.backoff.ms`).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How much longer than the receiver's own wait for its replicas the sender waits for an
/// answer, so that a slow replication is answered rather than timed out here.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

type TopicPartition = (String, i32);

/// Where a partition's marker goes now.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    Here,
    Broker { id: i32, addr: String },
    /// No leader, or one not registered: wait for the metadata to name one.
    Unknown,
    /// The topic (or partition) is deleted: there is nothing to end.
    Gone,
}

/// What a partition's answer means for its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    Retry,
    /// A newer coordinator, or a newer epoch of the producer, wrote to the partition.
    Fenced,
}

pub struct ClusterMarkers {
    local: i32,
    topics: Arc<TopicRegistry>,
    /// The metadata this broker has published: where each partition's leader is.
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// How long a leader waits for its in-sync replicas (Kafka's `request.timeout.ms`).
    request_timeout: Duration,
    /// Connections to other brokers not in use, each to its own address.
    idle: Mutex<Vec<PeerConnection>>,
    shutdown: watch::Receiver<bool>,
}

impl ClusterMarkers {
    pub fn new(
        local: i32,
        topics: Arc<TopicRegistry>,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
        request_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> ClusterMarkers {
        ClusterMarkers {
            local,
            topics,
            metadata,
            request_timeout,
            idle: Mutex::new(Vec::new()),
            shutdown,
        }
    }

    async fn write_all(
        &self,
        groups: &GroupCoordinator,
        marker: Marker,
        partitions: &[TopicPartition],
        coordinating: StillCoordinating<'_>,
    ) -> Result<()> {
        let mut unwritten = partitions.to_vec();
        let mut shutdown = self.shutdown.clone();
        loop {
            if !coordinating() || *shutdown.borrow() {
                tracing::info!(producer_id = marker.producer_id, "no longer coordinating; the transaction is left to the next coordinator");
                return Err(BrokerError::NotCoordinator);
            }
            let metadata = self.metadata.borrow().clone();
            let mut here = Vec::new();
            let mut remote: BTreeMap<(i32, String), Vec<TopicPartition>> = BTreeMap::new();
            let mut retry = Vec::new();
            for partition in unwritten {
                match destination(&metadata, self.local, &partition) {
                    Destination::Here => here.push(partition),
                    Destination::Broker { id, addr } => remote.entry((id, addr)).or_default().push(partition),
                    Destination::Unknown => retry.push(partition),
                    Destination::Gone => {
                        tracing::warn!(topic = partition.0, partition = partition.1, "no marker written: the partition no longer exists")
                    }
                }
            }
            let sends = remote.into_iter().map(|((id, addr), partitions)| self.send(id, addr, marker, partitions));
            let (written_here, sent) = futures_util::future::join(self.append_here(groups, marker, here), join_all(sends)).await;
            for (partition, outcome) in written_here.into_iter().chain(sent.into_iter().flatten()) {
                match outcome {
                    Outcome::Written => {}
                    Outcome::Retry => retry.push(partition),
                    Outcome::Fenced => {
                        tracing::info!(
                            topic = partition.0,
                            partition = partition.1,
                            producer_id = marker.producer_id,
                            "a newer coordinator or producer epoch wrote to the partition; this coordinator stops ending the transaction"
                        );
                        return Err(BrokerError::NotCoordinator);
                    }
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            unwritten = retry;
            tokio::select! {
                _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The markers of the partitions this broker leads, appended side by side.
    async fn append_here(&self, groups: &GroupCoordinator, marker: Marker, partitions: Vec<TopicPartition>) -> Vec<(TopicPartition, Outcome)> {
        let deadline = Instant::now() + self.request_timeout;
        let appends = partitions.into_iter().map(|partition| async move {
            let appended = append_marker(&self.topics, groups, marker, (&partition.0, partition.1), deadline).await;
            let outcome = match appended {
                Ok(()) => Outcome::Written,
                Err(err) => outcome_of(&partition, Some(err.response_error())),
            };
            (partition, outcome)
        });
        join_all(appends).await
    }

    /// WriteTxnMarkers to broker `id` at `addr`, for `partitions` it leads.
    async fn send(&self, id: i32, addr: String, marker: Marker, partitions: Vec<TopicPartition>) -> Vec<(TopicPartition, Outcome)> {
        let request = request(marker, &partitions);
        let answered = self.exchange(&addr, &request).await;
        let codes = match answered {
            Ok(response) => answered_codes(&response),
            Err(err) => {
                tracing::warn!(broker = id, "cannot send transaction markers: {err}; retrying");
                BTreeMap::new()
            }
        };
        partitions
            .into_iter()
            .map(|partition| {
                // Unanswered (the request failed, or the answer left it out): send it again.
                let outcome = match codes.get(&partition) {
                    Some(&code) => outcome_of(&partition, ResponseError::try_from_code(code)),
                    None => Outcome::Retry,
                };
                (partition, outcome)
            })
            .collect()
    }

    /// One request on an idle connection to `addr` (or a new one), kept for the next
    /// request if it worked.
    async fn exchange(&self, addr: &str, request: &WriteTxnMarkersRequest) -> Result<WriteTxnMarkersResponse, ClientError> {
        let idle = {
            let mut idle = self.idle.lock();
            idle.iter().position(|c| c.addr() == addr).map(|i| idle.swap_remove(i))
        };
        let timeout = self.request_timeout + ANSWER_MARGIN;
        let mut connection = match idle {
            Some(connection) => connection,
            None => PeerConnection::connect(addr, &format!("samsa-txn-markers-{}", self.local), timeout).await?,
        };
        let response = connection.send(request, WRITE_TXN_MARKERS_VERSION, timeout).await?;
        self.idle.lock().push(connection);
        Ok(response)
    }
}

impl MarkerWriter for ClusterMarkers {
    fn write_markers<'a>(
        &'a self,
        groups: &'a GroupCoordinator,
        marker: Marker,
        partitions: &'a [(String, i32)],
        coordinating: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.write_all(groups, marker, partitions, coordinating))
    }
}

fn destination(metadata: &ClusterMetadata, local: i32, (topic, index): &TopicPartition) -> Destination {
    let record = metadata
        .topics
        .get(topic)
        .and_then(|t| usize::try_from(*index).ok().and_then(|i| t.partitions.get(i)));
    let Some(record) = record else { return Destination::Gone };
    if record.leader == local {
        return Destination::Here;
    }
    match metadata.brokers.get(&record.leader) {
        Some(broker) => Destination::Broker {
            id: broker.id,
            addr: format!("{}:{}", broker.host, broker.port),
        },
        None => Destination::Unknown,
    }
}

/// Kafka's reading of a marker's answer (TransactionMarkerRequestCompletionHandler): the
/// producer or coordinator epoch moved on, so this end is someone else's now; a message
/// format or version the partition cannot take means the producer never wrote there either,
/// so there is nothing to end; anything else is sent again.
fn outcome_of((topic, partition): &TopicPartition, error: Option<ResponseError>) -> Outcome {
    use ResponseError as E;
    match error {
        None => Outcome::Written,
        Some(E::InvalidProducerEpoch | E::TransactionCoordinatorFenced) => Outcome::Fenced,
        Some(E::UnsupportedForMessageFormat | E::UnsupportedVersion) => Outcome::Written,
        Some(
            error @ (E::UnknownTopicOrPartition
            | E::NotLeaderOrFollower
            | E::NotEnoughReplicas
            | E::NotEnoughReplicasAfterAppend
            | E::RequestTimedOut
            | E::KafkaStorageError
            | E::CoordinatorLoadInProgress),
        ) => {
            tracing::info!(topic, partition, "transaction marker not written ({error:?}); retrying");
            Outcome::Retry
        }
        // Kafka takes these for a bug; retrying lets an operator fix, say, a missing ACL.
        Some(error) => {
            tracing::error!(topic, partition, "transaction marker refused with {error:?}; retrying");
            Outcome::Retry
        }
    }
}

fn request(marker: Marker, partitions: &[TopicPartition]) -> WriteTxnMarkersRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        by_topic.entry(topic).or_default().push(*index);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics);
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

/// Each partition's error code in an answer.
fn answered_codes(response: &WriteTxnMarkersResponse) -> BTreeMap<TopicPartition, i16> {
    response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| t.partitions.iter().map(|p| ((t.name.to_string(), p.partition_index), p.error_code)))
        .collect()
}

#[cfg(test)]
mod tests;
