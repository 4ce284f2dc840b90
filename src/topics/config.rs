//! Per-topic configuration: the Kafka topic keys samsa honours, their broker-wide
//! defaults, validation, and the storage settings they translate to.

use std::collections::BTreeMap;

use samsa_storage::{LogConfig, TimestampType};

use crate::config::{Config, TimestampKind};
use crate::error::BrokerError;

/// Where a config value comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself (Kafka's DYNAMIC_TOPIC_CONFIG).
    Topic,
    /// Set in the broker's config file (STATIC_BROKER_CONFIG).
    StaticBroker,
    /// samsa's built-in default (DEFAULT_CONFIG).
    Default,
}

impl ConfigSource {
    /// The `config_source` code of DescribeConfigs v1+.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// One topic config key: its Kafka name and how its broker-wide default is found.
struct TopicKey {
    name: &'static str,
    /// The broker-level default, or `None` if the key has a fixed default.
    broker_default: fn(&Config) -> String,
    validate: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(format!("'{v}' is below the minimum {min}")),
        Err(_) => Err(format!("'{v}' is not a whole number")),
    }
}

const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        broker_default: |_| "delete".into(),
        // Compaction is not implemented yet; accepting "compact" would silently keep every record.
        validate: |v| match v {
            "delete" => Ok(()),
            _ => Err(format!("cleanup.policy '{v}' is not supported yet (only 'delete')")),
        },
    },
    TopicKey {
        name: "retention.ms",
        broker_default: |c| c.retention_ms.to_string(),
        validate: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: "retention.bytes",
        broker_default: |c| c.retention_bytes.to_string(),
        validate: |v| long_at_least(-1)(v),
    },
    TopicKey {
        name: "segment.bytes",
        broker_default: |c| c.segment_bytes.to_string(),
        validate: |v| long_at_least(14)(v),
    },
    TopicKey {
        name: "segment.ms",
        broker_default: |c| c.segment_ms.to_string(),
        validate: |v| long_at_least(1)(v),
    },
    TopicKey {
        name: "index.interval.bytes",
        broker_default: |c| c.index_interval_bytes.to_string(),
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "max.message.bytes",
        broker_default: |c| c.message_max_bytes.to_string(),
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "message.timestamp.type",
        broker_default: |c| c.message_timestamp_type.as_str().into(),
        validate: |v| match v {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!("'{v}' is not CreateTime or LogAppendTime")),
        },
    },
    TopicKey {
        name: "flush.messages",
        broker_default: |c| c.flush_messages.map_or(i64::MAX, |n| n as i64).to_string(),
        validate: |v| long_at_least(1)(v),
    },
    TopicKey {
        name: "flush.ms",
        broker_default: |c| c.flush_ms.map_or(i64::MAX, |n| n as i64).to_string(),
        validate: |v| long_at_least(0)(v),
    },
    TopicKey {
        name: "min.insync.replicas",
        broker_default: |_| "1".into(),
        validate: |v| match v {
            "1" => Ok(()),
            _ => Err(format!("min.insync.replicas '{v}' cannot be met by a single node")),
        },
    },
    TopicKey {
        name: "compression.type",
        broker_default: |_| "producer".into(),
        // Batches are stored as they arrived; recompressing would break that promise.
        validate: |v| match v {
            "producer" => Ok(()),
            _ => Err(format!("compression.type '{v}' is not supported (only 'producer')")),
        },
    },
];

/// A topic's explicit config overrides, keyed by Kafka name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig(pub BTreeMap<String, String>);

/// One resolved config entry for DescribeConfigs.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

impl TopicConfig {
    /// Checks every key and value; unknown keys are rejected as Kafka does.
    pub fn validated(overrides: BTreeMap<String, String>) -> Result<TopicConfig, BrokerError> {
        for (name, value) in &overrides {
            let key = TOPIC_KEYS
                .iter()
                .find(|k| k.name == name)
                .ok_or_else(|| BrokerError::InvalidConfig(format!("unknown topic config '{name}'")))?;
            (key.validate)(value)
                .map_err(|reason| BrokerError::InvalidConfig(format!("{name}: {reason}")))?;
        }
        Ok(TopicConfig(overrides))
    }

    /// Every key with its effective value and where that value comes from.
    pub fn entries(&self, broker: &Config) -> Vec<ConfigEntry> {
        TOPIC_KEYS
            .iter()
            .map(|key| match self.0.get(key.name) {
                Some(value) => ConfigEntry {
                    name: key.name,
                    value: value.clone(),
                    source: ConfigSource::Topic,
                },
                None => ConfigEntry {
                    name: key.name,
                    value: (key.broker_default)(broker),
                    source: ConfigSource::Default,
                },
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
        }
    }
}

/// Broker-level entries for DescribeConfigs on the broker resource, in Kafka's names.
pub fn broker_entries(config: &Config) -> Vec<(&'static str, String, bool)> {
    let (host, port) = config.advertised();
    vec![
        ("broker.id", config.node_id.to_string(), true),
        ("node.id", config.node_id.to_string(), true),
        ("listeners", format!("PLAINTEXT://{}", config.listen), true),
        ("advertised.listeners", format!("PLAINTEXT://{host}:{port}"), true),
        ("log.dirs", config.data_dir.display().to_string(), true),
        ("num.partitions", config.num_partitions.to_string(), true),
        ("default.replication.factor", config.default_replication_factor.to_string(), true),
        ("auto.create.topics.enable", config.auto_create_topics.to_string(), true),
        ("message.max.bytes", config.message_max_bytes.to_string(), true),
        ("socket.request.max.bytes", config.socket_request_max_bytes.to_string(), true),
        ("log.segment.bytes", config.segment_bytes.to_string(), true),
        ("log.roll.ms", config.segment_ms.to_string(), true),
        ("log.index.interval.bytes", config.index_interval_bytes.to_string(), true),
        ("log.retention.ms", config.retention_ms.to_string(), true),
        ("log.retention.bytes", config.retention_bytes.to_string(), true),
        ("log.retention.check.interval.ms", config.retention_check_interval_ms.to_string(), true),
        ("log.message.timestamp.type", config.message_timestamp_type.as_str().to_owned(), true),
        (
            "log.flush.interval.messages",
            config.flush_messages.map_or(i64::MAX, |n| n as i64).to_string(),
            true,
        ),
        (
            "log.flush.interval.ms",
            config.flush_ms.map_or("null".to_owned(), |n| n.to_string()),
            true,
        ),
    ]
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
mod tests {
    use super::*;

    #[test]
    fn unknown_and_invalid_configs_are_rejected() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(TopicConfig::validated(one("no.such.key", "1")).is_err());
        assert!(TopicConfig::validated(one("retention.ms", "soon")).is_err());
        assert!(TopicConfig::validated(one("retention.ms", "-2")).is_err());
        assert!(TopicConfig::validated(one("retention.ms", "-1")).is_ok());
        assert!(TopicConfig::validated(one("message.timestamp.type", "LogAppendTime")).is_ok());
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = Config::default();
        let topic = TopicConfig::validated(BTreeMap::from([(
            "segment.bytes".to_owned(),
            "1000".to_owned(),
        )]))
        .unwrap();
        let log = topic.log_config(&broker);
        assert_eq!(log.segment_bytes, 1000);
        assert_eq!(log.retention_ms, Some(broker.retention_ms));
        assert_eq!(log.retention_bytes, None);
        assert_eq!(log.flush_messages, None);
    }
}
