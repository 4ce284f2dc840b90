//! The records inside one stored batch, for the places that must look past the batch header:
//! the per-record rules of a produce (`record_rules`), recompression, and the cleaner rewriting
//! a batch with only the records it keeps.
//!
//! Record v2 bytes (varints are zigzag, as in Kafka):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value |
//! headerCount varint | headers...
//! ```
//!
//! Deltas are relative to the batch's base offset and base timestamp. A rebuilt batch keeps
//! the original base offset, lastOffsetDelta and (unless a delete horizon is set) base
//! timestamp, so the kept records' bytes are copied as they are: offsets never move, and a
//! reader advancing by the batch's last offset skips exactly what was removed.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor};

use crate::batch::{BatchHeader, Compression, HEADER_SIZE};
use crate::{StorageError, TimestampType};

/// Attribute bit 6 (KIP-534): the batch's base timestamp is its delete horizon, the time after
/// which the cleaner may drop its tombstones.
pub(crate) const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// Where one record lies in the uncompressed records section, and what the cleaner needs.
#[derive(Clone, Debug)]
pub(crate) struct RecordView {
    pub offset: i64,
    pub timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    pub has_value: bool,
    /// The whole record, length prefix included.
    span: Range<usize>,
    /// From the offsetDelta to the end: what a new timestamp delta leaves unchanged.
    after_timestamp: Range<usize>,
    /// From the key length to the end: what new deltas leave unchanged.
    pub after_offset_delta: Range<usize>,
    pub offset_delta: i64,
    pub attributes: u8,
}

/// The key and value of every record of one whole batch, its records section decompressed
/// (bounded, as everywhere): for checks above the log that read each record, such as the
/// produce path's schema validation. A batch that does not parse is INVALID_RECORD, as a
/// per-record rule would say.
pub type Payload = (Option<Bytes>, Option<Bytes>);

pub fn record_payloads(batch: &[u8]) -> Result<Vec<Payload>, StorageError> {
    let parsed = BatchRecords::parse(batch).map_err(|e| match e {
        StorageError::CorruptRecord(why) => StorageError::InvalidRecord(why),
        other => other,
    })?;
    let slice = |range: &Option<Range<usize>>| range.clone().map(|r| parsed.data.slice(r));
    Ok(parsed
        .records
        .iter()
        .map(|record| (slice(&record.key), slice(&record.value)))
        .collect())
}

/// One batch with its records section decompressed and framed.
pub(crate) struct BatchRecords {
    pub header: BatchHeader,
    data: Bytes,
    pub records: Vec<RecordView>,
}

impl BatchRecords {
    /// Parses a whole batch (already CRC-checked by the caller).
    pub fn parse(batch: &[u8]) -> Result<Self, StorageError> {
        let header = BatchHeader::parse(batch)?;
        let body = batch
            .get(HEADER_SIZE..header.total_size())
            .ok_or_else(|| corrupt(&header, "truncated batch"))?;
        let data = decompress(header.compression(), Bytes::copy_from_slice(body))
            .map_err(|e| corrupt(&header, &format!("cannot decompress records: {e}")))?;
        let mut records = Vec::with_capacity(header.record_count.clamp(0, 4096) as usize);
        let mut reader = Reader { buf: &data, pos: 0 };
        while reader.pos < data.len() {
            let record = reader
                .record(&header)
                .ok_or_else(|| corrupt(&header, "malformed record"))?;
            records.push(record);
        }
        if records.len() != header.record_count.max(0) as usize {
            return Err(corrupt(
                &header,
                &format!(
                    "{} records where the header says {}",
                    records.len(),
                    header.record_count
                ),
            ));
        }
        Ok(BatchRecords {
            header,
            data,
            records,
        })
    }

    /// The records section, decompressed.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn key(&self, record: &RecordView) -> Option<&[u8]> {
        record.key.clone().map(|r| &self.data[r])
    }

    pub fn value(&self, record: &RecordView) -> Option<&[u8]> {
        record.value.clone().map(|r| &self.data[r])
    }

    /// The delete horizon stamped by an earlier cleaning, if any.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.header.attributes & DELETE_HORIZON_BIT != 0).then_some(self.header.base_timestamp)
    }

    /// A batch holding only the records at `keep` (indexes into `records`, ascending), with
    /// the original offsets, producer fields and codec. With `new_horizon` the batch gets the
    /// delete-horizon flag and that time as its base timestamp (record timestamp deltas are
    /// rewritten to keep every record's timestamp). `None` when nothing is kept.
    pub fn rebuild(
        &self,
        keep: &[usize],
        new_horizon: Option<i64>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        if keep.is_empty() {
            return Ok(None);
        }
        let header = &self.header;
        let base_timestamp = new_horizon.unwrap_or(header.base_timestamp);
        let mut raw = BytesMut::new();
        let mut max_timestamp = -1i64;
        for &i in keep {
            let record = &self.records[i];
            max_timestamp = max_timestamp.max(record.timestamp);
            if new_horizon.is_none() {
                raw.put_slice(&self.data[record.span.clone()]);
                continue;
            }
            let mut body = Vec::with_capacity(record.span.len() + 8);
            body.push(record.attributes);
            put_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
            body.extend_from_slice(&self.data[record.after_timestamp.clone()]);
            put_varlong(&mut raw, body.len() as i64);
            raw.put_slice(&body);
        }
        if header.timestamp_type() == TimestampType::LogAppendTime {
            max_timestamp = header.max_timestamp;
        }
        let mut attributes = header.attributes;
        if new_horizon.is_some() {
            attributes |= DELETE_HORIZON_BIT;
        }
        let records = compress(header.compression(), &raw)
            .map_err(|e| corrupt(header, &format!("cannot compress records: {e}")))?;

        let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
        let rebuilt = BatchHeader {
            attributes,
            base_timestamp,
            max_timestamp,
            record_count: keep.len() as i32,
            ..*header
        };
        crate::batch::put_header(&mut out, &rebuilt);
        out.extend_from_slice(&records);
        crate::batch::seal(&mut out, 0);
        Ok(Some(out))
    }
}

fn corrupt(header: &BatchHeader, what: &str) -> StorageError {
    StorageError::CorruptRecord(format!("batch at offset {}: {what}", header.base_offset))
}

/// The most a batch's records may decompress to. Kafka bounds batches by their compressed
/// size only; a few kilobytes of zstd or a forged snappy length can claim gigabytes, and this
/// broker holds a decompressed batch in memory (key checks, timestamp lookups, cleaning).
/// Legitimate batches are at most `max.message.bytes` (1 MiB by default) compressed and
/// rarely compress tenfold, so 128 MiB refuses bombs without refusing real data.
pub(crate) const MAX_DECOMPRESSED: usize = 128 << 20;

/// Kafka's snappy is snappy-java's stream: a magic header, then length-prefixed raw blocks;
/// without the header the body is one raw block.
pub(crate) const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

pub(crate) fn decompress(compression: Compression, body: Bytes) -> Result<Bytes, String> {
    decompress_bounded(compression, body, MAX_DECOMPRESSED)
}

/// Decompresses `body`, refusing (before allocating for it) anything past `limit` bytes.
pub fn decompress_bounded(
    compression: Compression,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, String> {
    let out = match compression {
        Compression::None => return Ok(body),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(&body[..]), limit)?,
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(&body[..]).map_err(|e| e.to_string())?;
            read_bounded(decoder, limit)?
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| e.to_string())?;
            read_bounded(decoder, limit)?
        }
        Compression::Snappy => snappy(&body, limit)?,
        Compression::Unknown(id) => return Err(format!("unknown codec {id}")),
    };
    Ok(Bytes::from(out))
}

fn read_bounded(reader: impl std::io::Read, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > limit {
        return Err(format!("records decompress to more than {limit} bytes"));
    }
    Ok(out)
}

/// Each block's decompressed length is read from its header and checked against what is
/// left of the bound before anything is allocated for it.
fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let block = |raw: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(raw).map_err(|e| e.to_string())?;
        if len > limit - out.len() {
            return Err(format!("records decompress to more than {limit} bytes"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let Some(mut rest) = body.strip_prefix(&XERIAL_MAGIC[..]) else {
        block(body, &mut out)?;
        return Ok(out);
    };
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated snappy block length")?;
        let len = u32::from_be_bytes(*len) as usize;
        let raw = tail.get(..len).ok_or("truncated snappy block")?;
        block(raw, &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

fn compress(compression: Compression, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let put = |buf: &mut BytesMut| {
        buf.put_slice(raw);
        Ok(())
    };
    let text = |e: anyhow::Error| e.to_string();
    match compression {
        Compression::None => return Ok(raw.to_vec()),
        Compression::Gzip => {
            <codec::Gzip as Compressor<BytesMut>>::compress(&mut out, put).map_err(text)?
        }
        Compression::Snappy => {
            <codec::Snappy as Compressor<BytesMut>>::compress(&mut out, put).map_err(text)?
        }
        Compression::Lz4 => {
            <codec::Lz4 as Compressor<BytesMut>>::compress(&mut out, put).map_err(text)?
        }
        Compression::Zstd => {
            <codec::Zstd as Compressor<BytesMut>>::compress(&mut out, put).map_err(text)?
        }
        Compression::Unknown(id) => return Err(format!("unknown codec {id}")),
    }
    Ok(out.to_vec())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn record(&mut self, header: &BatchHeader) -> Option<RecordView> {
        let start = self.pos;
        let length = usize::try_from(self.varint()?).ok()?;
        let body_start = self.pos;
        let end = body_start.checked_add(length)?;
        if end > self.buf.len() {
            return None;
        }
        let attributes = *self.buf.get(self.pos)?;
        self.pos += 1;
        let timestamp_delta = self.varlong()?;
        let after_timestamp = self.pos;
        let offset_delta = self.varint()?;
        let after_offset_delta = self.pos;
        let key = self.bytes()?;
        let value = self.bytes()?;
        if self.pos > end {
            return None;
        }
        self.pos = end;
        let timestamp = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.wrapping_add(timestamp_delta),
        };
        Some(RecordView {
            offset: header.base_offset.wrapping_add(offset_delta),
            timestamp,
            key,
            has_value: value.is_some(),
            value,
            span: start..end,
            after_timestamp: after_timestamp..end,
            after_offset_delta: after_offset_delta..end,
            offset_delta,
            attributes,
        })
    }

    /// A length-prefixed byte string; `Some(None)` for the null length -1.
    fn bytes(&mut self) -> Option<Option<Range<usize>>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        let start = self.pos;
        let end = start.checked_add(len as usize)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(Some(start..end))
    }

    fn varint(&mut self) -> Option<i64> {
        self.zigzag(5)
    }

    fn varlong(&mut self) -> Option<i64> {
        self.zigzag(10)
    }

    fn zigzag(&mut self, max_bytes: usize) -> Option<i64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        None
    }
}

pub(crate) fn put_varlong(out: &mut impl BufMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch_with, keyed_batch, records_of_full, Codec};

    #[test]
    fn parses_every_codec_like_the_reference_decoder() {
        for codec in Codec::ALL {
            let bytes = batch_with(&[10, 30, 20], codec);
            let parsed = BatchRecords::parse(&bytes).unwrap();
            let reference = records_of_full(&bytes);
            assert_eq!(parsed.records.len(), 3);
            for (view, r) in parsed.records.iter().zip(&reference) {
                assert_eq!((view.offset, view.timestamp), (r.offset, r.timestamp));
                assert_eq!(parsed.key(view), r.key.as_deref());
                assert_eq!(view.has_value, r.value.is_some());
            }
        }
    }

    #[test]
    fn payloads_are_every_records_key_and_value() {
        for codec in Codec::ALL {
            let bytes = keyed_batch(&[("a", Some("1")), ("b", None)], 0, codec);
            let payloads = record_payloads(&bytes).unwrap();
            let expected = [
                (Some(Bytes::from("a")), Some(Bytes::from("1"))),
                (Some(Bytes::from("b")), None),
            ];
            assert_eq!(payloads, expected, "{codec:?}");
        }
        let mut cut = keyed_batch(&[("a", Some("1"))], 0, Codec::None).to_vec();
        cut.truncate(cut.len() - 2);
        assert!(matches!(
            record_payloads(&cut),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn rebuild_keeps_offsets_and_codec_and_decodes() {
        for codec in Codec::ALL {
            let bytes = keyed_batch(
                &[("a", Some("1")), ("b", None), ("c", Some("3"))],
                100,
                codec,
            );
            let parsed = BatchRecords::parse(&bytes).unwrap();
            let rebuilt = parsed.rebuild(&[1, 2], None).unwrap().unwrap();
            let header = crate::batch::check_batch(&rebuilt).unwrap();
            assert_eq!(header.base_offset, parsed.header.base_offset);
            assert_eq!(header.last_offset_delta, 2);
            assert_eq!(header.record_count, 2);
            assert_eq!(header.compression(), parsed.header.compression());
            let records = records_of_full(&rebuilt);
            let got: Vec<_> = records
                .iter()
                .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                .collect();
            assert_eq!(
                got,
                [
                    (1, 101, Some(Bytes::from("b")), None),
                    (2, 102, Some(Bytes::from("c")), Some(Bytes::from("3")))
                ]
            );
            assert_eq!(parsed.rebuild(&[], None).unwrap(), None);
        }
    }

    #[test]
    fn delete_horizon_moves_the_base_timestamp_not_record_timestamps() {
        let bytes = keyed_batch(&[("a", None), ("b", Some("2"))], 5_000, Codec::Lz4);
        let parsed = BatchRecords::parse(&bytes).unwrap();
        let rebuilt = parsed.rebuild(&[0, 1], Some(90_000)).unwrap().unwrap();
        let again = BatchRecords::parse(&rebuilt).unwrap();
        assert_eq!(again.delete_horizon(), Some(90_000));
        assert_eq!(again.header.max_timestamp, 5_001);
        let times: Vec<i64> = records_of_full(&rebuilt)
            .iter()
            .map(|r| r.timestamp)
            .collect();
        assert_eq!(times, [5_000, 5_001]);
    }

    #[test]
    fn every_codec_stops_at_the_bound() {
        let raw = vec![0u8; 2 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = Bytes::from(compress(codec, &raw).unwrap());
            let whole = decompress_bounded(codec, packed.clone(), raw.len()).unwrap();
            assert_eq!(whole.len(), raw.len(), "{codec:?}");
            let err = decompress_bounded(codec, packed, 1 << 20).unwrap_err();
            assert!(err.contains("more than"), "{codec:?}: {err}");
        }
    }

    #[test]
    fn a_forged_snappy_length_allocates_nothing() {
        // A raw snappy block whose header claims u32::MAX bytes, with or without the
        // snappy-java framing around it.
        let forged: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let err = decompress(Compression::Snappy, Bytes::from_static(forged)).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&(forged.len() as u32).to_be_bytes());
        framed.extend_from_slice(forged);
        let err = decompress(Compression::Snappy, Bytes::from(framed)).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn garbage_records_are_errors_not_panics() {
        let bytes = keyed_batch(&[("a", Some("1")), ("b", Some("2"))], 0, Codec::None);
        for cut in HEADER_SIZE..bytes.len() {
            let mut damaged = bytes.to_vec();
            damaged[cut] ^= 0xff;
            let _ = BatchRecords::parse(&damaged);
        }
    }
}
