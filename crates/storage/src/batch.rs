//! Kafka RecordBatch v2 headers: parsing, validation and the few in-place rewrites the log
//! owns. Records themselves stay opaque bytes; only the timestamp lookup ever decodes them.
//!
//! Batch bytes (all big-endian, 61-byte header, then records):
//!
//! ```text
//! 0  baseOffset i64        | 8  batchLength i32 (bytes after this field)
//! 12 partitionLeaderEpoch i32 | 16 magic i8 (=2) | 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16 (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control,
//!    6 delete horizon) | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32
//! 61 records...
//! ```

use bytes::{Buf, BufMut};

use crate::{ControlType, StorageError, TimestampType};

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_SIZE: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub(crate) const LOG_OVERHEAD: usize = 12;

const MAGIC_V2: i8 = 2;
const MAGIC_AT: usize = 16;
const LEADER_EPOCH_AT: usize = 12;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Record compression codec, from attribute bits 0-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// A codec id Kafka does not define; validation rejects these.
    Unknown(u8),
}

/// The parsed fixed header of one RecordBatch v2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only what framing needs (magic, a
    /// batchLength that covers the header); the CRC is checked by [`check_batch`].
    pub fn parse(buf: &[u8]) -> Result<Self, StorageError> {
        if let Some(&magic) = buf.get(MAGIC_AT) {
            if magic as i8 != MAGIC_V2 {
                return Err(StorageError::UnsupportedMagic(magic as i8));
            }
        }
        if buf.len() < HEADER_SIZE {
            return Err(StorageError::CorruptRecord(format!(
                "truncated batch header: {} of {HEADER_SIZE} bytes",
                buf.len()
            )));
        }
        let mut b = &buf[..HEADER_SIZE];
        let header = BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        };
        if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(StorageError::CorruptRecord(format!(
                "batch length {} is smaller than the batch header",
                header.batch_length
            )));
        }
        Ok(header)
    }

    /// Bytes the whole batch occupies, header included.
    pub fn total_size(&self) -> usize {
        // batch_length is checked non-negative by `parse`.
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta.max(0)))
    }

    /// The offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn compression(&self) -> Compression {
        match self.attributes & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other as u8),
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Checks that one whole, uncorrupted batch starts at `buf`: framing, magic and CRC-32C.
/// This is what stored bytes must satisfy; producer rules live in [`validate_batches`].
pub(crate) fn check_batch(buf: &[u8]) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(buf)?;
    check_body(buf, &header)?;
    Ok(header)
}

fn check_body(buf: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
    let size = header.total_size();
    let Some(batch) = buf.get(..size) else {
        return Err(StorageError::CorruptRecord(format!(
            "truncated batch: {} of {size} bytes",
            buf.len()
        )));
    };
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if computed != header.crc {
        return Err(StorageError::CorruptRecord(format!(
            "CRC mismatch at base offset {}: stored {:#010x}, computed {computed:#010x}",
            header.base_offset, header.crc
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(StorageError::CorruptRecord(format!(
            "negative lastOffsetDelta {}",
            header.last_offset_delta
        )));
    }
    Ok(())
}

/// Validate a buffer of one or more batches (length framing, magic 2, CRC-32C, recordCount >= 1,
/// lastOffsetDelta == recordCount - 1, batch fits max size) without writing anything.
pub fn validate_batches(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, StorageError> {
    if records.is_empty() {
        return Err(StorageError::InvalidRecord("no record batches".into()));
    }
    let mut headers = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest)?;
        // Size first, like Kafka: an oversized batch is "too large", not "corrupt", even if
        // the producer's buffer got cut.
        if header.total_size() > max_message_bytes {
            return Err(StorageError::RecordTooLarge {
                size: header.total_size(),
                max: max_message_bytes,
            });
        }
        check_body(rest, &header)?;
        if let Compression::Unknown(id) = header.compression() {
            return Err(StorageError::InvalidRecord(format!(
                "unknown compression codec {id}"
            )));
        }
        if header.record_count < 1 {
            return Err(StorageError::InvalidRecord(format!(
                "record count {} (a batch needs at least one record)",
                header.record_count
            )));
        }
        // Producers always send dense batches; gaps only arise from compaction.
        if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
            return Err(StorageError::InvalidRecord(format!(
                "lastOffsetDelta {} does not match record count {}",
                header.last_offset_delta, header.record_count
            )));
        }
        rest = &rest[header.total_size()..];
        headers.push(header);
    }
    Ok(headers)
}

/// Appends a v2 batch header with these fields to `out`, its batchLength and CRC left zero:
/// [`seal`] fills them in once the records follow. For the batches the log writes anew (a
/// cleaned batch, a recompressed one).
pub(crate) fn put_header(out: &mut Vec<u8>, h: &BatchHeader) {
    out.put_i64(h.base_offset);
    out.put_i32(0);
    out.put_i32(h.leader_epoch);
    out.put_i8(h.magic);
    out.put_u32(0);
    out.put_i16(h.attributes);
    out.put_i32(h.last_offset_delta);
    out.put_i64(h.base_timestamp);
    out.put_i64(h.max_timestamp);
    out.put_i64(h.producer_id);
    out.put_i16(h.producer_epoch);
    out.put_i32(h.base_sequence);
    out.put_i32(h.record_count);
}

/// Fills in the batchLength and CRC of the batch that starts at `start` and ends `out`.
pub(crate) fn seal(out: &mut [u8], start: usize) {
    let length = (out.len() - start - LOG_OVERHEAD) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES_AT..]);
    out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Stamps the fields the log owns. Both precede the CRC-covered region, so the CRC stays valid.
/// `batch` must be a validated batch.
pub(crate) fn assign_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    debug_assert!(batch.len() >= HEADER_SIZE);
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a validated batch, given as its `HEADER_SIZE`-byte `batch` header and the `rest`,
/// as LogAppendTime with `now_ms` as its max timestamp. Both fields are CRC-covered, so the
/// CRC is recomputed. Record timestamps are left alone: readers take the batch max timestamp
/// for every record of a LogAppendTime batch.
pub(crate) fn stamp_log_append_time(batch: &mut [u8], rest: &[u8], now_ms: i64) {
    debug_assert!(batch.len() == HEADER_SIZE);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let attributes = attributes | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&batch[ATTRIBUTES_AT..]), rest);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a validated batch a producer sent as LogAppendTime CreateTime, keeping its max
/// timestamp, as Kafka does on a CreateTime topic (its LogValidator sets the topic's timestamp
/// type on every batch it keeps). The attributes are CRC-covered, so the CRC is recomputed.
pub(crate) fn stamp_create_time(batch: &mut [u8], rest: &[u8]) {
    debug_assert!(batch.len() == HEADER_SIZE);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let attributes = attributes & !TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&batch[ATTRIBUTES_AT..]), rest);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A control batch's one record (Kafka's `EndTransactionMarker`): key = version i16 (0) +
/// type i16 (0 abort, 1 commit), value = version i16 (0) + coordinator epoch i32.
const CONTROL_KEY_LEN: usize = 4;
const CONTROL_VALUE_LEN: usize = 6;
/// Record body: attributes, timestamp delta, offset delta, key length (varints of one byte
/// each for these values), key, value length, value, header count.
const CONTROL_RECORD_LEN: usize = 4 + CONTROL_KEY_LEN + 1 + CONTROL_VALUE_LEN + 1;

/// A transaction marker batch, offset and leader epoch still to be assigned: RecordBatch v2
/// with attributes transactional | control, no base sequence, one record.
pub(crate) fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let total = HEADER_SIZE + 1 + CONTROL_RECORD_LEN;
    let mut out = Vec::with_capacity(total);
    out.put_i64(0);
    out.put_i32((total - LOG_OVERHEAD) as i32);
    out.put_i32(-1);
    out.put_i8(MAGIC_V2);
    out.put_u32(0);
    out.put_i16(TRANSACTIONAL_BIT | CONTROL_BIT);
    out.put_i32(0);
    out.put_i64(timestamp);
    out.put_i64(timestamp);
    out.put_i64(producer_id);
    out.put_i16(producer_epoch);
    out.put_i32(-1);
    out.put_i32(1);
    // Varints are zigzag-encoded: 2n for small non-negative n.
    out.put_u8((CONTROL_RECORD_LEN * 2) as u8);
    out.put_u8(0);
    out.put_u8(0);
    out.put_u8(0);
    out.put_u8((CONTROL_KEY_LEN * 2) as u8);
    out.put_i16(0);
    out.put_i16(match control {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    });
    out.put_u8((CONTROL_VALUE_LEN * 2) as u8);
    out.put_i16(0);
    out.put_i32(coordinator_epoch);
    out.put_u8(0);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The marker type and coordinator epoch of a whole stored control batch, or `None` if its
/// record is not a transaction marker (Kafka ignores unknown control records too).
pub(crate) fn control_marker(batch: &[u8]) -> Result<Option<(ControlType, i32)>, StorageError> {
    let records = crate::records::BatchRecords::parse(batch)?;
    let Some(record) = records.records.first() else {
        return Ok(None);
    };
    let mut key = records.key(record).unwrap_or_default();
    if key.len() < CONTROL_KEY_LEN || key.get_i16() != 0 {
        return Ok(None);
    }
    let control = match key.get_i16() {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return Ok(None),
    };
    let coordinator_epoch = records
        .value(record)
        .filter(|v| v.len() >= CONTROL_VALUE_LEN)
        .map_or(-1, |mut v| {
            v.advance(2);
            v.get_i32()
        });
    Ok(Some((control, coordinator_epoch)))
}

/// `(offset, timestamp)` of every record in one whole stored batch, for the timestamp
/// lookups that need exact records. A LogAppendTime batch gives every record its max
/// timestamp, so only CreateTime batches are decoded (and decompressed).
pub(crate) fn record_timestamps(
    batch: bytes::Bytes,
    header: &BatchHeader,
) -> Result<Vec<(i64, i64)>, StorageError> {
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Ok((header.base_offset..=header.last_offset())
            .map(|offset| (offset, header.max_timestamp))
            .collect());
    }
    let parsed = crate::records::BatchRecords::parse(&batch)?;
    Ok(parsed
        .records
        .iter()
        .map(|r| (r.offset, r.timestamp))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, batch_with, Codec};

    fn err_of(buf: &[u8], max: usize) -> StorageError {
        validate_batches(buf, max).expect_err("expected validation error")
    }

    /// Rewrites a header field and fixes the CRC so only the intended rule is broken.
    fn patch(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn parses_encoder_output() {
        let b = batch_with(&[100, 300, 200], Codec::Gzip);
        let headers = validate_batches(&b, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 100);
        assert_eq!(h.max_timestamp, 300);
        assert_eq!(h.compression(), Compression::Gzip);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control());
    }

    #[test]
    fn accepts_several_batches() {
        let mut buf = batch(2, 0).to_vec();
        buf.extend_from_slice(&batch_with(&[5], Codec::Snappy));
        buf.extend_from_slice(&batch_with(&[6, 7], Codec::Lz4));
        buf.extend_from_slice(&batch_with(&[8], Codec::Zstd));
        let headers = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn rejects_bad_crc() {
        let mut buf = batch(3, 0).to_vec();
        let last = buf.len() - 1;
        buf[last] ^= 0x55;
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::CorruptRecord(_)
        ));
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut buf = batch(1, 0).to_vec();
        buf[MAGIC_AT] = 1;
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::UnsupportedMagic(1)
        ));
    }

    #[test]
    fn rejects_zero_record_count() {
        let mut buf = batch(1, 0).to_vec();
        patch(&mut buf, 57, &0i32.to_be_bytes());
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::InvalidRecord(_)
        ));
    }

    #[test]
    fn rejects_last_offset_delta_mismatch() {
        let mut buf = batch(3, 0).to_vec();
        patch(&mut buf, 23, &5i32.to_be_bytes());
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::InvalidRecord(_)
        ));
    }

    #[test]
    fn rejects_unknown_compression() {
        let mut buf = batch(1, 0).to_vec();
        patch(&mut buf, ATTRIBUTES_AT, &7i16.to_be_bytes());
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::InvalidRecord(_)
        ));
    }

    #[test]
    fn rejects_oversized() {
        let buf = batch(50, 0);
        match err_of(&buf, 100) {
            StorageError::RecordTooLarge { size, max } => {
                assert_eq!(size, buf.len());
                assert_eq!(max, 100);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_truncated_and_garbage_buffers() {
        let buf = batch(3, 0);
        for cut in 1..buf.len() {
            let err = err_of(&buf[..cut], 1 << 20);
            assert!(
                matches!(err, StorageError::CorruptRecord(_)),
                "cut {cut}: {err:?}"
            );
        }
        assert!(matches!(
            err_of(&[], 1 << 20),
            StorageError::InvalidRecord(_)
        ));
        // A batch length that does not even cover the header, or is negative.
        let mut buf = batch(1, 0).to_vec();
        buf[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::CorruptRecord(_)
        ));
        buf[8..12].copy_from_slice(&(-4i32).to_be_bytes());
        assert!(matches!(
            err_of(&buf, 1 << 20),
            StorageError::CorruptRecord(_)
        ));
        // A valid batch followed by trailing junk.
        let mut buf = batch(1, 0).to_vec();
        buf.extend_from_slice(&[0u8; 5]);
        assert!(validate_batches(&buf, 1 << 20).is_err());
    }

    #[test]
    fn offset_and_epoch_rewrite_keeps_crc() {
        let mut buf = batch(4, 0).to_vec();
        assign_offset_and_epoch(&mut buf, 1234, 7);
        let h = check_batch(&buf).unwrap();
        assert_eq!(
            (h.base_offset, h.leader_epoch, h.last_offset()),
            (1234, 7, 1237)
        );
    }

    #[test]
    fn log_append_time_stamp_recomputes_crc() {
        let mut buf = batch_with(&[10, 20], Codec::Zstd).to_vec();
        let (head, rest) = buf.split_at_mut(HEADER_SIZE);
        stamp_log_append_time(head, rest, 999);
        let h = validate_batches(&buf, 1 << 20).unwrap()[0];
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 999);
        assert_eq!(h.compression(), Compression::Zstd);
    }

    #[test]
    fn a_producers_log_append_time_becomes_create_time() {
        let mut buf = batch_with(&[10, 20], Codec::Gzip).to_vec();
        let (head, rest) = buf.split_at_mut(HEADER_SIZE);
        stamp_log_append_time(head, rest, 999);
        stamp_create_time(head, rest);
        let h = validate_batches(&buf, 1 << 20).unwrap()[0];
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!((h.max_timestamp, h.compression()), (999, Compression::Gzip));
    }
}
