//! The rules a produced batch's records must each satisfy (Kafka's
//! `LogValidator.validateRecord`). A batch with a record that breaks one is refused whole, and
//! every such record is named by its index in the batch (KIP-467), so a client fails those
//! records as invalid and retries or fails the rest with the batch's error.
//!
//! Records are decoded only when a rule can apply: on a compacted topic, for a batch a producer
//! marked LogAppendTime, with a `message.timestamp.before.max.ms` bound, or when the batch's
//! max timestamp is past the `message.timestamp.after.max.ms` bound (Kafka decodes every
//! batch; samsa trusts a batch's max timestamp to tell that none of its records is later).

use crate::batch::BatchHeader;
use crate::records::BatchRecords;
use crate::{LogConfig, StorageError, TimestampType};

/// Why one record of a batch was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordFault {
    /// A record without a key in a compacted topic, which the cleaner could never clean.
    NoKey,
    /// A producer stamped the batch LogAppendTime, where the topic gives it no timestamp to
    /// keep: the topic is LogAppendTime itself, or the batch has no max timestamp. Kafka's
    /// message prints the record, hence its fields.
    ProducerLogAppendTime {
        offset: i64,
        timestamp: i64,
        key_len: usize,
        value_len: usize,
    },
    /// A CreateTime timestamp outside `[lower, upper]`, the bounds the topic's
    /// `message.timestamp.before.max.ms` and `after.max.ms` put around the broker's clock
    /// (computed as Kafka computes them, wrapping).
    TimestampOutOfRange {
        offset: i64,
        timestamp: i64,
        lower: i64,
        upper: i64,
    },
}

impl RecordFault {
    /// Kafka answers INVALID_TIMESTAMP when any refused record's fault is its timestamp.
    pub fn is_timestamp(&self) -> bool {
        matches!(
            self,
            RecordFault::ProducerLogAppendTime { .. } | RecordFault::TimestampOutOfRange { .. }
        )
    }
}

/// One refused record: its index in the batch and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedRecord {
    pub index: usize,
    pub fault: RecordFault,
}

/// Kafka's bounds check of a CreateTime timestamp, in its wrapping arithmetic.
fn out_of_range(timestamp: i64, now_ms: i64, config: &LogConfig) -> bool {
    let difference = now_ms.wrapping_sub(timestamp);
    difference > config.timestamp_before_max_ms
        || difference.wrapping_neg() > config.timestamp_after_max_ms
}

/// Checks each record of one whole client batch appended at `now_ms`; control batches are
/// exempt (the log refuses them from clients on its own).
pub(crate) fn check(batch: &[u8], config: &LogConfig, now_ms: i64) -> Result<(), StorageError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        return Ok(());
    }
    let compacted = config.cleanup_policy.compact;
    let create_time = config.timestamp_type == TimestampType::CreateTime;
    // A CreateTime topic keeps a LogAppendTime batch's max timestamp as every record's
    // CreateTime; only without one (or on a LogAppendTime topic) is the record refused.
    let producer_log_append_time = header.timestamp_type() == TimestampType::LogAppendTime
        && (!create_time || header.max_timestamp == -1);
    let bounded = create_time
        && (config.timestamp_before_max_ms != i64::MAX
            || (header.max_timestamp != -1 && out_of_range(header.max_timestamp, now_ms, config)));
    if !compacted && !producer_log_append_time && !bounded {
        return Ok(());
    }
    let parsed = BatchRecords::parse(batch).map_err(|e| match e {
        StorageError::CorruptRecord(why) => StorageError::InvalidRecord(why),
        other => other,
    })?;
    // One fault per record, in Kafka's order: the key, then the timestamp.
    let refused: Vec<RefusedRecord> = parsed
        .records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| {
            let fault = if compacted && parsed.key(record).is_none() {
                RecordFault::NoKey
            } else if create_time && record.timestamp != -1 {
                if !out_of_range(record.timestamp, now_ms, config) {
                    return None;
                }
                RecordFault::TimestampOutOfRange {
                    offset: record.offset,
                    timestamp: record.timestamp,
                    lower: now_ms.wrapping_sub(config.timestamp_before_max_ms),
                    upper: now_ms.wrapping_add(config.timestamp_after_max_ms),
                }
            } else if header.timestamp_type() == TimestampType::LogAppendTime {
                RecordFault::ProducerLogAppendTime {
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key_len: parsed.key(record).map_or(0, <[u8]>::len),
                    value_len: parsed.value(record).map_or(0, <[u8]>::len),
                }
            } else {
                return None;
            };
            Some(RefusedRecord { index, fault })
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(StorageError::RecordsRefused(refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch_full_keys, keyed_batch, Codec};

    /// Far from the test batches' timestamps, so only tests that mean to set bounds do.
    const NOW: i64 = 1_000_000;

    fn config(compacted: bool, topic: TimestampType) -> LogConfig {
        LogConfig {
            cleanup_policy: crate::CleanupPolicy {
                delete: !compacted,
                compact: compacted,
            },
            timestamp_type: topic,
            // Kafka's default: an hour ahead of the broker's clock at most.
            timestamp_after_max_ms: 3_600_000,
            ..LogConfig::default()
        }
    }

    fn refused_with(batch: &[u8], config: &LogConfig) -> Vec<RefusedRecord> {
        match check(batch, config, NOW) {
            Ok(()) => Vec::new(),
            Err(StorageError::RecordsRefused(refused)) => refused,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn refused(batch: &[u8], compacted: bool, topic: TimestampType) -> Vec<RefusedRecord> {
        refused_with(batch, &config(compacted, topic))
    }

    /// Marks a batch LogAppendTime with `max_timestamp`, as a misbehaving producer would.
    fn producer_log_append_time(batch: &[u8], max_timestamp: i64) -> Vec<u8> {
        let mut batch = batch.to_vec();
        let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 1 << 3;
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn every_keyless_record_of_a_compacted_batch_is_named() {
        for codec in Codec::ALL {
            let batch = batch_full_keys(&[Some("a"), None, Some("c"), None], codec);
            let indexes: Vec<usize> = refused(&batch, true, TimestampType::CreateTime)
                .iter()
                .map(|r| r.index)
                .collect();
            assert_eq!(indexes, [1, 3], "{codec:?}");
            assert!(refused(&batch, false, TimestampType::CreateTime).is_empty());
        }
        let keyed = keyed_batch(&[("a", Some("1"))], 0, Codec::Gzip);
        assert!(refused(&keyed, true, TimestampType::CreateTime).is_empty());
    }

    #[test]
    fn a_producers_log_append_time_is_refused_where_kafka_refuses_it() {
        let batch = keyed_batch(&[("a", Some("1")), ("bb", None)], 100, Codec::Lz4);
        let with_time = producer_log_append_time(&batch, 500);
        // A CreateTime topic keeps the batch's max timestamp.
        assert!(refused(&with_time, false, TimestampType::CreateTime).is_empty());
        let all = refused(&with_time, false, TimestampType::LogAppendTime);
        assert_eq!(
            all[1],
            RefusedRecord {
                index: 1,
                fault: RecordFault::ProducerLogAppendTime {
                    offset: 1,
                    timestamp: 500,
                    key_len: 2,
                    value_len: 0
                }
            }
        );
        let without_time = producer_log_append_time(&batch, -1);
        assert_eq!(
            refused(&without_time, false, TimestampType::CreateTime).len(),
            2
        );
        // A missing key is named first.
        let keyless = producer_log_append_time(&batch_full_keys(&[None], Codec::None), -1);
        let faults = refused(&keyless, true, TimestampType::CreateTime);
        assert_eq!(faults[0].fault, RecordFault::NoKey);
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        // Records at NOW - 10, NOW, NOW + 10 and NOW + 3_600_001 (past the default hour).
        let times = [NOW - 10, NOW, NOW + 10, NOW + 3_600_001];
        for codec in Codec::ALL {
            let batch = crate::testutil::batch_with(&times, codec);
            let faults = refused(&batch, false, TimestampType::CreateTime);
            assert_eq!(faults.len(), 1, "{codec:?}");
            assert_eq!(
                faults[0],
                RefusedRecord {
                    index: 3,
                    fault: RecordFault::TimestampOutOfRange {
                        offset: 3,
                        timestamp: NOW + 3_600_001,
                        lower: NOW.wrapping_sub(i64::MAX),
                        upper: NOW + 3_600_000,
                    }
                }
            );
            // A LogAppendTime topic stamps its own time instead.
            assert!(refused(&batch, false, TimestampType::LogAppendTime).is_empty());
        }
        let tight = LogConfig {
            timestamp_before_max_ms: 5,
            timestamp_after_max_ms: 5,
            ..config(false, TimestampType::CreateTime)
        };
        let batch = crate::testutil::batch_with(&times[..3], Codec::Gzip);
        let indexes: Vec<usize> = refused_with(&batch, &tight)
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(indexes, [0, 2]);
        let unbounded = LogConfig {
            timestamp_after_max_ms: i64::MAX,
            ..config(false, TimestampType::CreateTime)
        };
        let far = crate::testutil::batch_with(&[i64::MAX - 1], Codec::None);
        assert!(refused_with(&far, &unbounded).is_empty());
    }
}
