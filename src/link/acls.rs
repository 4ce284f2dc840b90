//! ACL sync (`acls = true` on a link): the source's bindings on the link's mirror topics and
//! linked groups are created here through the cluster metadata, and the ones the link
//! created that the source no longer has are deleted, so consumers that fail over find the
//! permissions they had at the source.
//!
//! Only bindings whose resource the link's own patterns cover are synced: a TOPIC (GROUP)
//! binding, LITERAL with a name the link's `topics` (`groups`) match, or PREFIXED with a
//! prefix inside one of the link's `prefix*` patterns. A binding on every topic (`*`), or a
//! prefix wider than the link's patterns, would reach this cluster's own resources: left out,
//! as are CLUSTER, TRANSACTIONAL_ID, USER and DELEGATION_TOKEN bindings.
//!
//! What the link created is recorded with the bindings in the cluster metadata, so any
//! broker, and one restarted, removes exactly those once the source no longer has them; a
//! binding made here by hand is never removed by the link, even if the source has it too.

use crate::auth::{AclBinding, AclFilter, PatternType, ResourceType};
use crate::cluster::Cluster;
use crate::config::link::LinkConfig;
use crate::error::BrokerError;

/// Whether `patterns` (exact names, `prefix*`) cover every resource `acl` names.
fn covered(patterns: &[String], acl: &AclBinding) -> bool {
    match acl.pattern_type {
        PatternType::Literal => {
            acl.name != crate::auth::acl::WILDCARD
                && crate::config::link::matches(patterns, &acl.name)
        }
        PatternType::Prefixed => patterns.iter().any(|p| {
            p.strip_suffix('*')
                .is_some_and(|prefix| acl.name.starts_with(prefix))
        }),
        PatternType::Any | PatternType::Match => false,
    }
}

/// The source's bindings this link syncs.
pub fn wanted(link: &LinkConfig, source: Vec<AclBinding>) -> Vec<AclBinding> {
    source
        .into_iter()
        .filter(|acl| match acl.resource_type {
            ResourceType::Topic => covered(&link.topics, acl),
            ResourceType::Group => covered(&link.groups, acl),
            _ => false,
        })
        .filter(|acl| acl.validate().is_ok())
        .collect()
}

/// The filter that selects exactly `acl`.
fn exactly(acl: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: acl.resource_type,
        name: Some(acl.name.clone()),
        pattern_type: acl.pattern_type,
        principal: Some(acl.principal.clone()),
        host: Some(acl.host.clone()),
        operation: acl.operation,
        permission: acl.permission,
    }
}

/// Makes this cluster's bindings follow `wanted`, the source's as [`wanted`] chose them:
/// the missing ones created as the link's, the link's the source no longer has deleted.
pub async fn apply(
    cluster: &Cluster,
    link: &LinkConfig,
    wanted: Vec<AclBinding>,
) -> Result<(), BrokerError> {
    let metadata = cluster.metadata();
    let held: Vec<AclBinding> = metadata
        .acls
        .iter()
        .filter_map(crate::cluster::acl_binding)
        .collect();
    let missing: Vec<AclBinding> = wanted
        .iter()
        .filter(|a| !held.contains(a))
        .cloned()
        .collect();
    let removed: Vec<AclFilter> = metadata
        .link_acls
        .get(&link.name)
        .into_iter()
        .flatten()
        .filter_map(crate::cluster::acl_binding)
        .filter(|a| !wanted.contains(a))
        .map(|a| exactly(&a))
        .collect();
    if !missing.is_empty() {
        cluster.create_acls(&missing, Some(&link.name)).await?;
        tracing::info!(link = %link.name, created = missing.len(), "ACLs copied from the source");
    }
    if !removed.is_empty() {
        cluster.delete_acls(&removed).await?;
        tracing::info!(link = %link.name, deleted = removed.len(), "ACLs the source removed, removed here");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Operation, Permission};

    fn acl(resource_type: ResourceType, name: &str, pattern_type: PatternType) -> AclBinding {
        AclBinding {
            resource_type,
            name: name.into(),
            pattern_type,
            principal: "User:bob".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn only_bindings_inside_the_links_patterns_are_wanted() {
        let link: LinkConfig = toml::from_str(
            "name = \"l\"\nbootstrap = \"h:1\"\ntopics = [\"orders\", \"pay.*\"]\ngroups = [\"g-*\"]",
        )
        .unwrap();
        use PatternType::{Literal, Prefixed};
        use ResourceType::{Cluster, Group, Topic};
        let source = vec![
            acl(Topic, "orders", Literal),
            acl(Topic, "pay.eu", Literal),
            acl(Topic, "pay.eu", Prefixed),
            acl(Topic, "pay", Prefixed),
            acl(Topic, "orders", Prefixed),
            acl(Topic, "*", Literal),
            acl(Topic, "other", Literal),
            acl(Group, "g-1", Literal),
            acl(Group, "h-1", Literal),
            acl(Cluster, "kafka-cluster", Literal),
        ];
        let names: Vec<_> = wanted(&link, source)
            .into_iter()
            .map(|a| (a.resource_type, a.name, a.pattern_type))
            .collect();
        assert_eq!(
            names,
            vec![
                (Topic, "orders".into(), Literal),
                (Topic, "pay.eu".into(), Literal),
                (Topic, "pay.eu".into(), Prefixed),
                (Group, "g-1".into(), Literal),
            ]
        );
    }
}
