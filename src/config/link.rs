//! Cluster links (`[[link]]`): source clusters this one mirrors topics from, keeping their
//! offsets, and whose consumer groups' committed offsets it copies. The link itself lives in
//! `crate::link`; this is only what the file says.

use std::collections::BTreeSet;

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, SaslMechanism};

/// One link, `[[link]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The link's name: the value of `samsa.link.name` on the topics it mirrors.
    pub name: String,
    /// `HOST:PORT` of a broker of the source cluster; the others are found through its
    /// Metadata (which names the brokers' addresses on the listener asked).
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
    /// Copy the source's ACLs on the mirror topics and linked groups (`link::acls`).
    #[serde(default)]
    pub acls: bool,
    /// How every connection to the source is made, Kafka's `security.protocol`.
    #[serde(default)]
    pub security_protocol: SourceProtocol,
    /// PEM CA certificates the source's certificates are checked against (SSL, SASL_SSL).
    pub ssl_ca_file: Option<PathBuf>,
    /// PEM certificate chain and key presented to a source that requires client certificates.
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
    /// The name the source's certificate must carry; default: the host of the address.
    pub ssl_server_name: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL_PLAINTEXT, SASL_SSL).
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    /// The password itself, or (so it need not sit in the file) `sasl_password_file`, a file
    /// holding it, or `sasl_password_env`, the environment variable holding it.
    pub sasl_password: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
    pub sasl_password_env: Option<String>,
}

/// Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SourceProtocol {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SourceProtocol {
    pub fn tls(self) -> bool {
        matches!(self, SourceProtocol::Ssl | SourceProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SourceProtocol::SaslPlaintext | SourceProtocol::SaslSsl
        )
    }
}

impl LinkConfig {
    /// The SASL password from wherever the link's config says it is.
    pub fn sasl_password(&self) -> Result<String, String> {
        if let Some(password) = &self.sasl_password {
            return Ok(password.clone());
        }
        if let Some(path) = &self.sasl_password_file {
            return std::fs::read_to_string(path)
                .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|err| format!("cannot read {}: {err}", path.display()));
        }
        if let Some(var) = &self.sasl_password_env {
            return std::env::var(var).map_err(|_| format!("${var} is not set"));
        }
        Err("no sasl_password, sasl_password_file or sasl_password_env".into())
    }
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
        validate_security(link)?;
    }
    Ok(())
}

/// The source connection's keys agree with its `security_protocol`.
fn validate_security(link: &LinkConfig) -> Result<(), ConfigError> {
    let invalid = |key, reason: &str| {
        Err(ConfigError::Invalid {
            key,
            reason: format!("link '{}': {reason}", link.name),
        })
    };
    let protocol = link.security_protocol;
    if protocol.tls() && link.ssl_ca_file.is_none() {
        return invalid(
            "link.ssl_ca_file",
            "SSL and SASL_SSL need the source's CA file",
        );
    }
    if link.ssl_cert_file.is_some() != link.ssl_key_file.is_some() {
        return invalid(
            "link.ssl_cert_file",
            "ssl_cert_file and ssl_key_file go together",
        );
    }
    if protocol.sasl() {
        if link.sasl_mechanism.is_none() || link.sasl_username.is_none() {
            return invalid(
                "link.sasl_mechanism",
                "SASL needs sasl_mechanism and sasl_username",
            );
        }
        let sources = [
            link.sasl_password.is_some(),
            link.sasl_password_file.is_some(),
            link.sasl_password_env.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return invalid(
                "link.sasl_password",
                "give exactly one of sasl_password, sasl_password_file, sasl_password_env",
            );
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

    #[test]
    fn the_source_connection_keys_must_agree() {
        let link = |extra: &str| -> LinkConfig {
            toml::from_str(&format!("name = \"l\"\nbootstrap = \"h:1\"\n{extra}")).unwrap()
        };
        let ok = "security_protocol = \"SASL_SSL\"\nssl_ca_file = \"ca.pem\"\n\
                  sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"u\"\n\
                  sasl_password_env = \"PW\"\n";
        assert!(validate(&[link(ok)]).is_ok());
        for bad in [
            "security_protocol = \"SSL\"\n",
            "security_protocol = \"SASL_PLAINTEXT\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\n",
            "security_protocol = \"SASL_PLAINTEXT\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password = \"p\"\nsasl_password_env = \"PW\"\n",
            "ssl_cert_file = \"c.pem\"\n",
        ] {
            assert!(validate(&[link(bad)]).is_err(), "{bad}");
        }
        assert!(toml::from_str::<LinkConfig>(
            "name = \"l\"\nbootstrap = \"h:1\"\nsasl_mechanism = \"GSSAPI\"\n"
        )
        .is_err());
    }
}
