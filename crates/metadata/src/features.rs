//! Finalized feature levels (KIP-584): the cluster-wide switches that tell clients and brokers
//! which versions of a protocol every node has agreed to use (`transaction.version` decides
//! whether producers use transactions v2, `group.version` whether the consumer protocol is
//! on, ...). ApiVersions reports them and UpdateFeatures (`kafka-features`) changes them.
//!
//! [`SUPPORTED`] is what this binary implements; the finalized levels live in the metadata
//! log so that every node agrees on them and they survive restarts. A cluster takes
//! [`SUPPORTED`]'s bootstrap levels once, when its first broker starts (as Kafka's
//! `kafka-storage format` writes them), and keeps them until an operator changes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::{ClusterMetadata, CommandError, CommandResult};

pub const METADATA_VERSION: &str = "metadata.version";
pub const KRAFT_VERSION: &str = "kraft.version";
pub const TRANSACTION_VERSION: &str = "transaction.version";
pub const GROUP_VERSION: &str = "group.version";
pub const ELR_VERSION: &str = "eligible.leader.replicas.version";
pub const SHARE_VERSION: &str = "share.version";
pub const STREAMS_VERSION: &str = "streams.version";

/// One feature this binary knows: the levels it can run at, and the level a new cluster
/// starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub bootstrap: i16,
}

/// Every feature Kafka 4.4 defines, with the levels samsa implements. A feature whose
/// behaviour samsa does not have stays at 0..0, so clients keep to the baseline protocol.
pub const SUPPORTED: &[FeatureSpec] = &[
    // samsa's metadata has no version-gated records; it runs as Kafka 4.4's latest
    // (4.4-IV2) and accepts the range Kafka 4.4 accepts (from 3.3-IV3), so that a client
    // or tool sees the same answers. The level can never go down (see `update`), so no
    // older behaviour is ever asked of it.
    FeatureSpec {
        name: METADATA_VERSION,
        min: 7,
        max: 33,
        bootstrap: 33,
    },
    // Level 1 is KIP-853's dynamic quorum: AddRaftVoter and RemoveRaftVoter answer
    // UNSUPPORTED_VERSION at 0, as Kafka's do. New clusters start at 1 (as Kafka's formatted
    // with `--standalone` or `--initial-controllers`); one at 0 may upgrade once every
    // voter's directory id is known (the proposer checks, see `Cluster::update_features`).
    FeatureSpec {
        name: KRAFT_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    // Level 2 is transactions v2 (KIP-890 part 2): partitions added by their leaders, the
    // epoch bumped at every end. Clients use it only when the finalized level is 2; the
    // coordinator serves each transaction by its client's request versions, and ends those
    // it aborts itself by the finalized level, as Kafka 4.4 does.
    FeatureSpec {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 2,
        bootstrap: 2,
    },
    // Level 1 is KIP-848's consumer protocol (ConsumerGroupHeartbeat and
    // ConsumerGroupDescribe), on in a new cluster as in Kafka 4.4.
    FeatureSpec {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    // Level 1 is KIP-966's eligible leader replicas (see `elr`), on in new clusters as in
    // Kafka 4.4.
    FeatureSpec {
        name: ELR_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    // Share groups (KIP-932): level 1 is Kafka 4.1's share groups, level 2 adds Kafka 4.2's
    // renew acknowledgements; on in a new cluster as in Kafka 4.4. At 0 the share APIs
    // answer UNSUPPORTED_VERSION, as Kafka's do.
    FeatureSpec {
        name: SHARE_VERSION,
        min: 0,
        max: 2,
        bootstrap: 2,
    },
    // Level 1 is streams groups (KIP-1071): StreamsGroupHeartbeat and StreamsGroupDescribe
    // answer UNSUPPORTED_VERSION at level 0, as Kafka's do.
    FeatureSpec {
        name: STREAMS_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
];

/// This binary's range of every feature it knows, as an UpdateFeatures command carries
/// them (a feature absent from it is 0..0 when applied, as Kafka treats an unknown one).
pub fn supported_ranges() -> BTreeMap<String, (i16, i16)> {
    SUPPORTED
        .iter()
        .map(|f| (f.name.to_string(), (f.min, f.max)))
        .collect()
}

/// The levels a new cluster starts with (features at 0 are simply absent).
pub fn bootstrap_levels() -> BTreeMap<String, i16> {
    SUPPORTED
        .iter()
        .filter(|f| f.bootstrap > 0)
        .map(|f| (f.name.to_string(), f.bootstrap))
        .collect()
}

/// The cluster's finalized levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizedFeatures {
    /// Features above level 0; a feature at 0 is absent, as in Kafka's ApiVersions.
    pub levels: BTreeMap<String, i16>,
    /// Grows with every change, so a client that hears from several brokers keeps the
    /// newest levels (ApiVersions' `finalized_features_epoch`).
    pub epoch: i64,
}

impl FinalizedFeatures {
    pub fn level(&self, name: &str) -> i16 {
        self.levels.get(name).copied().unwrap_or(0)
    }
}

/// UpdateFeatures' upgrade types (v1+; v0's `allow_downgrade` maps to a safe downgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
    /// A code UpdateFeatures does not define: refused in order with the other checks.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade: UpgradeType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureCommand {
    /// The levels a cluster starts with; applied only while the cluster has none, so every
    /// broker may propose it at start and only the first counts.
    Bootstrap { levels: BTreeMap<String, i16> },
    /// An operator's UpdateFeatures. The proposer's supported ranges travel with it, so that
    /// applying stays a function of the log alone; `controller` names it in errors, as
    /// Kafka's "Local controller N ..." does.
    Update {
        updates: Vec<FeatureUpdate>,
        supported: BTreeMap<String, (i16, i16)>,
        controller: i32,
        validate_only: bool,
    },
}

impl ClusterMetadata {
    pub(crate) fn apply_features(
        &mut self,
        command: &FeatureCommand,
    ) -> Result<CommandResult, CommandError> {
        match command {
            FeatureCommand::Bootstrap { levels } => {
                if self.features.is_none() {
                    self.features = Some(FinalizedFeatures {
                        levels: levels.clone(),
                        epoch: 1,
                    });
                }
                Ok(CommandResult::FeaturesUpdated)
            }
            FeatureCommand::Update {
                updates,
                supported,
                controller,
                validate_only,
            } => {
                let mut features = self.features.clone().unwrap_or_default();
                // Kafka checks every update before changing any: one refusal refuses all.
                for update in updates {
                    let current = features.level(&update.name);
                    let range = supported.get(&update.name).copied().unwrap_or((0, 0));
                    check_update(update, current, range, *controller)?;
                    if update.level == 0 {
                        features.levels.remove(&update.name);
                    } else {
                        features.levels.insert(update.name.clone(), update.level);
                    }
                }
                if !validate_only {
                    features.epoch += 1;
                    self.features = Some(features);
                }
                Ok(CommandResult::FeaturesUpdated)
            }
        }
    }
}

/// Kafka 4.4's rules for one update (its FeatureControlManager), in its order and words.
fn check_update(
    update: &FeatureUpdate,
    current: i16,
    (min, max): (i16, i16),
    controller: i32,
) -> Result<(), CommandError> {
    let invalid = |reason: String| CommandError::InvalidFeatureUpdate {
        message: format!(
            "Invalid update version {} for feature {}. {reason}",
            update.level, update.name
        ),
    };
    if update.upgrade == UpgradeType::Unknown {
        return Err(invalid(
            "The controller does not support the given upgrade type.".into(),
        ));
    }
    let level = update.level;
    if level < 0 {
        return Err(invalid("A feature version cannot be less than 0.".into()));
    }
    if level < min || level > max {
        let who = format!("Local controller {controller}");
        return Err(invalid(if max == 0 {
            format!("{who} does not support this feature.")
        } else {
            format!("{who} only supports versions {min}-{max}")
        }));
    }
    if level < current && update.upgrade == UpgradeType::Upgrade {
        return Err(invalid(
            "Can't downgrade the version of this feature without setting the upgrade type to \
             either safe or unsafe downgrade."
                .into(),
        ));
    }
    if level > current && update.upgrade != UpgradeType::Upgrade {
        return Err(invalid("Can't downgrade to a newer version.".into()));
    }
    if update.name == METADATA_VERSION && level < current {
        // Kafka 4.4 refuses every metadata.version downgrade, with these words.
        let why = match update.upgrade {
            UpgradeType::UnsafeDowngrade => {
                "Unsafe metadata downgrade is not supported in this version."
            }
            _ => {
                "Refusing to perform the requested downgrade because it might delete \
                 metadata information."
            }
        };
        return Err(CommandError::InvalidFeatureUpdate {
            message: format!(
                "Unsupported metadata.version downgrade from {current} to {level}. {why}"
            ),
        });
    }
    if update.name == KRAFT_VERSION && level < current {
        return Err(invalid(
            "Can't downgrade the version of this feature.".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, level: i16, upgrade: UpgradeType) -> FeatureCommand {
        let supported = [
            (METADATA_VERSION.to_string(), (7, 33)),
            (TRANSACTION_VERSION.to_string(), (0, 2)),
        ]
        .into();
        FeatureCommand::Update {
            updates: vec![FeatureUpdate {
                name: name.into(),
                level,
                upgrade,
            }],
            supported,
            controller: 1,
            validate_only: false,
        }
    }

    fn refusal(state: &mut ClusterMetadata, command: &FeatureCommand) -> String {
        match state.apply_features(command) {
            Err(CommandError::InvalidFeatureUpdate { message }) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn bootstrap_applies_once() {
        let mut state = ClusterMetadata::default();
        let first = [(METADATA_VERSION.to_string(), 33)].into();
        state
            .apply_features(&FeatureCommand::Bootstrap { levels: first })
            .unwrap();
        let second = [(METADATA_VERSION.to_string(), 20)].into();
        state
            .apply_features(&FeatureCommand::Bootstrap { levels: second })
            .unwrap();
        let features = state.features.unwrap();
        assert_eq!(features.level(METADATA_VERSION), 33);
        assert_eq!(features.epoch, 1);
    }

    #[test]
    fn upgrades_downgrades_and_kafkas_refusals() {
        let mut state = ClusterMetadata::default();
        let up = update(TRANSACTION_VERSION, 2, UpgradeType::Upgrade);
        state.apply_features(&up).unwrap();
        assert_eq!(
            state.features.as_ref().unwrap().level(TRANSACTION_VERSION),
            2
        );

        let message = refusal(
            &mut state,
            &update(TRANSACTION_VERSION, 1, UpgradeType::Upgrade),
        );
        assert!(
            message.contains("without setting the upgrade type"),
            "{message}"
        );
        let message = refusal(
            &mut state,
            &update(TRANSACTION_VERSION, 5, UpgradeType::Upgrade),
        );
        assert_eq!(
            message,
            "Invalid update version 5 for feature transaction.version. \
             Local controller 1 only supports versions 0-2"
        );
        let message = refusal(&mut state, &update("foo.version", 1, UpgradeType::Upgrade));
        assert!(
            message.ends_with("does not support this feature."),
            "{message}"
        );

        let down = update(TRANSACTION_VERSION, 0, UpgradeType::SafeDowngrade);
        state.apply_features(&down).unwrap();
        let features = state.features.unwrap();
        assert!(!features.levels.contains_key(TRANSACTION_VERSION));
        assert_eq!(features.epoch, 2);
    }

    #[test]
    fn kraft_version_goes_up_from_0_and_never_down() {
        let mut state = ClusterMetadata::default();
        let with_kraft = |level, upgrade| {
            let command = update(KRAFT_VERSION, level, upgrade);
            match command {
                FeatureCommand::Update {
                    updates,
                    mut supported,
                    controller,
                    validate_only,
                } => {
                    supported.insert(KRAFT_VERSION.to_string(), (0, 1));
                    FeatureCommand::Update {
                        updates,
                        supported,
                        controller,
                        validate_only,
                    }
                }
                other => other,
            }
        };
        state
            .apply_features(&with_kraft(1, UpgradeType::Upgrade))
            .unwrap();
        assert_eq!(state.features.as_ref().unwrap().level(KRAFT_VERSION), 1);
        let message = refusal(&mut state, &with_kraft(0, UpgradeType::SafeDowngrade));
        assert!(message.ends_with("Can't downgrade the version of this feature."));
    }

    #[test]
    fn metadata_version_never_goes_down() {
        let mut state = ClusterMetadata::default();
        let levels = [(METADATA_VERSION.to_string(), 33)].into();
        state
            .apply_features(&FeatureCommand::Bootstrap { levels })
            .unwrap();
        let message = refusal(
            &mut state,
            &update(METADATA_VERSION, 30, UpgradeType::SafeDowngrade),
        );
        assert!(message.starts_with("Unsupported metadata.version downgrade from 33 to 30."));
    }
}
