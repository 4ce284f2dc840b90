//! The operator's view of transactions and producers: ListTransactions,
//! DescribeTransactions and DescribeProducers.

use std::collections::BTreeMap;

use regex::Regex;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::*;

use super::Session;
use super::{allowed, str_bytes};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::txn::state::{TxnMetadata, TxnState};

fn may_describe(broker: &Broker, session: &Session, id: &str) -> bool {
    allowed(
        broker,
        session,
        Operation::Describe,
        ResourceType::TransactionalId,
        id,
    )
}

/// v2 filters transactional ids by a regular expression (KIP-1152).
const FIRST_VERSION_WITH_PATTERN: i16 = 2;

/// ListTransactions' pattern, whole-id match as Kafka's re2j `matches()`; None: no filter.
fn id_pattern(pattern: Option<&str>) -> Result<Option<Regex>, BrokerError> {
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    Regex::new(&format!("^(?:{pattern})$"))
        .map(Some)
        .map_err(|err| {
            BrokerError::InvalidRegularExpression(format!(
                "Transaction ID pattern `{pattern}` is not a valid regular expression: {err}."
            ))
        })
}

pub fn list(
    broker: &Broker,
    session: &Session,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let pattern = match version >= FIRST_VERSION_WITH_PATTERN {
        true => req.transactional_id_pattern.as_deref(),
        false => None,
    };
    let pattern = match id_pattern(pattern) {
        Ok(pattern) => pattern,
        Err(err) => return ListTransactionsResponse::default().with_error_code(err.code()),
    };
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => unknown.push(name.clone()),
        }
    }
    let listing = match broker.txns.list() {
        Ok(listing) => listing,
        Err(err) => return ListTransactionsResponse::default().with_error_code(err.code()),
    };
    let now = now_ms();
    // Kafka's filters: every one given must match; the duration one keeps transactions
    // running longer than it (an idle id's start of -1 makes it pass).
    let keep = |m: &TxnMetadata| {
        m.state != TxnState::Dead
            && (states.is_empty() || states.contains(&m.state))
            && (req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
            && (req.duration_filter < 0 || now - m.start_ms > req.duration_filter)
    };
    let named = |id: &str| pattern.as_ref().is_none_or(|p| p.is_match(id));
    let mut listed: Vec<ListedTransaction> = listing
        .into_iter()
        .filter(|(id, m)| keep(m) && named(id) && may_describe(broker, session, id))
        .map(|(id, m)| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    listed.sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let found = if may_describe(broker, session, &id.0) {
                broker.txns.describe(&id.0)
            } else {
                Err(AuthError::TransactionalIdDenied.into())
            };
            let base = TransactionState::default().with_transactional_id(id);
            match found {
                Ok(m) => {
                    // Only the topics the caller may describe, as Kafka.
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (topic, partition) in &m.partitions {
                        if allowed(
                            broker,
                            session,
                            Operation::Describe,
                            ResourceType::Topic,
                            topic,
                        ) {
                            topics.entry(topic).or_default().push(*partition);
                        }
                    }
                    let topics = topics
                        .into_iter()
                        .map(|(t, p)| {
                            TopicData::default()
                                .with_topic(TopicName(str_bytes(t)))
                                .with_partitions(p)
                        })
                        .collect();
                    base.with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
                Err(err) => base.with_error_code(err.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn describe_producers(
    broker: &Broker,
    session: &Session,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.0.to_string();
            let may_read = allowed(broker, session, Operation::Read, ResourceType::Topic, &name);
            // Kafka explains a topic it does not know at all, but not a missing partition.
            let unknown_topic = may_read && broker.topics.get(&name).is_none();
            let partitions = wanted
                .partition_indexes
                .iter()
                .map(|&index| {
                    let producers = if may_read {
                        broker
                            .topics
                            .partition(&name, index)
                            .and_then(|p| p.producers())
                    } else {
                        Err(AuthError::TopicDenied.into())
                    };
                    let answer = partition_producers(index, producers);
                    if unknown_topic {
                        answer.with_error_message(Some(str_bytes(
                            "This server does not host this topic-partition.",
                        )))
                    } else {
                        answer
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn partition_producers(
    index: i32,
    producers: Result<Vec<samsa_storage::ProducerInfo>, BrokerError>,
) -> PartitionResponse {
    let base = PartitionResponse::default().with_partition_index(index);
    match producers {
        Ok(producers) => base.with_active_producers(
            producers
                .into_iter()
                .map(|p| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(p.producer_id))
                        .with_producer_epoch(i32::from(p.producer_epoch))
                        .with_last_sequence(p.last_sequence)
                        .with_last_timestamp(p.last_timestamp)
                        .with_coordinator_epoch(p.coordinator_epoch)
                        .with_current_txn_start_offset(p.current_txn_start_offset)
                })
                .collect(),
        ),
        Err(err) => base.with_error_code(err.code()),
    }
}
