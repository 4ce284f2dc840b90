//! The broker resource of DescribeConfigs: this broker's settings in Kafka's names, with
//! where each value comes from.

use super::{ConfigEntry, ConfigSource, ConfigType, Synonym};
use crate::config::Config;

/// Broker-level entries for DescribeConfigs on the broker resource, in Kafka's names.
/// All are read-only: samsa takes its configuration from the file at start-up.
pub fn broker_entries(config: &Config) -> Vec<ConfigEntry> {
    let (host, port) = config.advertised();
    let unset_as_max = |n: Option<u64>| n.map_or(i64::MAX, |n| n as i64).to_string();
    let entries: Vec<(&'static str, &'static str, String, ConfigType, &'static str)> = vec![
        (
            "broker.id",
            "node_id",
            config.node_id.to_string(),
            ConfigType::Int,
            "This broker's id.",
        ),
        (
            "node.id",
            "node_id",
            config.node_id.to_string(),
            ConfigType::Int,
            "This broker's id.",
        ),
        (
            "listeners",
            "listen",
            format!("PLAINTEXT://{}", config.listen),
            ConfigType::List,
            "Listener address.",
        ),
        (
            "advertised.listeners",
            "advertised_listener",
            format!("PLAINTEXT://{host}:{port}"),
            ConfigType::List,
            "Address given to clients.",
        ),
        (
            "log.dirs",
            "data_dir",
            config.data_dir.display().to_string(),
            ConfigType::String,
            "Data directory.",
        ),
        (
            "num.partitions",
            "num_partitions",
            config.num_partitions.to_string(),
            ConfigType::Int,
            "Partitions of auto-created topics.",
        ),
        (
            "default.replication.factor",
            "default_replication_factor",
            config.default_replication_factor.to_string(),
            ConfigType::Int,
            "Replication factor of new topics.",
        ),
        (
            "auto.create.topics.enable",
            "auto_create_topics",
            config.auto_create_topics.to_string(),
            ConfigType::Boolean,
            "Create unknown topics on Metadata requests.",
        ),
        (
            "message.max.bytes",
            "message_max_bytes",
            config.message_max_bytes.to_string(),
            ConfigType::Int,
            "Largest record batch.",
        ),
        (
            "max.incremental.fetch.session.cache.slots",
            "max_incremental_fetch_session_cache_slots",
            config.max_incremental_fetch_session_cache_slots.to_string(),
            ConfigType::Int,
            "The maximum number of incremental fetch sessions that we will maintain.",
        ),
        (
            "socket.request.max.bytes",
            "socket_request_max_bytes",
            config.socket_request_max_bytes.to_string(),
            ConfigType::Int,
            "Largest request frame.",
        ),
        (
            "log.segment.bytes",
            "segment_bytes",
            config.segment_bytes.to_string(),
            ConfigType::Int,
            "Segment size.",
        ),
        (
            "log.roll.ms",
            "segment_ms",
            config.segment_ms.to_string(),
            ConfigType::Long,
            "Segment age.",
        ),
        (
            "log.index.interval.bytes",
            "index_interval_bytes",
            config.index_interval_bytes.to_string(),
            ConfigType::Int,
            "Bytes between index entries.",
        ),
        (
            "log.retention.ms",
            "retention_ms",
            config.retention_ms.to_string(),
            ConfigType::Long,
            "Retention by time.",
        ),
        (
            "log.retention.bytes",
            "retention_bytes",
            config.retention_bytes.to_string(),
            ConfigType::Long,
            "Retention by size.",
        ),
        (
            "log.retention.check.interval.ms",
            "retention_check_interval_ms",
            config.retention_check_interval_ms.to_string(),
            ConfigType::Long,
            "How often retention runs.",
        ),
        (
            "log.message.timestamp.type",
            "message_timestamp_type",
            config.message_timestamp_type.as_str().to_owned(),
            ConfigType::String,
            "Timestamp type of new topics.",
        ),
        (
            "log.message.timestamp.before.max.ms",
            "message_timestamp_before_max_ms",
            config.message_timestamp_before_max_ms.to_string(),
            ConfigType::Long,
            "Largest age of a CreateTime record.",
        ),
        (
            "log.message.timestamp.after.max.ms",
            "message_timestamp_after_max_ms",
            config.message_timestamp_after_max_ms.to_string(),
            ConfigType::Long,
            "Largest lead of a CreateTime record over the broker's clock.",
        ),
        (
            "compression.type",
            "compression_type",
            config.compression_type.clone(),
            ConfigType::String,
            "Codec of new topics' batches ('producer' keeps the producer's).",
        ),
        (
            "compression.gzip.level",
            "compression_gzip_level",
            config.compression_gzip_level.to_string(),
            ConfigType::Int,
            "gzip level.",
        ),
        (
            "compression.lz4.level",
            "compression_lz4_level",
            config.compression_lz4_level.to_string(),
            ConfigType::Int,
            "lz4 level.",
        ),
        (
            "compression.zstd.level",
            "compression_zstd_level",
            config.compression_zstd_level.to_string(),
            ConfigType::Int,
            "zstd level.",
        ),
        (
            "log.flush.interval.messages",
            "flush_messages",
            unset_as_max(config.flush_messages),
            ConfigType::Long,
            "fsync after this many records.",
        ),
        (
            "log.flush.interval.ms",
            "flush_ms",
            unset_as_max(config.flush_ms),
            ConfigType::Long,
            "fsync interval.",
        ),
        (
            "log.cleaner.backoff.ms",
            "log_cleaner_interval_ms",
            config.log_cleaner_interval_ms.to_string(),
            ConfigType::Long,
            "How often the log cleaner looks for partitions to compact.",
        ),
        (
            "offsets.topic.segment.bytes",
            "offsets_topic_segment_bytes",
            config.offsets_topic_segment_bytes.to_string(),
            ConfigType::Int,
            "Segment size of the offsets topic.",
        ),
    ];
    let defaults = if config.explicit.is_empty() {
        None
    } else {
        Some(broker_entries(&Config::default()))
    };
    entries
        .into_iter()
        .map(|(name, file_key, value, config_type, doc)| {
            let default = Synonym {
                name,
                value: defaults
                    .as_ref()
                    .and_then(|d| d.iter().find(|e| e.name == name))
                    .map_or_else(|| value.clone(), |e| e.value.clone()),
                source: ConfigSource::Default,
            };
            let synonyms = if config.is_explicit(file_key) {
                vec![
                    Synonym {
                        name,
                        value: value.clone(),
                        source: ConfigSource::StaticBroker,
                    },
                    default,
                ]
            } else {
                vec![default]
            };
            ConfigEntry {
                name,
                value,
                source: synonyms[0].source,
                config_type,
                doc,
                read_only: true,
                synonyms,
            }
        })
        .collect()
}
