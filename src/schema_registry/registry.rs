//! The registry's operations: what each REST call checks and the records it writes. Reads
//! take the replayed state; writes run one at a time (so ids and versions are handed out
//! once) and return when the state has applied them.

use std::collections::HashSet;
use std::sync::Arc;

use super::error::RegistryError;
use super::formats::{self, Parsed};
use super::log::SchemaLog;
use super::records::{
    self, ConfigValue, DeleteSubjectValue, Key, ModeValue, NoopValue, SchemaValue,
};
use super::state::{Compatibility, Mode, Reference, SchemaType, State};

/// A schema as a client sends it to register, look up or check.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema: String,
    pub schema_type: SchemaType,
    pub references: Vec<Reference>,
    /// Only in IMPORT mode: the id and version the schema had where it comes from.
    pub id: Option<i32>,
    pub version: Option<i32>,
}

/// Which version(s) a call names: one by number, the latest, or (compatibility) all that the
/// level says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Number(i32),
    Latest,
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<VersionSpec, RegistryError> {
        if text == "latest" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }

    pub fn number(self) -> Option<i32> {
        match self {
            VersionSpec::Number(n) => Some(n),
            VersionSpec::Latest => None,
        }
    }
}

pub struct Registry {
    log: Arc<SchemaLog>,
    writes: tokio::sync::Mutex<()>,
}

/// How long a request waits for the registry to have read the topic after start.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

type Entries = Vec<(Key, Option<Vec<u8>>)>;

impl Registry {
    pub fn new(log: Arc<SchemaLog>) -> Registry {
        Registry {
            log,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits (a bounded time) until the state holds what the topic held at start.
    pub async fn wait_caught_up(&self) -> Result<(), RegistryError> {
        self.log.wait_caught_up(READY_TIMEOUT).await
    }

    pub fn state(&self) -> parking_lot::RwLockReadGuard<'_, State> {
        self.log.state().read()
    }

    /// Parses `new` with its references resolved; returns it and its stored form.
    pub fn parse(&self, state: &State, new: &NewSchema) -> Result<(Parsed, String), RegistryError> {
        let references = reference_texts(state, &new.references)?;
        formats::parse(new.schema_type, &new.schema, &references)
    }

    /// A registered version's schema as `?format=serialized` asks (Protobuf's descriptor in
    /// base64); `None` for formats that have no such form.
    pub fn serialized(
        &self,
        state: &State,
        version: &super::state::Version,
    ) -> Result<Option<String>, RegistryError> {
        if version.schema_type != SchemaType::Protobuf {
            return Ok(None);
        }
        let stored = NewSchema {
            schema: version.schema.clone(),
            schema_type: version.schema_type,
            references: version.references.clone(),
            id: None,
            version: None,
        };
        let (parsed, _) = self.parse(state, &stored)?;
        Ok(formats::serialized(&parsed))
    }

    /// Registers `new` under `subject`, or finds it there already; returns its id.
    pub async fn register(&self, subject: &str, new: NewSchema) -> Result<i32, RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        let (id, entries) = {
            let state = self.state();
            let mode = state.mode(Some(subject));
            match mode {
                Mode::ReadOnly => return Err(read_only(subject)),
                Mode::ReadWrite if new.id.is_some() => {
                    return Err(RegistryError::OperationNotPermitted(format!(
                        "Subject {subject} is not in import mode"
                    )))
                }
                _ => {}
            }
            let (parsed, stored) = self.parse(&state, &new)?;
            if let Some((_, found)) =
                state.find_in_subject(subject, new.schema_type, &stored, &new.references, false)
            {
                if new.id.is_none_or(|id| id == found.id) {
                    return Ok(found.id);
                }
            }
            if mode != Mode::Import {
                let found =
                    self.incompatibilities(&state, subject, &parsed, new.schema_type, None)?;
                if !found.is_empty() {
                    return Err(RegistryError::Incompatible(format!(
                        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                        found.join(", ")
                    )));
                }
            }
            let id = match new.id {
                Some(id) => {
                    if let Some(existing) = state.by_id(id) {
                        if existing.schema != stored || existing.schema_type != new.schema_type {
                            return Err(RegistryError::OperationNotPermitted(format!(
                                "Overwrite new schema with id {id} is not permitted."
                            )));
                        }
                    }
                    id
                }
                None => state
                    .find_id(new.schema_type, &stored, &new.references)
                    .unwrap_or_else(|| state.next_id()),
            };
            let latest = state
                .all_versions(subject)
                .and_then(|v| v.keys().last().copied())
                .unwrap_or(0);
            let version = match (mode, new.version) {
                (Mode::Import, Some(v)) if v >= 1 => v,
                _ => latest + 1,
            };
            let value = SchemaValue {
                subject: subject.to_owned(),
                version,
                id,
                schema_type: new.schema_type,
                references: new.references,
                schema: stored,
                deleted: false,
            };
            let key = Key::Schema {
                subject: subject.to_owned(),
                version,
            };
            (id, vec![(key, Some(records::value(&value)))])
        };
        self.log.write(entries).await?;
        Ok(id)
    }

    /// Why `new` cannot follow `subject`'s versions (those the level says, or only `only`),
    /// in Confluent's verbose messages; empty when compatible.
    pub fn incompatibilities(
        &self,
        state: &State,
        subject: &str,
        new: &Parsed,
        new_type: SchemaType,
        only: Option<VersionSpec>,
    ) -> Result<Vec<String>, RegistryError> {
        let level = state.compatibility(subject);
        let (backward, forward) = level.directions();
        let live = state.versions(subject, false).unwrap_or_default();
        let olds: Vec<_> = match only {
            Some(spec) => vec![state.version(subject, spec.number(), false)?],
            None if level == Compatibility::None => Vec::new(),
            None if level.transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        if level == Compatibility::None {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for (number, old) in olds.into_iter().rev() {
            let mut reasons = Vec::new();
            if old.schema_type != new_type {
                reasons.push("Incompatible because of different schema type".to_owned());
            } else {
                let old_schema = NewSchema {
                    schema: old.schema.clone(),
                    schema_type: old.schema_type,
                    references: old.references.clone(),
                    id: None,
                    version: None,
                };
                let (old_parsed, _) = self.parse(state, &old_schema)?;
                if backward {
                    reasons.extend(formats::incompatibilities(new, &old_parsed));
                }
                if forward {
                    reasons.extend(formats::incompatibilities(&old_parsed, new));
                }
            }
            if !reasons.is_empty() {
                found.extend(reasons);
                found.push(format!("{{oldSchemaVersion: {number}}}"));
                found.push(format!("{{oldSchema: '{}'}}", old.schema));
                found.push(format!("{{compatibility: '{}'}}", level.name()));
                // Confluent stops at the first version the new schema cannot follow.
                break;
            }
        }
        Ok(found)
    }

    /// Soft or permanent delete of a whole subject; returns the versions deleted.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        let (versions, entries) = {
            let state = self.state();
            if state.mode(Some(subject)) == Mode::ReadOnly {
                return Err(read_only(subject));
            }
            let all = state
                .all_versions(subject)
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
            let live: Vec<i32> = all
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(n, _)| *n)
                .collect();
            for n in &live {
                if !state.referenced_by(subject, *n).is_empty() {
                    return Err(RegistryError::ReferenceExists(subject.to_owned(), *n));
                }
            }
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
                }
                let versions: Vec<i32> = all.keys().copied().collect();
                let mut entries: Entries = versions
                    .iter()
                    .map(|n| {
                        let key = Key::Schema {
                            subject: subject.to_owned(),
                            version: *n,
                        };
                        (key, None)
                    })
                    .collect();
                entries.push((Key::Config(Some(subject.to_owned())), None));
                entries.push((Key::Mode(Some(subject.to_owned())), None));
                entries.push(keep_max_id(&state));
                (versions, entries)
            } else {
                let Some(&latest) = live.last() else {
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
                };
                let value = DeleteSubjectValue {
                    subject: subject.to_owned(),
                    version: latest,
                };
                let key = Key::DeleteSubject(subject.to_owned());
                (live, vec![(key, Some(records::value(&value)))])
            }
        };
        self.log.write(entries).await?;
        Ok(versions)
    }

    /// Soft or permanent delete of one version; returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        let (number, entries) = {
            let state = self.state();
            if state.mode(Some(subject)) == Mode::ReadOnly {
                return Err(read_only(subject));
            }
            let (number, version) = state.version(subject, spec.number(), true)?;
            if !state.referenced_by(subject, number).is_empty() {
                return Err(RegistryError::ReferenceExists(subject.to_owned(), number));
            }
            let key = Key::Schema {
                subject: subject.to_owned(),
                version: number,
            };
            if permanent {
                if !version.deleted {
                    return Err(RegistryError::VersionNotSoftDeleted(
                        subject.to_owned(),
                        number,
                    ));
                }
                (number, vec![(key, None), keep_max_id(&state)])
            } else {
                if version.deleted {
                    return Err(RegistryError::VersionSoftDeleted(
                        subject.to_owned(),
                        number,
                    ));
                }
                let value = SchemaValue {
                    subject: subject.to_owned(),
                    version: number,
                    id: version.id,
                    schema_type: version.schema_type,
                    references: version.references.clone(),
                    schema: version.schema.clone(),
                    deleted: true,
                };
                (number, vec![(key, Some(records::value(&value)))])
            }
        };
        self.log.write(entries).await?;
        Ok(number)
    }

    /// Sets (`Some`) or removes the compatibility level of `subject` or, `None`, the global one.
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        level: Option<Compatibility>,
    ) -> Result<(), RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        if self.state().mode(subject) == Mode::ReadOnly {
            return Err(read_only(subject.unwrap_or("")));
        }
        let key = Key::Config(subject.map(str::to_owned));
        let value = level.map(|level| {
            records::value(&ConfigValue {
                subject: subject.map(str::to_owned),
                compatibility_level: level.name().to_owned(),
            })
        });
        self.log.write(vec![(key, value)]).await
    }

    /// Sets or removes a mode. IMPORT for the whole registry needs it empty unless `force`.
    pub async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Option<Mode>,
        force: bool,
    ) -> Result<(), RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        if mode == Some(Mode::Import) && !force {
            let state = self.state();
            let existing = match subject {
                None => !state.subjects(true).is_empty(),
                Some(s) => state.all_versions(s).is_some(),
            };
            if existing {
                return Err(RegistryError::OperationNotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
        }
        let key = Key::Mode(subject.map(str::to_owned));
        let value = mode.map(|mode| {
            records::value(&ModeValue {
                subject: subject.map(str::to_owned),
                mode: mode.name().to_owned(),
            })
        });
        self.log.write(vec![(key, value)]).await
    }
}

fn read_only(subject: &str) -> RegistryError {
    RegistryError::OperationNotPermitted(format!("Subject {subject} is in read-only mode"))
}

/// The NOOP record that keeps the highest id through compaction (see [`NoopValue`]).
fn keep_max_id(state: &State) -> (Key, Option<Vec<u8>>) {
    let value = NoopValue {
        max_id: state.max_id(),
    };
    (Key::Noop, Some(records::value(&value)))
}

/// The names and texts of the schemas `references` name, each one's own references before
/// it, so a parser meets every name after its definition.
pub fn reference_texts(
    state: &State,
    references: &[Reference],
) -> Result<Vec<(String, String)>, RegistryError> {
    fn visit(
        state: &State,
        reference: &Reference,
        seen: &mut HashSet<(String, i32)>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), RegistryError> {
        if !seen.insert((reference.subject.clone(), reference.version)) {
            return Ok(());
        }
        let number = (reference.version != -1).then_some(reference.version);
        let (_, version) = state
            .version(&reference.subject, number, true)
            .map_err(|_| {
                RegistryError::InvalidSchema(format!(
                    "Invalid schema: reference {} to subject {} version {} not found",
                    reference.name, reference.subject, reference.version
                ))
            })?;
        for inner in &version.references {
            visit(state, inner, seen, out)?;
        }
        out.push((reference.name.clone(), version.schema.clone()));
        Ok(())
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for reference in references {
        visit(state, reference, &mut seen, &mut out)?;
    }
    Ok(out)
}
