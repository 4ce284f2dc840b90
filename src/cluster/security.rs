//! ACLs and SCRAM credentials in a cluster. Changes are checked against the metadata this
//! node applied and proposed to the active controller, forwarded by whichever node received
//! them, as a KRaft broker forwards CreateAcls, DeleteAcls and AlterUserScramCredentials.
//! Every node installs what it applied into its authorizer and credential store, so all of
//! them enforce the same ACLs and accept the same users; a change is answered once this node
//! installed it, so that a client's next request to it is judged by it.

use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::security::{
    AclRecord, ScramCredentialRecord, ScramCredentials, SecurityCommand,
};
use samsa_metadata::{ClusterMetadata, Command};
use tokio::sync::watch;

use super::{lock, wait_for, Cluster};
use crate::auth::credentials::{CredentialChange, Users};
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::auth::{AclBinding, AclFilter, AuthError, Authorizer, CredentialStore};
use crate::auth::{Operation, PatternType, Permission, ResourceType};
use crate::error::Result;

/// How long a committed change may take to be installed on this node.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Cluster {
    /// From now on the authorizer's ACLs and the credential store follow the metadata this
    /// node applies. A broker installs them once it applied its own registration, which
    /// comes after every change made before it started: until then the authorizer allows
    /// only super users.
    pub fn start_security(&self, authorizer: Arc<Authorizer>, credentials: Arc<CredentialStore>) {
        let follower = Follower {
            authorizer,
            credentials,
            installed: self.security.clone(),
        };
        let task = tokio::spawn(follower.run(
            self.node.metadata(),
            self.caught_up(),
            self.stop.subscribe(),
        ));
        lock(&self.background).push(task);
    }

    /// CreateAcls of bindings already validated; one present already succeeds too. Nothing
    /// is proposed without a binding, as the handler answers the invalid ones itself.
    /// `link`: the cluster link copying them from its source, recorded as theirs.
    pub async fn create_acls(&self, acls: &[AclBinding], link: Option<&str>) -> Result<()> {
        let records: Vec<AclRecord> = acls.iter().map(record).collect();
        if records.is_empty() {
            return Ok(());
        }
        self.forward(Command::Security(SecurityCommand::CreateAcls {
            acls: records.clone(),
            link: link.map(str::to_owned),
        }))
        .await?;
        self.await_installed(|m| records.iter().all(|r| m.acls.contains(r)))
            .await;
        Ok(())
    }

    /// DeleteAcls: each filter's matches among the ACLs this node applied, all removed by
    /// one command that names them exactly. Proposed even when nothing matches, as Kafka's
    /// broker forwards the request either way, so an unreachable controller is told.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let applied: Vec<AclBinding> = self.metadata().acls.iter().filter_map(binding).collect();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| applied.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let records: Vec<AclRecord> = matched.iter().flatten().map(record).collect();
        self.forward(Command::Security(SecurityCommand::DeleteAcls {
            acls: records.clone(),
        }))
        .await?;
        self.await_installed(|m| !records.iter().any(|r| m.acls.contains(r)))
            .await;
        Ok(matched)
    }

    /// AlterUserScramCredentials, user by user, each user's changes in order until one fails.
    pub async fn alter_credentials(
        &self,
        changes: Vec<(String, Vec<CredentialChange>)>,
    ) -> Vec<(String, Result<()>)> {
        let mut results = Vec::with_capacity(changes.len());
        for (user, user_changes) in changes {
            let mut outcome = Ok(());
            for change in user_changes {
                outcome = self.alter_credential(&user, change).await;
                if outcome.is_err() {
                    break;
                }
            }
            results.push((user, outcome));
        }
        results
    }

    async fn alter_credential(&self, user: &str, change: CredentialChange) -> Result<()> {
        match change {
            CredentialChange::Upsert(mechanism, credential) => {
                let credential = ScramCredentialRecord {
                    salt: credential.salt,
                    iterations: credential.iterations,
                    stored_key: credential.stored_key,
                    server_key: credential.server_key,
                };
                let command = SecurityCommand::UpsertScramCredential {
                    user: user.to_owned(),
                    mechanism: mechanism.code(),
                    credential: credential.clone(),
                };
                self.forward(Command::Security(command)).await?;
                self.await_installed(|m| credential_of(m, user, mechanism) == Some(&credential))
                    .await;
            }
            CredentialChange::Delete(mechanism) => {
                // Only what the metadata log holds: a user configured on this node stays.
                if credential_of(&self.metadata(), user, mechanism).is_none() {
                    let reason = "Attempt to delete a user credential that does not exist";
                    return Err(AuthError::ResourceNotFound(reason.into()).into());
                }
                let command = SecurityCommand::DeleteScramCredential {
                    user: user.to_owned(),
                    mechanism: mechanism.code(),
                };
                self.forward(Command::Security(command)).await?;
                self.await_installed(|m| credential_of(m, user, mechanism).is_none())
                    .await;
            }
        }
        Ok(())
    }

    async fn await_installed(&self, done: impl Fn(&ClusterMetadata) -> bool) {
        if !wait_for(self.security.subscribe(), INSTALL_TIMEOUT, done).await {
            tracing::warn!("a committed ACL or credential change was not installed here within {INSTALL_TIMEOUT:?}");
        }
    }
}

fn credential_of<'a>(
    m: &'a ClusterMetadata,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<&'a ScramCredentialRecord> {
    m.scram_credentials.get(user)?.get(&mechanism.code())
}

/// Installs the ACLs and credentials of each metadata this node applies.
struct Follower {
    authorizer: Arc<Authorizer>,
    credentials: Arc<CredentialStore>,
    /// The metadata installed last, for those awaiting a change.
    installed: watch::Sender<Arc<ClusterMetadata>>,
}

impl Follower {
    async fn run(
        self,
        mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
        ready: impl Fn(&ClusterMetadata) -> bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut last: Option<Arc<ClusterMetadata>> = None;
        loop {
            let current = metadata.borrow_and_update().clone();
            if ready(&current) {
                // Most changes are of partitions; the stores are rebuilt only when theirs moved.
                if last.as_ref().is_none_or(|l| l.acls != current.acls) {
                    self.authorizer
                        .acls
                        .replace(current.acls.iter().filter_map(binding).collect());
                }
                if last
                    .as_ref()
                    .is_none_or(|l| l.scram_credentials != current.scram_credentials)
                {
                    self.credentials.replace(users(&current.scram_credentials));
                }
                last = Some(current.clone());
                self.installed.send_replace(current);
            }
            tokio::select! {
                changed = metadata.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn record(acl: &AclBinding) -> AclRecord {
    AclRecord {
        resource_type: acl.resource_type.code(),
        resource_name: acl.name.clone(),
        pattern_type: acl.pattern_type.code(),
        principal: acl.principal.clone(),
        host: acl.host.clone(),
        operation: acl.operation.code(),
        permission: acl.permission.code(),
    }
}

/// `None` for codes this broker does not know (written by a newer one): such a binding
/// can neither be enforced nor shown as what it is.
pub fn binding(record: &AclRecord) -> Option<AclBinding> {
    let known = || {
        Some(AclBinding {
            resource_type: ResourceType::from_code(record.resource_type)?,
            name: record.resource_name.clone(),
            pattern_type: PatternType::from_code(record.pattern_type)?,
            principal: record.principal.clone(),
            host: record.host.clone(),
            operation: Operation::from_code(record.operation)?,
            permission: Permission::from_code(record.permission)?,
        })
    };
    let binding = known();
    if binding.is_none() {
        tracing::warn!(
            ?record,
            "ignoring an ACL with codes this broker does not know"
        );
    }
    binding
}

fn users(credentials: &ScramCredentials) -> Users {
    let mut users = Users::new();
    for (user, by_mechanism) in credentials {
        for (code, c) in by_mechanism {
            let Some(mechanism) = ScramMechanism::from_code(*code) else {
                tracing::warn!(
                    user,
                    code,
                    "ignoring a SCRAM credential of an unknown mechanism"
                );
                continue;
            };
            let credential = ScramCredential {
                salt: c.salt.clone(),
                iterations: c.iterations,
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
            };
            users
                .entry(user.clone())
                .or_default()
                .insert(mechanism, credential);
        }
    }
    users
}
