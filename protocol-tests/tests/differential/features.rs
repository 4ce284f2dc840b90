//! UpdateFeatures (`kafka-features`): Kafka's checks, in its order, and the shape of its
//! answers at each version. The reference Kafka is shared by the whole suite, so every case
//! either is refused or changes nothing (validate_only, or a level set to what it is).

use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiKey, UpdateFeaturesRequest};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;

use crate::versions;

const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;
const UNSAFE_DOWNGRADE: i8 = 3;

fn update(
    feature: &str,
    level: i16,
    upgrade_type: i8,
    validate_only: bool,
) -> UpdateFeaturesRequest {
    UpdateFeaturesRequest::default()
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(str_bytes(feature))
            .with_max_version_level(level)
            .with_upgrade_type(upgrade_type)
            .with_allow_downgrade(upgrade_type != UPGRADE)])
        .with_validate_only(validate_only)
}

#[test]
fn update_features() {
    let mut d = Differential::start("update_features");
    for v in versions(ApiKey::UpdateFeatures) {
        // Refused, whatever the current levels.
        d.compare("unknown-feature", v, |_| {
            update("no.such.version", 1, UPGRADE, false)
        });
        d.compare("negative-level", v, |_| {
            update("metadata.version", -1, UPGRADE, false)
        });
        d.compare("metadata-beyond-latest", v, |_| {
            update("metadata.version", 99, UPGRADE, false)
        });
        d.compare("metadata-downgrade-without-type", v, |_| {
            update("metadata.version", 30, UPGRADE, false)
        });
        d.compare("metadata-safe-downgrade", v, |_| {
            update("metadata.version", 30, SAFE_DOWNGRADE, false)
        });
        if v > 0 {
            d.compare("metadata-unsafe-downgrade", v, |_| {
                update("metadata.version", 30, UNSAFE_DOWNGRADE, false)
            });
            d.compare("unknown-upgrade-type", v, |_| {
                update("metadata.version", 33, 9, false)
            });
            d.compare("downgrade-type-to-a-newer-version", v, |_| {
                update("metadata.version", 34, SAFE_DOWNGRADE, true)
            });
            // Accepted without a change: both are at metadata.version 33, and disabling a
            // feature is a downgrade to 0 whatever its level.
            d.compare("validate-only-disable", v, |_| {
                update("streams.version", 0, SAFE_DOWNGRADE, true)
            });
        }
        // Accepted: the level it already has.
        d.compare("same-level", v, |_| {
            update("metadata.version", 33, UPGRADE, false)
        });
        // One refusal refuses the whole request.
        d.compare("one-of-two-refused", v, |_| {
            let mut request = update("metadata.version", 33, UPGRADE, false);
            request.feature_updates.push(
                FeatureUpdateKey::default()
                    .with_feature(str_bytes("no.such.version"))
                    .with_max_version_level(1)
                    .with_upgrade_type(UPGRADE),
            );
            request
        });
    }
    d.finish();
}

/// Changing feature levels takes ALTER on the cluster.
#[test]
fn update_features_unauthorized() {
    let mut d = Differential::start_sasl("update_features_unauthorized");
    d.use_sasl_listeners();
    d.login("alice");
    for v in versions(ApiKey::UpdateFeatures) {
        d.compare("alice", v, |_| {
            update("metadata.version", 33, UPGRADE, true)
        });
    }
    d.finish();
}
