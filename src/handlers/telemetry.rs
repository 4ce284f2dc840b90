//! GetTelemetrySubscriptions and PushTelemetry (KIP-714): the client telemetry coordinator
//! ([`crate::telemetry`]) decides; this turns its answers into Kafka's responses. As in
//! Kafka, neither API is authorized: any client may learn its own subscription and push.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::handlers::{str_bytes, Session};
use crate::telemetry::otlp::ACCEPTED_COMPRESSION;
use crate::telemetry::{ClientIdentity, Push};

pub fn get_subscriptions(
    broker: &Broker,
    session: &Session,
    request: &GetTelemetrySubscriptionsRequest,
    client_id: &str,
) -> GetTelemetrySubscriptionsResponse {
    let client = identity(session, client_id);
    match broker
        .telemetry
        .subscriptions(request.client_instance_id, &client, session.id, now_ms())
    {
        Ok(answer) => GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(answer.client_instance_id)
            .with_subscription_id(answer.subscribed.id)
            .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
            .with_push_interval_ms(answer.subscribed.interval_ms)
            .with_telemetry_max_bytes(answer.max_bytes)
            // Kafka always asks for deltas; delta sums add up on /metrics.
            .with_delta_temporality(true)
            .with_requested_metrics(
                answer
                    .subscribed
                    .metrics
                    .into_iter()
                    .map(str_bytes)
                    .collect(),
            ),
        Err(err) => GetTelemetrySubscriptionsResponse::default().with_error_code(err.code()),
    }
}

pub fn push(
    broker: &Broker,
    session: &Session,
    request: PushTelemetryRequest,
    client_id: &str,
) -> PushTelemetryResponse {
    let client = identity(session, client_id);
    let push = Push {
        client_instance_id: request.client_instance_id,
        subscription_id: request.subscription_id,
        terminating: request.terminating,
        compression: request.compression_type,
        metrics: request.metrics,
    };
    match broker.telemetry.push(push, &client, session.id, now_ms()) {
        Ok(()) => PushTelemetryResponse::default(),
        Err(err) => PushTelemetryResponse::default().with_error_code(err.code()),
    }
}

/// The client as Kafka's `ClientMetricsInstanceMetadata` sees it: a client that named no
/// software in ApiVersions is Kafka's `ClientInformation.EMPTY`, "unknown" both.
fn identity(session: &Session, client_id: &str) -> ClientIdentity {
    let (name, version) = match &session.client_software {
        Some((name, version)) => (Some(name.clone()), Some(version.clone())),
        None => (Some("unknown".into()), Some("unknown".into())),
    };
    ClientIdentity {
        client_id: client_id.to_owned(),
        software_name: name,
        software_version: version,
        source_address: session.peer.ip().to_string(),
        source_port: session.peer.port().to_string(),
        principal: session.principal.to_string(),
    }
}
