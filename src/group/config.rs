//! Group configs: per-group overrides of the broker's group settings (Kafka's `GroupConfig`,
//! ConfigResource type GROUP, set with `kafka-configs --entity-type groups`). This module
//! knows the keys, checks a group's overrides as Kafka does (each value by its type, then
//! against the broker's group limits), describes a group's configs, and holds the overrides
//! this broker follows (Kafka's `GroupConfigManager`), which the metadata sets.
//!
//! samsa has no `group.*.min/max.*` broker configs: the limits are Kafka's defaults, widened
//! to take in the broker's own setting (a broker run with a 1 s lock duration accepts a
//! group asking for 1 s).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::clock::iso_duration_ms;
use crate::config::Config;
use crate::error::BrokerError;
use crate::topics::config::{ConfigEntry, ConfigSource, ConfigType, Synonym};

mod keys;
#[cfg(test)]
mod tests;

/// One group's overrides, by key.
pub type Overrides = BTreeMap<String, String>;

/// How a key's value parses (Kafka's ConfigDef type and validator).
pub(crate) enum Value {
    /// An INT of at least this much.
    Int(i64),
    /// A LONG of at least this much.
    Long(i64),
    Boolean,
    String,
    List,
    OneOf(&'static [&'static str]),
    /// `latest`, `earliest` or `by_duration:<ISO-8601 duration>`.
    AutoOffsetReset,
}

pub(crate) struct GroupKey {
    name: &'static str,
    /// The broker config the default comes from, Kafka's synonym for it.
    broker_name: &'static str,
    value: Value,
    /// Kafka's internal keys may be set but are not described.
    internal: bool,
    default: fn(&Config) -> String,
    doc: &'static str,
}

fn key(name: &str) -> Option<&'static GroupKey> {
    keys::KEYS.iter().find(|k| k.name == name)
}

/// The server-side streams assignors samsa has (`group.streams.assignors`).
const STREAMS_ASSIGNORS: &[&str] = &["sticky"];

fn invalid(message: String) -> BrokerError {
    BrokerError::InvalidConfig(message)
}

fn invalid_value(name: &str, value: &str, why: &str) -> BrokerError {
    invalid(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

/// Kafka's parse of one value: its type, then the key's own validator.
fn parse(key: &GroupKey, raw: &str) -> Result<(), BrokerError> {
    let trimmed = raw.trim();
    let at_least = |v: i64, min: i64| match v < min {
        true => Err(invalid_value(
            key.name,
            raw,
            &format!("Value must be at least {min}"),
        )),
        false => Ok(()),
    };
    match key.value {
        Value::Int(min) => {
            let v = trimmed
                .parse::<i32>()
                .map_err(|_| invalid_value(key.name, raw, "Not a number of type INT"))?;
            at_least(v.into(), min)
        }
        Value::Long(min) => {
            let v = trimmed
                .parse::<i64>()
                .map_err(|_| invalid_value(key.name, raw, "Not a number of type LONG"))?;
            at_least(v, min)
        }
        Value::Boolean if trimmed.eq_ignore_ascii_case("true") => Ok(()),
        Value::Boolean if trimmed.eq_ignore_ascii_case("false") => Ok(()),
        Value::Boolean => Err(invalid_value(
            key.name,
            raw,
            "Expected value to be either true or false",
        )),
        Value::OneOf(allowed) if allowed.contains(&trimmed) => Ok(()),
        Value::OneOf(allowed) => Err(invalid_value(
            key.name,
            raw,
            &format!("String must be one of: {}", allowed.join(", ")),
        )),
        Value::AutoOffsetReset if AutoOffsetReset::parse(trimmed).is_some() => Ok(()),
        Value::AutoOffsetReset => Err(invalid_value(
            key.name,
            raw,
            &format!(
                "Invalid value `{trimmed}` for configuration {}. The value must be either \
                 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'.",
                key.name
            ),
        )),
        Value::String | Value::List => Ok(()),
    }
}

/// `share.auto.offset.reset`: where a share-partition without a start offset begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Latest,
    Earliest,
    /// The first record at or after this long ago.
    ByDuration(i64),
}

impl AutoOffsetReset {
    pub fn parse(value: &str) -> Option<AutoOffsetReset> {
        match value {
            "latest" => Some(AutoOffsetReset::Latest),
            "earliest" => Some(AutoOffsetReset::Earliest),
            _ => {
                let duration = value.strip_prefix("by_duration:")?;
                iso_duration_ms(duration).map(AutoOffsetReset::ByDuration)
            }
        }
    }
}

/// Checks a group's overrides as they would be after a change: every key known, every
/// value of its type, then within the broker's limits, as Kafka's `GroupConfig.validate`.
pub fn validate(overrides: &Overrides, config: &Config) -> Result<(), BrokerError> {
    for name in overrides.keys() {
        if key(name).is_none() {
            return Err(invalid(format!("Unknown group config name: {name}")));
        }
    }
    for key in keys::KEYS {
        if let Some(raw) = overrides.get(key.name) {
            parse(key, raw)?;
        }
    }
    let int = |name: &str| {
        overrides
            .get(name)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let c = config;
    let ranges: [(&str, i64, i64, i64); 12] = [
        (
            "consumer.heartbeat.interval.ms",
            5_000,
            15_000,
            c.group_consumer_heartbeat_interval_ms as i64,
        ),
        (
            "consumer.session.timeout.ms",
            45_000,
            60_000,
            c.group_consumer_session_timeout_ms as i64,
        ),
        ("consumer.assignment.interval.ms", 0, 15_000, 1_000),
        (
            "share.heartbeat.interval.ms",
            5_000,
            15_000,
            c.group_share_heartbeat_interval_ms as i64,
        ),
        (
            "share.session.timeout.ms",
            45_000,
            60_000,
            c.group_share_session_timeout_ms as i64,
        ),
        (
            "share.record.lock.duration.ms",
            15_000,
            60_000,
            c.group_share_record_lock_duration_ms,
        ),
        (
            "share.delivery.count.limit",
            2,
            10,
            c.group_share_delivery_count_limit.into(),
        ),
        (
            "share.partition.max.record.locks",
            100,
            4_000,
            c.group_share_partition_max_record_locks,
        ),
        (
            "share.assignment.interval.ms",
            0,
            15_000,
            c.group_share_assignment_interval_ms as i64,
        ),
        (
            "streams.heartbeat.interval.ms",
            5_000,
            15_000,
            c.group_streams_heartbeat_interval_ms as i64,
        ),
        (
            "streams.session.timeout.ms",
            45_000,
            60_000,
            c.group_streams_session_timeout_ms as i64,
        ),
        (
            "streams.assignment.interval.ms",
            0,
            15_000,
            c.group_streams_assignment_interval_ms as i64,
        ),
    ];
    for (name, min, max, broker) in ranges {
        let (min, max) = (min.min(broker), max.max(broker));
        if int(name).is_some_and(|v| v < min || v > max) {
            return Err(invalid(format!(
                "{name} must be in the range {min} to {max} inclusive."
            )));
        }
    }
    let maxima = [
        (
            "streams.num.standby.replicas",
            2.max(c.group_streams_num_standby_replicas as i64),
        ),
        ("streams.num.warmup.replicas", 20),
    ];
    for (name, max) in maxima {
        if int(name).is_some_and(|v| v > max) {
            return Err(invalid(format!(
                "{name} must be less than or equal to {max}"
            )));
        }
    }
    let min = 15_000.min(c.group_streams_task_offset_interval_ms as i64);
    let name = "streams.task.offset.interval.ms";
    if int(name).is_some_and(|v| v < min) {
        return Err(invalid(format!(
            "{name} must be greater than or equal to {min}"
        )));
    }
    if let Some(assignor) = overrides.get("streams.assignor.name") {
        if !STREAMS_ASSIGNORS.contains(&assignor.as_str()) {
            return Err(invalid(format!(
                "streams.assignor.name '{assignor}' is not a registered task assignor. \
                 Registered assignors are: [{}].",
                STREAMS_ASSIGNORS.join(", ")
            )));
        }
    }
    for prefix in ["consumer", "share", "streams"] {
        let session = format!("{prefix}.session.timeout.ms");
        let heartbeat = format!("{prefix}.heartbeat.interval.ms");
        let effective = |name: &str| int(name).or_else(|| default_int(name, config));
        if let (Some(s), Some(h)) = (effective(&session), effective(&heartbeat)) {
            if s <= h {
                return Err(invalid(format!(
                    "{session} must be greater than {heartbeat}"
                )));
            }
        }
    }
    if let Some(tags) = overrides.get("streams.rack.aware.assignment.tags") {
        let tags: Vec<&str> = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tags.iter().collect::<BTreeSet<_>>().len() != tags.len() {
            return Err(invalid(
                "streams.rack.aware.assignment.tags must not contain duplicate tag keys.".into(),
            ));
        }
    }
    let dlq = overrides.get("errors.deadletterqueue.topic.name");
    if dlq.is_some_and(|t| t.starts_with("__")) {
        return Err(invalid(
            "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'".into(),
        ));
    }
    Ok(())
}

fn default_int(name: &str, config: &Config) -> Option<i64> {
    key(name).and_then(|k| (k.default)(config).parse().ok())
}

/// Whether `name` is a group config key (Kafka's `GroupConfig.configNames`).
pub fn is_key(name: &str) -> bool {
    key(name).is_some()
}

fn config_type(value: &Value) -> ConfigType {
    match value {
        Value::Int(_) => ConfigType::Int,
        Value::Long(_) => ConfigType::Long,
        Value::Boolean => ConfigType::Boolean,
        Value::List => ConfigType::List,
        Value::String | Value::OneOf(_) | Value::AutoOffsetReset => ConfigType::String,
    }
}

/// What DescribeConfigs shows for a group: every key but Kafka's internal ones, its
/// override if it has one, else the broker's setting.
pub fn entries(overrides: Option<&Overrides>, config: &Config) -> Vec<ConfigEntry> {
    keys::KEYS
        .iter()
        .filter(|k| !k.internal)
        .map(|k| {
            let default = Synonym {
                name: k.broker_name,
                value: (k.default)(config),
                source: ConfigSource::Default,
            };
            let set = overrides.and_then(|o| o.get(k.name));
            let mut synonyms = Vec::with_capacity(2);
            if let Some(value) = set {
                synonyms.push(Synonym {
                    name: k.name,
                    value: value.clone(),
                    source: ConfigSource::Group,
                });
            }
            let (value, source) = match set {
                Some(value) => (value.clone(), ConfigSource::Group),
                None => (default.value.clone(), ConfigSource::Default),
            };
            synonyms.push(default);
            ConfigEntry {
                name: k.name,
                value,
                source,
                config_type: config_type(&k.value),
                doc: k.doc,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// The overrides this broker follows, by group: replaced as a whole whenever the metadata's
/// change, read by the coordinators at each heartbeat (Kafka reads its `GroupConfigManager`
/// there too, so a change applies from a member's next heartbeat).
#[derive(Default)]
pub struct GroupOverrides {
    all: RwLock<Arc<BTreeMap<String, Overrides>>>,
}

impl GroupOverrides {
    pub fn set(&self, all: Arc<BTreeMap<String, Overrides>>) {
        *self.all.write() = all;
    }

    pub fn get(&self, group: &str) -> Option<Overrides> {
        self.all.read().get(group).cloned()
    }

    /// Puts a `kind` ("consumer", "share" or "streams") group's own session timeout,
    /// heartbeat interval and assignment interval, in that order, over the broker's.
    pub fn timing<const N: usize>(&self, group: &str, kind: &str, settings: [&mut Duration; N]) {
        let keys = [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "assignment.interval.ms",
        ];
        for (setting, key) in settings.into_iter().zip(keys) {
            if let Some(v) = self.millis(group, &format!("{kind}.{key}")) {
                *setting = v;
            }
        }
    }

    /// A group's override of a duration key, in milliseconds.
    pub fn millis(&self, group: &str, name: &str) -> Option<Duration> {
        let all = self.all.read();
        let value = all.get(group)?.get(name)?.trim().parse::<u64>().ok()?;
        Some(Duration::from_millis(value))
    }
}
