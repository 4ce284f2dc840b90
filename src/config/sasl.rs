//! The SASL part of the configuration (`[sasl]`): the mechanisms a listener offers and the
//! SCRAM users to create. The mechanism names and the stored credential are plain data
//! here, so that parsing the config needs nothing above it; `auth::scram` adds the key
//! derivations and `auth::sasl` the exchange.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Fewest and most PBKDF2 iterations Kafka accepts for a SCRAM credential.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The code Kafka's SCRAM credential APIs use (`ScramMechanism.type()`).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            other => ScramMechanism::from_name(other)
                .map(SaslMechanism::Scram)
                .ok_or_else(|| {
                    format!(
                        "unknown SASL mechanism '{other}' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    )
                }),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the broker keeps of a password: enough to verify a proof, not enough to make one.
/// Its derivations from a password are in `auth::scram`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

/// SASL on SASL_PLAINTEXT and SASL_SSL listeners (`[sasl]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaslConfig {
    /// Mechanisms offered in SaslHandshake (Kafka's `sasl.enabled.mechanisms`).
    pub mechanisms: Vec<SaslMechanism>,
    /// This node's own users (`[[sasl.scram_user]]`), beneath the metadata log's: where the
    /// log has a credential for the same user and mechanism, the log's wins.
    #[serde(rename = "scram_user")]
    pub scram_users: Vec<ScramUserConfig>,
}

/// A SCRAM credential given in the config: what the broker stores, never the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramUserConfig {
    pub name: String,
    pub mechanism: ScramMechanism,
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl ScramUserConfig {
    pub fn new(
        name: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> ScramUserConfig {
        ScramUserConfig {
            name: name.to_owned(),
            mechanism,
            salt: credential.salt,
            iterations: credential.iterations,
            stored_key: credential.stored_key,
            server_key: credential.server_key,
        }
    }

    pub fn credential(&self) -> ScramCredential {
        ScramCredential {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// Base64 of byte fields in stored credentials and config.
mod b64 {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
