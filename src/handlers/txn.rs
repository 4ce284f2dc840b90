//! The producer's transaction APIs: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and
//! EndTxn, over [`crate::txn::TransactionCoordinator`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use super::{allowed, allowed_on_cluster};
use super::{partition_codes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::store::OFFSETS_TOPIC;
use crate::txn::state::{NO_PRODUCER_ID, TV_EPOCH_BUMP};
use crate::txn::TxnError;

/// The first version of each API whose clients know PRODUCER_FENCED (KIP-588); older ones
/// get INVALID_PRODUCER_EPOCH, which they handle the same way.
const INIT_FIRST_WITH_FENCED: i16 = 4;
const ADD_FIRST_WITH_FENCED: i16 = 2;
const END_FIRST_WITH_FENCED: i16 = 2;
/// AddPartitionsToTxn v4 is the batched form brokers send to verify partitions, or (with
/// `verify_only` false) to add them for a transaction.version 2 producer.
const ADD_FIRST_BATCHED: i16 = 4;
/// EndTxn v5 is a transaction.version 2 producer's: the end bumps its epoch (KIP-890).
const END_FIRST_BUMPING: i16 = 5;

/// The error code for `err` at a version whose clients may not know PRODUCER_FENCED.
fn code(err: &BrokerError, version: i16, first_with_fenced: i16) -> i16 {
    match err {
        BrokerError::Txn(TxnError::ProducerFenced) if version < first_with_fenced => {
            ResponseError::InvalidProducerEpoch.code()
        }
        other => other.code(),
    }
}

fn may_write_txn(broker: &Broker, session: &Session, id: &str) -> bool {
    allowed(
        broker,
        session,
        Operation::Write,
        ResourceType::TransactionalId,
        id,
    )
}

pub async fn init_producer_id(
    broker: &Broker,
    session: &Session,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if broker.txns.wants_producer_ids() {
        match broker.cluster.reserve_producer_ids().await {
            Ok((first, count)) => broker.txns.add_producer_ids(first, count),
            // Allocation answers COORDINATOR_LOAD_IN_PROGRESS if no block is left.
            Err(err) => tracing::warn!("cannot reserve producer ids: {err}"),
        }
    }
    let expected =
        (req.producer_id.0 != NO_PRODUCER_ID).then_some((req.producer_id.0, req.producer_epoch));
    let result = match req.transactional_id.as_ref().map(|id| id.0.as_str()) {
        None => {
            // Kafka: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
            let (principal, host) = (&session.principal, session.host.as_str());
            let may = allowed_on_cluster(broker, session, Operation::IdempotentWrite)
                || broker.authorizer.authorize_any(
                    principal,
                    host,
                    Operation::Write,
                    ResourceType::Topic,
                );
            if !may {
                Err(AuthError::ClusterDenied.into())
            } else if expected.is_some() {
                Err(BrokerError::InvalidRequest(
                    "an idempotent producer cannot name a producer id".into(),
                ))
            } else {
                broker.txns.new_producer_id().map(|id| (id, 0))
            }
        }
        Some("") => Err(BrokerError::InvalidRequest("empty transactional id".into())),
        Some(id) if !may_write_txn(broker, session, id) => {
            Err(AuthError::TransactionalIdDenied.into())
        }
        Some(id) => {
            broker
                .txns
                .init_producer_id(id, req.transaction_timeout_ms, expected, &broker.groups)
                .await
        }
    };
    match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(err) => InitProducerIdResponse::default()
            .with_error_code(code(&err, version, INIT_FIRST_WITH_FENCED))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn add_partitions(
    broker: &Broker,
    session: &Session,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < ADD_FIRST_BATCHED {
        let results = add_one(
            broker,
            session,
            &req.v3_and_below_transactional_id.0,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // Only brokers send the batched form.
    if !allowed_on_cluster(broker, session, Operation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(BrokerError::from(AuthError::ClusterDenied).code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in req.transactions {
        let topics = add_one(
            broker,
            session,
            &txn.transactional_id.0,
            txn.producer_id.0,
            txn.producer_epoch,
            &txn.topics,
            txn.verify_only,
            version,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id)
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction's partitions: added, or (`verify_only`) checked to be in it.
#[allow(clippy::too_many_arguments)]
async fn add_one(
    broker: &Broker,
    session: &Session,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let codes: Vec<i16> = if !verify_only && !may_write_txn(broker, session, id) {
        vec![BrokerError::from(AuthError::TransactionalIdDenied).code(); wanted.len()]
    } else if verify_only {
        match broker
            .txns
            .verify_partitions(id, producer_id, epoch, &wanted)
        {
            Ok(found) => found
                .into_iter()
                .map(|f| {
                    if f {
                        0
                    } else {
                        ResponseError::TransactionAbortable.code()
                    }
                })
                .collect(),
            Err(err) => vec![code(&err, version, ADD_FIRST_WITH_FENCED); wanted.len()],
        }
    } else {
        let refused: Vec<Option<BrokerError>> = wanted
            .iter()
            .map(|(topic, partition)| partition_refusal(broker, session, topic, *partition))
            .collect();
        if refused.iter().any(Option::is_some) {
            // Kafka adds none of them, and says which ones were the reason.
            let not_attempted = ResponseError::OperationNotAttempted.code();
            refused
                .iter()
                .map(|r| r.as_ref().map_or(not_attempted, BrokerError::code))
                .collect()
        } else {
            // Kafka's transaction version of the request: the batched form is 2.
            let client_tv = if version >= ADD_FIRST_BATCHED {
                TV_EPOCH_BUMP
            } else {
                0
            };
            match broker
                .txns
                .add_partitions(id, producer_id, epoch, &wanted, client_tv)
                .await
            {
                Ok(()) => vec![0; wanted.len()],
                Err(err) => vec![code(&err, version, ADD_FIRST_WITH_FENCED); wanted.len()],
            }
        }
    };
    let mut codes = codes.into_iter();
    let asked = topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions.iter().copied()));
    partition_codes::answer(asked, |_, _| codes.next().unwrap_or_default())
}

/// Why a partition cannot join a transaction, if it cannot.
fn partition_refusal(
    broker: &Broker,
    session: &Session,
    topic: &str,
    partition: i32,
) -> Option<BrokerError> {
    if !allowed(
        broker,
        session,
        Operation::Write,
        ResourceType::Topic,
        topic,
    ) {
        return Some(AuthError::TopicDenied.into());
    }
    match broker.txns.partition_exists(topic, partition) {
        true => None,
        false => Some(BrokerError::UnknownTopicOrPartition),
    }
}

pub async fn add_offsets(
    broker: &Broker,
    session: &Session,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let result = if !may_write_txn(broker, session, id) {
        Err(AuthError::TransactionalIdDenied.into())
    } else if !allowed(broker, session, Operation::Read, ResourceType::Group, group) {
        Err(AuthError::GroupDenied.into())
    } else {
        let offsets_partition = broker.groups.partition_of(group);
        broker
            .txns
            .add_partitions(
                id,
                req.producer_id.0,
                req.producer_epoch,
                &[(OFFSETS_TOPIC.to_owned(), offsets_partition)],
                0,
            )
            .await
    };
    let error = result
        .err()
        .map_or(0, |err| code(&err, version, ADD_FIRST_WITH_FENCED));
    AddOffsetsToTxnResponse::default().with_error_code(error)
}

pub async fn end(
    broker: &Broker,
    session: &Session,
    req: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let id = req.transactional_id.0.as_str();
    let client_tv = if version >= END_FIRST_BUMPING {
        TV_EPOCH_BUMP
    } else {
        0
    };
    let result = if may_write_txn(broker, session, id) {
        broker
            .txns
            .end_txn(
                id,
                (req.producer_id.0, req.producer_epoch),
                req.committed,
                client_tv,
                &broker.groups,
            )
            .await
    } else {
        Err(AuthError::TransactionalIdDenied.into())
    };
    match result {
        Ok((producer_id, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(err) => EndTxnResponse::default()
            .with_error_code(code(&err, version, END_FIRST_WITH_FENCED))
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(-1),
    }
}
