//! The distributions of a push: OTLP histograms, exponential histograms and summaries
//! (metrics.proto's field numbers), checked point by point and turned into what `/metrics`
//! shows. A point that breaks metrics.proto's rules (bounds not strictly ascending,
//! `bucket_counts` not one longer than the bounds, counts that do not add up, a NaN) is
//! dropped with a debug line; the rest of the push is kept, as a collector would.
//!
//! An exponential histogram keeps its count and sum only: its buckets are powers of a base
//! that the client's SDK rescales as values arrive, so the `le` bounds would change from push
//! to push and each change would start the series over (see the README).

use crate::metrics::client_series::{Buckets, Quantiles, Reading};

use super::otlp::KeyValue;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// 1 delta, 2 cumulative.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// Only what is exposed: the buckets (fields 8 and 9) are skipped by prost.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramDataPoint {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    #[prost(double, tag = "5")]
    pub sum: f64,
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<ValueAtQuantile>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueAtQuantile {
    #[prost(double, tag = "1")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// An explicit-bucket point as buckets, or why it is dropped.
pub fn histogram(point: &HistogramDataPoint) -> Result<Reading, &'static str> {
    let bounds = &point.explicit_bounds;
    let counts = &point.bucket_counts;
    if point.sum.is_some_and(|s| !s.is_finite()) {
        return Err("sum is not a finite number");
    }
    if !(counts.is_empty() && bounds.is_empty()) {
        if counts.len() != bounds.len() + 1 {
            return Err("bucket_counts is not one longer than explicit_bounds");
        }
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("explicit_bounds are not finite and strictly ascending");
        }
        let total = counts.iter().try_fold(0u64, |a, c| a.checked_add(*c));
        if total != Some(point.count) {
            return Err("bucket_counts do not add up to count");
        }
    }
    Ok(Reading::Histogram(Buckets {
        bounds: bounds.clone(),
        counts: counts.clone(),
        count: point.count,
        sum: point.sum,
    }))
}

/// An exponential histogram point as its count and sum (a single `+Inf` bucket).
pub fn exponential(point: &ExponentialHistogramDataPoint) -> Result<Reading, &'static str> {
    if point.sum.is_some_and(|s| !s.is_finite()) {
        return Err("sum is not a finite number");
    }
    Ok(Reading::Histogram(Buckets {
        bounds: Vec::new(),
        counts: Vec::new(),
        count: point.count,
        sum: point.sum,
    }))
}

/// A summary point as quantiles, or why it is dropped.
pub fn summary(point: &SummaryDataPoint) -> Result<Reading, &'static str> {
    if !point.sum.is_finite() {
        return Err("sum is not a finite number");
    }
    let quantiles: Vec<(f64, f64)> = point
        .quantile_values
        .iter()
        .map(|q| (q.quantile, q.value))
        .collect();
    if quantiles
        .iter()
        .any(|(q, v)| !(0.0..=1.0).contains(q) || v.is_nan())
    {
        return Err("a quantile outside [0, 1] or a NaN value");
    }
    if quantiles.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("quantiles are not strictly ascending");
    }
    Ok(Reading::Summary(Quantiles {
        quantiles,
        count: point.count,
        sum: point.sum,
    }))
}
