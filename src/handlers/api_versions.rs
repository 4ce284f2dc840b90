//! ApiVersions: tells the client exactly which APIs and versions samsa serves.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};

use crate::protocol::{self, versions};

pub fn handle(_request: &ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

fn api_keys() -> Vec<ApiVersion> {
    versions::SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The v0 response to an ApiVersions version samsa does not know: UNSUPPORTED_VERSION
/// plus the table, from which the client picks a version to retry with.
pub fn unsupported_version_response(correlation_id: i32) -> Bytes {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(body))
        .expect("a v0 ApiVersions response always encodes")
}
