//! Who a client is and what it may do: SASL authentication (PLAIN, SCRAM-SHA-256/512)
//! against salted credentials kept in the data directory, and Kafka's ACL model with an
//! authorizer that every handler consults. Nothing here knows the wire format.

pub mod acl;
pub mod authorizer;
pub mod certificate;
pub mod credentials;
pub(crate) mod file;
pub mod sasl;
pub mod scram;

pub use acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
pub use authorizer::Authorizer;
pub use credentials::CredentialStore;
pub use sasl::{SaslExchange, SaslMechanism};

pub use crate::error::AuthError;

/// A client's identity in Kafka's `Type:name` form, e.g. `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// Who a client is on a listener without SASL, as in Kafka.
    pub fn anonymous() -> Principal {
        Principal("User:ANONYMOUS".into())
    }

    pub fn user(name: &str) -> Principal {
        Principal(format!("User:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
