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
    let metrics: Vec<Vec<u8>> = metrics
        .iter()
        .map(|(name, value)| {
            let mut gauge = Vec::new();
            field(&mut gauge, 1, &point(*value, attributes));
            metric(name, 5, &gauge)
        })
        .collect();
    metrics_data(&metrics)
}

/// A `Metric` named `name` whose data (oneof field `data_field`) is `data`.
fn metric(name: &str, data_field: u64, data: &[u8]) -> Vec<u8> {
    let mut metric = Vec::new();
    field(&mut metric, 1, name.as_bytes());
    field(&mut metric, data_field, data);
    metric
}

/// An 8-byte field (fixed64 or double).
fn fixed(out: &mut Vec<u8>, number: u64, bytes: [u8; 8]) {
    varint(out, number << 3 | 1);
    out.extend_from_slice(&bytes);
}

/// A delta `Histogram` metric of one point: per-bucket `counts` (one more than `bounds`,
/// packed as protobuf packs repeated numbers), their total as count, and `sum`.
pub fn histogram(name: &str, bounds: &[f64], counts: &[u64], sum: f64) -> Vec<u8> {
    let mut point = Vec::new();
    fixed(&mut point, 4, counts.iter().sum::<u64>().to_le_bytes());
    fixed(&mut point, 5, sum.to_le_bytes());
    let packed_counts: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
    field(&mut point, 6, &packed_counts);
    let packed_bounds: Vec<u8> = bounds.iter().flat_map(|b| b.to_le_bytes()).collect();
    field(&mut point, 7, &packed_bounds);
    let mut histogram = Vec::new();
    field(&mut histogram, 1, &point);
    varint(&mut histogram, 2 << 3);
    varint(&mut histogram, 1); // AGGREGATION_TEMPORALITY_DELTA
    metric(name, 9, &histogram)
}

/// A `Summary` metric of one point: `(quantile, value)` pairs, count and sum.
pub fn summary(name: &str, quantiles: &[(f64, f64)], count: u64, sum: f64) -> Vec<u8> {
    let mut point = Vec::new();
    fixed(&mut point, 4, count.to_le_bytes());
    fixed(&mut point, 5, sum.to_le_bytes());
    for (quantile, value) in quantiles {
        let mut at = Vec::new();
        fixed(&mut at, 1, quantile.to_le_bytes());
        fixed(&mut at, 2, value.to_le_bytes());
        field(&mut point, 6, &at);
    }
    let mut summary = Vec::new();
    field(&mut summary, 1, &point);
    metric(name, 11, &summary)
}

/// `MetricsData` of one resource and scope holding `metrics` (encoded `Metric`s).
pub fn metrics_data(metrics: &[Vec<u8>]) -> Vec<u8> {
    let mut scope = Vec::new();
    for metric in metrics {
        field(&mut scope, 2, metric);
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
