//! Record batches as a producer would send them and as a consumer reads them back, so
//! tests compare what went in with what came out, record by record.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// baseOffset and batchLength: the bytes of a batch that batchLength does not count.
const LOG_OVERHEAD: usize = 12;
const MAX_TIMESTAMP_AT: usize = 35;
const BATCH_HEADER_LEN: usize = 61;

/// A base for record timestamps: a minute ago, so records are neither in the future nor
/// old enough for the broker's time-based retention (7 days by default) to delete them.
pub fn base_timestamp() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_millis() as i64 - 60_000
}

/// The part of a record a producer chooses; offsets and epochs are the broker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Message {
    pub fn new(key: &str, value: &str, timestamp: i64) -> Message {
        Message {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            timestamp,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Message {
        self.headers.push((
            name.to_owned(),
            Some(Bytes::copy_from_slice(value.as_bytes())),
        ));
        self
    }
}

/// `count` distinct messages whose keys and values start with `prefix`, timestamps from `first_ts`.
pub fn messages(prefix: &str, count: usize, first_ts: i64) -> Vec<Message> {
    (0..count)
        .map(|i| {
            Message::new(
                &format!("{prefix}-k{i}"),
                &format!("{prefix}-v{i}"),
                first_ts + i as i64,
            )
        })
        .collect()
}

/// One uncompressed RecordBatch v2 holding `messages`, as a non-idempotent producer sends it.
pub fn batch(messages: &[Message]) -> Bytes {
    batch_with(messages, Compression::None)
}

pub fn batch_with(messages: &[Message], compression: Compression) -> Bytes {
    encode(messages, compression, &Producer::NONE)
}

/// Who wrote a batch: an idempotent (and maybe transactional) producer's id, epoch and the
/// sequence of the batch's first record, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

impl Producer {
    pub const NONE: Producer = Producer {
        id: -1,
        epoch: -1,
        base_sequence: -1,
        transactional: false,
    };

    pub fn idempotent(id: i64, epoch: i16, base_sequence: i32) -> Producer {
        Producer {
            id,
            epoch,
            base_sequence,
            transactional: false,
        }
    }

    pub fn transactional(id: i64, epoch: i16, base_sequence: i32) -> Producer {
        Producer {
            transactional: true,
            ..Producer::idempotent(id, epoch, base_sequence)
        }
    }
}

/// One uncompressed batch of `messages` written by `producer`.
pub fn producer_batch(messages: &[Message], producer: Producer) -> Bytes {
    encode(messages, Compression::None, &producer)
}

/// One batch of `messages` written by `producer`, compressed with `compression`.
pub fn producer_batch_with(
    messages: &[Message],
    compression: Compression,
    producer: Producer,
) -> Bytes {
    encode(messages, compression, &producer)
}

fn encode(messages: &[Message], compression: Compression, producer: &Producer) -> Bytes {
    let records: Vec<Record> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| Record {
            transactional: producer.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes; keeping the
            // difference constant gives one batch (base sequence -1 means none).
            sequence: if producer.base_sequence < 0 {
                i as i32 - 1
            } else {
                producer.base_sequence + i as i32
            },
            timestamp: m.timestamp,
            key: m.key.clone(),
            value: m.value.clone(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("a record batch encodes");
    buf.freeze()
}

/// A record as fetched: where the broker put it, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub offset: i64,
    pub leader_epoch: i32,
    pub timestamp_type: TimestampType,
    pub message: Message,
}

/// Decodes every batch of a fetch response's `records`; fails on any undecodable byte.
/// Timestamps are read as a consumer reads them: in a LogAppendTime batch every record
/// carries the batch's max timestamp, which the broker stamped on append.
pub fn decode(records: &Bytes) -> anyhow::Result<Vec<Fetched>> {
    let mut fetched = Vec::new();
    for mut one in split(records)? {
        let max_timestamp =
            i64::from_be_bytes(one[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].try_into()?);
        let set = RecordBatchDecoder::decode(&mut one)?;
        anyhow::ensure!(one.is_empty(), "{} bytes left inside a batch", one.len());
        fetched.extend(set.records.into_iter().map(|r| {
            Fetched {
                offset: r.offset,
                leader_epoch: r.partition_leader_epoch,
                timestamp_type: r.timestamp_type,
                message: Message {
                    key: r.key,
                    value: r.value,
                    timestamp: match r.timestamp_type {
                        TimestampType::LogAppend => max_timestamp,
                        TimestampType::Creation => r.timestamp,
                    },
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                },
            }
        }));
    }
    Ok(fetched)
}

/// The whole batches of a fetch response's `records`; fails on a cut one.
fn split(records: &Bytes) -> anyhow::Result<Vec<Bytes>> {
    let mut batches = Vec::new();
    let mut rest = records.clone();
    while !rest.is_empty() {
        anyhow::ensure!(
            rest.len() >= BATCH_HEADER_LEN,
            "{} trailing bytes",
            rest.len()
        );
        let batch_len = LOG_OVERHEAD + i32::from_be_bytes(rest[8..12].try_into()?) as usize;
        anyhow::ensure!(
            batch_len <= rest.len(),
            "batch of {batch_len} bytes, {} left",
            rest.len()
        );
        batches.push(rest.split_to(batch_len));
    }
    Ok(batches)
}

/// The messages of `fetched`, for comparing with what was produced.
pub fn messages_of(fetched: &[Fetched]) -> Vec<Message> {
    fetched.iter().map(|f| f.message.clone()).collect()
}

/// Every batch of a fetch response's `records` as text: the header fields a broker decides
/// (all but the batch length and CRC, which depend on the compressor's bytes, and the
/// producer id, which each broker allocates: only whether there is one), then each record.
/// Two brokers that keep the same batches in the same codec describe them alike, however
/// their compressors encode them.
pub fn describe(records: &Bytes) -> anyhow::Result<String> {
    let field = |b: &[u8], at: usize, len: usize| -> i64 {
        b[at..at + len]
            .iter()
            .fold(0i64, |n, byte| (n << 8) | i64::from(*byte))
    };
    let mut out = String::new();
    for b in split(records)? {
        let attributes = field(&b, 21, 2);
        out.push_str(&format!(
            "batch(offset={} epoch={} codec={} timestamp_type={} transactional={} control={} \
             last_offset_delta={} base_timestamp={} max_timestamp={} producer={} \
             producer_epoch={} base_sequence={} count={})\n",
            field(&b, 0, 8),
            field(&b, 12, 4) as i32,
            attributes & 7,
            (attributes >> 3) & 1,
            (attributes >> 4) & 1,
            (attributes >> 5) & 1,
            field(&b, 23, 4) as i32,
            field(&b, 27, 8),
            field(&b, 35, 8),
            if field(&b, 43, 8) >= 0 {
                "some"
            } else {
                "none"
            },
            field(&b, 51, 2) as i16,
            field(&b, 53, 4) as i32,
            field(&b, 57, 4) as i32,
        ));
        let mut one = b.clone();
        let set = RecordBatchDecoder::decode(&mut one)?;
        for r in set.records {
            out.push_str(&format!(
                "  record(offset={} timestamp={} key={:?} value={:?} headers={:?})\n",
                r.offset, r.timestamp, r.key, r.value, r.headers
            ));
        }
    }
    Ok(out)
}
