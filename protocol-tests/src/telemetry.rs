//! Client telemetry payloads (KIP-714) built by hand: an OTLP `MetricsData` protobuf with
//! gauges, written field by field from metrics.proto so the broker's decoder is checked
//! against an encoding it did not produce.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
};
use uuid::Uuid;

use crate::Connection;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A gauge point: `value` with string attributes.
fn point(value: f64, attributes: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 4 << 3 | 1);
    out.extend_from_slice(&value.to_le_bytes());
    for (key, text) in attributes {
        let mut any = Vec::new();
        field(&mut any, 1, text.as_bytes());
        let mut kv = Vec::new();
        field(&mut kv, 1, key.as_bytes());
        field(&mut kv, 2, &any);
        field(&mut out, 7, &kv);
    }
    out
}

/// `MetricsData` with one gauge per `(name, value)`, each point with `attributes`.
pub fn gauges(metrics: &[(&str, f64)], attributes: &[(&str, &str)]) -> Vec<u8> {
    let mut scope = Vec::new();
    for (name, value) in metrics {
        let mut gauge = Vec::new();
        field(&mut gauge, 1, &point(*value, attributes));
        let mut metric = Vec::new();
        field(&mut metric, 1, name.as_bytes());
        field(&mut metric, 5, &gauge);
        field(&mut scope, 2, &metric);
    }
    let mut resource = Vec::new();
    field(&mut resource, 2, &scope);
    let mut data = Vec::new();
    field(&mut data, 1, &resource);
    data
}

/// GetTelemetrySubscriptions v0 for `id` (zero: the broker assigns one).
pub fn get_subscriptions(conn: &mut Connection, id: Uuid) -> GetTelemetrySubscriptionsResponse {
    conn.send(
        &GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id),
        0,
    )
    .unwrap()
}

/// A PushTelemetry v0 request.
pub fn push_request(
    id: Uuid,
    subscription_id: i32,
    compression: i8,
    metrics: Vec<u8>,
) -> PushTelemetryRequest {
    PushTelemetryRequest::default()
        .with_client_instance_id(id)
        .with_subscription_id(subscription_id)
        .with_compression_type(compression)
        .with_metrics(bytes::Bytes::from(metrics))
}

/// The error code of a push.
pub fn push(conn: &mut Connection, request: &PushTelemetryRequest) -> i16 {
    conn.send(request, 0).unwrap().error_code
}
