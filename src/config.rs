//! Broker configuration: `etc/samsa.toml`, overridden by command-line flags.
//!
//! Key names follow Kafka's where Kafka has one (`log.segment.bytes` becomes
//! `segment_bytes`), so an operator's Kafka knowledge carries over.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors raised while loading configuration; all are fatal at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Whether record timestamps come from the producer or from the broker's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TimestampKind {
    CreateTime,
    LogAppendTime,
}

impl TimestampKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampKind::CreateTime => "CreateTime",
            TimestampKind::LogAppendTime => "LogAppendTime",
        }
    }
}

/// How a listener's connections are secured (Kafka's security protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
        }
    }
}

/// An additional listener (`[[listener]]`), beside the plaintext one on `listen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name shown in logs and in the broker's `listeners` config entry.
    pub name: String,
    pub address: SocketAddr,
    pub protocol: SecurityProtocol,
    /// `HOST:PORT` given to clients that connect through this listener; defaults to `address`.
    pub advertised: Option<String>,
}

/// Certificates for SSL listeners (`[tls]`), all PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The broker's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// The whole broker configuration. Every field has a default so an empty file is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to in Metadata; defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Address of the Prometheus metrics endpoint; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory holding the topic catalogue and one directory per topic-partition.
    pub data_dir: PathBuf,
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Cluster id reported to clients; generated once and kept in the data directory when unset.
    pub cluster_id: Option<String>,
    /// Partitions of an auto-created topic, and of CreateTopics with `num_partitions = -1`.
    pub num_partitions: i32,
    /// Replication factor of CreateTopics with `replication_factor = -1`. Only 1 is possible on one node.
    pub default_replication_factor: i16,
    /// Create unknown topics when a client asks for their metadata (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted, per topic default (Kafka's `message.max.bytes`).
    pub message_max_bytes: i32,
    /// Largest request frame; a bigger one closes the connection.
    pub socket_request_max_bytes: i32,
    /// Roll a segment when it reaches this size.
    pub segment_bytes: i64,
    /// Roll a segment when its first record is this old.
    pub segment_ms: i64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: i32,
    /// Delete segments older than this; -1 keeps them forever.
    pub retention_ms: i64,
    /// Delete old segments while a partition is larger than this; -1 for no limit.
    pub retention_bytes: i64,
    /// How often retention is applied.
    pub retention_check_interval_ms: u64,
    /// fsync a partition after this many records; 1 fsyncs every write; unset leaves it to `flush_ms` and the OS.
    pub flush_messages: Option<u64>,
    /// fsync partitions with unflushed data this often; unset leaves it to the OS.
    pub flush_ms: Option<u64>,
    /// Timestamp type of new topics (Kafka's `log.message.timestamp.type`).
    pub message_timestamp_type: TimestampKind,
    /// How long a new group waits for more members before its first rebalance completes
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: i32,
    /// Partitions of the internal `__consumer_offsets` topic when it is first created
    /// (`offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Committed offsets of a group that has had no members for this long are deleted
    /// (`offsets.retention.minutes`).
    pub offsets_retention_minutes: i64,
    /// How often expired offsets are looked for (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// Segment size of the `__consumer_offsets` topic when it is first created
    /// (`offsets.topic.segment.bytes`): compaction only cleans sealed segments.
    pub offsets_topic_segment_bytes: i32,
    /// How often the log cleaner looks for compacted partitions due a cleaning
    /// (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_interval_ms: u64,
    /// Largest metadata string a committed offset may carry (`offset.metadata.max.bytes`).
    pub offset_metadata_max_bytes: usize,
    /// Listeners beside `listen`, e.g. an SSL one.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// Certificates for SSL listeners.
    pub tls: Option<TlsConfig>,
    /// Connections accepted at once over all listeners; more are closed on accept (`max.connections`).
    pub max_connections: usize,
    /// Connections accepted at once from one IP address (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Requests of one connection read ahead of the one being served.
    pub max_inflight_requests: usize,
    /// Close a connection that sends no request for this long (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Keys set in the file or on the command line, so DescribeConfigs can tell an
    /// operator's value (STATIC_BROKER_CONFIG) from a built-in default.
    #[serde(skip)]
    pub explicit: BTreeSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".parse().expect("valid literal address"),
            advertised_listener: None,
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            node_id: 1,
            cluster_id: None,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 100 * 1024 * 1024,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 5 * 60 * 1000,
            flush_messages: None,
            flush_ms: None,
            message_timestamp_type: TimestampKind::CreateTime,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_topic_num_partitions: 1,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            log_cleaner_interval_ms: 15_000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            listeners: Vec::new(),
            tls: None,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_inflight_requests: 64,
            connections_max_idle_ms: 10 * 60 * 1000,
            explicit: BTreeSet::new(),
        }
    }
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Reads `path`, applies `overrides`, and checks the values.
    pub fn load(path: &Path, overrides: Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        let mut config: Config = toml::from_str(text)?;
        let table: toml::Table = toml::from_str(text)?;
        config.explicit = table.keys().cloned().collect();
        Ok(config)
    }

    /// Whether `key` was set by the operator rather than left at its default.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
            self.explicit.insert("listen".into());
        }
        if let Some(dir) = overrides.data_dir {
            self.data_dir = dir;
            self.explicit.insert("data_dir".into());
        }
        if let Some(metrics) = overrides.metrics_listen {
            self.metrics_listen = Some(metrics);
            self.explicit.insert("metrics_listen".into());
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.num_partitions < 1 {
            return invalid("num_partitions", "must be at least 1");
        }
        if self.default_replication_factor != 1 {
            return invalid("default_replication_factor", "a single node can only hold 1 replica");
        }
        if self.message_max_bytes < 1 {
            return invalid("message_max_bytes", "must be positive");
        }
        if self.socket_request_max_bytes < 1 {
            return invalid("socket_request_max_bytes", "must be positive");
        }
        if self.segment_bytes < 14 {
            return invalid("segment_bytes", "must be at least 14");
        }
        if self.segment_ms < 1 {
            return invalid("segment_ms", "must be positive");
        }
        if self.index_interval_bytes < 0 {
            return invalid("index_interval_bytes", "must not be negative");
        }
        if self.group_min_session_timeout_ms < 1 || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return invalid(
                "group_max_session_timeout_ms",
                "session timeout bounds must be positive with min <= max",
            );
        }
        if self.offsets_topic_num_partitions < 1 {
            return invalid("offsets_topic_num_partitions", "must be at least 1");
        }
        if self.offsets_topic_segment_bytes < 14 {
            return invalid("offsets_topic_segment_bytes", "must be at least 14");
        }
        if self.offsets_retention_minutes < 1 {
            return invalid("offsets_retention_minutes", "must be positive");
        }
        if let Some(listener) = &self.advertised_listener {
            if parse_host_port(listener).is_none() {
                return invalid("advertised_listener", "expected HOST:PORT");
            }
        }
        for listener in &self.listeners {
            if listener.advertised.as_deref().is_some_and(|a| parse_host_port(a).is_none()) {
                return invalid("listener.advertised", "expected HOST:PORT");
            }
            if listener.protocol == SecurityProtocol::Ssl && self.tls.is_none() {
                return invalid("listener.protocol", "an SSL listener needs a [tls] section");
            }
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_inflight_requests == 0 {
            return invalid("max_inflight_requests", "must be at least 1");
        }
        Ok(())
    }

    /// The host and port clients are told to use.
    pub fn advertised(&self) -> (String, i32) {
        self.advertised_listener
            .as_deref()
            .and_then(parse_host_port)
            .unwrap_or_else(|| (self.listen.ip().to_string(), i32::from(self.listen.port())))
    }
}

pub fn parse_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.advertised(), ("127.0.0.1".to_owned(), 9092));
    }

    #[test]
    fn flags_override_file() {
        let mut config = Config::from_toml("listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"").unwrap();
        config.apply(Overrides {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            data_dir: Some("/b".into()),
            metrics_listen: None,
        });
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.data_dir, PathBuf::from("/b"));
    }

    #[test]
    fn advertised_listener_overrides_listen() {
        let config = Config::from_toml("advertised_listener = \"broker.example:19092\"").unwrap();
        assert_eq!(config.advertised(), ("broker.example".to_owned(), 19092));
    }

    #[test]
    fn explicit_keys_are_remembered() {
        let config = Config::from_toml("retention_ms = 5").unwrap();
        assert!(config.is_explicit("retention_ms"));
        assert!(!config.is_explicit("segment_bytes"));
    }

    #[test]
    fn listeners_and_tls_parse() {
        let config = Config::from_toml(
            "[[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\"\n\
             [tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.listeners[0].protocol, SecurityProtocol::Ssl);
        let without_tls = Config::from_toml(
            "[[listener]]\nname = \"s\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\"\n",
        )
        .unwrap();
        assert!(without_tls.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml("no_such_key = 1").is_err());
    }

    #[test]
    fn the_shipped_config_parses() {
        let text = include_str!("../etc/samsa.toml");
        let config = Config::from_toml(text).unwrap();
        config.validate().unwrap();
    }
}
