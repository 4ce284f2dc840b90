//! Records of the coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`): keyed, uncompressed, written by the broker itself as one
//! RecordBatch v2 per append, their values a version prefix and JSON.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use serde::Serialize;

use crate::error::{BrokerError, Result};

/// A plain (non-transactional) record at `offset` within its batch.
pub fn record(key: Bytes, value: Option<Bytes>, offset: i64, now_ms: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key),
        value,
        headers: Default::default(),
    }
}

/// `records` as one uncompressed batch; `what` names them in the error.
pub fn encode_batch(records: &[Record], what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| BrokerError::InvalidRecord(format!("cannot encode {what}: {e}")))?;
    Ok(buf.freeze())
}

/// `body` as JSON behind a big-endian `version`; `what` names it in the error.
pub fn versioned_json(version: i16, body: &impl Serialize, what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    serde_json::to_writer((&mut buf).writer(), body)
        .map_err(|e| BrokerError::InvalidRecord(format!("cannot encode {what}: {e}")))?;
    Ok(buf.freeze())
}
