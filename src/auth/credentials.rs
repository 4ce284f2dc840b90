//! SCRAM credentials per user and mechanism, never passwords.
//!
//! File `credentials.json` in the data directory, in the checksummed form of
//! [`super::file`] with format `samsa-credentials`: a JSON object
//! `{"users": {"alice": {"SCRAM-SHA-256": {"salt", "iterations", "stored_key", "server_key"}}}}`,
//! byte fields in base64. Rewritten whole on every change.

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

type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

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

pub struct CredentialStore {
    dir: PathBuf,
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
            file::store(dir, FILE_NAME, FORMAT, &CredentialsFile { users: users.clone() }).map_err(|source| {
                FileError::Io {
                    path: dir.join(FILE_NAME),
                    source,
                }
            })?;
        }
        Ok(CredentialStore {
            dir: dir.to_owned(),
            users: RwLock::new(users),
            writer: Mutex::new(()),
        })
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
            .map(|(user, m)| (user.clone(), m.iter().map(|(k, v)| (*k, v.iterations)).collect()))
            .collect()
    }

    /// Applies each user's changes, all or nothing per user, and persists once. Deleting a
    /// credential that does not exist fails that user with RESOURCE_NOT_FOUND.
    pub fn alter(&self, changes: Vec<(String, Vec<CredentialChange>)>) -> Vec<(String, Result<(), AuthError>)> {
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
            if let Err(err) = file::store(&self.dir, FILE_NAME, FORMAT, &file) {
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
        assert_eq!(store.get("admin", ScramMechanism::Sha256), Some(cred("from-config")));
        let results = store.alter(vec![
            ("admin".into(), vec![CredentialChange::Upsert(ScramMechanism::Sha256, cred("changed"))]),
            ("ghost".into(), vec![CredentialChange::Delete(ScramMechanism::Sha512)]),
        ]);
        assert!(results[0].1.is_ok());
        assert!(matches!(results[1].1, Err(AuthError::ResourceNotFound(_))));
        let reopened = CredentialStore::open(dir.path(), &[seed]).unwrap();
        assert_eq!(reopened.get("admin", ScramMechanism::Sha256), Some(cred("changed")));
        assert!(reopened.get("ghost", ScramMechanism::Sha512).is_none());
        assert!(!std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap().contains("changed"));
    }
}
