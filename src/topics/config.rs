//! Per-topic configuration: the Kafka topic keys samsa honours, their broker-wide
//! defaults, validation, and the storage settings they translate to.

use std::collections::BTreeMap;

use samsa_storage::{CleanupPolicy, LogConfig, TargetCompression, TimestampType};

use crate::config::compression::{self, LevelOf};
use crate::config::{Config, TimestampKind};
use crate::error::BrokerError;

mod broker;
mod schema;
pub use broker::broker_entries;

/// Where a config value comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself (Kafka's DYNAMIC_TOPIC_CONFIG).
    Topic,
    /// Set in the broker's config file (STATIC_BROKER_CONFIG).
    StaticBroker,
    /// samsa's built-in default (DEFAULT_CONFIG).
    Default,
    /// Set on a group (Kafka's GROUP_CONFIG, shown as DYNAMIC_GROUP_CONFIG).
    Group,
}

impl ConfigSource {
    /// The `config_source` code of DescribeConfigs v1+.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::Group => 8,
        }
    }
}

/// Kafka's config value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic config key: its Kafka name, the broker-file key that sets its default, its
/// type, and how a value is checked.
struct TopicKey {
    name: &'static str,
    /// Kafka's name for the broker-wide default, listed as a synonym.
    broker_name: &'static str,
    /// The key in samsa's config file that provides the default, if any.
    broker_key: Option<&'static str>,
    broker_default: fn(&Config) -> String,
    config_type: ConfigType,
    doc: &'static str,
    validate: fn(&str) -> Result<(), String>,
}

/// Kafka's `Range.atLeast` on a LONG, with its ConfigException reasons.
fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("Value must be at least {min}")),
        Err(_) => Err("Not a number of type LONG".into()),
    }
}

/// The same on an INT.
fn int_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.parse::<i32>() {
        Ok(n) if i64::from(n) >= min => Ok(()),
        Ok(_) => Err(format!("Value must be at least {min}")),
        Err(_) => Err("Not a number of type INT".into()),
    }
}

/// Parses a `cleanup.policy` list: "delete", "compact", or both, comma separated.
pub fn parse_cleanup_policy(v: &str) -> Result<CleanupPolicy, String> {
    let mut policy = CleanupPolicy {
        delete: false,
        compact: false,
    };
    for item in v.split(',').map(str::trim) {
        match item {
            "delete" => policy.delete = true,
            "compact" => policy.compact = true,
            _ => return Err(format!("'{item}' is not 'delete' or 'compact'")),
        }
    }
    Ok(policy)
}

fn ratio(v: &str) -> Result<(), String> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err(format!("'{v}' is not a number between 0 and 1")),
    }
}

/// Every topic key: Kafka's, then those of schema id validation.
fn topic_keys() -> impl Iterator<Item = &'static TopicKey> {
    TOPIC_KEYS.iter().chain(schema::SCHEMA_KEYS)
}

const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        broker_key: None,
        broker_default: |_| "delete".into(),
        config_type: ConfigType::List,
        doc: "'delete' removes old segments by time and size, 'compact' keeps the last record per key; 'compact,delete' does both.",
        validate: |v| parse_cleanup_policy(v).map(|_| ()),
    },
    TopicKey {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        broker_key: None,
        broker_default: |_| "86400000".into(),
        config_type: ConfigType::Long,
        doc: "How long a tombstone stays in a compacted topic after the cleaner first sees it.",
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "compression.gzip.level",
        broker_name: "compression.gzip.level",
        broker_key: Some("compression_gzip_level"),
        broker_default: |c| c.compression_gzip_level.to_string(),
        config_type: ConfigType::Int,
        doc: "The compression level to use if compression.type is set to gzip.",
        validate: |v| compression::check_level(LevelOf::Gzip, v),
    },
    TopicKey {
        name: "compression.lz4.level",
        broker_name: "compression.lz4.level",
        broker_key: Some("compression_lz4_level"),
        broker_default: |c| c.compression_lz4_level.to_string(),
        config_type: ConfigType::Int,
        doc: "The compression level to use if compression.type is set to lz4.",
        validate: |v| compression::check_level(LevelOf::Lz4, v),
    },
    TopicKey {
        name: "compression.type",
        broker_name: "compression.type",
        broker_key: Some("compression_type"),
        broker_default: |c| c.compression_type.clone(),
        config_type: ConfigType::String,
        doc: "The codec batches are kept in: 'producer' keeps each as the producer compressed it; 'uncompressed', 'gzip', 'snappy', 'lz4' or 'zstd' recompresses batches in another codec.",
        validate: compression::check_type,
    },
    TopicKey {
        name: "compression.zstd.level",
        broker_name: "compression.zstd.level",
        broker_key: Some("compression_zstd_level"),
        broker_default: |c| c.compression_zstd_level.to_string(),
        config_type: ConfigType::Int,
        doc: "The compression level to use if compression.type is set to zstd.",
        validate: |v| compression::check_level(LevelOf::Zstd, v),
    },
    TopicKey {
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        broker_key: Some("flush_messages"),
        broker_default: |c| c.flush_messages.map_or(i64::MAX, |n| n as i64).to_string(),
        config_type: ConfigType::Long,
        doc: "fsync the log after this many records.",
        validate: |v| long_at_least(1)(v),
    },
    TopicKey {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        broker_key: Some("flush_ms"),
        broker_default: |c| c.flush_ms.map_or(i64::MAX, |n| n as i64).to_string(),
        config_type: ConfigType::Long,
        doc: "fsync the log when data has been unflushed this long.",
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        broker_key: Some("index_interval_bytes"),
        broker_default: |c| c.index_interval_bytes.to_string(),
        config_type: ConfigType::Int,
        doc: "Bytes of log between two sparse offset index entries.",
        validate: |v| int_at_least(0)(v),
    },
    TopicKey {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        broker_key: Some("message_max_bytes"),
        broker_default: |c| c.message_max_bytes.to_string(),
        config_type: ConfigType::Int,
        doc: "Largest record batch accepted.",
        validate: |v| int_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.after.max.ms",
        broker_name: "log.message.timestamp.after.max.ms",
        broker_key: Some("message_timestamp_after_max_ms"),
        broker_default: |c| c.message_timestamp_after_max_ms.to_string(),
        config_type: ConfigType::Long,
        doc: "A CreateTime record more than this after the broker's clock is refused (INVALID_TIMESTAMP).",
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.before.max.ms",
        broker_name: "log.message.timestamp.before.max.ms",
        broker_key: Some("message_timestamp_before_max_ms"),
        broker_default: |c| c.message_timestamp_before_max_ms.to_string(),
        config_type: ConfigType::Long,
        doc: "A CreateTime record more than this before the broker's clock is refused (INVALID_TIMESTAMP).",
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        broker_key: Some("message_timestamp_type"),
        broker_default: |c| c.message_timestamp_type.as_str().into(),
        config_type: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime uses the broker's clock.",
        validate: |v| match v {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!("'{v}' is not CreateTime or LogAppendTime")),
        },
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        broker_key: None,
        broker_default: |_| "0.5".into(),
        config_type: ConfigType::Double,
        doc: "Compact when uncleaned bytes reach this share of the cleanable log.",
        validate: ratio,
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        broker_key: None,
        broker_default: |_| "0".into(),
        config_type: ConfigType::Long,
        doc: "Records younger than this are never compacted.",
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        broker_key: Some("min_insync_replicas"),
        broker_default: |c| c.min_insync_replicas.to_string(),
        config_type: ConfigType::Int,
        doc: "In-sync replicas an acks=all write needs; with fewer, it is refused (NOT_ENOUGH_REPLICAS).",
        validate: |v| int_at_least(1)(v),
    },
    TopicKey {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        broker_key: Some("retention_bytes"),
        broker_default: |c| c.retention_bytes.to_string(),
        config_type: ConfigType::Long,
        doc: "Delete old segments while the partition is larger than this; -1 for no limit.",
        validate: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        broker_key: Some("retention_ms"),
        broker_default: |c| c.retention_ms.to_string(),
        config_type: ConfigType::Long,
        doc: "Delete segments older than this; -1 keeps them forever.",
        validate: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: MIRROR_LINK_KEY,
        broker_name: MIRROR_LINK_KEY,
        broker_key: None,
        broker_default: |_| String::new(),
        config_type: ConfigType::String,
        doc: "The cluster link this topic mirrors its source topic through: read-only while set; deleting it promotes the topic (mirroring stops, it becomes writable).",
        validate: |v| match v {
            "" => Err("a link's name cannot be empty".into()),
            _ => Ok(()),
        },
    },
    TopicKey {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        broker_key: Some("segment_bytes"),
        broker_default: |c| c.segment_bytes.to_string(),
        config_type: ConfigType::Int,
        doc: "Roll a new segment when the active one reaches this size.",
        validate: |v| int_at_least(14)(v),
    },
    TopicKey {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        broker_key: Some("segment_ms"),
        broker_default: |c| c.segment_ms.to_string(),
        config_type: ConfigType::Long,
        doc: "Roll a new segment when the active one's first record is this old.",
        validate: |v| long_at_least(1)(v),
    },
];

/// The topic config that marks a mirror topic with the name of its cluster link. A topic
/// config, so the mark replicates with the metadata log and survives restarts.
pub const MIRROR_LINK_KEY: &str = "samsa.link.name";

/// A topic's explicit config overrides, keyed by Kafka name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig(pub BTreeMap<String, String>);

/// One resolved config entry for DescribeConfigs.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
    pub doc: &'static str,
    pub read_only: bool,
    /// Every level that sets this config, most specific first (DescribeConfigs synonyms).
    pub synonyms: Vec<Synonym>,
}

/// One level of a config's precedence chain.
#[derive(Debug, Clone)]
pub struct Synonym {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

impl TopicConfig {
    /// Checks every key and value; unknown keys are rejected as Kafka does.
    pub fn validated(overrides: BTreeMap<String, String>) -> Result<TopicConfig, BrokerError> {
        for (name, value) in &overrides {
            let key = topic_keys().find(|k| k.name == name).ok_or_else(|| {
                BrokerError::InvalidConfig(format!("unknown topic config '{name}'"))
            })?;
            // Kafka's ConfigException words it so.
            (key.validate)(value).map_err(|reason| {
                BrokerError::InvalidConfig(format!(
                    "Invalid value {value} for configuration {name}: {reason}"
                ))
            })?;
        }
        Ok(TopicConfig(overrides))
    }

    /// The cluster link this topic is a mirror of, if it is one.
    pub fn mirror_link(&self) -> Option<&str> {
        self.0.get(MIRROR_LINK_KEY).map(String::as_str)
    }

    /// Whether `name` is a topic key samsa knows.
    pub fn is_known(name: &str) -> bool {
        TOPIC_KEYS.iter().any(|k| k.name == name)
    }

    /// Whether `name` is a topic key of list type (the only kind APPEND and SUBTRACT apply to);
    /// `None` for keys samsa does not know.
    pub fn is_list(name: &str) -> Option<bool> {
        topic_keys()
            .find(|k| k.name == name)
            .map(|k| k.config_type == ConfigType::List)
    }

    /// Every key with its effective value and where that value comes from.
    pub fn entries(&self, broker: &Config) -> Vec<ConfigEntry> {
        topic_keys()
            .map(|key| {
                let mut synonyms = Vec::new();
                if let Some(value) = self.0.get(key.name) {
                    synonyms.push(Synonym {
                        name: key.name,
                        value: value.clone(),
                        source: ConfigSource::Topic,
                    });
                }
                if key.broker_key.is_some_and(|k| broker.is_explicit(k)) {
                    synonyms.push(Synonym {
                        name: key.broker_name,
                        value: (key.broker_default)(broker),
                        source: ConfigSource::StaticBroker,
                    });
                }
                synonyms.push(Synonym {
                    name: key.broker_name,
                    value: (key.broker_default)(&Config::default()),
                    source: ConfigSource::Default,
                });
                let effective = &synonyms[0];
                ConfigEntry {
                    name: key.name,
                    value: effective.value.clone(),
                    source: effective.source,
                    config_type: key.config_type,
                    doc: key.doc,
                    read_only: false,
                    synonyms,
                }
            })
            .collect()
    }

    fn effective(&self, broker: &Config, name: &str) -> Option<String> {
        self.entries(broker)
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.value)
    }

    fn number(&self, broker: &Config, name: &str) -> i64 {
        self.effective(broker, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    }

    /// One key's effective value without resolving the others: for the produce path.
    fn value(&self, broker: &Config, name: &str) -> String {
        match self.0.get(name) {
            Some(value) => value.clone(),
            None => topic_keys()
                .find(|k| k.name == name)
                .map_or_else(String::new, |k| (k.broker_default)(broker)),
        }
    }

    /// The codec this topic keeps batches in, `None` for `producer` (each batch as it came).
    pub fn compression(&self, broker: &Config) -> Option<TargetCompression> {
        let level = |name| self.value(broker, name).trim().parse().unwrap_or(-1);
        compression::target(
            &self.value(broker, "compression.type"),
            level("compression.gzip.level"),
            level("compression.lz4.level"),
            level("compression.zstd.level"),
        )
    }

    /// Largest batch this topic accepts (`max.message.bytes`).
    pub fn max_message_bytes(&self, broker: &Config) -> usize {
        self.value(broker, "max.message.bytes")
            .parse::<i64>()
            .map_or(0, |n| n.max(0) as usize)
    }

    /// In-sync replicas an acks=all write to this topic needs.
    pub fn min_insync_replicas(&self, broker: &Config) -> usize {
        self.number(broker, "min.insync.replicas").max(1) as usize
    }

    /// The storage settings of a partition of this topic.
    pub fn log_config(&self, broker: &Config) -> LogConfig {
        let positive = |n: i64| (n >= 0).then_some(n);
        let unset_if_max = |n: i64| (n >= 0 && n != i64::MAX).then_some(n as u64);
        let timestamp_type = match self.effective(broker, "message.timestamp.type").as_deref() {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        LogConfig {
            segment_bytes: self.number(broker, "segment.bytes").max(14) as u64,
            segment_ms: self.number(broker, "segment.ms").max(1),
            index_interval_bytes: self.number(broker, "index.interval.bytes").max(0) as u64,
            retention_ms: positive(self.number(broker, "retention.ms")),
            retention_bytes: positive(self.number(broker, "retention.bytes")).map(|n| n as u64),
            flush_messages: unset_if_max(self.number(broker, "flush.messages")),
            flush_ms: unset_if_max(self.number(broker, "flush.ms")),
            max_message_bytes: self.number(broker, "max.message.bytes").max(0) as usize,
            timestamp_type,
            timestamp_before_max_ms: self
                .number(broker, "message.timestamp.before.max.ms")
                .max(0),
            timestamp_after_max_ms: self.number(broker, "message.timestamp.after.max.ms").max(0),
            cleanup_policy: self
                .effective(broker, "cleanup.policy")
                .and_then(|v| parse_cleanup_policy(&v).ok())
                .unwrap_or_default(),
            delete_retention_ms: self.number(broker, "delete.retention.ms").max(0),
            min_cleanable_dirty_ratio: self
                .effective(broker, "min.cleanable.dirty.ratio")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.5),
            min_compaction_lag_ms: self.number(broker, "min.compaction.lag.ms").max(0),
            producer_id_expiration_ms: broker.producer_id_expiration_ms,
        }
    }
}

impl From<TimestampKind> for TimestampType {
    fn from(kind: TimestampKind) -> Self {
        match kind {
            TimestampKind::CreateTime => TimestampType::CreateTime,
            TimestampKind::LogAppendTime => TimestampType::LogAppendTime,
        }
    }
}

#[cfg(test)]
mod tests;
