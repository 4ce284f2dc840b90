//! Client telemetry (KIP-714), `[telemetry]`: the subscriptions that tell clients which of
//! their metrics to push and how often, and the bounds on what they push.
//!
//! Kafka keeps subscriptions as CLIENT_METRICS config resources (`kafka-client-metrics.sh`);
//! samsa reads them from this file, with Kafka's names and rules (`ClientMetricsConfigs`):
//! `metrics` (name prefixes, `*` for all), `interval.ms` (100 ms to an hour, 5 minutes by
//! default) and `match` (`selector=regex` pairs, every one of which must match).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::ConfigError;

/// Kafka's `telemetry.max.bytes` default: the largest compressed payload a push may carry.
pub const DEFAULT_MAX_BYTES: i32 = 1024 * 1024;
/// Kafka's `interval.ms` default and bounds.
pub const DEFAULT_INTERVAL_MS: i32 = 300_000;
const MIN_INTERVAL_MS: i32 = 100;
const MAX_INTERVAL_MS: i32 = 3_600_000;

/// What a `match` entry may select on: the client's identity as the broker sees it.
pub const MATCH_SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Largest compressed metrics payload of one push (Kafka's `telemetry.max.bytes`);
    /// larger pushes get TELEMETRY_TOO_LARGE.
    pub max_bytes: i32,
    /// Series one client instance may have on `/metrics`; more are dropped and counted.
    pub max_series_per_client: usize,
    /// Series all client instances together may have on `/metrics`.
    pub max_series: usize,
    /// The subscriptions. With none, samsa behaves as a Kafka without a telemetry
    /// exporter: it answers the two APIs but does not advertise them, so clients don't push.
    #[serde(rename = "subscription")]
    pub subscriptions: Vec<SubscriptionConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_series_per_client: 2_000,
            max_series: 100_000,
            subscriptions: Vec::new(),
        }
    }
}

/// One subscription (`[[telemetry.subscription]]`), a CLIENT_METRICS resource in Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub name: String,
    /// Metric name prefixes the matching clients push; `*` for every metric.
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default = "default_interval")]
    pub interval_ms: i32,
    /// `selector=regex` pairs ([`MATCH_SELECTORS`]); an empty list matches every client.
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
}

fn default_interval() -> i32 {
    DEFAULT_INTERVAL_MS
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.max_bytes < 1 {
            return invalid("telemetry.max_bytes", "must be at least 1".into());
        }
        if self.max_series_per_client == 0 || self.max_series == 0 {
            return invalid("telemetry.max_series", "must be at least 1".into());
        }
        let mut names = BTreeSet::new();
        for subscription in &self.subscriptions {
            if subscription.name.is_empty() {
                return invalid(
                    "telemetry.subscription.name",
                    "Subscription name can't be empty".into(),
                );
            }
            if !names.insert(subscription.name.as_str()) {
                return invalid(
                    "telemetry.subscription.name",
                    format!("'{}' is named twice", subscription.name),
                );
            }
            if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&subscription.interval_ms) {
                return invalid(
                    "telemetry.subscription.interval_ms",
                    format!(
                        "{} in '{}': interval must be between 100 and 3600000 (1 hour)",
                        subscription.interval_ms, subscription.name
                    ),
                );
            }
            if let Err(reason) = parse_matches(&subscription.matches) {
                return invalid(
                    "telemetry.subscription.match",
                    format!("in '{}': {reason}", subscription.name),
                );
            }
        }
        Ok(())
    }
}

/// The `match` entries as (selector, anchored regex), or why one is not acceptable (Kafka's
/// `ClientMetricsConfigs.parseMatchingPatterns`: exactly one `=`, a known selector, a
/// valid regex; a later entry for the same selector replaces an earlier one).
pub fn parse_matches(entries: &[String]) -> Result<Vec<(String, regex::Regex)>, String> {
    let mut parsed: Vec<(String, regex::Regex)> = Vec::new();
    for entry in entries {
        let illegal = || format!("Illegal client matching pattern: {entry}");
        let mut parts = entry.split('=');
        let (Some(selector), Some(pattern), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(illegal());
        };
        let selector = selector.trim();
        if !MATCH_SELECTORS.contains(&selector) {
            return Err(illegal());
        }
        // Java's Matcher.matches(): the whole value must match.
        let regex =
            regex::Regex::new(&format!("^(?:{})$", pattern.trim())).map_err(|_| illegal())?;
        parsed.retain(|(s, _)| s != selector);
        parsed.push((selector.to_owned(), regex));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_entries_follow_kafka_rules() {
        let ok =
            parse_matches(&["client_id = prod-.*".into(), "client_source_port=1".into()]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok[0].1.is_match("prod-7"));
        assert!(
            !ok[0].1.is_match("xprod-7"),
            "anchored, as Java's matches()"
        );
        for bad in ["client_id", "client_id=a=b", "rack=x", "client_id=("] {
            assert!(parse_matches(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn interval_bounds_are_checked() {
        let mut config = TelemetryConfig::default();
        config.subscriptions.push(SubscriptionConfig {
            name: "s".into(),
            metrics: vec!["*".into()],
            interval_ms: 99,
            matches: Vec::new(),
        });
        assert!(config.validate().is_err());
        config.subscriptions[0].interval_ms = 100;
        assert!(config.validate().is_ok());
    }
}
