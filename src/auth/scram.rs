//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the key derivations that make and
//! check a stored credential, and the server side of the exchange.
//!
//! The primitives (SHA-2, HMAC, PBKDF2) come from RustCrypto; this module only composes
//! them as the RFC describes and parses the messages:
//!
//! ```text
//! client-first  n,,n=user,r=cnonce
//! server-first  r=cnonce+snonce,s=base64(salt),i=iterations
//! client-final  c=base64(gs2-header),r=cnonce+snonce,p=base64(ClientProof)
//! server-final  v=base64(ServerSignature)      (or e=invalid-proof)
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

// The mechanisms and the stored credential are plain data the config parses, so they are
// declared in config (which imports nothing of ours); this module adds what SCRAM computes.
pub use crate::config::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

impl ScramMechanism {
    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// `SaltedPassword := Hi(Normalize(password), salt, i)`, Hi being PBKDF2 with HMAC.
    /// Passwords are used as given (no SASLprep), as Kafka does.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramMechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

impl ScramCredential {
    /// The credential for a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        iterations: u32,
        salted: &[u8],
    ) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, salt, iterations, &salted)
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checks this).
    pub fn verifies_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let stored_key = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
        bool::from(stored_key.ct_eq(&self.stored_key))
    }
}

/// Why an exchange failed. Every variant ends the connection with SASL_AUTHENTICATION_FAILED;
/// the text is for the broker log and the response's error message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("Authentication failed: Invalid user credentials")]
    UnknownUser,
    #[error("invalid nonce in client-final message")]
    Nonce,
    #[error("Authentication failed: Invalid user credentials")]
    InvalidProof,
}

/// The server side of one exchange, after the client-first message.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    username: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The parts of a client-first message the server needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    pub username: String,
    pub authzid: Option<String>,
    pub nonce: String,
    gs2_header: String,
    bare: String,
}

/// Parses `gs2-header client-first-message-bare`.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let binding = parts.next().ok_or(ScramError::Malformed("empty"))?;
    match binding {
        "n" | "y" => {}
        b if b.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad gs2 channel-binding flag")),
    }
    let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape(
            a.strip_prefix("a=")
                .ok_or(ScramError::Malformed("bad authzid"))?,
        )?),
    };
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
    let gs2_header = text[..text.len() - bare.len()].to_owned();
    let mut attributes = bare.split(',');
    let username = attributes
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no username"))?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or(ScramError::Malformed("no nonce"))?;
    // Anything after the nonce is an extension (Kafka's `tokenauth` among them); none is needed.
    Ok(ClientFirst {
        username: unescape(username)?,
        authzid,
        nonce: nonce.to_owned(),
        gs2_header,
        bare: bare.to_owned(),
    })
}

/// `=2C` and `=3D` stand for `,` and `=` in SCRAM names.
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A fresh server nonce: 128 random bits in hex (printable, never a comma).
pub fn server_nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ScramServer {
    /// Starts the exchange for a known user; `server_nonce` is appended to the client's.
    pub fn start(
        mechanism: ScramMechanism,
        first: ClientFirst,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> (ScramServer, Vec<u8>) {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        let server = ScramServer {
            mechanism,
            username: first.username,
            credential,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
        };
        (server, reply)
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client-final message's proof; on success returns the server-final message.
    pub fn finish(&self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed(
                "channel binding differs from the gs2 header",
            ));
        }
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        // Kafka only checks that the nonce ends with the one it sent, and librdkafka 2.0
        // relies on that: it sends its own nonce again in front. The proof covers the
        // message as sent, so this loosening admits no other password.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let m = self.mechanism;
        let client_signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidProof);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// The client side, for tests: what a Kafka client computes from the password.
#[cfg(test)]
pub(crate) mod client {
    use super::*;

    pub fn final_message(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        final_message_with_prefix(mechanism, password, client_first_bare, server_first, "")
    }

    /// As [`final_message`], sending `prefix` before the nonce as librdkafka 2.0 does.
    pub fn final_message_with_prefix(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        prefix: &str,
    ) -> (String, Vec<u8>) {
        let attr = |key: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(key))
                .unwrap()
                .to_owned()
        };
        let nonce = attr("r=");
        let salt = BASE64.decode(attr("s=")).unwrap();
        let iterations: u32 = attr("i=").parse().unwrap();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={prefix}{nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_signature = mechanism.hmac(
            &mechanism.hmac(&salted, b"Server Key"),
            auth_message.as_bytes(),
        );
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_test_vector() {
        let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let first = parse_client_first(client_first).unwrap();
        assert_eq!(first.username, "user");
        let (server, reply) = ScramServer::start(
            ScramMechanism::Sha256,
            first,
            credential,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            reply,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let server_final = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    fn exchange(
        mechanism: ScramMechanism,
        stored_password: &str,
        client_password: &str,
    ) -> Result<(), ScramError> {
        let credential = ScramCredential::from_password(
            mechanism,
            stored_password.as_bytes(),
            b"salt-of-alice",
            4096,
        );
        let first = parse_client_first(b"n,,n=alice,r=abcdefgh").unwrap();
        let (server, reply) = ScramServer::start(mechanism, first, credential, &server_nonce());
        let server_first = String::from_utf8(reply).unwrap();
        let (final_message, expected_signature) = client::final_message(
            mechanism,
            client_password,
            "n=alice,r=abcdefgh",
            &server_first,
        );
        let server_final = server.finish(final_message.as_bytes())?;
        assert_eq!(
            server_final,
            format!("v={}", BASE64.encode(expected_signature)).into_bytes()
        );
        Ok(())
    }

    /// The RFC 5802 flow end to end, client and server each from their own secrets.
    #[test]
    fn full_exchange_accepts_the_right_password_only() {
        for mechanism in ScramMechanism::ALL {
            exchange(mechanism, "s3cret", "s3cret").unwrap();
            assert_eq!(
                exchange(mechanism, "s3cret", "wrong"),
                Err(ScramError::InvalidProof)
            );
        }
    }

    #[test]
    fn a_nonce_the_server_did_not_issue_is_rejected() {
        let m = ScramMechanism::Sha512;
        let credential = ScramCredential::from_password(m, b"pw", b"salt", 4096);
        let first = parse_client_first(b"n,,n=bob,r=xyz").unwrap();
        let (server, _) = ScramServer::start(m, first, credential, "SERVER");
        let (message, _) =
            client::final_message(m, "pw", "n=bob,r=xyz", "r=xyzOTHER,s=c2FsdA==,i=4096");
        assert_eq!(server.finish(message.as_bytes()), Err(ScramError::Nonce));
    }

    /// librdkafka 2.0 repeats its nonce in front of the combined one; Kafka accepts that.
    #[test]
    fn a_client_final_nonce_that_ends_with_the_issued_one_is_accepted() {
        let m = ScramMechanism::Sha256;
        let credential = ScramCredential::from_password(m, b"pw", b"salt", 4096);
        let first = parse_client_first(b"n,,n=bob,r=xyz").unwrap();
        let (server, reply) = ScramServer::start(m, first, credential, "SERVER");
        let server_first = String::from_utf8(reply).unwrap();
        let (message, _) =
            client::final_message_with_prefix(m, "pw", "n=bob,r=xyz", &server_first, "xyz");
        assert!(message.starts_with("c=biws,r=xyzxyzSERVER,"));
        server.finish(message.as_bytes()).unwrap();
        let (wrong, _) =
            client::final_message_with_prefix(m, "pw", "n=bob,r=xyz", &server_first, "");
        let tampered = wrong.replace("r=xyzSERVER", "r=xyzSERVERx");
        assert_eq!(server.finish(tampered.as_bytes()), Err(ScramError::Nonce));
    }

    #[test]
    fn client_first_parsing() {
        let first = parse_client_first(b"n,a=al=2Cice,n=al=3Dice,r=nonce,ext=1").unwrap();
        assert_eq!(first.username, "al=ice");
        assert_eq!(first.authzid.as_deref(), Some("al,ice"));
        assert_eq!(first.bare, "n=al=3Dice,r=nonce,ext=1");
        assert_eq!(first.gs2_header, "n,a=al=2Cice,");
        assert_eq!(
            parse_client_first(b"p=tls-unique,,n=a,r=b"),
            Err(ScramError::ChannelBinding)
        );
        assert!(parse_client_first(b"n,,n=a").is_err());
        assert!(parse_client_first(b"n,,n=a=2X,r=b").is_err());
    }

    #[test]
    fn plain_passwords_verify_against_the_stored_credential() {
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, b"pw", b"salt", 4096);
        assert!(credential.verifies_password(ScramMechanism::Sha512, b"pw"));
        assert!(!credential.verifies_password(ScramMechanism::Sha512, b"pW"));
    }
}
