//! A topic's `compression.type` other than `producer`: each batch that arrives in another
//! codec is rewritten in the topic's (Kafka's `LogValidator.buildRecordsAndAssignOffsets`).
//!
//! The records section of a v2 batch does not depend on the codec, so a rewrite is one
//! decompression, one compression and a new header. The records' bytes are copied as they are
//! unless Kafka's rebuild would change them: Kafka writes each record afresh with attributes 0,
//! offset deltas 0, 1, 2... and timestamp deltas from the first record's timestamp. The
//! producer id, epoch and base sequence, the transactional and control flags, timestamps,
//! keys, values and headers all carry over; offsets are assigned by the log as for any batch.
//!
//! Decompressing and compressing is CPU work of milliseconds for a large batch: the broker
//! runs [`recompress`] on a blocking thread, not on the event loop.

use std::borrow::Cow;
use std::io::Write;

use bytes::{BufMut, Bytes};

use crate::batch::{validate_batches, BatchHeader, Compression};
use crate::records::{put_varlong, BatchRecords, DELETE_HORIZON_BIT, XERIAL_MAGIC};
use crate::StorageError;

/// Attribute bits a rewritten batch takes from the original: transactional and control. The
/// codec is the target's, the timestamp type is the log's to stamp, and a producer's batch
/// has no delete horizon.
const KEPT_ATTRIBUTES: i16 = !(0x07 | (1 << 3) | DELETE_HORIZON_BIT);
/// snappy-java's block size, which Kafka's snappy stream uses.
const SNAPPY_BLOCK: usize = 32 * 1024;

/// The codec a topic keeps its batches in and its level (KIP-390).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetCompression {
    pub codec: Compression,
    /// gzip 1..=9 or -1 (zlib's default, 6), lz4 1..=17, zstd -131072..=22; snappy and
    /// uncompressed have none.
    pub level: i32,
}

impl TargetCompression {
    /// Whether a batch must be rewritten to be kept in this codec. Control batches are not:
    /// Kafka leaves them as written (and refuses them from clients).
    pub fn rewrites(&self, header: &BatchHeader) -> bool {
        header.compression() != self.codec && !header.is_control()
    }
}

/// `records` with every batch in `target`'s codec, or `None` when none needs a rewrite. The
/// batches are first checked as the log checks them (size against `max_message_bytes`,
/// framing, CRC), so a refused batch gets the error it would get without recompression.
pub fn recompress(
    records: &[u8],
    target: TargetCompression,
    max_message_bytes: usize,
) -> Result<Option<Bytes>, StorageError> {
    let headers = validate_batches(records, max_message_bytes)?;
    if !headers.iter().any(|h| target.rewrites(h)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut position = 0;
    for header in &headers {
        let batch = &records[position..position + header.total_size()];
        position += header.total_size();
        if target.rewrites(header) {
            rewrite(batch, target, &mut out)?;
        } else {
            out.extend_from_slice(batch);
        }
    }
    Ok(Some(Bytes::from(out)))
}

/// Appends `batch` rewritten in `target`'s codec to `out`.
fn rewrite(batch: &[u8], target: TargetCompression, out: &mut Vec<u8>) -> Result<(), StorageError> {
    // Records that cannot be read are the producer's fault, as Kafka's iterator reports them.
    let parsed = BatchRecords::parse(batch).map_err(|e| match e {
        StorageError::CorruptRecord(why) => StorageError::InvalidRecord(why),
        other => other,
    })?;
    let header = &parsed.header;
    let records = &parsed.records;
    let base_timestamp = records
        .first()
        .map_or(header.base_timestamp, |r| r.timestamp);
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let unchanged = base_timestamp == header.base_timestamp
        && records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset_delta == i as i64 && r.attributes == 0);
    let raw: Cow<[u8]> = if unchanged {
        Cow::Borrowed(parsed.data())
    } else {
        let data = parsed.data();
        let mut raw = Vec::with_capacity(data.len() + records.len() * 4);
        for (i, record) in records.iter().enumerate() {
            let rest = &data[record.after_offset_delta.clone()];
            let timestamp_delta = record.timestamp.wrapping_sub(base_timestamp);
            let body = 1 + varlong_len(timestamp_delta) + varlong_len(i as i64) + rest.len();
            put_varlong(&mut raw, body as i64);
            raw.put_u8(0);
            put_varlong(&mut raw, timestamp_delta);
            put_varlong(&mut raw, i as i64);
            raw.extend_from_slice(rest);
        }
        Cow::Owned(raw)
    };

    let start = out.len();
    let rewritten = BatchHeader {
        attributes: (header.attributes & KEPT_ATTRIBUTES) | codec_id(target.codec),
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp,
        max_timestamp,
        record_count: records.len() as i32,
        ..*header
    };
    crate::batch::put_header(out, &rewritten);
    compress_into(target, &raw, out).map_err(|e| {
        StorageError::InvalidRecord(format!(
            "cannot compress records as {:?}: {e}",
            target.codec
        ))
    })?;
    crate::batch::seal(out, start);
    Ok(())
}

fn codec_id(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
        Compression::Unknown(id) => i16::from(id),
    }
}

/// Compresses `raw` onto the end of `out`, in the framing Kafka's clients read: gzip, LZ4
/// frames of independent blocks, snappy-java's stream, zstd frames.
fn compress_into(target: TargetCompression, raw: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    match target.codec {
        Compression::None => out.extend_from_slice(raw),
        Compression::Gzip => {
            let level = match target.level {
                -1 => flate2::Compression::default(),
                level => flate2::Compression::new(level.clamp(0, 9) as u32),
            };
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(raw)?;
            encoder.finish()?;
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(target.level.max(0) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out)?;
            encoder.write_all(raw)?;
            encoder.finish().1?;
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, target.level)?;
            encoder.write_all(raw)?;
            encoder.finish()?;
        }
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_MAGIC);
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(SNAPPY_BLOCK) {
                let length_at = out.len();
                out.extend_from_slice(&[0; 4]);
                let at = out.len();
                out.resize(at + snap::raw::max_compress_len(block.len()), 0);
                let written = encoder
                    .compress(block, &mut out[at..])
                    .map_err(std::io::Error::other)?;
                out.truncate(at + written);
                out[length_at..at].copy_from_slice(&(written as u32).to_be_bytes());
            }
        }
        Compression::Unknown(id) => {
            return Err(std::io::Error::other(format!("unknown codec {id}")));
        }
    }
    Ok(())
}

/// Bytes of `value` as a zigzag varint.
fn varlong_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests;
