//! Topic config validation, precedence and what reaches the log.

use super::*;

#[test]
fn unknown_and_invalid_configs_are_rejected() {
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert!(TopicConfig::validated(one("no.such.key", "1")).is_err());
    assert!(TopicConfig::validated(one("retention.ms", "soon")).is_err());
    assert!(TopicConfig::validated(one("retention.ms", "-2")).is_err());
    assert!(TopicConfig::validated(one("retention.ms", "-1")).is_ok());
    assert!(TopicConfig::validated(one("message.timestamp.type", "LogAppendTime")).is_ok());
    for ok in ["delete", "compact", "compact,delete", "delete, compact"] {
        assert!(
            TopicConfig::validated(one("cleanup.policy", ok)).is_ok(),
            "{ok}"
        );
    }
    for bad in ["", "compact,", "remove", "compact;delete"] {
        assert!(
            TopicConfig::validated(one("cleanup.policy", bad)).is_err(),
            "{bad:?}"
        );
    }
    assert!(TopicConfig::validated(one("min.cleanable.dirty.ratio", "1.5")).is_err());
    assert!(TopicConfig::validated(one("min.cleanable.dirty.ratio", "0.01")).is_ok());
    assert!(TopicConfig::validated(one("delete.retention.ms", "-1")).is_err());
}

#[test]
fn compression_configs_are_kafkas() {
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    for codec in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
        assert!(TopicConfig::validated(one("compression.type", codec)).is_ok());
    }
    let err = TopicConfig::validated(one("compression.type", "none")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid value none for configuration compression.type: String must be one of: \
         uncompressed, zstd, lz4, snappy, gzip, producer"
    );
    let err = TopicConfig::validated(one("compression.zstd.level", "23")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"
    );
    assert!(TopicConfig::validated(one("compression.lz4.level", "0")).is_err());
    assert!(TopicConfig::validated(one("compression.gzip.level", "-1")).is_ok());

    let broker = Config::default();
    assert_eq!(TopicConfig::default().compression(&broker), None);
    let zstd = TopicConfig::validated(BTreeMap::from([
        ("compression.type".to_owned(), "zstd".to_owned()),
        ("compression.zstd.level".to_owned(), "9".to_owned()),
    ]))
    .unwrap();
    let target = zstd.compression(&broker).unwrap();
    assert_eq!(
        (target.codec, target.level),
        (samsa_storage::Compression::Zstd, 9)
    );
    // The broker's defaults apply where the topic sets nothing.
    let broker = Config {
        compression_type: "lz4".into(),
        compression_lz4_level: 3,
        ..Config::default()
    };
    let target = TopicConfig::default().compression(&broker).unwrap();
    assert_eq!(
        (target.codec, target.level),
        (samsa_storage::Compression::Lz4, 3)
    );
    assert_eq!(
        zstd.max_message_bytes(&broker),
        broker.message_max_bytes as usize
    );
}

#[test]
fn timestamp_bounds_reach_the_log() {
    let broker = Config::default();
    let log = TopicConfig::default().log_config(&broker);
    assert_eq!(
        (log.timestamp_before_max_ms, log.timestamp_after_max_ms),
        (i64::MAX, 3_600_000)
    );
    let topic = TopicConfig::validated(BTreeMap::from([(
        "message.timestamp.before.max.ms".to_owned(),
        "60000".to_owned(),
    )]))
    .unwrap();
    assert_eq!(topic.log_config(&broker).timestamp_before_max_ms, 60_000);
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert!(TopicConfig::validated(one("message.timestamp.after.max.ms", "-1")).is_err());
}

#[test]
fn compaction_configs_reach_the_log() {
    let broker = Config::default();
    let log = TopicConfig::default().log_config(&broker);
    assert_eq!(log.cleanup_policy, CleanupPolicy::DELETE);
    assert_eq!(
        (
            log.delete_retention_ms,
            log.min_cleanable_dirty_ratio,
            log.min_compaction_lag_ms
        ),
        (86_400_000, 0.5, 0)
    );
    let topic = TopicConfig::validated(BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
        ("min.cleanable.dirty.ratio".to_owned(), "0.1".to_owned()),
        ("delete.retention.ms".to_owned(), "5".to_owned()),
        ("min.compaction.lag.ms".to_owned(), "7".to_owned()),
    ]))
    .unwrap();
    let log = topic.log_config(&broker);
    assert_eq!(
        log.cleanup_policy,
        CleanupPolicy {
            delete: true,
            compact: true
        }
    );
    assert_eq!(
        (
            log.delete_retention_ms,
            log.min_cleanable_dirty_ratio,
            log.min_compaction_lag_ms
        ),
        (5, 0.1, 7)
    );
}

#[test]
fn producer_expiry_comes_from_the_broker() {
    let broker = Config {
        producer_id_expiration_ms: 5_000,
        ..Config::default()
    };
    assert_eq!(
        TopicConfig::default()
            .log_config(&broker)
            .producer_id_expiration_ms,
        5_000
    );
    assert_eq!(
        TopicConfig::default()
            .log_config(&Config::default())
            .producer_id_expiration_ms,
        86_400_000
    );
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
