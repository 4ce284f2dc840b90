//! `__transaction_state` records in Kafka's own format, as Kafka 4.4's `TransactionLog`
//! writes them, so Kafka's `TransactionLogMessageFormatter` reads them.
//!
//! - Key: `i16` record type 0, then `TransactionLogKey` version 0: the transactional id as a
//!   string (`i16` length, UTF-8).
//! - Value: `i16` version, then `TransactionLogValue`. Kafka writes version 1 (flexible)
//!   when the cluster's transaction.version is at least 1, as samsa's is: `i64` producer id,
//!   `i16` producer epoch, `i32` timeout, `i8` state (Kafka's `TransactionState` ids), the
//!   partitions as a compact nullable array of (compact string topic, compact `[]i32`
//!   partitions, tagged fields) (null in Empty), `i64` last update and start timestamps,
//!   then tagged fields: 0 previous producer id, 1 next producer id, 2 client
//!   transaction.version, 3 next producer epoch, each written only when not its default.
//!   Version 0 has the same fields, non-flexible, and no tags; both are read.
//! - A null value is a tombstone: the id expired.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::state::{TxnMetadata, TxnState, NO_EPOCH, NO_PRODUCER_ID};
use crate::topics::schema::{FieldReader, FieldWriter, SchemaError};

/// The record type of `TransactionLogKey`.
pub const TRANSACTION_LOG: i16 = 0;
const VALUE_VERSION: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;
const TAG_NEXT_PRODUCER_EPOCH: u32 = 3;

/// One `TransactionLogValue`, field for field (partitions in the record's order).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub next_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: i8,
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    pub client_transaction_version: i16,
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut w = FieldWriter::prefixed(TRANSACTION_LOG, false);
    w.string(transactional_id);
    w.finish()
}

/// The transactional id of a key, or why it is not one (another record type, or samsa's
/// earlier key: type 1 and the id's raw bytes).
pub fn decode_key(bytes: &Bytes) -> Result<String, SchemaError> {
    let (kind, rest) = FieldReader::prefixed(bytes)?;
    if kind != TRANSACTION_LOG {
        return Err(format!("unknown record type {kind}"));
    }
    let mut r = FieldReader::new(rest, false);
    let id = r.string("transactional id")?;
    r.finish("key")?;
    Ok(id)
}

pub fn encode_value(v: &TxnLogValue) -> Bytes {
    let mut w = FieldWriter::prefixed(VALUE_VERSION, true);
    w.i64(v.producer_id);
    w.i16(v.producer_epoch);
    w.i32(v.timeout_ms);
    w.i8(v.state);
    w.array_len(v.partitions.as_ref().map(Vec::len));
    for (topic, partitions) in v.partitions.iter().flatten() {
        w.string(topic);
        w.array_len(Some(partitions.len()));
        partitions.iter().for_each(|p| w.i32(*p));
        w.tagged_fields(&[]);
    }
    w.i64(v.last_update_ms);
    w.i64(v.start_ms);
    let mut tags = Vec::new();
    let mut tag = |tag: u32, write: &dyn Fn(&mut FieldWriter)| {
        let mut body = FieldWriter::tag_body();
        write(&mut body);
        tags.push((tag, body.finish()));
    };
    if v.previous_producer_id != NO_PRODUCER_ID {
        tag(TAG_PREVIOUS_PRODUCER_ID, &|b| b.i64(v.previous_producer_id));
    }
    if v.next_producer_id != NO_PRODUCER_ID {
        tag(TAG_NEXT_PRODUCER_ID, &|b| b.i64(v.next_producer_id));
    }
    if v.client_transaction_version != 0 {
        tag(TAG_CLIENT_TRANSACTION_VERSION, &|b| {
            b.i16(v.client_transaction_version)
        });
    }
    if v.next_producer_epoch != NO_EPOCH {
        tag(TAG_NEXT_PRODUCER_EPOCH, &|b| b.i16(v.next_producer_epoch));
    }
    w.tagged_fields(&tags);
    w.finish()
}

pub fn decode_value(bytes: &Bytes) -> Result<TxnLogValue, SchemaError> {
    let (version, rest) = FieldReader::prefixed(bytes)?;
    if !(0..=1).contains(&version) {
        return Err(format!("unknown TransactionLogValue version {version}"));
    }
    let mut r = FieldReader::new(rest, version >= 1);
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let timeout_ms = r.i32("transaction timeout")?;
    let state = r.i8("transaction status")?;
    let partitions = match r.array_len("transaction partitions")? {
        None => None,
        Some(n) => {
            let mut topics = Vec::with_capacity(n);
            for _ in 0..n {
                let topic = r.string("topic")?;
                let count = r.array_len("partition ids")?.unwrap_or(0);
                let ids = (0..count)
                    .map(|_| r.i32("partition id"))
                    .collect::<Result<Vec<_>, _>>()?;
                r.tagged_fields()?;
                topics.push((topic, ids));
            }
            Some(topics)
        }
    };
    let mut value = TxnLogValue {
        producer_id,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch,
        next_producer_epoch: NO_EPOCH,
        timeout_ms,
        state,
        partitions,
        last_update_ms: r.i64("last update timestamp")?,
        start_ms: r.i64("start timestamp")?,
        client_transaction_version: 0,
    };
    for (tag, body) in r.tagged_fields()? {
        let mut b = FieldReader::new(body, false);
        match tag {
            TAG_PREVIOUS_PRODUCER_ID => {
                value.previous_producer_id = b.i64("previous producer id")?
            }
            TAG_NEXT_PRODUCER_ID => value.next_producer_id = b.i64("next producer id")?,
            TAG_CLIENT_TRANSACTION_VERSION => {
                value.client_transaction_version = b.i16("client transaction version")?
            }
            TAG_NEXT_PRODUCER_EPOCH => value.next_producer_epoch = b.i16("next producer epoch")?,
            _ => {}
        }
    }
    r.finish("TransactionLogValue")?;
    Ok(value)
}

/// Kafka's `TransactionState` ids.
fn state_id(state: TxnState) -> i8 {
    match state {
        TxnState::Empty => 0,
        TxnState::Ongoing => 1,
        TxnState::PrepareCommit => 2,
        TxnState::PrepareAbort => 3,
        TxnState::CompleteCommit => 4,
        TxnState::CompleteAbort => 5,
        TxnState::Dead => 6,
        TxnState::PrepareEpochFence => 7,
    }
}

fn state_of(id: i8) -> Option<TxnState> {
    TxnState::ALL.into_iter().find(|s| state_id(*s) == id)
}

/// The record of `m`, as Kafka's coordinator writes it: the partitions are null in Empty,
/// the previous producer id is the one before the last epoch bump, the next producer id the
/// one a transaction.version 2 end whose epoch is spent moves to, and the client's
/// transaction.version is that of the requests that made the state. The last epoch is not
/// kept, as in Kafka: a reloaded coordinator recognises no retried InitProducerId.
pub fn value_of(m: &TxnMetadata) -> TxnLogValue {
    let partitions = (m.state != TxnState::Empty).then(|| {
        let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, partition) in &m.partitions {
            match topics.last_mut() {
                Some((last, ids)) if last == topic => ids.push(*partition),
                _ => topics.push((topic.clone(), vec![*partition])),
            }
        }
        topics
    });
    TxnLogValue {
        producer_id: m.producer_id,
        previous_producer_id: m.last_producer_id,
        next_producer_id: m.next_producer_id,
        producer_epoch: m.producer_epoch,
        next_producer_epoch: NO_EPOCH,
        timeout_ms: m.timeout_ms,
        state: state_id(m.state),
        partitions,
        last_update_ms: m.update_ms,
        start_ms: m.start_ms,
        client_transaction_version: m.client_tv,
    }
}

/// The coordinator state a record holds.
pub fn metadata_of(v: &TxnLogValue) -> Result<TxnMetadata, SchemaError> {
    let state =
        state_of(v.state).ok_or_else(|| format!("unknown transaction state {}", v.state))?;
    let partitions: BTreeSet<(String, i32)> = v
        .partitions
        .iter()
        .flatten()
        .flat_map(|(topic, ids)| ids.iter().map(move |p| (topic.clone(), *p)))
        .collect();
    Ok(TxnMetadata {
        producer_id: v.producer_id,
        last_producer_id: v.previous_producer_id,
        producer_epoch: v.producer_epoch,
        last_producer_epoch: NO_EPOCH,
        timeout_ms: v.timeout_ms,
        state,
        partitions,
        start_ms: v.start_ms,
        update_ms: v.last_update_ms,
        client_tv: v.client_transaction_version,
        next_producer_id: v.next_producer_id,
    })
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
