//! The client side of SASL for tests: config blocks that seed SCRAM users, the SCRAM
//! client computations (RFC 5802), and logging a [`Connection`] in with PLAIN or SCRAM.

use anyhow::{bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use sha2::{Digest, Sha256, Sha512};

use crate::client::str_bytes;
use crate::Connection;

pub const ITERATIONS: u32 = 4096;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    Sha256,
    Sha512,
}

impl Scram {
    pub const ALL: [Scram; 2] = [Scram::Sha256, Scram::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Scram::Sha256 => "SCRAM-SHA-256",
            Scram::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The code of the SCRAM credential APIs.
    pub fn code(self) -> i8 {
        match self {
            Scram::Sha256 => 1,
            Scram::Sha512 => 2,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Scram::Sha256 => Sha256::digest(data).to_vec(),
            Scram::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Scram::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Scram::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; if self == Scram::Sha256 { 32 } else { 64 }];
        match self {
            Scram::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out)
            }
            Scram::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out)
            }
        }
        out
    }
}

/// A `[[sasl.scram_user]]` block for the broker config: keys derived here, no password.
pub fn scram_user(name: &str, mechanism: Scram, password: &str) -> String {
    let salt = format!("salt-of-{name}-{}", mechanism.name()).into_bytes();
    let salted = mechanism.salted_password(password, &salt, ITERATIONS);
    let stored_key = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
    let server_key = mechanism.hmac(&salted, b"Server Key");
    format!(
        "[[sasl.scram_user]]\nname = \"{name}\"\nmechanism = \"{}\"\nsalt = \"{}\"\niterations = {ITERATIONS}\n\
         stored_key = \"{}\"\nserver_key = \"{}\"\n",
        mechanism.name(),
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key),
    )
}

/// The client nonce every test login sends.
pub const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";

/// From the server-first message: the client-final message, and the server-final one
/// the server must answer with.
pub fn scram_client_final(
    mechanism: Scram,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> Result<(String, String)> {
    let attr = |key: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(key))
            .with_context(|| format!("no {key} in server-first {server_first}"))
    };
    let nonce = attr("r=")?;
    ensure!(
        nonce.starts_with(CLIENT_NONCE) && nonce.len() > CLIENT_NONCE.len(),
        "server nonce {nonce}"
    );
    let salt = BASE64.decode(attr("s=")?)?;
    let iterations: u32 = attr("i=")?.parse()?;
    let salted = mechanism.salted_password(password, &salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = mechanism.hmac(&salted, b"Server Key");
    let server_final = format!(
        "v={}",
        BASE64.encode(mechanism.hmac(&server_key, auth_message.as_bytes()))
    );
    Ok((
        format!("{without_proof},p={}", BASE64.encode(proof)),
        server_final,
    ))
}

impl Connection {
    pub fn sasl_handshake(&mut self, mechanism: &str) -> Result<SaslHandshakeResponse> {
        self.sasl_handshake_at(mechanism, 1)
    }

    pub fn sasl_handshake_at(
        &mut self,
        mechanism: &str,
        version: i16,
    ) -> Result<SaslHandshakeResponse> {
        self.send(
            &SaslHandshakeRequest::default().with_mechanism(str_bytes(mechanism)),
            version,
        )
    }

    pub fn sasl_authenticate(
        &mut self,
        token: &[u8],
        version: i16,
    ) -> Result<SaslAuthenticateResponse> {
        let request =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        self.send(&request, version)
    }

    /// Handshake and PLAIN token; returns the SaslAuthenticate response.
    pub fn login_plain(
        &mut self,
        user: &str,
        password: &str,
        version: i16,
    ) -> Result<SaslAuthenticateResponse> {
        let handshake = self.sasl_handshake("PLAIN")?;
        ensure!(handshake.error_code == 0, "PLAIN handshake: {handshake:?}");
        self.sasl_authenticate(format!("\0{user}\0{password}").as_bytes(), version)
    }

    /// The whole SCRAM exchange. Returns the response that ended it: the server-first
    /// one if that failed, else the server-final one, whose signature is checked here.
    pub fn login_scram(
        &mut self,
        mechanism: Scram,
        user: &str,
        password: &str,
        version: i16,
    ) -> Result<SaslAuthenticateResponse> {
        let handshake = self.sasl_handshake(mechanism.name())?;
        ensure!(
            handshake.error_code == 0,
            "{} handshake: {handshake:?}",
            mechanism.name()
        );
        let client_first_bare = format!("n={user},r={CLIENT_NONCE}");
        let first =
            self.sasl_authenticate(format!("n,,{client_first_bare}").as_bytes(), version)?;
        if first.error_code != 0 {
            return Ok(first);
        }
        let server_first = std::str::from_utf8(&first.auth_bytes)?;
        let (client_final, server_final) =
            scram_client_final(mechanism, password, &client_first_bare, server_first)?;
        let last = self.sasl_authenticate(client_final.as_bytes(), version)?;
        if last.error_code == 0 && last.auth_bytes.as_ref() != server_final.as_bytes() {
            bail!(
                "server-final {:?} != {server_final}",
                String::from_utf8_lossy(&last.auth_bytes)
            );
        }
        Ok(last)
    }
}
