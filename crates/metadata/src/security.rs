//! ACL bindings and SCRAM credentials in the metadata log, as KRaft keeps them
//! (`AccessControlEntryRecord`, `UserScramCredentialRecord`), so that every broker enforces
//! the same bindings and accepts the same users.
//!
//! The types are neutral (Kafka's codes and strings): the broker turns them into its own
//! authorization types, validates what it proposes, and resolves DeleteAcls filters against
//! the state it applied, so that `apply` only adds and removes exact records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::{ClusterMetadata, CommandError, CommandResult};

/// One ACL binding, in Kafka's codes of ResourceType, PatternType, AclOperation and
/// AclPermissionType.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclRecord {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// What is kept of a SCRAM password (RFC 5802): enough to verify a client's proof, not
/// enough to make one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialRecord {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Credentials by user, then by mechanism code (Kafka's `ScramMechanism.type()`: 1
/// SCRAM-SHA-256, 2 SCRAM-SHA-512). A user without credentials is not listed.
pub type ScramCredentials = BTreeMap<String, BTreeMap<i8, ScramCredentialRecord>>;

/// Changes to ACLs and SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityCommand {
    /// Adds bindings after those there are; one present already is not added twice.
    CreateAcls {
        acls: Vec<AclRecord>,
        /// The cluster link that copies these bindings from its source, which may remove
        /// them again once the source no longer has them: recorded for the ones added.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    /// Removes exactly these bindings; one already gone (a concurrent delete) is skipped.
    DeleteAcls {
        acls: Vec<AclRecord>,
    },
    /// Sets the user's credential for the mechanism, replacing any it had.
    UpsertScramCredential {
        user: String,
        mechanism: i8,
        credential: ScramCredentialRecord,
    },
    DeleteScramCredential {
        user: String,
        mechanism: i8,
    },
}

impl ClusterMetadata {
    pub(crate) fn apply_security(
        &mut self,
        command: &SecurityCommand,
    ) -> Result<CommandResult, CommandError> {
        match command {
            SecurityCommand::CreateAcls { acls, link } => {
                let before = self.acls.len();
                for acl in acls {
                    if !self.acls.contains(acl) {
                        self.acls.push(acl.clone());
                        if let Some(link) = link {
                            self.link_acls
                                .entry(link.clone())
                                .or_default()
                                .push(acl.clone());
                        }
                    }
                }
                Ok(CommandResult::AclsCreated {
                    added: self.acls.len() - before,
                })
            }
            SecurityCommand::DeleteAcls { acls } => {
                let before = self.acls.len();
                self.acls.retain(|acl| !acls.contains(acl));
                for created in self.link_acls.values_mut() {
                    created.retain(|acl| !acls.contains(acl));
                }
                self.link_acls.retain(|_, created| !created.is_empty());
                Ok(CommandResult::AclsDeleted {
                    removed: before - self.acls.len(),
                })
            }
            SecurityCommand::UpsertScramCredential {
                user,
                mechanism,
                credential,
            } => {
                let credentials = self.scram_credentials.entry(user.clone()).or_default();
                credentials.insert(*mechanism, credential.clone());
                Ok(CommandResult::ScramCredentialAltered)
            }
            SecurityCommand::DeleteScramCredential { user, mechanism } => {
                let unknown = || CommandError::UnknownScramCredential {
                    user: user.clone(),
                    mechanism: *mechanism,
                };
                let credentials = self.scram_credentials.get_mut(user).ok_or_else(unknown)?;
                credentials.remove(mechanism).ok_or_else(unknown)?;
                if credentials.is_empty() {
                    self.scram_credentials.remove(user);
                }
                Ok(CommandResult::ScramCredentialAltered)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Command;

    fn acl(name: &str, operation: i8) -> AclRecord {
        AclRecord {
            resource_type: 2,
            resource_name: name.into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation,
            permission: 3,
        }
    }

    fn credential(salt: &[u8]) -> ScramCredentialRecord {
        ScramCredentialRecord {
            salt: salt.to_vec(),
            iterations: 4096,
            stored_key: vec![1; 32],
            server_key: vec![2; 32],
        }
    }

    fn apply(
        m: &mut ClusterMetadata,
        command: SecurityCommand,
    ) -> Result<CommandResult, CommandError> {
        m.apply(&Command::Security(command))
    }

    #[test]
    fn acls_are_added_once_in_creation_order() {
        let mut m = ClusterMetadata::default();
        let (read, write) = (acl("orders", 3), acl("orders", 4));
        let created = apply(
            &mut m,
            SecurityCommand::CreateAcls {
                acls: vec![write.clone(), read.clone(), write.clone()],
                link: None,
            },
        );
        assert_eq!(created, Ok(CommandResult::AclsCreated { added: 2 }));
        let again = apply(
            &mut m,
            SecurityCommand::CreateAcls {
                acls: vec![read.clone()],
                link: None,
            },
        );
        assert_eq!(again, Ok(CommandResult::AclsCreated { added: 0 }));
        assert_eq!(m.acls, [write, read]);
    }

    #[test]
    fn deleting_acls_removes_exactly_those_still_there() {
        let mut m = ClusterMetadata::default();
        let (a, b, c) = (acl("a", 3), acl("b", 3), acl("c", 3));
        apply(
            &mut m,
            SecurityCommand::CreateAcls {
                acls: vec![a.clone(), b.clone(), c.clone()],
                link: None,
            },
        )
        .unwrap();
        let deleted = apply(
            &mut m,
            SecurityCommand::DeleteAcls {
                acls: vec![a.clone(), c.clone()],
            },
        );
        assert_eq!(deleted, Ok(CommandResult::AclsDeleted { removed: 2 }));
        assert_eq!(m.acls, std::slice::from_ref(&b));
        // A second delete of the same bindings (another node resolved them too) changes nothing.
        let repeated = apply(&mut m, SecurityCommand::DeleteAcls { acls: vec![a, c] });
        assert_eq!(repeated, Ok(CommandResult::AclsDeleted { removed: 0 }));
        assert_eq!(m.acls, [b]);
    }

    #[test]
    fn a_links_bindings_are_those_it_added_until_deleted() {
        let mut m = ClusterMetadata::default();
        let (own, copied, both) = (acl("own", 3), acl("copied", 3), acl("both", 3));
        let create = |acls: Vec<AclRecord>, link: Option<&str>| SecurityCommand::CreateAcls {
            acls,
            link: link.map(str::to_owned),
        };
        apply(&mut m, create(vec![own.clone(), both.clone()], None)).unwrap();
        // A binding already made by hand is not the link's.
        let by_link = create(vec![copied.clone(), both.clone()], Some("east"));
        apply(&mut m, by_link).unwrap();
        assert_eq!(m.link_acls["east"], std::slice::from_ref(&copied));
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(serde_json::from_slice::<ClusterMetadata>(&json).unwrap(), m);
        apply(&mut m, SecurityCommand::DeleteAcls { acls: vec![copied] }).unwrap();
        assert!(m.link_acls.is_empty());
    }

    #[test]
    fn scram_credentials_are_upserted_and_deleted_per_mechanism() {
        let mut m = ClusterMetadata::default();
        let upsert = |mechanism, salt: &[u8]| SecurityCommand::UpsertScramCredential {
            user: "alice".into(),
            mechanism,
            credential: credential(salt),
        };
        apply(&mut m, upsert(1, b"first")).unwrap();
        apply(&mut m, upsert(2, b"other")).unwrap();
        assert_eq!(
            apply(&mut m, upsert(1, b"second")),
            Ok(CommandResult::ScramCredentialAltered)
        );
        assert_eq!(m.scram_credentials["alice"][&1], credential(b"second"));
        assert_eq!(m.scram_credentials["alice"].len(), 2);

        let delete = |user: &str, mechanism| SecurityCommand::DeleteScramCredential {
            user: user.into(),
            mechanism,
        };
        apply(&mut m, delete("alice", 1)).unwrap();
        assert_eq!(
            apply(&mut m, delete("alice", 1)),
            Err(CommandError::UnknownScramCredential {
                user: "alice".into(),
                mechanism: 1
            })
        );
        assert_eq!(
            apply(&mut m, delete("bob", 2)),
            Err(CommandError::UnknownScramCredential {
                user: "bob".into(),
                mechanism: 2
            })
        );
        assert_eq!(
            m.scram_credentials["alice"].keys().collect::<Vec<_>>(),
            [&2]
        );
        apply(&mut m, delete("alice", 2)).unwrap();
        assert!(
            m.scram_credentials.is_empty(),
            "a user without credentials is not kept"
        );
    }

    #[test]
    fn snapshots_without_acls_or_credentials_still_load() {
        let mut m = ClusterMetadata {
            next_broker_epoch: 3,
            ..ClusterMetadata::default()
        };
        let mut json = serde_json::to_value(&m).unwrap();
        let fields = json.as_object_mut().unwrap();
        assert!(fields.remove("acls").is_some() && fields.remove("scram_credentials").is_some());
        let loaded: ClusterMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(loaded, m);

        apply(
            &mut m,
            SecurityCommand::CreateAcls {
                acls: vec![acl("t", 3)],
                link: None,
            },
        )
        .unwrap();
        apply(
            &mut m,
            SecurityCommand::UpsertScramCredential {
                user: "alice".into(),
                mechanism: 2,
                credential: credential(b"s"),
            },
        )
        .unwrap();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(serde_json::from_slice::<ClusterMetadata>(&json).unwrap(), m);
    }
}
