//! Transaction markers: each goes to the current leader of its partition, appended here when
//! this broker leads it (always, on a single node), sent with WriteTxnMarkers otherwise.
//! Written in rounds by [`write_until_done`]: a marker refused for a reason that passes
//! (the leader moved, too few in-sync replicas, a timeout, a broker unreachable) is sent again
//! to whichever broker leads the partition then, until it is written; a partition is given up
//! on only when its topic is deleted, and the whole transaction when this broker stops
//! coordinating it or a partition says a newer coordinator (or producer epoch) wrote there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;
use tokio::time::Instant;

use super::markers::{
    append_each, outcome_of, write_until_done, Marker, MarkerWriter, Outcome, StillCoordinating,
    TopicPartition,
};
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::peer::PeerPool;
use crate::topics::TopicRegistry;

/// v2 carries the transaction.version of each marker (KIP-890); Kafka 4 serves it.
const WRITE_TXN_MARKERS_VERSION: i16 = 2;
/// How much longer than the receiver's own wait for its replicas the sender waits for an
/// answer, so that a slow replication is answered rather than timed out here.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// Where a partition's marker goes now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Destination {
    Here,
    Broker {
        id: i32,
        addr: String,
    },
    /// No leader, or one not registered: wait for the metadata to name one.
    Unknown,
    /// The topic (or partition) is deleted: there is nothing to end.
    Gone,
}

pub struct ClusterMarkers {
    local: i32,
    topics: Arc<TopicRegistry>,
    /// The metadata this broker has published: where each partition's leader is.
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// How long a leader waits for its in-sync replicas (Kafka's `request.timeout.ms`).
    request_timeout: Duration,
    peers: PeerPool,
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
            peers: PeerPool::new(format!("samsa-txn-markers-{local}")),
            shutdown,
        }
    }

    /// One round: each unwritten partition's marker to where its leader is now.
    async fn attempt(
        &self,
        groups: &GroupCoordinator,
        marker: Marker,
        unwritten: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Outcome)> {
        let metadata = self.metadata.borrow().clone();
        let mut here = Vec::new();
        let mut remote: BTreeMap<(i32, String), Vec<TopicPartition>> = BTreeMap::new();
        let mut outcomes = Vec::new();
        for partition in unwritten {
            match destination(&metadata, self.local, &partition) {
                Destination::Here => here.push(partition),
                Destination::Broker { id, addr } => {
                    remote.entry((id, addr)).or_default().push(partition)
                }
                Destination::Unknown => outcomes.push((partition, Outcome::Retry)),
                Destination::Gone => outcomes.push((partition, Outcome::Gone)),
            }
        }
        let deadline = Instant::now() + self.request_timeout;
        let sends = remote
            .into_iter()
            .map(|((id, addr), partitions)| self.send(id, addr, marker, partitions));
        let appends = append_each(&self.topics, groups, marker, here, deadline);
        let (written_here, sent) = futures_util::future::join(appends, join_all(sends)).await;
        outcomes.extend(written_here.into_iter().chain(sent.into_iter().flatten()));
        outcomes
    }

    /// WriteTxnMarkers to broker `id` at `addr`, for `partitions` it leads.
    async fn send(
        &self,
        id: i32,
        addr: String,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Outcome)> {
        let request = request(marker, &partitions);
        let timeout = self.request_timeout + ANSWER_MARGIN;
        let answered = self
            .peers
            .send(&addr, &request, WRITE_TXN_MARKERS_VERSION, timeout)
            .await;
        let codes = match answered {
            Ok(response) => answered_codes(&response),
            Err(err) => {
                tracing::warn!(
                    broker = id,
                    "cannot send transaction markers: {err}; retrying"
                );
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
}

impl MarkerWriter for ClusterMarkers {
    fn write_markers<'a>(
        &'a self,
        groups: &'a GroupCoordinator,
        marker: Marker,
        partitions: &'a [(String, i32)],
        coordinating: StillCoordinating<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(write_until_done(
            marker,
            partitions,
            coordinating,
            &self.shutdown,
            move |unwritten| self.attempt(groups, marker, unwritten),
        ))
    }
}

pub(super) fn destination(
    metadata: &ClusterMetadata,
    local: i32,
    (topic, index): &TopicPartition,
) -> Destination {
    let record = metadata.topics.get(topic).and_then(|t| {
        usize::try_from(*index)
            .ok()
            .and_then(|i| t.partitions.get(i))
    });
    let Some(record) = record else {
        return Destination::Gone;
    };
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
        .with_transaction_version(marker.transaction_version as i8)
        .with_topics(topics);
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

/// Each partition's error code in an answer.
fn answered_codes(response: &WriteTxnMarkersResponse) -> BTreeMap<TopicPartition, i16> {
    response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.name.to_string(), p.partition_index), p.error_code))
        })
        .collect()
}

#[cfg(test)]
mod tests;
