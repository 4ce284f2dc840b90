//! Broker-side schema id validation, as Confluent Server's `confluent.value.schema.validation`
//! and Redpanda's `redpanda.value.schema.id.validation` do it: on a topic that asks for it,
//! every produced record's value (or key) must carry the Confluent wire header (magic byte 0,
//! then a big-endian 4-byte schema id) naming a live schema of the subject the topic's
//! subject name strategy gives. The data itself is not read against the schema (neither
//! Confluent nor Redpanda does).
//!
//! Pure rules only. The registry's answers come through [`SchemaIds`], which the schema
//! registry installs on the broker when it starts: this module sits below both the Produce
//! handler that checks and the registry that answers, so neither imports the other.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::watch;

/// Confluent's subject name strategies: which subject a record's schema must be under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `<topic>-value` (or `-key`): one schema history per topic.
    TopicName,
    /// The record's fully qualified name: one history per record type, across topics.
    RecordName,
    /// `<topic>-<record name>`.
    TopicRecordName,
}

const STRATEGY_PACKAGE: &str = "io.confluent.kafka.serializers.subject.";

impl Strategy {
    pub const DEFAULT_NAME: &'static str =
        "io.confluent.kafka.serializers.subject.TopicNameStrategy";

    /// Confluent's class names, or the short names Redpanda uses.
    pub fn parse(name: &str) -> Result<Strategy, String> {
        match name.strip_prefix(STRATEGY_PACKAGE).unwrap_or(name) {
            "TopicNameStrategy" => Ok(Strategy::TopicName),
            "RecordNameStrategy" => Ok(Strategy::RecordName),
            "TopicRecordNameStrategy" => Ok(Strategy::TopicRecordName),
            _ => Err(format!(
                "'{name}' is not TopicNameStrategy, RecordNameStrategy or \
                 TopicRecordNameStrategy (in {STRATEGY_PACKAGE})"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Strategy::TopicName => "TopicNameStrategy",
            Strategy::RecordName => "RecordNameStrategy",
            Strategy::TopicRecordName => "TopicRecordNameStrategy",
        }
    }
}

/// Which part of a record is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
        }
    }
}

/// A topic's validation: the strategy of each side that is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rule {
    pub key: Option<Strategy>,
    pub value: Option<Strategy>,
}

impl Rule {
    pub fn is_on(&self) -> bool {
        self.key.is_some() || self.value.is_some()
    }
}

/// The schema id of a payload in the Confluent wire format, or why it is not in it.
pub fn schema_id(payload: &[u8]) -> Result<i32, String> {
    match payload {
        [0, a, b, c, d, ..] => Ok(i32::from_be_bytes([*a, *b, *c, *d])),
        [magic, _, _, _, _, ..] => Err(format!(
            "starts with magic byte {magic}, not the Confluent wire format's 0"
        )),
        short => Err(format!(
            "has {} bytes, fewer than the Confluent wire format's 5-byte header (magic byte \
             0, 4-byte schema id)",
            short.len()
        )),
    }
}

/// What the registry holds under one schema id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaFacts {
    /// Each subject with a version carrying the id, and whether every such version is
    /// (soft-)deleted.
    pub subjects: Vec<(String, bool)>,
    /// The schema's record name, asked for by the strategies that need it: an Avro
    /// record's full name, a JSON schema's `title`; `None` if it has none.
    pub record_name: Option<String>,
}

/// The registry as validation sees it: its in-memory state, never the disk.
pub trait SchemaIds: Send + Sync {
    /// What the registry knows of `id`; `None` if no schema has it.
    fn facts(&self, id: i32, with_record_name: bool) -> Option<SchemaFacts>;
    /// Whether it has replayed its topic since start: before, any id may be missing.
    fn caught_up(&self) -> bool;
    /// The highest schema id it has seen: one above may be registered through another node
    /// and not replicated here yet.
    fn max_id(&self) -> i32;
    /// Changes each time the registry applies more of its topic.
    fn applied(&self) -> watch::Receiver<i64>;
}

/// Where the schema registry, once started, is found by the Produce path.
pub type RegistrySlot = OnceLock<Arc<dyn SchemaIds>>;

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The records at these indexes of the batch, each with the reason.
    Records(Vec<(usize, String)>),
    /// A schema id this node may not have seen yet: the producer should retry.
    NotReady(String),
}

/// Checks one batch's records (key, value) against `rule`; `registry` is `None` on a broker
/// without a schema registry, which refuses every record it would check rather than let
/// unchecked data into a topic that asked for checks. With `patient`, an unknown id above
/// every id seen is [`Refusal::NotReady`] (the caller waits a little and asks again, then
/// without patience); an unknown id is always so while the registry has not caught up.
pub fn check(
    topic: &str,
    rule: Rule,
    records: &[(Option<Bytes>, Option<Bytes>)],
    registry: Option<&dyn SchemaIds>,
    patient: bool,
) -> Result<(), Refusal> {
    let mut checker = Checker {
        topic,
        registry,
        patient,
        facts: HashMap::new(),
    };
    let mut refused = Vec::new();
    for (index, (key, value)) in records.iter().enumerate() {
        let sides = [(Side::Key, rule.key, key), (Side::Value, rule.value, value)];
        for (side, strategy, payload) in sides {
            // Null keys and values (tombstones) pass, as on Confluent Server and Redpanda.
            let (Some(strategy), Some(payload)) = (strategy, payload) else {
                continue;
            };
            match checker.check(side, strategy, payload) {
                Ok(()) => {}
                Err(Verdict::Refused(why)) => {
                    refused.push((index, format!("Record {} {why}", side.word())));
                    break;
                }
                Err(Verdict::NotReady(why)) => return Err(Refusal::NotReady(why)),
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Records(refused))
    }
}

enum Verdict {
    Refused(String),
    NotReady(String),
}

struct Checker<'a> {
    topic: &'a str,
    registry: Option<&'a dyn SchemaIds>,
    patient: bool,
    /// Per batch, so the registry's lock is taken once per distinct id.
    facts: HashMap<(i32, bool), Option<SchemaFacts>>,
}

impl Checker<'_> {
    fn check(&mut self, side: Side, strategy: Strategy, payload: &[u8]) -> Result<(), Verdict> {
        let id = schema_id(payload).map_err(Verdict::Refused)?;
        let Some(registry) = self.registry else {
            return Err(Verdict::Refused(format!(
                "cannot be checked: topic {} validates schema ids, and no schema registry runs \
                 on this broker",
                self.topic
            )));
        };
        let with_name = strategy != Strategy::TopicName;
        let facts = self
            .facts
            .entry((id, with_name))
            .or_insert_with(|| registry.facts(id, with_name));
        let Some(facts) = facts else {
            if !registry.caught_up() {
                return Err(Verdict::NotReady(format!(
                    "the schema registry has not read its topic yet (schema id {id})"
                )));
            }
            if self.patient && id > registry.max_id() {
                return Err(Verdict::NotReady(format!(
                    "schema id {id} is not known on this broker yet"
                )));
            }
            return Err(Verdict::Refused(format!(
                "carries schema id {id}, which is not registered"
            )));
        };
        let subject = match strategy {
            Strategy::TopicName => format!("{}-{}", self.topic, side.word()),
            Strategy::RecordName | Strategy::TopicRecordName => {
                let Some(name) = &facts.record_name else {
                    return Err(Verdict::Refused(format!(
                        "carries schema id {id}, which has no record name for the topic's {}",
                        strategy.name()
                    )));
                };
                if strategy == Strategy::RecordName {
                    name.clone()
                } else {
                    format!("{}-{name}", self.topic)
                }
            }
        };
        match facts.subjects.iter().find(|(s, _)| *s == subject) {
            Some((_, false)) => Ok(()),
            Some((_, true)) => Err(Verdict::Refused(format!(
                "carries schema id {id}, which is deleted from subject {subject}"
            ))),
            None => Err(Verdict::Refused(format!(
                "carries schema id {id}, which is not registered under subject {subject}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry of fixed facts: id 1 under `t-value`, id 2 under `other-value`, id 3
    /// deleted from `t-value`, id 4 the record `ns.User` under `ns.User` and `t-ns.User`.
    struct Fixed {
        caught_up: bool,
    }

    impl SchemaIds for Fixed {
        fn facts(&self, id: i32, with_record_name: bool) -> Option<SchemaFacts> {
            let (subjects, name): (&[(&str, bool)], _) = match id {
                1 => (&[("t-value", false), ("t-key", false)], None),
                2 => (&[("other-value", false)], None),
                3 => (&[("t-value", true)], None),
                4 => (&[("ns.User", false), ("t-ns.User", false)], Some("ns.User")),
                _ => return None,
            };
            Some(SchemaFacts {
                subjects: subjects.iter().map(|(s, d)| (s.to_string(), *d)).collect(),
                record_name: name.filter(|_| with_record_name).map(str::to_owned),
            })
        }

        fn caught_up(&self) -> bool {
            self.caught_up
        }

        fn max_id(&self) -> i32 {
            4
        }

        fn applied(&self) -> watch::Receiver<i64> {
            watch::channel(0).1
        }
    }

    fn framed(id: i32) -> Option<Bytes> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(b"avro");
        Some(Bytes::from(bytes))
    }

    const VALUES: Rule = Rule {
        key: None,
        value: Some(Strategy::TopicName),
    };

    fn checked(rule: Rule, records: &[(Option<Bytes>, Option<Bytes>)]) -> Result<(), Refusal> {
        check("t", rule, records, Some(&Fixed { caught_up: true }), false)
    }

    fn refused_indexes(result: Result<(), Refusal>) -> Vec<usize> {
        match result {
            Err(Refusal::Records(refused)) => refused.into_iter().map(|(i, _)| i).collect(),
            other => panic!("expected refused records, got {other:?}"),
        }
    }

    #[test]
    fn the_header_is_magic_zero_and_a_big_endian_id() {
        assert_eq!(schema_id(&[0, 0, 0, 1, 2, 9]), Ok(258));
        assert_eq!(schema_id(&[0, 0, 0, 0, 7]), Ok(7));
        assert!(schema_id(&[1, 0, 0, 0, 7])
            .unwrap_err()
            .contains("magic byte 1"));
        assert!(schema_id(&[0, 0, 0, 7])
            .unwrap_err()
            .contains("has 4 bytes"));
        assert!(schema_id(b"").unwrap_err().contains("has 0 bytes"));
    }

    #[test]
    fn strategies_parse_by_class_or_short_name() {
        assert_eq!(
            Strategy::parse(Strategy::DEFAULT_NAME),
            Ok(Strategy::TopicName)
        );
        assert_eq!(
            Strategy::parse("RecordNameStrategy"),
            Ok(Strategy::RecordName)
        );
        assert_eq!(
            Strategy::parse("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"),
            Ok(Strategy::TopicRecordName)
        );
        assert!(Strategy::parse("io.example.MyStrategy").is_err());
    }

    #[test]
    fn every_bad_record_is_named_and_tombstones_pass() {
        let records = [
            (None, framed(1)),
            (None, Some(Bytes::from_static(b"raw bytes"))),
            (None, None),
            (None, Some(Bytes::from_static(&[0, 0, 1]))),
            (None, framed(2)),
            (None, framed(3)),
            (None, framed(1)),
        ];
        let Err(Refusal::Records(refused)) = checked(VALUES, &records) else {
            panic!("expected a refusal");
        };
        let indexes: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 3, 4, 5]);
        assert!(refused[0]
            .1
            .starts_with("Record value starts with magic byte 114"));
        assert!(refused[2]
            .1
            .contains("not registered under subject t-value"));
        assert!(refused[3].1.contains("deleted from subject t-value"));
        assert_eq!(checked(VALUES, &[(None, framed(1)), (None, None)]), Ok(()));
    }

    #[test]
    fn keys_are_checked_against_the_key_subject() {
        let keys = Rule {
            key: Some(Strategy::TopicName),
            value: None,
        };
        let records = [
            (framed(1), Some(Bytes::from_static(b"anything"))),
            (framed(2), framed(1)),
            (None, None),
        ];
        assert_eq!(refused_indexes(checked(keys, &records)), [1]);
    }

    #[test]
    fn record_name_strategies_use_the_schemas_name() {
        let rule = |strategy| Rule {
            key: None,
            value: Some(strategy),
        };
        assert_eq!(
            checked(rule(Strategy::RecordName), &[(None, framed(4))]),
            Ok(())
        );
        assert_eq!(
            checked(rule(Strategy::TopicRecordName), &[(None, framed(4))]),
            Ok(())
        );
        // Id 1 has no record name; under TopicNameStrategy id 4 is not under t-value.
        assert_eq!(
            refused_indexes(checked(rule(Strategy::RecordName), &[(None, framed(1))])),
            [0]
        );
        assert_eq!(refused_indexes(checked(VALUES, &[(None, framed(4))])), [0]);
    }

    #[test]
    fn ids_not_seen_yet_are_retried_and_unknown_ones_refused() {
        let late = Fixed { caught_up: false };
        let records = [(None, framed(1)), (None, framed(0))];
        for patient in [true, false] {
            assert!(matches!(
                check("t", VALUES, &records, Some(&late), patient),
                Err(Refusal::NotReady(_))
            ));
        }
        let caught_up = Fixed { caught_up: true };
        let above = [(None, framed(99))];
        assert!(matches!(
            check("t", VALUES, &above, Some(&caught_up), true),
            Err(Refusal::NotReady(_))
        ));
        assert_eq!(refused_indexes(checked(VALUES, &above)), [0]);
        // Below the highest id seen, an unknown id is refused at once.
        let below = [(None, framed(0))];
        assert_eq!(
            refused_indexes(check("t", VALUES, &below, Some(&caught_up), true)),
            [0]
        );
    }

    #[test]
    fn without_a_registry_every_checked_record_is_refused() {
        let refused = check("t", VALUES, &[(None, framed(1)), (None, None)], None, true);
        let Err(Refusal::Records(refused)) = refused else {
            panic!("expected a refusal");
        };
        assert_eq!(refused.len(), 1);
        assert!(refused[0]
            .1
            .contains("no schema registry runs on this broker"));
    }
}
