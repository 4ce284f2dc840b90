//! The `_schemas` topic's records, in Confluent Schema Registry's format so that a topic
//! written by either can be read by the other.
//!
//! Keys are JSON objects named by `keytype`:
//! `{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`,
//! `{"keytype":"CONFIG","subject":null,"magic":0}` (`null`: the global setting),
//! `{"keytype":"MODE","subject":"s","magic":0}`,
//! `{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}`,
//! `{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}` and `{"keytype":"NOOP","magic":0}`.
//! Values are JSON too: a schema version (`subject`, `version`, `id`, `schemaType` unless
//! Avro, `references` when there are some, `schema`, `deleted`), a compatibility level
//! (`compatibilityLevel`), a mode (`mode`), the highest version a soft delete of a whole
//! subject covers (`version`). A null value (tombstone) removes the key: a permanently
//! deleted version, a config or mode set back to its default.

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::state::{Reference, SchemaType};

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Schema {
        subject: String,
        version: i32,
    },
    /// `None`: the global level.
    Config(Option<String>),
    Mode(Option<String>),
    DeleteSubject(String),
    ClearSubject(String),
    /// Confluent writes these to find the end of the topic; they change nothing.
    Noop,
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    keytype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<i32>,
    #[serde(default)]
    magic: i32,
}

impl Key {
    pub fn encode(&self) -> Vec<u8> {
        // Confluent writes `"subject":null` for the global config and mode keys.
        let (keytype, subject, version, magic) = match self {
            Key::Schema { subject, version } => ("SCHEMA", Some(subject), Some(*version), 1),
            Key::Config(subject) => {
                return global_or_subject("CONFIG", subject.as_deref());
            }
            Key::Mode(subject) => return global_or_subject("MODE", subject.as_deref()),
            Key::DeleteSubject(subject) => ("DELETE_SUBJECT", Some(subject), None, 0),
            Key::ClearSubject(subject) => ("CLEAR_SUBJECT", Some(subject), None, 0),
            Key::Noop => ("NOOP", None, None, 0),
        };
        let json = KeyJson {
            keytype: keytype.to_owned(),
            subject: subject.cloned(),
            version,
            magic,
        };
        serde_json::to_vec(&json).expect("a key serializes")
    }

    /// `None` for a key of a type this registry does not know (Confluent's newer ones, such
    /// as contexts' or KEK's): it is skipped, as Confluent skips what it does not know.
    pub fn decode(bytes: &[u8]) -> Result<Option<Key>, RegistryError> {
        let json: KeyJson = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Store(format!("bad _schemas key: {e}")))?;
        let subject = || {
            json.subject.clone().ok_or_else(|| {
                RegistryError::Store(format!("{} key without subject", json.keytype))
            })
        };
        Ok(Some(match json.keytype.as_str() {
            "SCHEMA" => Key::Schema {
                subject: subject()?,
                version: json
                    .version
                    .ok_or_else(|| RegistryError::Store("SCHEMA key without version".into()))?,
            },
            "CONFIG" => Key::Config(json.subject.clone()),
            "MODE" => Key::Mode(json.subject.clone()),
            "DELETE_SUBJECT" => Key::DeleteSubject(subject()?),
            "CLEAR_SUBJECT" => Key::ClearSubject(subject()?),
            "NOOP" => Key::Noop,
            _ => return Ok(None),
        }))
    }
}

fn global_or_subject(keytype: &str, subject: Option<&str>) -> Vec<u8> {
    let json = serde_json::json!({"keytype": keytype, "subject": subject, "magic": 0});
    // serde_json's map sorts its keys; Confluent's order is keytype, subject, magic.
    format!(
        "{{\"keytype\":{},\"subject\":{},\"magic\":0}}",
        json["keytype"], json["subject"]
    )
    .into_bytes()
}

/// A schema version as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigValue {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeValue {
    #[serde(default)]
    pub subject: Option<String>,
    pub mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

/// samsa's value under the NOOP key, which Confluent writes without one: the highest id
/// handed out, written with permanent deletes so that compaction removing the schema that
/// held it cannot make a later start hand the id out again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoopValue {
    #[serde(rename = "maxId")]
    pub max_id: i32,
}

/// A decoded record: its key and, unless a tombstone, its value's JSON.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Key,
    pub value: Option<Vec<u8>>,
}

pub fn value<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a value serializes")
}

pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Store(format!("bad {what} value: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confluents() {
        let key = Key::Schema {
            subject: "orders-value".into(),
            version: 3,
        };
        assert_eq!(
            String::from_utf8(key.encode()).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(
            String::from_utf8(Key::Config(None).encode()).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            String::from_utf8(Key::Mode(Some("a\"b".into())).encode()).unwrap(),
            r#"{"keytype":"MODE","subject":"a\"b","magic":0}"#
        );
        for key in [
            key,
            Key::Config(Some("s".into())),
            Key::Mode(None),
            Key::DeleteSubject("s".into()),
            Key::ClearSubject("s".into()),
            Key::Noop,
        ] {
            assert_eq!(Key::decode(&key.encode()).unwrap(), Some(key));
        }
        assert_eq!(
            Key::decode(br#"{"keytype":"CONTEXT","tenant":"x","magic":0}"#).unwrap(),
            None
        );
    }

    #[test]
    fn values_are_confluents() {
        let avro = SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 7,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"string\"".into(),
            deleted: false,
        };
        assert_eq!(
            String::from_utf8(value(&avro)).unwrap(),
            r#"{"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false}"#
        );
        let json: SchemaValue = parse(
            br#"{"subject":"s","version":2,"id":8,"schemaType":"JSON","schema":"{}","deleted":true}"#,
            "schema",
        )
        .unwrap();
        assert_eq!(json.schema_type, SchemaType::Json);
        assert!(json.deleted);
    }
}
