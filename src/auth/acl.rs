//! Kafka's ACL model: bindings (resource pattern + principal, host, operation, permission),
//! the filters DescribeAcls and DeleteAcls select them with, and the store that keeps them.
//!
//! The metadata log keeps the bindings, and each node's store holds what it applied of it.
//! Before a single node kept its metadata in the log it kept them in file `acls.json` in the
//! data directory, in the checksummed form of [`super::file`] with format `samsa-acls`: a
//! JSON object `{"acls": [AclBinding, ...]}`, enums by Kafka name. [`load_file`] reads it
//! once, to move its bindings into the log.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::file::{self, FileError};
use super::AuthError;

/// The only name the CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL name or principal/host that matches all.
pub const WILDCARD: &str = "*";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// `None` for codes Kafka calls UNKNOWN or does not define.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType { Any = 1, Topic = 2, Group = 3, Cluster = 4, TransactionalId = 5, DelegationToken = 6, User = 7 }
);
kafka_enum!(
    /// Kafka's `PatternType`; ANY and MATCH only occur in filters.
    PatternType { Any = 1, Match = 2, Literal = 3, Prefixed = 4 }
);
kafka_enum!(
    /// Kafka's `AclOperation`.
    Operation {
        Any = 1, All = 2, Read = 3, Write = 4, Create = 5, Delete = 6, Alter = 7, Describe = 8,
        ClusterAction = 9, DescribeConfigs = 10, AlterConfigs = 11, IdempotentWrite = 12,
        CreateTokens = 13, DescribeTokens = 14, TwoPhaseCommit = 15,
    }
);
kafka_enum!(
    /// Kafka's `AclPermissionType`.
    Permission { Any = 1, Deny = 2, Allow = 3 }
);

/// One ACL: `principal` from `host` is `permission`ed to `operation` on the resources the
/// pattern (`resource_type`, `name`, `pattern_type`) names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's checks on a new binding (CreateAcls answers INVALID_REQUEST otherwise).
    pub fn validate(&self) -> Result<(), AuthError> {
        let invalid = |reason: &str| Err(AuthError::InvalidAcl(reason.to_owned()));
        if self.resource_type == ResourceType::Any {
            return invalid("Invalid resourceType ANY");
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return invalid("Invalid patternType: only LITERAL and PREFIXED ACLs can be created");
        }
        if self.operation == Operation::Any {
            return invalid("Invalid operation ANY");
        }
        if self.permission == Permission::Any {
            return invalid("Invalid permissionType ANY");
        }
        if self.name.is_empty() {
            return invalid("Resource name must not be empty");
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return invalid("The only valid name for the CLUSTER resource is kafka-cluster");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return invalid(&format!(
                    "Could not parse principal from `{}`",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return invalid("Host must not be empty; use * for every host");
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `name` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
                PatternType::Any | PatternType::Match => false,
            }
    }
}

/// Selects bindings for DescribeAcls and DeleteAcls; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// Kafka's `AclBindingFilter.matches`: with pattern type MATCH a filter naming a
    /// resource selects every binding that would apply to it (literal, wildcard, prefixed).
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let resource = (self.resource_type == ResourceType::Any
            || self.resource_type == acl.resource_type)
            && match (&self.name, self.pattern_type) {
                (_, p)
                    if !matches!(p, PatternType::Any | PatternType::Match)
                        && p != acl.pattern_type =>
                {
                    false
                }
                (None, _) => true,
                (Some(name), PatternType::Match) if acl.pattern_type == PatternType::Literal => {
                    *name == acl.name || acl.name == WILDCARD
                }
                (Some(name), PatternType::Match) => name.starts_with(&acl.name),
                (Some(name), _) => *name == acl.name,
            };
        resource
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}

/// The file [`load_file`] reads, which nothing writes any more.
pub const FILE_NAME: &str = "acls.json";
const FORMAT: &str = "samsa-acls";

#[derive(Debug, Default, Serialize, Deserialize)]
struct AclsFile {
    acls: Vec<AclBinding>,
}

pub struct AclStore {
    acls: RwLock<Vec<AclBinding>>,
    /// False until the metadata log's bindings are first installed: until then a DENY may be
    /// missing, so the authorizer allows no one but super users.
    loaded: AtomicBool,
}

/// The bindings of a data directory written before its metadata moved into the log; empty
/// if it has no `acls.json`.
pub fn load_file(dir: &Path) -> Result<Vec<AclBinding>, FileError> {
    Ok(file::load::<AclsFile>(dir, FILE_NAME, FORMAT)?
        .unwrap_or_default()
        .acls)
}

impl AclStore {
    /// A store that holds what [`AclStore::replace`] gives it from the metadata.
    pub fn replicated() -> AclStore {
        AclStore {
            acls: RwLock::new(Vec::new()),
            loaded: AtomicBool::new(false),
        }
    }

    /// Installs the bindings of the metadata this node applied.
    pub fn replace(&self, acls: Vec<AclBinding>) {
        *self.acls.write() = acls;
        self.loaded.store(true, Ordering::Release);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Calls `f` with every binding, under the read lock.
    pub fn with_all<T>(&self, f: impl FnOnce(&[AclBinding]) -> T) -> T {
        f(&self.acls.read())
    }

    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission: perm,
        }
    }

    fn filter(name: Option<&str>, pattern: PatternType) -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Topic,
            name: name.map(str::to_owned),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    #[test]
    fn patterns_cover_resources() {
        use {Operation::Read, PatternType::*, Permission::Allow, ResourceType::Topic};
        assert!(acl(Topic, "orders", Literal, "User:a", Read, Allow).covers(Topic, "orders"));
        assert!(!acl(Topic, "orders", Literal, "User:a", Read, Allow).covers(Topic, "orders2"));
        assert!(!acl(Topic, "orders", Literal, "User:a", Read, Allow)
            .covers(ResourceType::Group, "orders"));
        assert!(acl(Topic, "*", Literal, "User:a", Read, Allow).covers(Topic, "anything"));
        assert!(acl(Topic, "ord", Prefixed, "User:a", Read, Allow).covers(Topic, "orders"));
        assert!(!acl(Topic, "*", Prefixed, "User:a", Read, Allow).covers(Topic, "orders"));
    }

    #[test]
    fn filters_select_bindings_like_kafka() {
        use {Operation::Read, PatternType::*, Permission::Allow, ResourceType::Topic};
        let literal = acl(Topic, "orders", Literal, "User:a", Read, Allow);
        let wildcard = acl(Topic, "*", Literal, "User:a", Read, Allow);
        let prefixed = acl(Topic, "ord", Prefixed, "User:a", Read, Allow);
        let exact = filter(Some("orders"), Literal);
        assert!(exact.matches(&literal) && !exact.matches(&wildcard) && !exact.matches(&prefixed));
        let any = filter(Some("orders"), Any);
        assert!(any.matches(&literal) && !any.matches(&prefixed));
        let matching = filter(Some("orders"), Match);
        assert!(
            matching.matches(&literal)
                && matching.matches(&wildcard)
                && matching.matches(&prefixed)
        );
        assert!(
            filter(None, Prefixed).matches(&prefixed) && !filter(None, Prefixed).matches(&literal)
        );
        let mut by_principal = filter(None, Any);
        by_principal.principal = Some("User:b".into());
        assert!(!by_principal.matches(&literal));
    }

    #[test]
    fn invalid_bindings_are_refused() {
        use {Operation::Read, PatternType::*, Permission::Allow, ResourceType::*};
        assert!(acl(Topic, "t", Literal, "User:a", Read, Allow)
            .validate()
            .is_ok());
        assert!(acl(Topic, "t", Match, "User:a", Read, Allow)
            .validate()
            .is_err());
        assert!(acl(Cluster, "other", Literal, "User:a", Read, Allow)
            .validate()
            .is_err());
        assert!(acl(Topic, "t", Literal, "alice", Read, Allow)
            .validate()
            .is_err());
        assert!(acl(Topic, "t", Literal, "User:a", Operation::Any, Allow)
            .validate()
            .is_err());
    }

    #[test]
    fn the_legacy_file_reads_back_its_bindings() {
        use {Operation::Read, PatternType::*, Permission::Allow, ResourceType::Topic};
        let dir = tempfile::tempdir().unwrap();
        assert!(load_file(dir.path()).unwrap().is_empty());
        let a = acl(Topic, "orders", Literal, "User:a", Read, Allow);
        let b = acl(Topic, "ord", Prefixed, "User:a", Read, Allow);
        let written = AclsFile {
            acls: vec![a.clone(), b.clone()],
        };
        file::store(dir.path(), FILE_NAME, FORMAT, &written).unwrap();
        assert_eq!(load_file(dir.path()).unwrap(), [a, b]);
    }
}
