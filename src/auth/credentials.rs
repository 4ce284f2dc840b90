//! SCRAM credentials per user and mechanism, never passwords.
//!
//! The credentials changed through the API live in the metadata log, over the users this
//! node's config bootstraps. Before a single node kept its metadata in the log it kept them in
//! file `credentials.json` in the data directory, in the checksummed form of [`super::file`]
//! with format `samsa-credentials`: a JSON object
//! `{"users": {"alice": {"SCRAM-SHA-256": {"salt", "iterations", "stored_key", "server_key"}}}}`,
//! byte fields in base64. [`load_file`] reads it once, to move its users into the log.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::file::{self, FileError};
use super::scram::{ScramCredential, ScramMechanism};
use crate::config::ScramUserConfig;

/// The file [`load_file`] reads, which nothing writes any more.
pub const FILE_NAME: &str = "credentials.json";
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

pub struct CredentialStore {
    /// The configured users, beneath what the metadata holds.
    seeds: Users,
    users: RwLock<Users>,
}

/// The users of a data directory written before its metadata moved into the log (the
/// configured users it was seeded with included); empty if it has no `credentials.json`.
pub fn load_file(dir: &Path) -> Result<Users, FileError> {
    Ok(file::load::<CredentialsFile>(dir, FILE_NAME, FORMAT)?
        .unwrap_or_default()
        .users)
}

impl CredentialStore {
    /// The configured users until [`CredentialStore::replace`] installs the metadata log's
    /// credentials over them.
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
            seeds: users,
        }
    }

    /// Installs the credentials of the metadata this node applied; for a user and mechanism
    /// they have, they win over the configured one.
    pub fn replace(&self, replicated: Users) {
        let mut users = self.seeds.clone();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(password: &str) -> ScramCredential {
        ScramCredential::from_password(ScramMechanism::Sha256, password.as_bytes(), b"salt", 4096)
    }

    #[test]
    fn the_legacy_file_reads_back_its_users() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_file(dir.path()).unwrap().is_empty());
        let mut users = Users::new();
        users
            .entry("admin".into())
            .or_default()
            .insert(ScramMechanism::Sha256, cred("changed"));
        let written = CredentialsFile {
            users: users.clone(),
        };
        file::store(dir.path(), FILE_NAME, FORMAT, &written).unwrap();
        assert_eq!(load_file(dir.path()).unwrap(), users);
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
    }
}
