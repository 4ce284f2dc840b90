//! The SASL state of one connection on a SASL listener, as Kafka's
//! `SaslServerAuthenticator` runs it: a handshake picks a mechanism, then the mechanism's
//! tokens go back and forth in SaslAuthenticate requests until the client is known.
//! Any failure is final: the broker answers it and closes the connection.

use super::credentials::CredentialStore;
use super::scram::{self, ScramError, ScramMechanism, ScramServer};
use super::{AuthError, Principal};

pub use crate::config::SaslMechanism;

#[derive(Debug)]
enum State {
    /// The listener does not use SASL.
    NotRequired,
    AwaitingHandshake,
    AwaitingToken(SaslMechanism),
    /// SCRAM server-first sent; waiting for client-final.
    AwaitingScramFinal(Box<ScramServer>),
    Authenticated,
    /// Authentication failed: the connection closes after the response.
    Failed,
}

/// What a SaslAuthenticate token produced.
#[derive(Debug)]
pub enum Step {
    /// More to exchange: send these bytes back.
    Challenge(Vec<u8>),
    /// The client is `principal`; send the final bytes (empty for PLAIN).
    Authenticated {
        principal: Principal,
        reply: Vec<u8>,
    },
}

#[derive(Debug)]
pub struct SaslExchange {
    state: State,
    /// The handshake was v0: tokens arrive as bare frames, not SaslAuthenticate requests.
    bare_tokens: bool,
}

impl SaslExchange {
    pub fn new(required: bool) -> SaslExchange {
        SaslExchange {
            state: if required {
                State::AwaitingHandshake
            } else {
                State::NotRequired
            },
            bare_tokens: false,
        }
    }

    /// Whether requests other than ApiVersions and the SASL ones may be served.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::NotRequired | State::Authenticated)
    }

    /// Whether the next frames are bare SASL tokens (after a SaslHandshake v0).
    pub fn expects_bare_tokens(&self) -> bool {
        self.bare_tokens
            && matches!(
                self.state,
                State::AwaitingToken(_) | State::AwaitingScramFinal(_)
            )
    }

    /// Whether the connection must close once the current response is sent.
    pub fn has_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// SaslHandshake: chooses `mechanism` if the listener enables it. After a v0 handshake
    /// (`bare_tokens`) the tokens come as bare frames.
    pub fn handshake(
        &mut self,
        enabled: &[SaslMechanism],
        mechanism: &str,
        bare_tokens: bool,
    ) -> Result<(), AuthError> {
        if !matches!(self.state, State::AwaitingHandshake) {
            return Err(self.illegal("SaslHandshake"));
        }
        match enabled.iter().find(|m| m.name() == mechanism) {
            Some(&m) => {
                self.state = State::AwaitingToken(m);
                self.bare_tokens = bare_tokens;
                Ok(())
            }
            None => {
                self.state = State::Failed;
                Err(AuthError::UnsupportedMechanism(format!(
                    "Unsupported SASL mechanism {mechanism}"
                )))
            }
        }
    }

    /// SaslAuthenticate: feeds one token of the chosen mechanism.
    pub fn authenticate(
        &mut self,
        credentials: &CredentialStore,
        token: &[u8],
    ) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let step = match state {
            State::AwaitingToken(SaslMechanism::Plain) => {
                plain(credentials, token).map(|principal| Step::Authenticated {
                    principal,
                    reply: Vec::new(),
                })
            }
            State::AwaitingToken(SaslMechanism::Scram(m)) => scram_first(credentials, m, token)
                .map(|(server, reply)| {
                    self.state = State::AwaitingScramFinal(Box::new(server));
                    Step::Challenge(reply)
                }),
            State::AwaitingScramFinal(server) => server
                .finish(token)
                .map(|reply| Step::Authenticated {
                    principal: Principal::user(server.username()),
                    reply,
                })
                .map_err(|err| failed(server.mechanism().name(), err)),
            other => {
                self.state = other;
                let err = self.illegal("SaslAuthenticate");
                return Err(err);
            }
        };
        if let Ok(Step::Authenticated { .. }) = &step {
            self.state = State::Authenticated;
        }
        step
    }

    /// A SASL request out of turn. Once authenticated this is what Kafka answers too, as it
    /// does not re-authenticate without KIP-368.
    fn illegal(&mut self, what: &str) -> AuthError {
        let message = match self.state {
            State::NotRequired => format!("{what} received on a listener without SASL"),
            State::Authenticated => format!("{what} received after successful authentication"),
            _ => format!("Unexpected {what} during SASL authentication"),
        };
        if !matches!(self.state, State::NotRequired | State::Authenticated) {
            self.state = State::Failed;
        }
        AuthError::IllegalSaslState(message)
    }
}

fn failed(mechanism: &str, err: ScramError) -> AuthError {
    AuthError::AuthenticationFailed(format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}: {err}"
    ))
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, checked against the user's SCRAM credential.
fn plain(credentials: &CredentialStore, token: &[u8]) -> Result<Principal, AuthError> {
    let invalid =
        |reason: &str| AuthError::AuthenticationFailed(format!("Authentication failed: {reason}"));
    let mut parts = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("Invalid SASL/PLAIN response: expected 3 tokens"));
    };
    let user = std::str::from_utf8(user).map_err(|_| invalid("username is not UTF-8"))?;
    if user.is_empty() {
        return Err(invalid(
            "Invalid SASL/PLAIN response: username not specified",
        ));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(invalid(
            "Client requested an authorization id that is different from username",
        ));
    }
    let verified = credentials
        .of_user(user)
        .iter()
        .any(|(m, credential)| credential.verifies_password(*m, password));
    if verified {
        Ok(Principal::user(user))
    } else {
        Err(invalid("Invalid username or password"))
    }
}

fn scram_first(
    credentials: &CredentialStore,
    mechanism: ScramMechanism,
    token: &[u8],
) -> Result<(ScramServer, Vec<u8>), AuthError> {
    let first = scram::parse_client_first(token).map_err(|err| failed(mechanism.name(), err))?;
    if first.authzid.as_ref().is_some_and(|a| *a != first.username) {
        return Err(AuthError::AuthenticationFailed(
            "Authentication failed: Client requested an authorization id that is different from username".into(),
        ));
    }
    let credential = credentials
        .get(&first.username, mechanism)
        .ok_or_else(|| failed(mechanism.name(), ScramError::UnknownUser))?;
    Ok(ScramServer::start(
        mechanism,
        first,
        credential,
        &scram::server_nonce(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramCredential;
    use crate::config::ScramUserConfig;

    fn store(dir: &std::path::Path) -> CredentialStore {
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pw", b"salt", 4096);
        let _ = dir;
        CredentialStore::replicated(&[ScramUserConfig::new(
            "alice",
            ScramMechanism::Sha256,
            credential,
        )])
    }

    #[test]
    fn plain_checks_the_password_and_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut ok = SaslExchange::new(true);
        assert!(!ok.is_complete());
        ok.handshake(&[SaslMechanism::Plain], "PLAIN", false)
            .unwrap();
        let step = ok.authenticate(&store, b"\0alice\0pw").unwrap();
        assert!(
            matches!(step, Step::Authenticated { ref principal, .. } if principal.as_str() == "User:alice")
        );
        assert!(ok.is_complete());
        assert!(matches!(
            ok.handshake(&[SaslMechanism::Plain], "PLAIN", false),
            Err(AuthError::IllegalSaslState(_))
        ));

        let mut bad = SaslExchange::new(true);
        bad.handshake(&[SaslMechanism::Plain], "PLAIN", true)
            .unwrap();
        assert!(bad.expects_bare_tokens());
        assert!(matches!(
            bad.authenticate(&store, b"\0alice\0nope"),
            Err(AuthError::AuthenticationFailed(_))
        ));
        assert!(bad.has_failed() && !bad.is_complete() && !bad.expects_bare_tokens());
    }

    #[test]
    fn unknown_mechanisms_and_tokens_before_the_handshake_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut exchange = SaslExchange::new(true);
        assert!(matches!(
            exchange.handshake(&[SaslMechanism::Plain], "GSSAPI", false),
            Err(AuthError::UnsupportedMechanism(_))
        ));
        assert!(exchange.has_failed());
        let mut early = SaslExchange::new(true);
        assert!(matches!(
            early.authenticate(&store, b"x"),
            Err(AuthError::IllegalSaslState(_))
        ));
        assert!(early.has_failed());
    }
}
