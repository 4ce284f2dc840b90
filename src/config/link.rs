//! Cluster links (`[[link]]`): source clusters this one mirrors topics from, keeping their
//! offsets, and whose consumer groups' committed offsets it copies. The link itself lives in
//! `crate::link`; this is only what the file says.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::ConfigError;

/// One link, `[[link]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The link's name: the value of `samsa.link.name` on the topics it mirrors.
    pub name: String,
    /// `HOST:PORT` of a broker of the source cluster (plaintext listener); the others are
    /// found through its Metadata.
    pub bootstrap: String,
    /// Topics to mirror: exact names, or a prefix ending in `*` (`"orders.*"`, `"*"`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// Consumer groups whose committed offsets on mirror topics follow, the same patterns.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How often the source's topics, partition counts and group offsets are read again.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// Bytes per partition per fetch from the source.
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: i32,
    /// Wait after a failed exchange with the source before trying again.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

fn default_sync_interval_ms() -> u64 {
    5_000
}

fn default_fetch_max_bytes() -> i32 {
    1024 * 1024
}

fn default_backoff_ms() -> u64 {
    500
}

/// Whether `name` matches one of `patterns`: an exact name, or a prefix ending in `*`.
pub fn matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// Checks every link: a name, a `HOST:PORT` bootstrap, no name twice.
pub fn validate(links: &[LinkConfig]) -> Result<(), ConfigError> {
    let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
    let mut names = BTreeSet::new();
    for link in links {
        if link.name.is_empty() || link.name.len() > 200 {
            return invalid("link.name", "must be 1 to 200 characters".into());
        }
        if !names.insert(link.name.as_str()) {
            return invalid("link.name", format!("'{}' is named twice", link.name));
        }
        let port = link
            .bootstrap
            .rsplit_once(':')
            .map(|(_, p)| p.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            return invalid(
                "link.bootstrap",
                format!("'{}' is not HOST:PORT", link.bootstrap),
            );
        }
        if link.sync_interval_ms < 100 {
            return invalid("link.sync_interval_ms", "must be at least 100".into());
        }
        if link.fetch_max_bytes < 1024 {
            return invalid("link.fetch_max_bytes", "must be at least 1024".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_prefixes() {
        let patterns = vec!["orders".to_string(), "pay.*".to_string()];
        assert!(matches(&patterns, "orders"));
        assert!(!matches(&patterns, "orders2"));
        assert!(matches(&patterns, "pay.eu"));
        assert!(!matches(&patterns, "pay"));
        assert!(matches(&["*".to_string()], "anything"));
    }
}
