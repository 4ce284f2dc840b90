use super::*;

fn check(pairs: &[(&str, &str)]) -> Result<(), String> {
    let overrides = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    validate(&overrides, &Config::default()).map_err(|e| match e {
        BrokerError::InvalidConfig(message) => message,
        other => panic!("not INVALID_CONFIG: {other:?}"),
    })
}

#[test]
fn good_values_pass() {
    let good = [
        ("share.auto.offset.reset", "earliest"),
        ("share.auto.offset.reset", "latest"),
        ("share.auto.offset.reset", "by_duration:PT1H"),
        ("share.auto.offset.reset", "by_duration:P1DT30M"),
        ("share.isolation.level", "read_committed"),
        ("share.record.lock.duration.ms", "15000"),
        ("share.delivery.count.limit", "10"),
        ("share.partition.max.record.locks", "4000"),
        ("consumer.session.timeout.ms", " 50000 "),
        ("consumer.assignor.offload.enable", "FALSE"),
        ("streams.assignor.name", "sticky"),
        ("streams.rack.aware.assignment.tags", "zone,rack"),
    ];
    for (k, v) in good {
        assert_eq!(check(&[(k, v)]), Ok(()), "{k}={v}");
    }
}

/// Kafka 4.4's messages, as its controller answers a `kafka-configs --alter`.
#[test]
fn bad_values_are_refused_in_kafkas_words() {
    let cases = [
        ("bogus", "1", "Unknown group config name: bogus"),
        ("share.session.timeout.ms", "abc", "Invalid value abc for configuration share.session.timeout.ms: Not a number of type INT"),
        ("share.delivery.count.limit", "1", "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2"),
        ("share.delivery.count.limit", "11", "share.delivery.count.limit must be in the range 2 to 10 inclusive."),
        ("share.session.timeout.ms", "10000", "share.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
        ("share.record.lock.duration.ms", "100000000", "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive."),
        ("streams.num.standby.replicas", "3", "streams.num.standby.replicas must be less than or equal to 2"),
        ("streams.num.warmup.replicas", "50", "streams.num.warmup.replicas must be less than or equal to 20"),
        ("streams.task.offset.interval.ms", "100", "streams.task.offset.interval.ms must be greater than or equal to 15000"),
        ("streams.assignor.name", "foo", "streams.assignor.name 'foo' is not a registered task assignor. Registered assignors are: [sticky]."),
        ("errors.deadletterqueue.topic.name", "__x", "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'"),
        ("share.isolation.level", "foo", "Invalid value foo for configuration share.isolation.level: String must be one of: read_committed, read_uncommitted"),
        ("share.auto.offset.reset", "EARLIEST", "Invalid value EARLIEST for configuration share.auto.offset.reset: Invalid value `EARLIEST` for configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."),
        ("share.auto.offset.reset", "by_duration:-PT1H", "Invalid value by_duration:-PT1H for configuration share.auto.offset.reset: Invalid value `by_duration:-PT1H` for configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."),
        ("share.renew.acknowledge.enable", "maybe", "Invalid value maybe for configuration share.renew.acknowledge.enable: Expected value to be either true or false"),
        ("streams.acceptable.recovery.lag", "-1", "Invalid value -1 for configuration streams.acceptable.recovery.lag: Value must be at least 0"),
        ("streams.rack.aware.assignment.tags", "a,a", "streams.rack.aware.assignment.tags must not contain duplicate tag keys."),
        ("share.record.lock.duration.ms", "500", "Invalid value 500 for configuration share.record.lock.duration.ms: Value must be at least 1000"),
    ];
    for (k, v, message) in cases {
        assert_eq!(check(&[(k, v)]), Err(message.to_string()), "{k}={v}");
    }
}

#[test]
fn limits_take_in_the_brokers_own_setting() {
    let config = Config {
        group_share_record_lock_duration_ms: 1_000,
        ..Config::default()
    };
    let overrides = Overrides::from([("share.record.lock.duration.ms".into(), "1000".into())]);
    assert!(validate(&overrides, &config).is_ok());
    let overrides = Overrides::from([("share.record.lock.duration.ms".into(), "999".into())]);
    assert!(validate(&overrides, &config).is_err());
}

#[test]
fn a_session_must_outlast_its_heartbeat() {
    let config = Config {
        group_share_heartbeat_interval_ms: 50_000,
        group_share_session_timeout_ms: 60_000,
        ..Config::default()
    };
    let overrides = Overrides::from([("share.session.timeout.ms".into(), "50000".into())]);
    let err = validate(&overrides, &config).unwrap_err();
    assert_eq!(
        err.message().as_deref(),
        Some("share.session.timeout.ms must be greater than share.heartbeat.interval.ms")
    );
}

#[test]
fn described_entries_show_the_override_over_the_brokers_default() {
    let config = Config::default();
    let overrides = Overrides::from([("share.auto.offset.reset".into(), "earliest".into())]);
    let entries = entries(Some(&overrides), &config);
    // Kafka's internal keys are not described.
    assert_eq!(entries.len(), 21);
    let reset = entries
        .iter()
        .find(|e| e.name == "share.auto.offset.reset")
        .unwrap();
    assert_eq!(reset.value, "earliest");
    assert_eq!(reset.source.code(), 8);
    let synonyms: Vec<_> = reset
        .synonyms
        .iter()
        .map(|s| (s.name, s.value.as_str()))
        .collect();
    assert_eq!(
        synonyms,
        [
            ("share.auto.offset.reset", "earliest"),
            ("share.auto.offset.reset", "latest")
        ]
    );
    let lock = entries
        .iter()
        .find(|e| e.name == "share.record.lock.duration.ms")
        .unwrap();
    assert_eq!((lock.value.as_str(), lock.source.code()), ("30000", 5));
    assert_eq!(lock.synonyms[0].name, "group.share.record.lock.duration.ms");
}

#[test]
fn auto_offset_reset_parses() {
    assert_eq!(
        AutoOffsetReset::parse("earliest"),
        Some(AutoOffsetReset::Earliest)
    );
    assert_eq!(
        AutoOffsetReset::parse("by_duration:PT1M"),
        Some(AutoOffsetReset::ByDuration(60_000))
    );
    assert_eq!(AutoOffsetReset::parse("by_duration:PT"), None);
    assert_eq!(AutoOffsetReset::parse("by_duration:"), None);
}
