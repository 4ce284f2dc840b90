//! Every codec into every other, checked with kafka-protocol's decoder (the reference).

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use proptest::prelude::*;

use super::*;
use crate::batch::{check_batch, HEADER_SIZE};
use crate::testutil::{records_of_full, Codec};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn kafka_codec(codec: Compression) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression as K;
    match codec {
        Compression::None => K::None,
        Compression::Gzip => K::Gzip,
        Compression::Snappy => K::Snappy,
        Compression::Lz4 => K::Lz4,
        Compression::Zstd => K::Zstd,
        Compression::Unknown(_) => unreachable!(),
    }
}

fn target(codec: Compression) -> TargetCompression {
    let level = match codec {
        Compression::Gzip => -1,
        Compression::Lz4 => 9,
        Compression::Zstd => 3,
        _ => 0,
    };
    TargetCompression { codec, level }
}

/// One record as a producer gives it: key, value, timestamp, headers.
type Entry = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Everything a consumer sees of a record: offset, timestamp, key, value, headers (as text),
/// transactional, producer id, epoch, sequence.
type Seen = (
    i64,
    i64,
    Option<Bytes>,
    Option<Bytes>,
    String,
    bool,
    i64,
    i16,
    i32,
);

/// A producer's records: (key, value, timestamp, headers); `producer` is (id, epoch, base
/// sequence, transactional).
fn encode(entries: &[Entry], producer: (i64, i16, i32, bool), codec: Compression) -> Bytes {
    let (id, epoch, sequence, transactional) = producer;
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value, timestamp, headers))| {
            let mut record = Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder splits batches unless offset - sequence is constant.
                sequence: if sequence < 0 {
                    i as i32 - 1
                } else {
                    sequence + i as i32
                },
                timestamp: *timestamp,
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: Default::default(),
            };
            for (name, value) in headers {
                record.headers.insert(
                    StrBytes::from_string(name.clone()),
                    value.clone().map(Bytes::from),
                );
            }
            record
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: kafka_codec(codec),
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

/// What must survive a rewrite: everything a consumer sees of each record.
fn contents(bytes: &[u8]) -> Vec<Seen> {
    records_of_full(bytes)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                r.timestamp,
                r.key,
                r.value,
                format!("{:?}", r.headers),
                r.transactional,
                r.producer_id,
                r.producer_epoch,
                r.sequence,
            )
        })
        .collect()
}

#[test]
fn every_codec_pair_round_trips_with_producer_fields() {
    let entries = vec![
        (
            Some(b"k1".to_vec()),
            Some(vec![b'a'; 300]),
            1_000,
            vec![("h".into(), Some(b"x".to_vec()))],
        ),
        (None, Some(b"v2".to_vec()), 1_005, vec![]),
        (Some(b"k3".to_vec()), None, 990, vec![("n".into(), None)]),
    ];
    for producer in [(-1, -1, -1, false), (42, 3, 17, false), (43, 1, 0, true)] {
        for from in CODECS {
            let original = encode(&entries, producer, from);
            for to in CODECS {
                let rewritten = recompress(&original, target(to), 1 << 20).unwrap();
                let Some(rewritten) = rewritten else {
                    assert_eq!(from, to, "only a batch in the target codec is kept");
                    continue;
                };
                let before = check_batch(&original).unwrap();
                let after = check_batch(&rewritten).unwrap();
                assert_eq!(after.compression(), to, "{from:?} -> {to:?}");
                assert_eq!(
                    (after.producer_id, after.producer_epoch, after.base_sequence),
                    (
                        before.producer_id,
                        before.producer_epoch,
                        before.base_sequence
                    )
                );
                assert_eq!(after.is_transactional(), producer.3);
                assert_eq!(
                    (
                        after.base_timestamp,
                        after.max_timestamp,
                        after.record_count
                    ),
                    (1_000, 1_005, 3)
                );
                assert_eq!(after.last_offset_delta, 2);
                assert_eq!(
                    contents(&rewritten),
                    contents(&original),
                    "{from:?} -> {to:?}"
                );
                // And back again: nothing is lost either way.
                let back = recompress(&rewritten, target(from), 1 << 20)
                    .unwrap()
                    .unwrap();
                assert_eq!(contents(&back), contents(&original));
            }
        }
    }
}

#[test]
fn levels_give_valid_batches() {
    let entries: Vec<_> = (0..50)
        .map(|i| {
            (
                Some(format!("key-{i}").into_bytes()),
                Some(vec![b'v'; 100]),
                i,
                vec![],
            )
        })
        .collect();
    let original = encode(&entries, (-1, -1, -1, false), Compression::None);
    for (codec, levels) in [
        (Compression::Gzip, vec![-1, 1, 9]),
        (Compression::Lz4, vec![1, 9, 17]),
        (Compression::Zstd, vec![-131072, -5, 1, 3, 22]),
    ] {
        for level in levels {
            let rewritten = recompress(&original, TargetCompression { codec, level }, 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(check_batch(&rewritten).unwrap().compression(), codec);
            assert_eq!(
                contents(&rewritten),
                contents(&original),
                "{codec:?} {level}"
            );
        }
    }
}

#[test]
fn records_are_rebuilt_as_kafka_does_when_deltas_are_unusual() {
    // The first record one millisecond after the batch's base timestamp (its timestampDelta,
    // the third byte of the first record, made 1): Kafka's rebuilt batch starts at the first
    // record's timestamp, every record keeping its own.
    let entries = vec![
        (Some(b"a".to_vec()), Some(b"1".to_vec()), 5_000, vec![]),
        (Some(b"b".to_vec()), Some(b"2".to_vec()), 5_001, vec![]),
    ];
    let mut original = encode(&entries, (-1, -1, -1, false), Compression::None).to_vec();
    assert_eq!(original[HEADER_SIZE + 2], 0);
    original[HEADER_SIZE + 2] = 2; // zigzag 1
    let crc = crc32c::crc32c(&original[21..]);
    original[17..21].copy_from_slice(&crc.to_be_bytes());
    let before = contents(&original);
    assert_eq!((before[0].1, before[1].1), (5_001, 5_001));
    let rewritten = recompress(&original, target(Compression::Zstd), 1 << 20)
        .unwrap()
        .unwrap();
    let after = check_batch(&rewritten).unwrap();
    assert_eq!((after.base_timestamp, after.max_timestamp), (5_001, 5_001));
    assert_eq!(contents(&rewritten), before);
}

#[test]
fn refused_batches_keep_the_logs_error() {
    let good = crate::testutil::batch_with(&[1, 2], Codec::Gzip);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        recompress(&corrupt, target(Compression::Zstd), 1 << 20),
        Err(StorageError::CorruptRecord(_))
    ));
    assert!(matches!(
        recompress(&good, target(Compression::Zstd), 10),
        Err(StorageError::RecordTooLarge { .. })
    ));
}

#[test]
fn batches_in_the_target_codec_and_control_batches_are_left_alone() {
    let zstd = crate::testutil::batch_with(&[1, 2], Codec::Zstd);
    assert_eq!(
        recompress(&zstd, target(Compression::Zstd), 1 << 20).unwrap(),
        None
    );
    let marker = crate::batch::control_batch(7, 0, crate::ControlType::Commit, 0, 5);
    assert_eq!(
        recompress(&marker, target(Compression::Gzip), 1 << 20).unwrap(),
        None
    );
}

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_records_survive_any_codec_pair(
        entries in proptest::collection::vec(
            (bytes_opt(), bytes_opt(), 0i64..1_000_000_000_000,
             proptest::collection::vec(("[a-z]{1,5}", bytes_opt()), 0..3)),
            1..20),
        from in 0usize..5,
        to in 0usize..5,
        producer in prop_oneof![
            Just((-1i64, -1i16, -1i32, false)),
            (0i64..1_000, 0i16..10, 0i32..1_000_000, any::<bool>()),
        ],
    ) {
        // Header names must be unique within a record (they are a map in the reference).
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(k, v, t, mut h)| {
                h.sort_by(|a, b| a.0.cmp(&b.0));
                h.dedup_by(|a, b| a.0 == b.0);
                (k, v, t, h)
            })
            .collect();
        let original = encode(&entries, producer, CODECS[from]);
        match recompress(&original, target(CODECS[to]), 1 << 20).unwrap() {
            None => prop_assert_eq!(from, to),
            Some(rewritten) => {
                let header = check_batch(&rewritten).unwrap();
                prop_assert_eq!(header.compression(), CODECS[to]);
                prop_assert_eq!(header.is_transactional(), producer.3);
                prop_assert_eq!(contents(&rewritten), contents(&original));
            }
        }
    }
}
