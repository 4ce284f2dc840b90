//! ApiVersions: tells the client exactly which APIs and versions samsa serves.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::features::{self, FinalizedFeatures};

use crate::broker::Broker;
use crate::handlers::Session;

/// ApiVersions v3 added the client's software name and version (KIP-511).
const FIRST_VERSION_WITH_SOFTWARE: i16 = 3;
/// ApiVersions v5 lets the client name the cluster and node it means to reach (KIP-1242).
const FIRST_VERSION_WITH_TARGET: i16 = 5;
const NO_NODE: i32 = -1;
/// ApiVersions v4 lists supported feature ranges that start at 0 (KIP-1022).
const FIRST_VERSION_WITH_MIN_ZERO_FEATURES: i16 = 4;

pub fn handle(
    broker: &Broker,
    session: &mut Session,
    request: &ApiVersionsRequest,
    version: i16,
) -> ApiVersionsResponse {
    let software_valid = is_valid_software_field(&request.client_software_name)
        && is_valid_software_field(&request.client_software_version);
    // Kafka takes the cluster and the node together or neither (-1 is "no node").
    let target_valid = request.cluster_id.is_some() == (request.node_id != NO_NODE);
    if (version >= FIRST_VERSION_WITH_SOFTWARE && !software_valid)
        || (version >= FIRST_VERSION_WITH_TARGET && !target_valid)
    {
        return ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    // A client that names the cluster and node it means to reach is sent back to its
    // bootstrap servers when this address now belongs to another (a replaced host, a
    // reused IP), instead of talking to the wrong broker.
    if version >= FIRST_VERSION_WITH_TARGET {
        if let Some(cluster_id) = &request.cluster_id {
            if cluster_id.as_str() != broker.topics.cluster_id()
                || request.node_id != broker.node_id()
            {
                return ApiVersionsResponse::default()
                    .with_error_code(ResponseError::RebootstrapRequired.code());
            }
        }
    }
    // Kafka keeps what a valid v3+ request names, for client telemetry to match on.
    if version >= FIRST_VERSION_WITH_SOFTWARE {
        session.client_software = Some((
            request.client_software_name.to_string(),
            request.client_software_version.to_string(),
        ));
    }
    with_features(
        ApiVersionsResponse::default().with_api_keys(api_keys(broker.telemetry.exporting())),
        broker.cluster.finalized_features(),
        version,
    )
}

/// The feature ranges this binary supports and the cluster's finalized levels (KIP-584),
/// as Kafka lists them: before v4, a range starting at 0 is left out, since older clients
/// (KAFKA-17011) refuse a minimum of 0; levels at 0 are never listed as finalized.
fn with_features(
    response: ApiVersionsResponse,
    finalized: Option<FinalizedFeatures>,
    version: i16,
) -> ApiVersionsResponse {
    let supported = features::SUPPORTED
        .iter()
        .filter(|f| version >= FIRST_VERSION_WITH_MIN_ZERO_FEATURES || f.min > 0)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min)
                .with_max_version(f.max)
        })
        .collect();
    let Some(finalized) = finalized else {
        return response
            .with_supported_features(supported)
            .with_finalized_features_epoch(-1);
    };
    let levels = finalized
        .levels
        .iter()
        .map(|(name, &level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(finalized.epoch)
        .with_finalized_features(levels)
}

/// Kafka accepts software names and versions that are alphanumeric at both ends with only
/// alphanumerics, '-' and '.' between, so they can label metrics safely.
fn is_valid_software_field(field: &str) -> bool {
    let bytes = field.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

/// The APIs listed: all served, but the telemetry ones only when samsa exports what clients
/// push, as Kafka lists them only with a telemetry exporter (clients then never push).
/// The share-group APIs are listed whatever `share.version` is, as Kafka lists them; at 0
/// they answer UNSUPPORTED_VERSION.
fn api_keys(telemetry: bool) -> Vec<ApiVersion> {
    super::APIS
        .iter()
        .filter(|(key, _, _)| {
            telemetry
                || !matches!(
                    key,
                    ApiKey::GetTelemetrySubscriptions | ApiKey::PushTelemetry
                )
        })
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(advertised_min(key, min))
                .with_max_version(max)
        })
        .collect()
}

/// The lowest version listed for `key`. Produce v0-2 are gone since Kafka 4.0 and closed on
/// as any unknown version, yet Kafka still lists Produce from v0: librdkafka decides whether
/// the broker takes compressed batches by the presence of v0 (KAFKA-18659), so a broker that
/// lists v3 as the lowest makes it fail compressed produce. samsa lists what Kafka lists.
fn advertised_min(key: ApiKey, served_min: i16) -> i16 {
    match key {
        ApiKey::Produce => 0,
        _ => served_min,
    }
}

/// The answer to an ApiVersions version samsa does not know, to be sent as v0:
/// UNSUPPORTED_VERSION plus the table, from which the client picks a version to retry with
/// (and gets the full answer, telemetry APIs included where they are listed).
pub fn unsupported_version() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys(false)),
    )
}

#[cfg(test)]
mod tests {
    use super::is_valid_software_field;

    #[test]
    fn software_fields_follow_kafkas_pattern() {
        for ok in [
            "librdkafka",
            "2.16.0",
            "apache-kafka-java",
            "a",
            "kafka-python",
        ] {
            assert!(is_valid_software_field(ok), "{ok}");
        }
        for bad in ["", "bad name!", "-lead", "trail.", "a_b"] {
            assert!(!is_valid_software_field(bad), "{bad}");
        }
    }
}
