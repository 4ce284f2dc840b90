//! DescribeConfigs and IncrementalAlterConfigs (and legacy AlterConfigs) on GROUP resources
//! (ConfigResource type 32), as Kafka's controller answers them: a group may be configured
//! whether or not it exists, and its overrides live in the metadata.

use std::collections::BTreeMap;

use super::{allowed, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::config::{self, Overrides};
use crate::topics::config::ConfigEntry;

/// IncrementalAlterConfigs operation codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;

/// A group's configs, for DescribeConfigs.
pub(super) fn describe(
    broker: &Broker,
    session: &Session,
    group: &str,
) -> Result<Vec<ConfigEntry>, BrokerError> {
    if !allowed(
        broker,
        session,
        Operation::DescribeConfigs,
        ResourceType::Group,
        group,
    ) {
        return Err(AuthError::GroupDenied.into());
    }
    if group.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "Group name must not be empty".into(),
        ));
    }
    let overrides = broker.cluster.group_configs(group);
    Ok(config::entries(overrides.as_ref(), &broker.config))
}

/// Applies `(op, name, value)` changes to a group's overrides (or replaces them, for legacy
/// AlterConfigs), validates the result and commits it unless `validate_only`.
pub(super) async fn alter(
    broker: &Broker,
    session: &Session,
    group: &str,
    changes: Vec<(i8, String, Option<String>)>,
    replace: bool,
    validate_only: bool,
) -> Result<(), BrokerError> {
    if !allowed(
        broker,
        session,
        Operation::AlterConfigs,
        ResourceType::Group,
        group,
    ) {
        return Err(AuthError::GroupDenied.into());
    }
    if group.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "Default group resources are not allowed.".into(),
        ));
    }
    let current = broker.cluster.group_configs(group).unwrap_or_default();
    let mut overrides: Overrides = if replace { BTreeMap::new() } else { current };
    for (op, name, value) in changes {
        match (op, value) {
            (OP_DELETE, _) => {
                overrides.remove(&name);
            }
            (OP_SET, Some(value)) => {
                overrides.insert(name, value);
            }
            // Kafka's controller refuses to append to or subtract from any group key; an
            // unknown key is refused as unknown below.
            (op, _) if config::is_key(&name) => {
                let verb = if op == OP_APPEND {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                return Err(BrokerError::InvalidConfig(format!(
                    "Can't {verb} to key {name} because its type is not LIST."
                )));
            }
            (_, value) => {
                overrides.insert(name, value.unwrap_or_default());
            }
        }
    }
    config::validate(&overrides, &broker.config)?;
    if validate_only {
        return Ok(());
    }
    broker.cluster.alter_group_configs(group, overrides).await
}
