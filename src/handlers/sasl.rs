//! SaslHandshake and SaslAuthenticate: drive the connection's [`SaslExchange`] and, on
//! success, set the session's principal. A failure is answered and then, because the
//! exchange is left failed, the connection closes.
//!
//! [`SaslExchange`]: crate::auth::SaslExchange

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::str_bytes;
use super::Session;
use crate::auth::sasl::Step;
use crate::auth::SaslMechanism;
use crate::broker::Broker;
use crate::error::BrokerError;

fn enabled(broker: &Broker) -> &[SaslMechanism] {
    broker
        .config
        .sasl
        .as_ref()
        .map(|s| s.mechanisms.as_slice())
        .unwrap_or_default()
}

/// SaslHandshake v1 announced SaslAuthenticate; after v0 tokens come as bare frames.
const FIRST_HANDSHAKE_VERSION_WITH_AUTHENTICATE: i16 = 1;

pub fn handshake(
    broker: &Broker,
    session: &mut Session,
    request: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let mechanisms = enabled(broker);
    // An answer lists the enabled mechanisms, so a client can tell what it may ask for.
    let response = SaslHandshakeResponse::default()
        .with_mechanisms(mechanisms.iter().map(|m| str_bytes(m.name())).collect());
    let bare_tokens = version < FIRST_HANDSHAKE_VERSION_WITH_AUTHENTICATE;
    match session
        .sasl
        .handshake(mechanisms, request.mechanism.as_str(), bare_tokens)
    {
        Ok(()) => response,
        // A handshake out of turn is answered, as Kafka does, without the mechanisms.
        Err(err @ crate::auth::AuthError::IllegalSaslState(_)) => {
            tracing::info!(peer = %session.peer, "SASL handshake refused: {err}");
            response
                .with_mechanisms(Vec::new())
                .with_error_code(BrokerError::from(err).code())
        }
        Err(err) => {
            tracing::info!(peer = %session.peer, "SASL handshake refused: {err}");
            response.with_error_code(BrokerError::from(err).code())
        }
    }
}

pub fn authenticate(
    broker: &Broker,
    session: &mut Session,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    // Re-authentication (KIP-368) is not offered: a lifetime of 0 tells the client so.
    let response = SaslAuthenticateResponse::default().with_session_lifetime_ms(0);
    match session
        .sasl
        .authenticate(&broker.credentials, &request.auth_bytes)
    {
        Ok(Step::Challenge(bytes)) => response.with_auth_bytes(Bytes::from(bytes)),
        Ok(Step::Authenticated { principal, reply }) => {
            tracing::debug!(peer = %session.peer, %principal, "SASL authentication succeeded");
            session.principal = principal;
            response.with_auth_bytes(Bytes::from(reply))
        }
        Err(err) => {
            tracing::info!(peer = %session.peer, "SASL authentication failed: {err}");
            let err = BrokerError::from(err);
            response
                .with_error_code(err.code())
                .with_error_message(err.message().map(str_bytes))
        }
    }
}

/// A bare token after SaslHandshake v0: the reply to send back as a bare frame (empty
/// when PLAIN succeeds), or `None` when authentication failed, which Kafka's legacy
/// framing can only signal by closing the connection.
pub fn bare_token(broker: &Broker, session: &mut Session, token: &[u8]) -> Option<Vec<u8>> {
    match session.sasl.authenticate(&broker.credentials, token) {
        Ok(Step::Challenge(bytes)) => Some(bytes),
        Ok(Step::Authenticated { principal, reply }) => {
            tracing::debug!(peer = %session.peer, %principal, "SASL authentication succeeded");
            session.principal = principal;
            Some(reply)
        }
        Err(err) => {
            tracing::info!(peer = %session.peer, "SASL authentication failed: {err}");
            None
        }
    }
}
