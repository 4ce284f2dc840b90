//! Test batch builders, using the kafka-protocol encoder so tests see real producer bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

#[derive(Clone, Copy, Debug)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn kafka(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

/// One batch with a record per timestamp; offsets start at 0 like a producer's.
pub fn batch_with(timestamps: &[i64], codec: Codec) -> Bytes {
    batch_full(timestamps, codec, 8)
}

/// `count` uncompressed records with timestamps `ts, ts+1, ...`.
pub fn batch(count: usize, ts: i64) -> Bytes {
    let timestamps: Vec<i64> = (0..count as i64).map(|i| ts + i).collect();
    batch_with(&timestamps, Codec::None)
}

pub fn batch_full(timestamps: &[i64], codec: Codec, value_len: usize) -> Bytes {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder splits batches unless offset - sequence is constant.
            sequence: i as i32 - 1,
            timestamp,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec.kafka(),
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode test batch");
    buf.freeze()
}

/// One batch of keyed records (`None` value = tombstone), timestamps `ts, ts+1, ...`.
pub fn keyed_batch(entries: &[(&str, Option<&str>)], ts: i64, codec: Codec) -> Bytes {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            key: Some(Bytes::from(key.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            ..record(i, ts + i as i64)
        })
        .collect();
    encode(&records, codec)
}

/// One batch whose records have these keys (`None` = no key) and a value each.
pub fn batch_full_keys(keys: &[Option<&str>], codec: Codec) -> Bytes {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| Record {
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"v")),
            ..record(i, i as i64)
        })
        .collect();
    encode(&records, codec)
}

fn record(i: usize, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: i as i32 - 1,
        timestamp,
        key: None,
        value: None,
        headers: Default::default(),
    }
}

fn encode(records: &[Record], codec: Codec) -> Bytes {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec.kafka(),
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).expect("encode test batch");
    buf.freeze()
}

/// Every record in a buffer of batches, via the reference decoder.
pub fn records_of_full(bytes: &[u8]) -> Vec<Record> {
    let mut buf = Bytes::copy_from_slice(bytes);
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
        .expect("decode stored batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// `(offset, timestamp)` of every record in a buffer of batches, via the reference decoder.
pub fn records_of(bytes: &Bytes) -> Vec<(i64, i64)> {
    let mut buf = bytes.clone();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
        .expect("decode stored batches")
        .iter()
        .flat_map(|set| set.records.iter().map(|r| (r.offset, r.timestamp)))
        .collect()
}

/// Headers of every batch in a buffer, checking each is intact (framing and CRC; compacted
/// batches may have fewer records than offsets, so producer rules do not apply).
pub fn headers_of(bytes: &[u8]) -> Vec<crate::BatchHeader> {
    let mut headers = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = crate::batch::check_batch(rest).expect("stored batch is intact");
        rest = &rest[header.total_size()..];
        headers.push(header);
    }
    headers
}

/// A config with nothing time-dependent, so tests control rolling and retention explicitly.
pub fn test_config() -> crate::LogConfig {
    crate::LogConfig {
        retention_ms: None,
        ..Default::default()
    }
}

/// All stored bytes from `from` up to `upper_bound`, fetching segment by segment.
pub fn read_all(log: &crate::PartitionLog, from: i64, upper_bound: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < upper_bound {
        let chunk = log.read(offset, 1 << 30, upper_bound).expect("read");
        let Some(last) = headers_of(&chunk).last().copied() else {
            break;
        };
        offset = last.next_offset();
        out.extend_from_slice(&chunk);
    }
    out
}

/// Paths of files in `dir` with extension `ext`, sorted (so by base offset for segments).
pub fn files_with_ext(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths
}

/// `count` records written by producer `id` at `epoch`, sequences from `seq`, timestamps
/// `ts, ts+1, ...`; `transactional` sets attribute bit 4.
pub fn producer_batch(
    id: i64,
    epoch: i16,
    seq: i32,
    count: usize,
    ts: i64,
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            producer_id: id,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from_static(b"v")),
            ..record(i, ts + i as i64)
        })
        .collect();
    encode(&records, Codec::None)
}
