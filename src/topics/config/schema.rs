//! The topic configs of broker-side schema id validation (see [`crate::schema_validation`]):
//! Confluent Server's names, and Redpanda's as aliases, so a topic set up for either keeps
//! its meaning here.

use super::{ConfigType, TopicConfig, TopicKey};
use crate::config::Config;
use crate::error::BrokerError;
use crate::schema_validation::{Rule, Strategy};

/// Kafka's `ConfigDef.Type.BOOLEAN` parse (case-insensitive), with its reason.
fn boolean(v: &str) -> Result<(), String> {
    parse_bool(v)
        .map(|_| ())
        .ok_or_else(|| "Expected value to be either true or false".into())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn strategy(v: &str) -> Result<(), String> {
    Strategy::parse(v.trim()).map(|_| ())
}

/// A switch (BOOLEAN, default false) or a strategy (STRING, default TopicNameStrategy);
/// none has a broker-wide default, so the key's own name stands for it.
const fn key(name: &'static str, doc: &'static str, switch: bool) -> TopicKey {
    TopicKey {
        name,
        broker_name: name,
        broker_key: None,
        broker_default: if switch {
            |_| "false".into()
        } else {
            |_| Strategy::DEFAULT_NAME.into()
        },
        config_type: if switch {
            ConfigType::Boolean
        } else {
            ConfigType::String
        },
        doc,
        validate: if switch { boolean } else { strategy },
    }
}

const VALUE_SWITCH: &str = "Produce refuses (INVALID_RECORD) records whose value does not carry the id of a live schema of the value subject (needs the schema registry).";
const KEY_SWITCH: &str = "Produce refuses (INVALID_RECORD) records whose key does not carry the id of a live schema of the key subject (needs the schema registry).";
const VALUE_NAMING: &str = "How the value subject is named: TopicNameStrategy (<topic>-value), RecordNameStrategy or TopicRecordNameStrategy.";
const KEY_NAMING: &str = "How the key subject is named: TopicNameStrategy (<topic>-key), RecordNameStrategy or TopicRecordNameStrategy.";

/// Each side's (switch, strategy) names, the key's then the value's.
const CONFLUENT: [(&str, &str); 2] = [
    (
        "confluent.key.schema.validation",
        "confluent.key.subject.name.strategy",
    ),
    (
        "confluent.value.schema.validation",
        "confluent.value.subject.name.strategy",
    ),
];
const REDPANDA: [(&str, &str); 2] = [
    (
        "redpanda.key.schema.id.validation",
        "redpanda.key.subject.name.strategy",
    ),
    (
        "redpanda.value.schema.id.validation",
        "redpanda.value.subject.name.strategy",
    ),
];
const KEY: usize = 0;
const VALUE: usize = 1;

pub(super) const SCHEMA_KEYS: &[TopicKey] = &[
    key(CONFLUENT[KEY].0, KEY_SWITCH, true),
    key(CONFLUENT[KEY].1, KEY_NAMING, false),
    key(CONFLUENT[VALUE].0, VALUE_SWITCH, true),
    key(CONFLUENT[VALUE].1, VALUE_NAMING, false),
    key(REDPANDA[KEY].0, KEY_SWITCH, true),
    key(REDPANDA[KEY].1, KEY_NAMING, false),
    key(REDPANDA[VALUE].0, VALUE_SWITCH, true),
    key(REDPANDA[VALUE].1, VALUE_NAMING, false),
];

impl TopicConfig {
    /// What Produce checks on this topic. Read from the overrides alone (these keys have no
    /// broker-wide default), so a topic without them pays one map lookup per key.
    pub fn schema_rule(&self) -> Rule {
        Rule {
            key: self.side_rule(KEY),
            value: self.side_rule(VALUE),
        }
    }

    /// One side's strategy if either name switches it on; a strategy set under either name
    /// counts, Confluent's first.
    fn side_rule(&self, side: usize) -> Option<Strategy> {
        let (confluent, redpanda) = (CONFLUENT[side], REDPANDA[side]);
        let on = |name: &str| self.0.get(name).and_then(|v| parse_bool(v)) == Some(true);
        if !on(confluent.0) && !on(redpanda.0) {
            return None;
        }
        let named = self
            .0
            .get(confluent.1)
            .or_else(|| self.0.get(redpanda.1))
            .and_then(|v| Strategy::parse(v.trim()).ok());
        Some(named.unwrap_or(Strategy::TopicName))
    }

    /// Refuses, when a topic is created (`before` is `None`) or its validation changed,
    /// validation that no registry could answer here: Produce would refuse every record it
    /// checks (Confluent Server likewise needs `confluent.schema.registry.url`). A topic
    /// whose validation stays as it was keeps taking other changes.
    pub fn check_schema_registry(
        &self,
        before: Option<&TopicConfig>,
        broker: &Config,
    ) -> Result<(), BrokerError> {
        let rule = self.schema_rule();
        let changed = before.is_none_or(|b| b.schema_rule() != rule);
        if changed && rule.is_on() && !broker.schema_registry.enabled {
            return Err(BrokerError::InvalidConfig(
                "Schema id validation needs the schema registry, which is off on this broker \
                 (set enabled = true under [schema_registry])"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<TopicConfig, BrokerError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicConfig::validated(map)
    }

    #[test]
    fn confluent_and_redpanda_names_switch_validation_on() {
        assert!(!config(&[]).unwrap().schema_rule().is_on());
        let value = config(&[(CONFLUENT[VALUE].0, "TRUE")])
            .unwrap()
            .schema_rule();
        assert_eq!(value.value, Some(Strategy::TopicName));
        assert_eq!(value.key, None);
        let key = config(&[
            (REDPANDA[KEY].0, "true"),
            (REDPANDA[KEY].1, "TopicRecordNameStrategy"),
        ])
        .unwrap()
        .schema_rule();
        assert_eq!(key.key, Some(Strategy::TopicRecordName));
        let named = config(&[
            (CONFLUENT[VALUE].0, "true"),
            (
                CONFLUENT[VALUE].1,
                "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            ),
        ])
        .unwrap();
        assert_eq!(named.schema_rule().value, Some(Strategy::RecordName));
        assert!(config(&[(CONFLUENT[VALUE].0, "yes")]).is_err());
        assert!(config(&[(CONFLUENT[KEY].1, "MyStrategy")]).is_err());
    }

    #[test]
    fn validation_without_a_registry_is_refused_when_it_changes() {
        let mut broker = Config::default();
        let on = config(&[(CONFLUENT[VALUE].0, "true")]).unwrap();
        let off = config(&[(CONFLUENT[VALUE].0, "false")]).unwrap();
        assert!(matches!(
            on.check_schema_registry(None, &broker),
            Err(BrokerError::InvalidConfig(_))
        ));
        assert!(on.check_schema_registry(Some(&off), &broker).is_err());
        // Unchanged (another key altered), or switched off: accepted.
        assert!(on.check_schema_registry(Some(&on), &broker).is_ok());
        assert!(off.check_schema_registry(Some(&on), &broker).is_ok());
        broker.schema_registry.enabled = true;
        assert!(on.check_schema_registry(None, &broker).is_ok());
    }
}
