//! The registry's answers to Produce's schema id validation
//! ([`crate::schema_validation`]): read from the replayed state under its lock, never from
//! the disk, so the Produce path may ask on the event loop.

use std::sync::Arc;

use tokio::sync::watch;

use super::log::SchemaLog;
use super::state::SchemaType;
use crate::schema_validation::{SchemaFacts, SchemaIds};

pub struct RegistryIds {
    log: Arc<SchemaLog>,
}

impl RegistryIds {
    pub fn new(log: Arc<SchemaLog>) -> RegistryIds {
        RegistryIds { log }
    }
}

impl SchemaIds for RegistryIds {
    fn facts(&self, id: i32, with_record_name: bool) -> Option<SchemaFacts> {
        let state = self.log.state().read();
        // A subject counts as deleted only when every version of it carrying the id is.
        let mut subjects: Vec<(String, bool)> = Vec::new();
        for (subject, _, deleted) in state.uses_of(id) {
            match subjects.iter_mut().find(|(s, _)| s == subject) {
                Some(entry) => entry.1 &= deleted,
                None => subjects.push((subject.to_owned(), deleted)),
            }
        }
        if subjects.is_empty() {
            return None;
        }
        let record_name = if with_record_name {
            state
                .by_id(id)
                .and_then(|v| record_name(v.schema_type, &v.schema))
        } else {
            None
        };
        Some(SchemaFacts {
            subjects,
            record_name,
        })
    }

    fn caught_up(&self) -> bool {
        self.log.is_caught_up()
    }

    fn max_id(&self) -> i32 {
        self.log.state().read().max_id()
    }

    fn applied(&self) -> watch::Receiver<i64> {
        self.log.applied()
    }
}

/// The name Confluent's RecordNameStrategy gives a schema: an Avro named type's full name
/// (its namespace joined to a short name), a JSON schema's `title`. Protobuf schemas are
/// not named here (their message is in the `.proto` text).
fn record_name(schema_type: SchemaType, schema: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(schema).ok()?;
    match schema_type {
        SchemaType::Avro => {
            let name = json.get("name")?.as_str()?;
            match json.get("namespace").and_then(|n| n.as_str()) {
                Some(namespace) if !name.contains('.') && !namespace.is_empty() => {
                    Some(format!("{namespace}.{name}"))
                }
                _ => Some(name.to_owned()),
            }
        }
        SchemaType::Json => json.get("title")?.as_str().map(str::to_owned),
        SchemaType::Protobuf => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_avro_full_names_and_json_titles() {
        let avro = |s| record_name(SchemaType::Avro, s);
        assert_eq!(
            avro(r#"{"type":"record","name":"User","namespace":"ns","fields":[]}"#).as_deref(),
            Some("ns.User")
        );
        assert_eq!(
            avro(r#"{"type":"record","name":"a.User","namespace":"ns","fields":[]}"#).as_deref(),
            Some("a.User")
        );
        assert_eq!(avro(r#""string""#), None);
        let json = record_name(SchemaType::Json, r#"{"title":"Order","type":"object"}"#);
        assert_eq!(json.as_deref(), Some("Order"));
        assert_eq!(record_name(SchemaType::Json, r#"{"type":"object"}"#), None);
    }
}
