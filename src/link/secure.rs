//! How the link connects to its source: TLS (SSL, SASL_SSL) around the TCP connection, then
//! SASL (SaslHandshake v1 and SaslAuthenticate, as Kafka's clients do) before any other
//! request. Every connection the link opens (metadata, fetch, group offsets) comes from here.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use subtle::ConstantTimeEq;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::auth::scram::ScramMechanism;
use crate::config::link::LinkConfig;
use crate::config::SaslMechanism;
use crate::peer::PeerConnection;

const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    #[error("TLS setup for the source: {0}")]
    Tls(String),
    #[error("TLS handshake with {addr}: {reason}")]
    Handshake { addr: String, reason: String },
    #[error("SASL authentication to {addr} failed: {reason}")]
    Auth { addr: String, reason: String },
}

/// What the link needs to open its connections, built once from its config.
pub struct Connector {
    tls: Option<TlsConnector>,
    server_name: Option<String>,
    client_id: String,
}

impl Connector {
    pub fn new(link: &LinkConfig) -> Result<Connector, SecureError> {
        let tls = match (&link.ssl_ca_file, link.security_protocol.tls()) {
            (Some(ca), true) => {
                let identity = link
                    .ssl_cert_file
                    .as_deref()
                    .zip(link.ssl_key_file.as_deref());
                let connector = crate::network::tls::source_connector(ca, identity)
                    .map_err(|e| SecureError::Tls(e.to_string()))?;
                Some(connector)
            }
            (None, true) => return Err(SecureError::Tls("no ssl_ca_file".into())),
            _ => None,
        };
        Ok(Connector {
            tls,
            server_name: link.ssl_server_name.clone(),
            client_id: format!("samsa-link-{}", link.name),
        })
    }

    /// Opens a connection to `addr`, wrapped in TLS and authenticated as the link says.
    pub async fn connect(
        &self,
        link: &LinkConfig,
        addr: &str,
        timeout: Duration,
    ) -> Result<PeerConnection, super::source::SourceError> {
        let tcp = PeerConnection::tcp(addr, timeout).await?;
        let mut conn = match &self.tls {
            None => PeerConnection::over(addr, &self.client_id, Box::new(tcp)),
            Some(tls) => {
                let host = match &self.server_name {
                    Some(name) => name.clone(),
                    None => host_of(addr).to_string(),
                };
                let handshake = |reason: String| SecureError::Handshake {
                    addr: addr.to_string(),
                    reason,
                };
                let name = ServerName::try_from(host).map_err(|e| handshake(e.to_string()))?;
                let stream = tokio::time::timeout(timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| handshake(format!("no answer within {timeout:?}")))?
                    .map_err(|e| handshake(e.to_string()))?;
                PeerConnection::over(addr, &self.client_id, Box::new(stream))
            }
        };
        if link.security_protocol.sasl() {
            authenticate(&mut conn, link, timeout).await?;
        }
        Ok(conn)
    }
}

/// The host of `host:port` (`[v6]:port` too), the name TLS checks the certificate against.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn authenticate(
    conn: &mut PeerConnection,
    link: &LinkConfig,
    timeout: Duration,
) -> Result<(), super::source::SourceError> {
    let addr = conn.addr().to_string();
    let failed = |reason: String| SecureError::Auth {
        addr: addr.clone(),
        reason,
    };
    let (Some(mechanism), Some(username)) = (link.sasl_mechanism, &link.sasl_username) else {
        return Err(failed("no sasl_mechanism or sasl_username".into()).into());
    };
    let password = link.sasl_password().map_err(failed)?;
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let answer = conn
        .send(&handshake, SASL_HANDSHAKE_VERSION, timeout)
        .await?;
    if answer.error_code != 0 {
        let offered: Vec<_> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(failed(format!(
            "the source does not offer {} (it offers {offered:?})",
            mechanism.name()
        ))
        .into());
    }
    match mechanism {
        SaslMechanism::Plain => {
            let token = format!("\0{username}\0{password}").into_bytes();
            exchange(conn, token, timeout, &failed).await?;
        }
        SaslMechanism::Scram(m) => {
            let client = ScramClient::new(m, username);
            let server_first = exchange(conn, client.first(), timeout, &failed).await?;
            let (last, expected) = client
                .last(&password, &server_first)
                .map_err(|e| failed(e.into()))?;
            let server_final = exchange(conn, last, timeout, &failed).await?;
            client
                .check_final(&server_final, &expected)
                .map_err(|e| failed(e.into()))?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate round: the server's bytes, or its refusal as the error.
async fn exchange(
    conn: &mut PeerConnection,
    token: Vec<u8>,
    timeout: Duration,
    failed: &impl Fn(String) -> SecureError,
) -> Result<Vec<u8>, super::source::SourceError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
    let answer = conn
        .send(&request, SASL_AUTHENTICATE_VERSION, timeout)
        .await?;
    if answer.error_code != 0 {
        let message = answer.error_message.map(|m| m.to_string());
        return Err(failed(format!(
            "error code {}: {}",
            answer.error_code,
            message.as_deref().unwrap_or("no message")
        ))
        .into());
    }
    Ok(answer.auth_bytes.to_vec())
}

/// The client side of SCRAM (RFC 5802, RFC 7677), with the key derivations of
/// `auth::scram`, which the broker's server side uses too.
struct ScramClient {
    mechanism: ScramMechanism,
    first_bare: String,
    nonce: String,
}

impl ScramClient {
    fn new(mechanism: ScramMechanism, username: &str) -> ScramClient {
        let nonce = crate::auth::scram::server_nonce();
        let name = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            first_bare: format!("n={name},r={nonce}"),
            nonce,
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message for `server_first`, and the server signature to expect.
    fn last(
        &self,
        password: &str,
        server_first: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let attr = |key: &str| text.split(',').find_map(|a| a.strip_prefix(key));
        let nonce = attr("r=").ok_or("server-first has no nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server-first's nonce does not extend ours");
        }
        let salt = attr("s=")
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or("server-first has no salt")?;
        let iterations: u32 = attr("i=")
            .and_then(|i| i.parse().ok())
            // Kafka's own bound: a source cannot make the link spin on PBKDF2.
            .filter(|i| (1..=crate::auth::scram::MAX_ITERATIONS).contains(i))
            .ok_or("server-first has no valid iteration count")?;
        let m = self.mechanism;
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let expected = m.hmac(&m.hmac(&salted, b"Server Key"), auth_message.as_bytes());
        let last = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((last.into_bytes(), expected))
    }

    /// Checks the server-final message: a source that does not know the password's keys
    /// cannot make it, so the link knows it talks to the cluster it means.
    fn check_final(&self, server_final: &[u8], expected: &[u8]) -> Result<(), &'static str> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8")?;
        if text.starts_with("e=") {
            return Err("the source refused the proof");
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or("server-final has no signature")?;
        if bool::from(signature.ct_eq(expected)) {
            Ok(())
        } else {
            Err("the source's server signature is wrong")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{parse_client_first, ScramCredential, ScramServer};

    fn run(password: &str) -> Result<(), String> {
        let m = ScramMechanism::Sha512;
        let credential = ScramCredential::from_password(m, b"secret", b"salty", 4096);
        let client = ScramClient::new(m, "link,user");
        let first = parse_client_first(&client.first()).map_err(|e| e.to_string())?;
        assert_eq!(first.username, "link,user");
        let (server, server_first) = ScramServer::start(m, first, credential, "snonce");
        let (last, expected) = client.last(password, &server_first)?;
        let server_final = server.finish(&last).map_err(|e| e.to_string())?;
        client
            .check_final(&server_final, &expected)
            .map_err(String::from)
    }

    #[test]
    fn the_client_authenticates_to_the_brokers_server_side() {
        assert_eq!(run("secret"), Ok(()));
        assert!(run("wrong").is_err());
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        let client = ScramClient::new(ScramMechanism::Sha256, "u");
        let bad = format!("v={}", BASE64.encode([0u8; 32]));
        assert!(client.check_final(bad.as_bytes(), &[1u8; 32]).is_err());
        assert!(client.check_final(b"e=invalid-proof", &[1u8; 32]).is_err());
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("localhost:9093"), "localhost");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }
}
