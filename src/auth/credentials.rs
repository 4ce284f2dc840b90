//! SCRAM credentials per user and mechanism, never passwords.
//!
//! File `credentials.json` in the data directory, in the checksummed form of
//! [`super::file`] with format `samsa-credentials`: a JSON object
//! `{"users": {"alice": {"SCRAM-SHA-256": {"salt", "iterations", "stored_key", "server_key"}}}}`,
//! byte fields in base64. Rewritten whole on every change. In a cluster the credentials
//! changed through the API live in the metadata log instead, and no file is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::file::{self, FileError};
use super::scram::{ScramCredential, ScramMechanism};
use super::AuthError;
use crate::config::ScramUserConfig;

const FILE_NAME: &str = "credentials.json";
const FORMAT: &str = "samsa-credentials";

pub type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CredentialsFile {
    users: Users,
}

/// One change of an AlterUserScramCredentials request, already validated.
#[derive(Debug, Clone)]
pub enum CredentialChange {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

/// Where the credentials changed through the API are kept.
enum Backing {
    /// A single node's `credentials.json`.
    File(PathBuf),
    /// A cluster's metadata log; this node's configured users fill in what it lacks.
    Metadata { seeds: Users },
}

pub struct CredentialStore {
    backing: Backing,
    users: RwLock<Users>,
    /// Serialises read-modify-write-persist, so two alterations cannot lose one another.
    writer: Mutex<()>,
}

impl CredentialStore {
    /// Loads the file, then adds each configured user whose mechanism has no credential yet:
    /// the config bootstraps users, the file (changed by AlterUserScramCredentials) wins.
    pub fn open(dir: &Path, seeds: &[ScramUserConfig]) -> Result<CredentialStore, FileError> {
        let mut users = file::load::<CredentialsFile>(dir, FILE_NAME, FORMAT)?
            .unwrap_or_default()
            .users;
        let mut seeded = false;
        for seed in seeds {
            let entry = users.entry(seed.name.clone()).or_default();
            if let std::collections::btree_map::Entry::Vacant(slot) = entry.entry(seed.mechanism) {
                slot.insert(seed.credential());
                seeded = true;
            }
        }
        if seeded {
            file::store(
                dir,
                FILE_NAME,
                FORMAT,
                &CredentialsFile {
                    users: users.clone(),
                },
            )
            .map_err(|source| FileError::Io {
                path: dir.join(FILE_NAME),
                source,
            })?;
        }
        Ok(CredentialStore {
            backing: Backing::File(dir.to_owned()),
            users: RwLock::new(users),
            writer: Mutex::new(()),
        })
    }

    /// A cluster node's store: the configured users until [`CredentialStore::replace`]
    /// installs the metadata log's credentials over them.
    pub fn replicated(seeds: &[ScramUserConfig]) -> CredentialStore {
        let mut users = Users::new();
        for seed in seeds {
            users
                .entry(seed.name.clone())
                .or_default()
                .insert(seed.mechanism, seed.credential());
        }
        CredentialStore {
            users: RwLock::new(users.clone()),
            backing: Backing::Metadata { seeds: users },
            writer: Mutex::new(()),
        }
    }

    /// Installs the credentials of the cluster metadata this node applied; for a user and
    /// mechanism they have, they win over the configured one, as the file does on one node.
    pub fn replace(&self, replicated: Users) {
        let Backing::Metadata { seeds } = &self.backing else {
            tracing::error!(
                "credentials from a cluster's metadata offered to a single node's store"
            );
            return;
        };
        let mut users = seeds.clone();
        for (user, credentials) in replicated {
            users.entry(user).or_default().extend(credentials);
        }
        *self.users.write() = users;
    }

    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.read().get(user)?.get(&mechanism).cloned()
    }

    /// Every credential of `user`, strongest mechanism last.
    pub fn of_user(&self, user: &str) -> Vec<(ScramMechanism, ScramCredential)> {
        self.users
            .read()
            .get(user)
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    /// (user, [(mechanism, iterations)]) for every user with a credential.
    pub fn describe_all(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        self.users
            .read()
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(user, m)| {
                (
                    user.clone(),
                    m.iter().map(|(k, v)| (*k, v.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Applies each user's changes, all or nothing per user, and persists once. Deleting a
    /// credential that does not exist fails that user with RESOURCE_NOT_FOUND.
    pub fn alter(
        &self,
        changes: Vec<(String, Vec<CredentialChange>)>,
    ) -> Vec<(String, Result<(), AuthError>)> {
        let _writer = self.writer.lock();
        let mut users = self.users.read().clone();
        let mut results = Vec::with_capacity(changes.len());
        let mut changed = false;
        for (user, user_changes) in changes {
            let mut credentials = users.get(&user).cloned().unwrap_or_default();
            let mut outcome = Ok(());
            for change in user_changes {
                match change {
                    CredentialChange::Upsert(m, c) => {
                        credentials.insert(m, c);
                    }
                    CredentialChange::Delete(m) => {
                        if credentials.remove(&m).is_none() {
                            outcome = Err(AuthError::ResourceNotFound(
                                "Attempt to delete a user credential that does not exist".into(),
                            ));
                            break;
                        }
                    }
                }
            }
            if outcome.is_ok() {
                changed = true;
                if credentials.is_empty() {
                    users.remove(&user);
                } else {
                    users.insert(user.clone(), credentials);
                }
            }
            results.push((user, outcome));
        }
        if changed {
            let file = CredentialsFile { users };
            let stored = match &self.backing {
                Backing::File(dir) => {
                    file::store(dir, FILE_NAME, FORMAT, &file).map_err(|err| err.to_string())
                }
                Backing::Metadata { .. } => {
                    Err("the credentials of a cluster change through its metadata log".into())
                }
            };
            if let Err(err) = stored {
                let reason = format!("cannot persist SCRAM credentials: {err}");
                tracing::error!("{reason}");
                return results
                    .into_iter()
                    .map(|(user, r)| (user, r.and(Err(AuthError::Persist(reason.clone())))))
                    .collect();
            }
            *self.users.write() = file.users;
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(password: &str) -> ScramCredential {
        ScramCredential::from_password(ScramMechanism::Sha256, password.as_bytes(), b"salt", 4096)
    }

    #[test]
    fn alterations_persist_and_config_only_bootstraps() {
        let dir = tempfile::tempdir().unwrap();
        let seed = ScramUserConfig::new("admin", ScramMechanism::Sha256, cred("from-config"));
        let store = CredentialStore::open(dir.path(), std::slice::from_ref(&seed)).unwrap();
        assert_eq!(
            store.get("admin", ScramMechanism::Sha256),
            Some(cred("from-config"))
        );
        let results = store.alter(vec![
            (
                "admin".into(),
                vec![CredentialChange::Upsert(
                    ScramMechanism::Sha256,
                    cred("changed"),
                )],
            ),
            (
                "ghost".into(),
                vec![CredentialChange::Delete(ScramMechanism::Sha512)],
            ),
        ]);
        assert!(results[0].1.is_ok());
        assert!(matches!(results[1].1, Err(AuthError::ResourceNotFound(_))));
        let reopened = CredentialStore::open(dir.path(), &[seed]).unwrap();
        assert_eq!(
            reopened.get("admin", ScramMechanism::Sha256),
            Some(cred("changed"))
        );
        assert!(reopened.get("ghost", ScramMechanism::Sha512).is_none());
        assert!(!std::fs::read_to_string(dir.path().join(FILE_NAME))
            .unwrap()
            .contains("changed"));
    }

    #[test]
    fn a_cluster_store_lays_the_metadata_over_the_configured_users() {
        let seeds = [
            ScramUserConfig::new("admin", ScramMechanism::Sha256, cred("from-config")),
            ScramUserConfig::new("bob", ScramMechanism::Sha256, cred("bob")),
        ];
        let store = CredentialStore::replicated(&seeds);
        assert_eq!(
            store.get("admin", ScramMechanism::Sha256),
            Some(cred("from-config"))
        );
        let mut replicated = Users::new();
        replicated
            .entry("admin".into())
            .or_default()
            .insert(ScramMechanism::Sha256, cred("changed"));
        replicated
            .entry("alice".into())
            .or_default()
            .insert(ScramMechanism::Sha512, cred("alice"));
        store.replace(replicated);
        assert_eq!(
            store.get("admin", ScramMechanism::Sha256),
            Some(cred("changed"))
        );
        assert_eq!(
            store.get("alice", ScramMechanism::Sha512),
            Some(cred("alice"))
        );
        assert_eq!(store.get("bob", ScramMechanism::Sha256), Some(cred("bob")));
        store.replace(Users::new());
        assert_eq!(
            store.get("admin", ScramMechanism::Sha256),
            Some(cred("from-config")),
            "the config is beneath"
        );
        assert!(store.get("alice", ScramMechanism::Sha512).is_none());
        let refused = store.alter(vec![(
            "carol".into(),
            vec![CredentialChange::Upsert(ScramMechanism::Sha256, cred("c"))],
        )]);
        assert!(
            matches!(refused[0].1, Err(AuthError::Persist(_))),
            "never written locally"
        );
    }
}
