//! Who may call the registry: HTTP basic auth against the broker's own SASL users (the
//! SCRAM credentials `kafka-configs --alter --add-config SCRAM-SHA-256=...` creates), and
//! the broker's ACLs on the schemas topic:
//!
//! | request | needs, on topic `_schemas` (the configured `topic`) |
//! |---|---|
//! | every `GET`, look-ups (`POST /subjects/{s}`), compatibility checks | READ |
//! | registering (`POST /subjects/{s}/versions`), deleting subjects and versions | WRITE |
//! | `PUT`/`DELETE` of `/config[/{s}]` and `/mode[/{s}]` | ALTER_CONFIGS |
//!
//! Deletes need WRITE rather than DELETE because DELETE on a topic is the right to delete
//! the topic itself, and a registry delete writes records like a registration does.
//! Without an authorizer every authenticated caller may do everything; super users and
//! `allow_everyone_if_no_acl_found` apply as they do on the Kafka listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::http::{error_body, Service};
use super::listener::Peer;
use crate::auth::{Authorizer, CredentialStore, Operation, Principal, ResourceType};
use crate::config::schema_registry::Authentication;

/// Passwords that verified, kept so that a client sending its credentials with every
/// request does not pay a PBKDF2 round (thousands of HMACs) each time. Bounded.
const VERIFIED_CACHE: usize = 1024;
const REALM: &str = "Basic realm=\"samsa-schema-registry\"";

pub struct Access {
    pub authentication: Authentication,
    pub credentials: Arc<CredentialStore>,
    pub authorizer: Arc<Authorizer>,
    pub topic: String,
    /// SHA-256 of `user\0password` → the stored key of the credential it verified against;
    /// an entry counts only while the user still has that credential.
    verified: Arc<Mutex<HashMap<[u8; 32], Vec<u8>>>>,
}

impl Access {
    pub fn new(
        authentication: Authentication,
        credentials: Arc<CredentialStore>,
        authorizer: Arc<Authorizer>,
        topic: String,
    ) -> Access {
        Access {
            authentication,
            credentials,
            authorizer,
            topic,
            verified: Arc::default(),
        }
    }

    /// The principal `authorization` proves, if it does.
    async fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<Principal> {
        let (user, password) = basic_credentials(authorization?)?;
        let credentials = self.credentials.of_user(&user);
        if credentials.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(key) = self.verified.lock().get(&digest) {
            if credentials.iter().any(|(_, c)| c.stored_key == *key) {
                return Some(Principal::user(&user));
            }
        }
        // PBKDF2 is CPU-bound for milliseconds: off the event loop.
        let matched = tokio::task::spawn_blocking(move || {
            credentials
                .into_iter()
                .find(|(m, c)| c.verifies_password(*m, password.as_bytes()))
                .map(|(_, c)| c.stored_key)
        })
        .await
        .ok()??;
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_CACHE {
            verified.clear();
        }
        verified.insert(digest, matched);
        Some(Principal::user(&user))
    }
}

/// `Authorization: Basic base64(user:password)` decoded.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// What a request needs on the schemas topic (see the module doc).
fn operation(method: &Method, route: &str) -> Operation {
    match *method {
        Method::GET | Method::HEAD => Operation::Read,
        Method::POST if route == "/subjects/{subject}/versions" => Operation::Write,
        Method::POST => Operation::Read,
        _ if route.starts_with("/config") || route.starts_with("/mode") => Operation::AlterConfigs,
        _ => Operation::Write,
    }
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Read => "Read",
        Operation::Write => "Write",
        _ => "AlterConfigs",
    }
}

/// Answers 401 to a caller that does not authenticate when it must, 403 (40301) to one the
/// ACLs refuse; lets the others through.
pub async fn guard(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let access = &service.access;
    let principal = match access.authentication {
        Authentication::None => Principal::anonymous(),
        Authentication::Basic => {
            let header = request.headers().get(header::AUTHORIZATION);
            match access.authenticate(header).await {
                Some(principal) => principal,
                None => {
                    let mut response = error_body(StatusCode::UNAUTHORIZED, 401, "Unauthorized");
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
                    return response;
                }
            }
        }
    };
    if access.authorizer.is_enabled() {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", |p| p.as_str());
        let op = operation(request.method(), route);
        let host = request
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0 .0.ip())
            .to_string();
        let topic = &access.topic;
        if !access
            .authorizer
            .authorize(&principal, &host, op, ResourceType::Topic, topic)
        {
            tracing::info!("schema registry: {principal} from {host} denied {op:?} on {topic}");
            let message = format!(
                "User is denied operation {} on Topic: {topic}",
                operation_name(op)
            );
            return error_body(StatusCode::FORBIDDEN, 40301, &message);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        let header = HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OngK");
        assert_eq!(
            basic_credentials(&header),
            Some(("alice".into(), "s3cr3t:x\n".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!")),
            None
        );
    }

    #[test]
    fn operations_by_route() {
        let versions = "/subjects/{subject}/versions";
        assert_eq!(operation(&Method::GET, versions), Operation::Read);
        assert_eq!(operation(&Method::POST, versions), Operation::Write);
        assert_eq!(
            operation(&Method::POST, "/subjects/{subject}"),
            Operation::Read
        );
        assert_eq!(
            operation(&Method::DELETE, "/subjects/{subject}"),
            Operation::Write
        );
        assert_eq!(operation(&Method::PUT, "/config"), Operation::AlterConfigs);
        assert_eq!(
            operation(&Method::DELETE, "/mode/{subject}"),
            Operation::AlterConfigs
        );
    }
}
