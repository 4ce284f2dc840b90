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

/// Where a v2 batch header keeps its CRC, the start of what the CRC covers (attributes
/// onwards), and the base sequence.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const BASE_SEQUENCE_AT: usize = 53;

/// `records` as one uncompressed batch; `what` names them in the error.
///
/// kafka-protocol's encoder starts a new batch wherever a record's offset minus its sequence
/// changes, so records without a producer (sequence -1) would each get a batch of their own
/// and a commit of several offsets would no longer be one atomic append. They are encoded
/// with sequences following their offsets, and the batch's base sequence is then set back
/// to -1 (no producer) with its CRC recomputed.
pub fn encode_batch(records: &[Record], what: &str) -> Result<Bytes> {
    let without_producer = records.iter().all(|r| r.producer_id < 0);
    let mut owned;
    let records = if without_producer {
        owned = records.to_vec();
        for record in &mut owned {
            record.sequence = record.offset as i32;
        }
        &owned[..]
    } else {
        records
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| BrokerError::InvalidRecord(format!("cannot encode {what}: {e}")))?;
    if without_producer && buf.len() > BASE_SEQUENCE_AT + 4 {
        buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_producer_are_one_valid_batch() {
        let records: Vec<_> = (0..3)
            .map(|i| record(Bytes::from(format!("k{i}")), Some(Bytes::from_static(b"v")), i, 7))
            .collect();
        let batch = encode_batch(&records, "test").unwrap();
        let headers = samsa_storage::validate_batches(&batch, usize::MAX).unwrap();
        assert_eq!(headers.len(), 1, "one batch, so one atomic append");
        let header = headers[0];
        assert_eq!((header.record_count, header.base_sequence, header.producer_id), (3, -1, -1));
        assert_eq!(header.total_size(), batch.len());
    }
}
