//! The built-in schema registry, `[schema_registry]`: off unless `enabled`; its HTTP
//! listener (plain or HTTPS with the broker's `[tls]` certificate), who may call it, the URL
//! other brokers forward writes to, and the topic its schemas live in.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError};

/// Confluent Schema Registry's `kafkastore.topic` default.
pub const DEFAULT_TOPIC: &str = "_schemas";

/// How callers prove who they are (Confluent's `authentication.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// Everyone is `User:ANONYMOUS`.
    None,
    /// HTTP basic auth against the broker's SASL users (their SCRAM credentials).
    Basic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Serve the registry. Off by default: a broker that does not ask for it opens no port.
    pub enabled: bool,
    /// Address of the registry's HTTP listener (Confluent's default port is 8081).
    pub listen: SocketAddr,
    /// Serve HTTPS with the `[tls]` certificate (and its client CA: mutual TLS).
    pub tls: bool,
    pub authentication: Authentication,
    /// The URL other brokers reach this registry at, registered with the broker; defaults
    /// to the advertised Kafka host with the registry's port.
    pub advertised_url: Option<String>,
    /// The CAs other brokers' HTTPS registries are verified with when forwarding to them;
    /// defaults to `[tls] client_ca_file`, else the certificates of `[tls] cert_file`.
    pub forward_ca_file: Option<PathBuf>,
    /// The compacted topic holding the schemas, in Confluent's record format.
    pub topic: String,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            enabled: false,
            listen: "127.0.0.1:8081".parse().expect("valid literal address"),
            tls: false,
            authentication: Authentication::None,
            advertised_url: None,
            forward_ca_file: None,
            topic: DEFAULT_TOPIC.to_owned(),
        }
    }
}

impl Config {
    /// Where other brokers reach this broker's registry, if it serves one.
    pub fn registry_url(&self) -> Option<String> {
        let registry = &self.schema_registry;
        if !registry.enabled {
            return None;
        }
        if let Some(url) = &registry.advertised_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        let scheme = if registry.tls { "https" } else { "http" };
        let host = if registry.listen.ip().is_unspecified() {
            self.advertised().0
        } else {
            registry.listen.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(format!("{scheme}://{host}:{}", registry.listen.port()))
    }

    pub(super) fn validate_schema_registry(&self) -> Result<(), ConfigError> {
        let registry = &self.schema_registry;
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if registry.tls && self.tls.is_none() {
            return invalid(
                "schema_registry.tls",
                "an HTTPS registry needs a [tls] section",
            );
        }
        if let Some(url) = &registry.advertised_url {
            let scheme = if registry.tls { "https://" } else { "http://" };
            if !url.starts_with(scheme) {
                return invalid(
                    "schema_registry.advertised_url",
                    &format!("must start with {scheme}"),
                );
            }
        }
        Ok(())
    }
}
