//! Partitions joining a transaction.version 2 transaction (KIP-890 part 2): the producer no
//! longer sends AddPartitionsToTxn; the leader of a partition it writes to (or of the group's
//! offsets partition it commits to) asks the producer's coordinator to add the partition,
//! as Kafka's `AddPartitionsToTxnManager` does with `verify_only` false. A leader that does
//! not coordinate the id sends AddPartitionsToTxn v5 to the broker leading the id's
//! `__transaction_state` partition; [`super::TransactionCoordinator::add_implicitly`] adds
//! them itself when it does.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;

use super::cluster_markers::{destination, Destination};
use super::log::TRANSACTION_STATE_TOPIC;
use super::markers::TopicPartition;
use crate::error::{BrokerError, Result};
use crate::peer::PeerPool;

/// The batched, broker-to-broker form whose `verify_only` false adds (KIP-890 part 2).
const ADD_PARTITIONS_VERSION: i16 = 5;

pub struct ClusterAdds {
    local: i32,
    /// Where each `__transaction_state` partition's leader is.
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// How long to wait for the coordinator's answer (Kafka's `request.timeout.ms`).
    request_timeout: Duration,
    peers: PeerPool,
}

impl ClusterAdds {
    pub fn new(
        local: i32,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
        request_timeout: Duration,
    ) -> ClusterAdds {
        ClusterAdds {
            local,
            metadata,
            request_timeout,
            peers: PeerPool::new(format!("samsa-txn-adds-{local}")),
        }
    }

    /// Asks the coordinator of `id` (the leader of `__transaction_state` partition
    /// `txn_partition`) to add `partitions` to the producer's transaction. Its refusal comes
    /// back as it answered; an unreachable coordinator is NETWORK_EXCEPTION, one the metadata
    /// names nowhere COORDINATOR_NOT_AVAILABLE, and this broker (whose partition is not
    /// loaded yet) NOT_COORDINATOR, as Kafka's leader would hear them.
    pub async fn add(
        &self,
        txn_partition: i32,
        id: &str,
        (producer_id, epoch): (i64, i16),
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let metadata = self.metadata.borrow().clone();
        let coordinator = (TRANSACTION_STATE_TOPIC.to_owned(), txn_partition);
        let addr = match destination(&metadata, self.local, &coordinator) {
            Destination::Broker { addr, .. } => addr,
            Destination::Here => return Err(BrokerError::NotCoordinator),
            Destination::Unknown | Destination::Gone => {
                return Err(BrokerError::CoordinatorNotAvailable)
            }
        };
        let request = request(id, producer_id, epoch, partitions);
        match self
            .peers
            .send(
                &addr,
                &request,
                ADD_PARTITIONS_VERSION,
                self.request_timeout,
            )
            .await
        {
            Ok(response) => refusal(&response).map_or(Ok(()), |e| Err(BrokerError::Peer(e))),
            Err(err) => {
                tracing::info!(
                    transactional_id = id,
                    "cannot reach the transaction coordinator: {err}"
                );
                Err(BrokerError::Peer(ResponseError::NetworkException))
            }
        }
    }
}

fn request(
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[TopicPartition],
) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (topic, index) in partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(*index),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*index]),
            ),
        }
    }
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_owned())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(false)
        .with_topics(topics);
    AddPartitionsToTxnRequest::default().with_transactions(vec![transaction])
}

/// The coordinator's refusal, if any: the top-level code, else the first partition's.
fn refusal(response: &AddPartitionsToTxnResponse) -> Option<ResponseError> {
    let codes = std::iter::once(response.error_code).chain(
        response
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code),
    );
    codes
        .filter(|code| *code != 0)
        .map(|code| ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
        .next()
}
