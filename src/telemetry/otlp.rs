//! The payload of a push: an OpenTelemetry `MetricsData` protobuf (OTLP, metrics.proto),
//! compressed with the codec the client picked from the ones the broker accepts.
//!
//! Only the messages and fields that are exposed are declared (gauges and sums here,
//! histograms and summaries in `distribution`): prost skips every other field (scopes,
//! exemplars, exponential buckets) while decoding, so they cost no memory past the payload
//! itself. The field numbers are metrics.proto's and common.proto's.

use bytes::Bytes;
use samsa_storage::Compression;

use super::distribution::{self, ExponentialHistogram, Histogram, Summary};
use crate::metrics::client_series::Reading;

/// Wire ids of the codecs Kafka accepts for telemetry (`CompressionType`), in the order
/// Kafka offers them: zstd, lz4, gzip, snappy.
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];

/// A decompressed payload may be this many times `telemetry.max_bytes` before it is refused:
/// metrics text compresses about tenfold, and a few kilobytes of zstd must not unpack into
/// gigabytes on the broker.
const MAX_EXPANSION: usize = 16;

/// Most messages a payload may hold where the decoder allocates them (resource and scope
/// groups, metrics, points, attributes, quantiles, and each bucket count and bound). A two-byte empty point decodes into a struct of
/// some 80 bytes: without a count, 16 MiB of them would take over a gigabyte. A Java
/// client pushes a few hundred metrics.
const MAX_MESSAGES: usize = 200_000;

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricsData {
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// What the client says about itself (the Java consumer's group id, say).
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(oneof = "Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<Data>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Data {
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    #[prost(message, tag = "7")]
    Sum(Sum),
    #[prost(message, tag = "9")]
    Histogram(Histogram),
    #[prost(message, tag = "10")]
    ExponentialHistogram(ExponentialHistogram),
    #[prost(message, tag = "11")]
    Summary(Summary),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// 1 delta, 2 cumulative.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// AGGREGATION_TEMPORALITY_DELTA: each point is the change since the previous push.
pub const DELTA: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(oneof = "Value", tags = "4, 6")]
    pub value: Option<Value>,
}

#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(double, tag = "4")]
    AsDouble(f64),
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Scalar", tags = "1, 2, 3, 4")]
    pub value: Option<Scalar>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Scalar {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

/// How a pushed value is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A monotonic sum; `delta` when each push carries the increase since the last.
    Counter {
        delta: bool,
    },
    /// Explicit or exponential; `delta` as for a counter.
    Histogram {
        delta: bool,
    },
    Summary,
}

/// One pushed value: the OTLP metric name, its point's attributes, the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub description: String,
    pub attributes: Vec<(String, String)>,
    pub kind: Kind,
    pub value: Reading,
}

/// Decompresses and decodes a payload into its gauge and sum points, or says why it cannot.
/// A decoded push: what the client says about itself (its resource's attributes: a Java
/// consumer's group id and member id, which change over its life) and its points.
#[derive(Debug, Default)]
pub struct Decoded {
    pub resource: Vec<(String, String)>,
    pub points: Vec<Point>,
}

pub fn decode(compression: i8, payload: Bytes, max_bytes: i32) -> Result<Decoded, String> {
    let codec = match compression {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => return Err(format!("unknown compression type {other}")),
    };
    let limit = (max_bytes.max(0) as usize).saturating_mul(MAX_EXPANSION);
    let raw = samsa_storage::decompress_bounded(codec, payload, limit)?;
    let mut budget = MAX_MESSAGES;
    count_messages(&raw, Level::MetricsData, &mut budget)?;
    let data = <MetricsData as prost::Message>::decode(raw).map_err(|e| e.to_string())?;
    let mut decoded = Decoded::default();
    for resource in data.resource_metrics {
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        for (key, value) in attribute_texts(attributes) {
            if !decoded.resource.iter().any(|(k, _)| *k == key) {
                decoded.resource.push((key, value));
            }
        }
        let metrics = resource.scope_metrics.into_iter().flat_map(|s| s.metrics);
        gather(metrics, &mut decoded.points);
    }
    Ok(decoded)
}

/// The points of `metrics`: a malformed histogram or summary point is left out.
fn gather(metrics: impl Iterator<Item = Metric>, points: &mut Vec<Point>) {
    for metric in metrics {
        let (kind, data_points) = match metric.data {
            Some(Data::Histogram(h)) => {
                let kind = Kind::Histogram {
                    delta: h.aggregation_temporality == DELTA,
                };
                let read = h.data_points.into_iter().map(|p| {
                    let value = distribution::histogram(&p);
                    (p.attributes, value)
                });
                distributions(&metric.name, &metric.description, kind, read, points);
                continue;
            }
            Some(Data::ExponentialHistogram(h)) => {
                let kind = Kind::Histogram {
                    delta: h.aggregation_temporality == DELTA,
                };
                let read = h.data_points.into_iter().map(|p| {
                    let value = distribution::exponential(&p);
                    (p.attributes, value)
                });
                distributions(&metric.name, &metric.description, kind, read, points);
                continue;
            }
            Some(Data::Summary(s)) => {
                let read = s.data_points.into_iter().map(|p| {
                    let value = distribution::summary(&p);
                    (p.attributes, value)
                });
                distributions(
                    &metric.name,
                    &metric.description,
                    Kind::Summary,
                    read,
                    points,
                );
                continue;
            }
            Some(Data::Gauge(g)) => (Kind::Gauge, g.data_points),
            Some(Data::Sum(s)) if s.is_monotonic => (
                Kind::Counter {
                    delta: s.aggregation_temporality == DELTA,
                },
                s.data_points,
            ),
            // A sum that may go down is a gauge to Prometheus.
            Some(Data::Sum(s)) => (Kind::Gauge, s.data_points),
            None => continue,
        };
        for point in data_points {
            let value = match point.value {
                Some(Value::AsDouble(v)) => Reading::Number(v),
                Some(Value::AsInt(v)) => Reading::Number(v as f64),
                None => continue,
            };
            let attributes = attribute_texts(point.attributes);
            points.push(Point {
                name: metric.name.clone(),
                description: metric.description.clone(),
                attributes,
                kind,
                value,
            });
        }
    }
}

/// The distribution points of one metric, each read or dropped with the reason.
fn distributions(
    name: &str,
    description: &str,
    kind: Kind,
    read: impl Iterator<Item = (Vec<KeyValue>, Result<Reading, &'static str>)>,
    points: &mut Vec<Point>,
) {
    for (attributes, value) in read {
        match value {
            Ok(value) => points.push(Point {
                name: name.to_owned(),
                description: description.to_owned(),
                attributes: attribute_texts(attributes),
                kind,
                value,
            }),
            Err(reason) => tracing::debug!(metric = name, "pushed point dropped: {reason}"),
        }
    }
}

fn attribute_texts(attributes: Vec<KeyValue>) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .filter_map(|kv| Some((kv.key, scalar_text(kv.value?.value?))))
        .collect()
}

/// The messages of metrics.proto the decoder above builds, by where they sit.
#[derive(Clone, Copy)]
enum Level {
    MetricsData,
    ResourceMetrics,
    Resource,
    ScopeMetrics,
    Metric,
    Points(Shape),
    Point(Shape),
    Quantile,
    KeyValue,
    AnyValue,
}

/// Which kind of point a level's points are.
#[derive(Clone, Copy)]
enum Shape {
    Number,
    Histogram,
    Exponential,
    Summary,
}

impl Level {
    /// The declared message a field of this level holds, if any (others prost skips).
    fn child(self, field: u64) -> Option<Level> {
        match (self, field) {
            (Level::MetricsData, 1) => Some(Level::ResourceMetrics),
            (Level::ResourceMetrics, 1) => Some(Level::Resource),
            (Level::Resource, 1) => Some(Level::KeyValue),
            (Level::ResourceMetrics, 2) => Some(Level::ScopeMetrics),
            (Level::ScopeMetrics, 2) => Some(Level::Metric),
            (Level::Metric, 5 | 7) => Some(Level::Points(Shape::Number)),
            (Level::Metric, 9) => Some(Level::Points(Shape::Histogram)),
            (Level::Metric, 10) => Some(Level::Points(Shape::Exponential)),
            (Level::Metric, 11) => Some(Level::Points(Shape::Summary)),
            (Level::Points(shape), 1) => Some(Level::Point(shape)),
            (Level::Point(Shape::Number | Shape::Summary), 7) => Some(Level::KeyValue),
            (Level::Point(Shape::Histogram), 9) => Some(Level::KeyValue),
            (Level::Point(Shape::Exponential), 1) => Some(Level::KeyValue),
            (Level::Point(Shape::Summary), 6) => Some(Level::Quantile),
            (Level::KeyValue, 2) => Some(Level::AnyValue),
            _ => None,
        }
    }

    /// Whether a field is a repeated 8-byte number the decoder keeps (a histogram's bucket
    /// counts and bounds): each element counts as a message, packed or not.
    fn repeated_number(self, field: u64) -> bool {
        matches!((self, field), (Level::Point(Shape::Histogram), 6 | 7))
    }
}

/// Walks the protobuf wire format, counting the messages the decoder would allocate
/// against `budget`, before anything is decoded.
fn count_messages(mut buf: &[u8], level: Level, budget: &mut usize) -> Result<(), String> {
    let truncated = || "truncated protobuf".to_owned();
    let take = |budget: &mut usize, n: usize| {
        *budget = budget
            .checked_sub(n)
            .ok_or_else(|| format!("more than {MAX_MESSAGES} messages"))?;
        Ok::<(), String>(())
    };
    while !buf.is_empty() {
        let key = varint(&mut buf).ok_or_else(truncated)?;
        let numbers = level.repeated_number(key >> 3);
        match key & 7 {
            0 => {
                varint(&mut buf).ok_or_else(truncated)?;
            }
            1 => {
                buf = buf.get(8..).ok_or_else(truncated)?;
                if numbers {
                    take(budget, 1)?;
                }
            }
            5 => buf = buf.get(4..).ok_or_else(truncated)?,
            2 => {
                let len = varint(&mut buf).ok_or_else(truncated)?;
                let len = usize::try_from(len).map_err(|_| truncated())?;
                let body = buf.get(..len).ok_or_else(truncated)?;
                buf = &buf[len..];
                if numbers {
                    take(budget, len / 8)?;
                } else if let Some(child) = level.child(key >> 3) {
                    take(budget, 1)?;
                    count_messages(body, child, budget)?;
                }
            }
            other => return Err(format!("unexpected wire type {other}")),
        }
    }
    Ok(())
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn scalar_text(value: Scalar) -> String {
    match value {
        Scalar::String(s) => s,
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Double(d) => d.to_string(),
    }
}

/// A push's payload for tests: a gauge and a delta sum of the Java producer's.
#[cfg(test)]
pub(crate) fn tests_payload() -> Vec<u8> {
    use prost::Message;
    let point = |v| NumberDataPoint {
        attributes: vec![KeyValue {
            key: "node.id".into(),
            value: Some(AnyValue {
                value: Some(Scalar::Int(1)),
            }),
        }],
        time_unix_nano: 1,
        value: Some(v),
    };
    MetricsData {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "group.id".into(),
                    value: Some(AnyValue {
                        value: Some(Scalar::String("orders".into())),
                    }),
                }],
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "org.apache.kafka.producer.record.queue.time.avg".into(),
                        description: "The average time in ms record batches spent in the send buffer."
                            .into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point(Value::AsDouble(2.5))],
                        })),
                    },
                    Metric {
                        name: "org.apache.kafka.producer.record.send.total".into(),
                        description: String::new(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![point(Value::AsInt(7))],
                            aggregation_temporality: DELTA,
                            is_monotonic: true,
                        })),
                    },
                ],
            }],
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gauges_and_sums() {
        let decoded = decode(0, Bytes::from(tests_payload()), 1 << 20).unwrap();
        assert_eq!(decoded.resource, vec![("group.id".into(), "orders".into())]);
        let points = decoded.points;
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].value, Reading::Number(2.5));
        assert_eq!(points[0].attributes, vec![("node.id".into(), "1".into())]);
        assert_eq!(points[1].kind, Kind::Counter { delta: true });
    }

    #[test]
    fn refuses_payloads_of_too_many_messages() {
        // 300k empty points of one gauge: 600 kB on the wire.
        let mut gauge = Vec::new();
        for _ in 0..300_000 {
            gauge.extend_from_slice(&[0x0a, 0x00]);
        }
        let nest = |field: u8, body: &[u8]| {
            let mut out = vec![field << 3 | 2];
            let mut len = body.len();
            while len >= 0x80 {
                out.push((len as u8) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(body);
            out
        };
        let metric = nest(5, &gauge);
        let payload = nest(1, &nest(2, &nest(2, &metric)));
        let err = decode(0, Bytes::from(payload), 1 << 20).unwrap_err();
        assert!(err.contains("messages"), "{err}");
    }

    #[test]
    fn refuses_garbage_and_bombs() {
        assert!(decode(0, Bytes::from_static(b"\xff\xff\xff"), 1 << 20).is_err());
        assert!(decode(1, Bytes::from_static(b"not gzip"), 1 << 20).is_err());
        // 1 MiB of zeros in zstd is a few bytes; with a 1 KiB bound it unpacks past 16 KiB.
        let bomb = zstd_compress(&vec![0u8; 1 << 20]);
        let err = decode(4, Bytes::from(bomb), 1024).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    fn zstd_compress(raw: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.write_all(raw).unwrap();
        encoder.finish().unwrap()
    }
}
