//! What the `_schemas` topic says, replayed: subjects and their versions, the schemas' global
//! ids, and the compatibility levels and modes. Pure: records in, answers out; every node
//! builds the same state from the same log, as Confluent's `KafkaStoreMessageHandler` does.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::records::{
    self, ConfigValue, DeleteSubjectValue, Entry, Key, ModeValue, NoopValue, SchemaValue,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }

    pub fn name(&self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn parse(name: &str) -> Result<SchemaType, RegistryError> {
        match name.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(RegistryError::InvalidSchema(format!(
                "Invalid schema type {name}"
            ))),
        }
    }
}

/// A schema's reference to another subject's version, under the name the schema uses for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// Confluent's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const DEFAULT: Compatibility = Compatibility::Backward;

    pub fn parse(name: &str) -> Result<Compatibility, RegistryError> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "NONE" => Compatibility::None,
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether every earlier version is checked, or only the latest.
    pub fn transitive(&self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// (the new schema must read data written with the old, the old must read the new's).
    pub fn directions(&self) -> (bool, bool) {
        match self {
            Compatibility::None => (false, false),
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    /// Schemas are registered with the ids and versions their writer gives (a migration).
    Import,
}

impl Mode {
    pub fn parse(name: &str) -> Result<Mode, RegistryError> {
        match name.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            "IMPORT" => Ok(Mode::Import),
            _ => Err(RegistryError::InvalidMode),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: i32,
    pub schema_type: SchemaType,
    pub references: Vec<Reference>,
    pub schema: String,
    pub deleted: bool,
}

impl Version {
    fn same_schema(&self, schema_type: SchemaType, schema: &str, references: &[Reference]) -> bool {
        self.schema_type == schema_type && self.schema == schema && self.references == references
    }
}

#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    configs: HashMap<Option<String>, Compatibility>,
    modes: HashMap<Option<String>, Mode>,
    /// The highest id any record ever carried: new ids go above it, so none is reused even
    /// after a permanent delete (in this process; see `next_id`).
    max_id: i32,
}

impl State {
    /// Applies one record of the topic. A record this registry cannot read is skipped with a
    /// log line: one bad record must not stop the registry from serving the rest.
    pub fn apply(&mut self, entry: &Entry) {
        if let Err(err) = self.try_apply(entry) {
            tracing::warn!("schema registry: skipping a record of the schemas topic: {err}");
        }
    }

    fn try_apply(&mut self, entry: &Entry) -> Result<(), RegistryError> {
        let value = entry.value.as_deref();
        match &entry.key {
            Key::Schema { subject, version } => match value {
                Some(bytes) => {
                    let v: SchemaValue = records::parse(bytes, "schema")?;
                    self.max_id = self.max_id.max(v.id);
                    self.subjects.entry(subject.clone()).or_default().insert(
                        *version,
                        Version {
                            id: v.id,
                            schema_type: v.schema_type,
                            references: v.references,
                            schema: v.schema,
                            deleted: v.deleted,
                        },
                    );
                }
                None => {
                    if let Some(versions) = self.subjects.get_mut(subject) {
                        versions.remove(version);
                        if versions.is_empty() {
                            self.subjects.remove(subject);
                        }
                    }
                }
            },
            Key::Config(subject) => match value {
                Some(bytes) => {
                    let v: ConfigValue = records::parse(bytes, "config")?;
                    let level = Compatibility::parse(&v.compatibility_level)?;
                    self.configs.insert(subject.clone(), level);
                }
                None => {
                    self.configs.remove(subject);
                }
            },
            Key::Mode(subject) => match value {
                Some(bytes) => {
                    let v: ModeValue = records::parse(bytes, "mode")?;
                    self.modes.insert(subject.clone(), Mode::parse(&v.mode)?);
                }
                None => {
                    self.modes.remove(subject);
                }
            },
            Key::DeleteSubject(subject) => {
                if let Some(bytes) = value {
                    let v: DeleteSubjectValue = records::parse(bytes, "delete subject")?;
                    if let Some(versions) = self.subjects.get_mut(subject) {
                        for (_, version) in versions.range_mut(..=v.version) {
                            version.deleted = true;
                        }
                    }
                }
            }
            Key::ClearSubject(subject) => {
                if value.is_some() {
                    if let Some(versions) = self.subjects.get_mut(subject) {
                        versions.retain(|_, v| !v.deleted);
                        if versions.is_empty() {
                            self.subjects.remove(subject);
                        }
                    }
                }
            }
            Key::Noop => {
                // Confluent's NOOP records carry no value, or one samsa does not write.
                if let Some(v) = value.and_then(|b| serde_json::from_slice::<NoopValue>(b).ok()) {
                    self.max_id = self.max_id.max(v.max_id);
                }
            }
        }
        Ok(())
    }

    /// Subjects with a live version (or with any version, `deleted`), sorted.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| deleted || versions.values().any(|v| !v.deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The subject's versions, soft-deleted ones too with `deleted`; `None` if it has none.
    pub fn versions(&self, subject: &str, deleted: bool) -> Option<Vec<(i32, &Version)>> {
        let versions: Vec<_> = self
            .subjects
            .get(subject)?
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, v)| (*n, v))
            .collect();
        (!versions.is_empty()).then_some(versions)
    }

    /// Every version the subject ever had, soft-deleted ones too.
    pub fn all_versions(&self, subject: &str) -> Option<&BTreeMap<i32, Version>> {
        self.subjects.get(subject)
    }

    /// A version by number, or the latest with `None`.
    pub fn version(
        &self,
        subject: &str,
        number: Option<i32>,
        deleted: bool,
    ) -> Result<(i32, &Version), RegistryError> {
        let versions = self
            .versions(subject, deleted)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let found = match number {
            None => versions.last().copied(),
            Some(n) => versions.iter().find(|(v, _)| *v == n).copied(),
        };
        found.ok_or_else(|| {
            RegistryError::VersionNotFound(number.map_or("latest".into(), |n| n.to_string()))
        })
    }

    /// The schema with global id `id`: any version carrying it, a live one first.
    pub fn by_id(&self, id: i32) -> Option<&Version> {
        let mut found = None;
        for version in self.subjects.values().flat_map(|s| s.values()) {
            if version.id == id {
                if !version.deleted {
                    return Some(version);
                }
                found = Some(version);
            }
        }
        found
    }

    /// (subject, version, deleted) of every version carrying `id`.
    pub fn uses_of(&self, id: i32) -> Vec<(&str, i32, bool)> {
        let mut uses = Vec::new();
        for (subject, versions) in &self.subjects {
            for (n, v) in versions {
                if v.id == id {
                    uses.push((subject.as_str(), *n, v.deleted));
                }
            }
        }
        uses
    }

    /// The version of `subject` holding this schema.
    pub fn find_in_subject(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
        deleted: bool,
    ) -> Option<(i32, &Version)> {
        self.subjects
            .get(subject)?
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .find(|(_, v)| v.same_schema(schema_type, schema, references))
            .map(|(n, v)| (*n, v))
    }

    /// The id this schema already has under any subject: the same schema keeps one id.
    pub fn find_id(
        &self,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
    ) -> Option<i32> {
        self.subjects
            .values()
            .flat_map(|s| s.values())
            .find(|v| v.same_schema(schema_type, schema, references))
            .map(|v| v.id)
    }

    /// The ids of the live schemas that reference `subject`'s `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|s| s.values())
            .filter(|v| !v.deleted)
            .filter(|v| {
                v.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    pub fn next_id(&self) -> i32 {
        self.max_id + 1
    }

    /// Every live version of every subject, or those whose subject starts with `prefix`.
    pub fn all(&self, prefix: &str, deleted: bool) -> Vec<(&str, i32, &Version)> {
        self.subjects
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .flat_map(|(s, versions)| versions.iter().map(move |(n, v)| (s.as_str(), *n, v)))
            .filter(|(_, _, v)| deleted || !v.deleted)
            .collect()
    }

    /// The level set for `subject` (or globally, `None`), if one is.
    pub fn config(&self, subject: Option<&str>) -> Option<Compatibility> {
        self.configs.get(&subject.map(str::to_owned)).copied()
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    pub fn compatibility(&self, subject: &str) -> Compatibility {
        self.config(Some(subject))
            .or_else(|| self.config(None))
            .unwrap_or(Compatibility::DEFAULT)
    }

    pub fn mode_set(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(&subject.map(str::to_owned)).copied()
    }

    /// The mode that applies to `subject`: its own, else the global one, else READWRITE.
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.mode_set(Some(s)))
            .or_else(|| self.mode_set(None))
            .unwrap_or(Mode::ReadWrite)
    }

    pub fn schema_count(&self) -> usize {
        self.subjects.values().map(|s| s.len()).sum()
    }
}
