//! UpdateFeatures (`kafka-features upgrade|downgrade|disable`): changes the cluster's
//! finalized feature levels through the controller, as Kafka's ControllerApis do. The levels
//! themselves and Kafka's rules for changing them live in `samsa_metadata::features`;
//! ApiVersions reports them.

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use samsa_metadata::features::{FeatureUpdate, UpgradeType};

use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// v2 answers with the top-level error only, without a result per feature.
const LAST_VERSION_WITH_RESULTS: i16 = 1;

pub async fn update(
    broker: &Broker,
    session: &Session,
    request: UpdateFeaturesRequest,
    version: i16,
) -> UpdateFeaturesResponse {
    let updates: Vec<FeatureUpdate> = request
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            upgrade: upgrade_type(u.allow_downgrade, u.upgrade_type, version),
        })
        .collect();
    let names: Vec<String> = updates.iter().map(|u| u.name.clone()).collect();
    let outcome: Result<(), BrokerError> = if allowed_on_cluster(broker, session, Operation::Alter)
    {
        broker
            .cluster
            .update_features(updates, request.validate_only)
            .await
    } else {
        Err(AuthError::ClusterDenied.into())
    };
    match outcome {
        // Kafka lists every feature as updated, with the name of its NONE error as the
        // message.
        Ok(()) if version <= LAST_VERSION_WITH_RESULTS => UpdateFeaturesResponse::default()
            .with_results(
                names
                    .into_iter()
                    .map(|name| {
                        UpdatableFeatureResult::default()
                            .with_feature(str_bytes(name))
                            .with_error_message(Some(str_bytes("NONE")))
                    })
                    .collect(),
            ),
        Ok(()) => UpdateFeaturesResponse::default(),
        // One refusal refuses the whole request: only the top-level error is set, in
        // Kafka's words.
        Err(err) => UpdateFeaturesResponse::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(|reason| {
                str_bytes(format!(
                    "The update failed for all features since the following feature had an \
                     error: {reason}"
                ))
            })),
    }
}

/// v0 says only whether a downgrade is allowed (a safe one); v1 names the type.
fn upgrade_type(allow_downgrade: bool, code: i8, version: i16) -> UpgradeType {
    if version == 0 {
        return match allow_downgrade {
            true => UpgradeType::SafeDowngrade,
            false => UpgradeType::Upgrade,
        };
    }
    match code {
        1 => UpgradeType::Upgrade,
        2 => UpgradeType::SafeDowngrade,
        3 => UpgradeType::UnsafeDowngrade,
        _ => UpgradeType::Unknown,
    }
}
