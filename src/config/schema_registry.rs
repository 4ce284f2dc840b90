//! The built-in schema registry, `[schema_registry]`: off unless `enabled`; its HTTP
//! listener and the topic its schemas live in.

use std::net::SocketAddr;

use serde::Deserialize;

/// Confluent Schema Registry's `kafkastore.topic` default.
pub const DEFAULT_TOPIC: &str = "_schemas";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Serve the registry. Off by default: a broker that does not ask for it opens no port.
    pub enabled: bool,
    /// Address of the registry's HTTP listener (Confluent's default port is 8081).
    pub listen: SocketAddr,
    /// The compacted topic holding the schemas, in Confluent's record format.
    pub topic: String,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            enabled: false,
            listen: "127.0.0.1:8081".parse().expect("valid literal address"),
            topic: DEFAULT_TOPIC.to_owned(),
        }
    }
}
