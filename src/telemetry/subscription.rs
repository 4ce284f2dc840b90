//! Which subscriptions a client matches, and what it is told: the metric prefixes, push
//! interval and subscription id Kafka's `ClientMetricsManager.createClientInstance` computes.
//!
//! The subscription id is a CRC32C of the prefix set's `toString()` and the interval, XORed
//! with the instance id's hash: a client whose matching subscriptions change gets another id,
//! and its next push with the old one is refused (UNKNOWN_SUBSCRIPTION_ID). Kafka holds the
//! prefixes in a `java.util.HashSet`, so their order (in the string hashed, and in the list
//! sent) is that set's iteration order, reproduced here so the ids are Kafka's.

use uuid::Uuid;

use crate::config::telemetry::{parse_matches, SubscriptionConfig, DEFAULT_INTERVAL_MS};

/// Kafka's "every metric" prefix.
pub const ALL_METRICS: &str = "*";

/// A configured subscription, its match entries compiled.
#[derive(Debug)]
pub struct Subscription {
    pub name: String,
    pub metrics: Vec<String>,
    pub interval_ms: i32,
    matches: Vec<(String, regex::Regex)>,
}

impl Subscription {
    /// Compiles a subscription the config validated.
    pub fn compile(config: &SubscriptionConfig) -> Subscription {
        Subscription {
            name: config.name.clone(),
            metrics: config.metrics.clone(),
            interval_ms: config.interval_ms,
            matches: parse_matches(&config.matches).unwrap_or_default(),
        }
    }

    /// Every selector must match in full; a selector whose value the broker does not know
    /// (no software name before ApiVersions v3) does not match. No selector matches all.
    fn matches(&self, client: &ClientIdentity, instance_id: &str) -> bool {
        self.matches.iter().all(|(selector, regex)| {
            client
                .selector(selector, instance_id)
                .is_some_and(|value| regex.is_match(value))
        })
    }
}

/// Who a client is, as the broker sees it on the connection that first asked.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub client_id: String,
    pub software_name: Option<String>,
    pub software_version: Option<String>,
    pub source_address: String,
    pub source_port: String,
    pub principal: String,
}

impl ClientIdentity {
    fn selector<'a>(&'a self, selector: &str, instance_id: &'a str) -> Option<&'a str> {
        match selector {
            "client_instance_id" => Some(instance_id),
            "client_id" => Some(&self.client_id),
            "client_software_name" => self.software_name.as_deref(),
            "client_software_version" => self.software_version.as_deref(),
            "client_source_address" => Some(&self.source_address),
            "client_source_port" => Some(&self.source_port),
            _ => None,
        }
    }
}

/// What an instance is subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Prefixes in Kafka's order; `["*"]` for everything; empty when nothing matched.
    pub metrics: Vec<String>,
    pub interval_ms: i32,
    pub id: i32,
}

impl Subscribed {
    /// Whether a pushed metric is one the instance was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.metrics
            .iter()
            .any(|prefix| prefix == ALL_METRICS || name.starts_with(prefix.as_str()))
    }
}

/// The union of the matching subscriptions' prefixes, the shortest of their intervals (5
/// minutes when none matches), and the id of that combination for `instance`.
pub fn subscribe(
    subscriptions: &[Subscription],
    client: &ClientIdentity,
    instance: Uuid,
) -> Subscribed {
    let instance_text = kafka_uuid(instance);
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut metrics: Vec<String> = Vec::new();
    let mut all = false;
    for subscription in subscriptions {
        if !subscription.matches(client, &instance_text) {
            continue;
        }
        all |= subscription.metrics.iter().any(|m| m == ALL_METRICS);
        for metric in &subscription.metrics {
            if !metrics.contains(metric) {
                metrics.push(metric.clone());
            }
        }
        interval_ms = interval_ms.min(subscription.interval_ms);
    }
    if all {
        metrics = vec![ALL_METRICS.to_owned()];
    }
    let metrics = java_hash_set_order(metrics);
    let id = subscription_id(&metrics, interval_ms, instance);
    Subscribed {
        metrics,
        interval_ms,
        id,
    }
}

/// CRC32C of `"[a, b]" + interval`, XORed with Kafka's `Uuid.hashCode()`.
fn subscription_id(metrics: &[String], interval_ms: i32, instance: Uuid) -> i32 {
    let text = format!("[{}]{interval_ms}", metrics.join(", "));
    let crc = crc32c::crc32c(text.as_bytes()) as i32;
    let (high, low) = instance.as_u64_pair();
    let bits = (high ^ low) as i64;
    crc ^ ((bits >> 32) as i32 ^ bits as i32)
}

/// The order a `java.util.HashSet` that was given `items` (distinct, in this order) iterates
/// them: by bucket (the spread `String.hashCode()` masked by the table size, which starts at
/// 16 and doubles past three quarters full), and by insertion within a bucket.
fn java_hash_set_order(items: Vec<String>) -> Vec<String> {
    let mut capacity: u32 = 16;
    while items.len() as u32 > capacity / 4 * 3 {
        capacity *= 2;
    }
    let mut keyed: Vec<(u32, String)> = items
        .into_iter()
        .map(|s| {
            let h = java_string_hash(&s) as u32;
            ((h ^ (h >> 16)) & (capacity - 1), s)
        })
        .collect();
    // Stable: insertion order within a bucket.
    keyed.sort_by_key(|(bucket, _)| *bucket);
    keyed.into_iter().map(|(_, s)| s).collect()
}

fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's text form of a Uuid: URL-safe base64 without padding.
pub fn kafka_uuid(id: Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hashes() {
        // "hello".hashCode() in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
    }

    #[test]
    fn hash_set_order_is_by_bucket() {
        // In Java, new HashSet<>(List.of("b", "a")).toString() is "[a, b]".
        let ordered = java_hash_set_order(vec!["b".into(), "a".into()]);
        assert_eq!(ordered, vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn id_follows_the_instance_and_the_subscription() {
        let a = Uuid::from_u128(7);
        let b = Uuid::from_u128(8);
        let none: Vec<String> = Vec::new();
        assert_ne!(
            subscription_id(&none, 300_000, a),
            subscription_id(&none, 300_000, b)
        );
        assert_ne!(
            subscription_id(&none, 300_000, a),
            subscription_id(&none, 1_000, a)
        );
    }
}
