//! Group configs in the metadata (Kafka's GROUP ConfigRecords): a group's overrides are
//! committed through the active controller, so that every node's coordinators and
//! share-partition leaders follow the same ones, and they outlive restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use samsa_metadata::Command;

use super::Cluster;
use crate::error::BrokerError;

/// How long a committed change may take to be applied on this node.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// A group's overrides, none if it has none.
    pub fn group_configs(&self, group: &str) -> Option<BTreeMap<String, String>> {
        self.published().group_configs.get(group).cloned()
    }

    /// Replaces a group's overrides (already validated; empty removes them). Answered once
    /// this node applied the change, so that a describe sent to it next sees it.
    pub async fn alter_group_configs(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        if self.group_configs(group).unwrap_or_default() == configs {
            return Ok(());
        }
        let command = Command::AlterGroupConfigs {
            group: group.to_owned(),
            configs: configs.clone(),
        };
        self.forward(command).await?;
        let applied = self
            .await_metadata(APPLY_TIMEOUT, |m| {
                m.group_configs.get(group).cloned().unwrap_or_default() == configs
            })
            .await;
        if !applied {
            tracing::warn!(
                "committed configs of group {group} were not applied here within {APPLY_TIMEOUT:?}"
            );
        }
        Ok(())
    }
}
