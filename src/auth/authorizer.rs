//! The authorizer: decides whether a principal from a host may perform an operation on a
//! resource, with the rules of Kafka's `StandardAuthorizer`:
//!
//! - super users may do everything;
//! - a DENY binding for the operation (or ALL) wins over any ALLOW;
//! - an ALLOW binding for the operation, for ALL, or for an operation that implies it
//!   (READ, WRITE, DELETE or ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS)
//!   allows it;
//! - a resource no binding covers is open to everyone only with
//!   `allow_everyone_if_no_acl_found`.
//!
//! With the authorizer disabled (the default) everything is allowed, as in a Kafka broker
//! without `authorizer.class.name`. In a cluster, until this node installed the ACLs of the
//! metadata log, only super users are allowed (Kafka's StandardAuthorizer waits for its
//! initial load likewise).

use std::collections::HashSet;

use super::acl::{AclBinding, AclStore, Operation, Permission, ResourceType, WILDCARD};
use super::Principal;
use crate::config::Config;

/// Operations reported in `*_authorized_operations` per resource type, as Kafka does.
const TOPIC_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
const CLUSTER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];
const GROUP_OPERATIONS: &[Operation] = &[Operation::Read, Operation::Describe, Operation::Delete];

pub struct Authorizer {
    enabled: bool,
    allow_if_no_acl: bool,
    super_users: HashSet<String>,
    pub acls: AclStore,
}

impl Authorizer {
    /// The ACLs follow the metadata log (see `cluster::security`); until they are first
    /// installed only super users are allowed.
    pub fn new(config: &Config) -> Authorizer {
        Authorizer {
            enabled: config.authorizer,
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            super_users: config.super_users.iter().cloned().collect(),
            acls: AclStore::replicated(),
        }
    }

    /// Whether the check is decided before looking at the ACLs: `Some(true)` without an
    /// authorizer or for a super user, `Some(false)` while a cluster's ACLs are not loaded.
    fn decided(&self, principal: &Principal) -> Option<bool> {
        if !self.enabled || self.super_users.contains(principal.as_str()) {
            return Some(true);
        }
        (!self.acls.is_loaded()).then_some(false)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn authorize(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if let Some(decided) = self.decided(principal) {
            return decided;
        }
        self.acls.with_all(|acls| {
            decide(
                acls,
                principal.as_str(),
                host,
                op,
                rt,
                name,
                self.allow_if_no_acl,
            )
        })
    }

    /// Whether the principal may perform `op` on some resource of type `rt` (Kafka's
    /// `authorizeByResourceType`, which InitProducerId uses for idempotent producers: WRITE
    /// on any topic). Some ALLOW binding must apply, and no DENY on every such resource.
    pub fn authorize_any(
        &self,
        principal: &Principal,
        host: &str,
        op: Operation,
        rt: ResourceType,
    ) -> bool {
        if let Some(decided) = self.decided(principal) {
            return decided;
        }
        self.acls.with_all(|acls| {
            let applies = |acl: &&AclBinding| {
                acl.resource_type == rt
                    && (acl.principal == principal.as_str() || acl.principal == "User:*")
                    && (acl.host == host || acl.host == WILDCARD)
                    && (acl.operation == op || acl.operation == Operation::All)
            };
            let denied_everywhere = acls
                .iter()
                .filter(applies)
                .any(|a| a.permission == Permission::Deny && a.name == WILDCARD);
            let allowed = acls
                .iter()
                .filter(applies)
                .any(|a| a.permission == Permission::Allow);
            let covered = acls.iter().any(|a| a.resource_type == rt);
            !denied_everywhere && (allowed || (!covered && self.allow_if_no_acl))
        })
    }

    /// Kafka's authorized-operations bit set (bit n for operation code n) for a resource.
    pub fn authorized_operations(
        &self,
        principal: &Principal,
        host: &str,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        let operations = match rt {
            ResourceType::Topic => TOPIC_OPERATIONS,
            ResourceType::Cluster => CLUSTER_OPERATIONS,
            ResourceType::Group => GROUP_OPERATIONS,
            _ => &[],
        };
        operations
            .iter()
            .filter(|&&op| self.authorize(principal, host, op, rt, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }
}

/// Operations whose ALLOW also allows `op`.
fn implied_by(op: Operation) -> &'static [Operation] {
    match op {
        Operation::Describe => &[
            Operation::Read,
            Operation::Write,
            Operation::Delete,
            Operation::Alter,
        ],
        Operation::DescribeConfigs => &[Operation::AlterConfigs],
        _ => &[],
    }
}

fn decide(
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    op: Operation,
    rt: ResourceType,
    name: &str,
    allow_if_no_acl: bool,
) -> bool {
    let mut covered = false;
    let mut allowed = false;
    for acl in acls.iter().filter(|a| a.covers(rt, name)) {
        covered = true;
        let applies = (acl.principal == principal || acl.principal == "User:*")
            && (acl.host == host || acl.host == WILDCARD);
        if !applies {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation == op || acl.operation == Operation::All => {
                return false
            }
            Permission::Allow
                if acl.operation == op
                    || acl.operation == Operation::All
                    || implied_by(op).contains(&acl.operation) =>
            {
                allowed = true;
            }
            _ => {}
        }
    }
    allowed || (!covered && allow_if_no_acl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::PatternType;

    fn acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission,
        }
    }

    fn allows(acls: &[AclBinding], principal: &str, op: Operation, topic: &str) -> bool {
        decide(
            acls,
            principal,
            "127.0.0.1",
            op,
            ResourceType::Topic,
            topic,
            false,
        )
    }

    #[test]
    fn literal_prefixed_and_wildcard_allow() {
        use {Operation::*, PatternType::*, Permission::Allow};
        let acls = [
            acl("orders", Literal, "User:alice", Write, Allow),
            acl("logs-", Prefixed, "User:alice", Read, Allow),
            acl("*", Literal, "User:*", Describe, Allow),
        ];
        assert!(allows(&acls, "User:alice", Write, "orders"));
        assert!(!allows(&acls, "User:alice", Write, "orders-2"));
        assert!(!allows(&acls, "User:bob", Write, "orders"));
        assert!(allows(&acls, "User:alice", Read, "logs-app"));
        assert!(!allows(&acls, "User:alice", Read, "log"));
        assert!(
            allows(&acls, "User:bob", Describe, "anything"),
            "wildcard name and principal"
        );
        assert!(
            allows(
                &[acl("t", Literal, "User:a", Read, Allow)],
                "User:a",
                Describe,
                "t"
            ),
            "READ implies DESCRIBE"
        );
        assert!(allows(
            &[acl("t", Literal, "User:a", All, Allow)],
            "User:a",
            Delete,
            "t"
        ));
    }

    #[test]
    fn deny_wins_and_does_not_spread_by_implication() {
        use {Operation::*, PatternType::*, Permission::*};
        let acls = [
            acl("orders", Literal, "User:alice", All, Allow),
            acl("ord", Prefixed, "User:alice", Write, Deny),
            acl("orders", Literal, "User:alice", Read, Deny),
        ];
        assert!(!allows(&acls, "User:alice", Write, "orders"));
        assert!(!allows(&acls, "User:alice", Read, "orders"));
        assert!(
            allows(&acls, "User:alice", Describe, "orders"),
            "DENY READ does not deny DESCRIBE"
        );
        let host_deny = AclBinding {
            host: "10.0.0.1".into(),
            ..acl("orders", Literal, "User:*", All, Deny)
        };
        let acls = [acl("orders", Literal, "User:alice", All, Allow), host_deny];
        assert!(decide(
            &acls,
            "User:alice",
            "127.0.0.1",
            Write,
            ResourceType::Topic,
            "orders",
            false
        ));
        assert!(!decide(
            &acls,
            "User:alice",
            "10.0.0.1",
            Write,
            ResourceType::Topic,
            "orders",
            false
        ));
    }

    #[test]
    fn resources_without_acls_follow_the_default() {
        use {Operation::*, PatternType::*, Permission::Allow};
        let acls = [acl("other", Literal, "User:a", Read, Allow)];
        assert!(!decide(
            &acls,
            "User:a",
            "h",
            Read,
            ResourceType::Topic,
            "t",
            false
        ));
        assert!(decide(
            &acls,
            "User:a",
            "h",
            Read,
            ResourceType::Topic,
            "t",
            true
        ));
        // Covered by an ACL for someone else: the default no longer applies.
        assert!(!decide(
            &acls,
            "User:b",
            "h",
            Read,
            ResourceType::Topic,
            "other",
            true
        ));
    }

    #[test]
    fn super_users_and_a_disabled_authorizer_allow_everything() {
        let mut config = Config {
            authorizer: true,
            super_users: vec!["User:admin".into()],
            ..Config::default()
        };
        let authorizer = Authorizer::new(&config);
        let topic = (Operation::Write, ResourceType::Topic, "t");
        assert!(authorizer.authorize(&Principal::user("admin"), "h", topic.0, topic.1, topic.2));
        assert!(!authorizer.authorize(&Principal::user("alice"), "h", topic.0, topic.1, topic.2));
        assert_eq!(
            authorizer.authorized_operations(
                &Principal::user("alice"),
                "h",
                ResourceType::Topic,
                "t"
            ),
            0
        );
        config.authorizer = false;
        let open = Authorizer::new(&config);
        assert!(open.authorize(&Principal::user("alice"), "h", topic.0, topic.1, topic.2));
    }

    #[test]
    fn a_node_allows_only_super_users_until_its_acls_are_installed() {
        let config = Config {
            authorizer: true,
            allow_everyone_if_no_acl_found: true,
            super_users: vec!["User:admin".into()],
            ..Config::default()
        };
        let authorizer = Authorizer::new(&config);
        let (alice, admin) = (Principal::user("alice"), Principal::user("admin"));
        let write = |who: &Principal| {
            authorizer.authorize(who, "h", Operation::Write, ResourceType::Topic, "t")
        };
        assert!(
            !write(&alice),
            "no ACL found does not allow anyone before the load"
        );
        assert!(!authorizer.authorize_any(&alice, "h", Operation::Write, ResourceType::Topic));
        assert!(write(&admin));
        authorizer.acls.replace(vec![acl(
            "t",
            PatternType::Literal,
            "User:alice",
            Operation::Write,
            Permission::Deny,
        )]);
        assert!(!write(&alice), "denied by the installed ACL");
        assert!(authorizer.authorize(&alice, "h", Operation::Write, ResourceType::Topic, "other"));
    }
}
