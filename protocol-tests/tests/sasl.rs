//! SASL listeners: the handshake, PLAIN and SCRAM-SHA-256/512 at every served version,
//! failures that close the connection, nothing served before authentication, and the
//! SCRAM credential APIs with their persistence.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest,
    DescribeUserScramCredentialsRequest, MetadataRequest,
};
use samsa_protocol_tests::client::{str_bytes, versions};
use samsa_protocol_tests::free_port;
use samsa_protocol_tests::sasl::{
    scram_client_final, scram_user, Scram, CLIENT_NONCE, ILLEGAL_SASL_STATE, ITERATIONS,
    SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// A broker with a SASL_PLAINTEXT listener; alice has both SCRAM credentials, bob SHA-512.
fn start() -> (BrokerProcess, String) {
    let port = free_port();
    let config = format!(
        "[[listener]]\nname = \"sasl\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"SASL_PLAINTEXT\"\n\
         [sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]\n{}{}{}",
        scram_user("alice", Scram::Sha256, "alice-pw"),
        scram_user("alice", Scram::Sha512, "alice-pw"),
        scram_user("bob", Scram::Sha512, "bob-pw"),
    );
    (
        BrokerProcess::start(&config).unwrap(),
        format!("127.0.0.1:{port}"),
    )
}

/// Whether the connection serves a Metadata request (only an authenticated one does).
fn serves_metadata(conn: &mut Connection) -> bool {
    conn.send(&MetadataRequest::default().with_topics(None), 12)
        .is_ok()
}

#[test]
fn handshake_lists_the_enabled_mechanisms_and_refuses_others() {
    let (_broker, addr) = start();
    let mut conn = Connection::open(&addr).unwrap();
    let answer = conn.sasl_handshake("SCRAM-SHA-512").unwrap();
    assert_eq!(answer.error_code, 0);
    let listed: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);

    let mut conn = Connection::open(&addr).unwrap();
    let answer = conn.sasl_handshake("GSSAPI").unwrap();
    assert_eq!(answer.error_code, UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(
        answer.mechanisms.len(),
        3,
        "the refusal still lists what is enabled"
    );
    assert!(conn.is_closed_by_peer());
}

#[test]
fn plain_accepts_the_right_password_only() {
    let (_broker, addr) = start();
    for version in versions(ApiKey::SaslAuthenticate) {
        let mut conn = Connection::open(&addr).unwrap();
        let answer = conn.login_plain("alice", "alice-pw", version).unwrap();
        assert_eq!(answer.error_code, 0, "v{version}: {answer:?}");
        assert!(serves_metadata(&mut conn), "v{version}");
    }
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-pw"),
        ("bob", "alice-pw"),
    ] {
        let mut conn = Connection::open(&addr).unwrap();
        let answer = conn.login_plain(user, password, 2).unwrap();
        assert_eq!(
            answer.error_code, SASL_AUTHENTICATION_FAILED,
            "{user}/{password}"
        );
        assert!(answer.error_message.is_some());
        assert!(conn.is_closed_by_peer(), "{user}/{password}");
    }
}

#[test]
fn scram_exchanges_succeed_at_every_version() {
    let (_broker, addr) = start();
    for mechanism in Scram::ALL {
        for version in versions(ApiKey::SaslAuthenticate) {
            let mut conn = Connection::open(&addr).unwrap();
            let answer = conn
                .login_scram(mechanism, "alice", "alice-pw", version)
                .unwrap();
            assert_eq!(
                answer.error_code,
                0,
                "{} v{version}: {answer:?}",
                mechanism.name()
            );
            // No re-authentication (KIP-368): the session never expires.
            assert_eq!(answer.session_lifetime_ms, 0);
            assert!(
                serves_metadata(&mut conn),
                "{} v{version}",
                mechanism.name()
            );
        }
    }
}

#[test]
fn scram_with_a_wrong_password_or_user_fails_and_closes() {
    let (_broker, addr) = start();
    let attempts = [
        (Scram::Sha256, "alice", "wrong"),
        (Scram::Sha512, "alice", "wrong"),
        (Scram::Sha512, "bob", "alice-pw"),
        (Scram::Sha256, "bob", "bob-pw"), // bob has no SHA-256 credential
        (Scram::Sha256, "nobody", "x"),
    ];
    for (mechanism, user, password) in attempts {
        let mut conn = Connection::open(&addr).unwrap();
        let answer = conn.login_scram(mechanism, user, password, 2).unwrap();
        assert_eq!(
            answer.error_code,
            SASL_AUTHENTICATION_FAILED,
            "{} {user}",
            mechanism.name()
        );
        assert!(conn.is_closed_by_peer(), "{} {user}", mechanism.name());
    }
}

/// Before SaslAuthenticate (SaslHandshake v0) tokens went as bare length-prefixed frames.
#[test]
fn after_a_v0_handshake_tokens_are_bare_frames() {
    let (_broker, addr) = start();
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(conn.sasl_handshake_at("PLAIN", 0).unwrap().error_code, 0);
    conn.send_frame(b"\0alice\0alice-pw").unwrap();
    assert!(
        conn.read_frame().unwrap().is_empty(),
        "PLAIN succeeds with an empty token"
    );
    assert!(serves_metadata(&mut conn));

    for mechanism in Scram::ALL {
        let mut conn = Connection::open(&addr).unwrap();
        assert_eq!(
            conn.sasl_handshake_at(mechanism.name(), 0)
                .unwrap()
                .error_code,
            0
        );
        let bare = format!("n=alice,r={CLIENT_NONCE}");
        conn.send_frame(format!("n,,{bare}").as_bytes()).unwrap();
        let server_first = conn.read_frame().unwrap();
        let server_first = std::str::from_utf8(&server_first).unwrap();
        let (client_final, server_final) =
            scram_client_final(mechanism, "alice-pw", &bare, server_first).unwrap();
        conn.send_frame(client_final.as_bytes()).unwrap();
        assert_eq!(
            conn.read_frame().unwrap(),
            server_final.as_bytes(),
            "{}",
            mechanism.name()
        );
        assert!(serves_metadata(&mut conn), "{}", mechanism.name());
    }

    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(conn.sasl_handshake_at("PLAIN", 0).unwrap().error_code, 0);
    conn.send_frame(b"\0alice\0wrong").unwrap();
    assert!(
        conn.is_closed_by_peer(),
        "legacy framing can only signal failure by closing"
    );
}

#[test]
fn nothing_but_version_discovery_and_sasl_is_served_before_authentication() {
    let (_broker, addr) = start();
    let mut conn = Connection::open(&addr).unwrap();
    let versions = conn.send(&ApiVersionsRequest::default(), 2).unwrap();
    assert_eq!(versions.error_code, 0);
    assert!(!serves_metadata(&mut conn));
    assert!(conn.is_closed_by_peer());

    // Between handshake and authentication too.
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(conn.sasl_handshake("PLAIN").unwrap().error_code, 0);
    assert!(!serves_metadata(&mut conn));
    assert!(conn.is_closed_by_peer());

    // A token before any handshake is out of turn.
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.sasl_authenticate(b"\0alice\0alice-pw", 2)
            .unwrap()
            .error_code,
        ILLEGAL_SASL_STATE
    );
    assert!(conn.is_closed_by_peer());
}

#[test]
fn sasl_out_of_place_is_an_illegal_state_but_keeps_the_connection() {
    let (broker, addr) = start();
    let mut plain = broker.connect().unwrap();
    assert_eq!(
        plain.sasl_handshake("PLAIN").unwrap().error_code,
        ILLEGAL_SASL_STATE
    );
    assert!(serves_metadata(&mut plain));

    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.login_plain("alice", "alice-pw", 2).unwrap().error_code,
        0
    );
    assert_eq!(
        conn.sasl_handshake("PLAIN").unwrap().error_code,
        ILLEGAL_SASL_STATE
    );
    assert!(serves_metadata(&mut conn));
}

fn upsert(
    user: &str,
    mechanism: Scram,
    password: &str,
    iterations: i32,
) -> ScramCredentialUpsertion {
    let salt = format!("fresh-salt-{user}").into_bytes();
    ScramCredentialUpsertion::default()
        .with_name(str_bytes(user))
        .with_mechanism(mechanism.code())
        .with_iterations(iterations)
        .with_salted_password(Bytes::from(mechanism.salted_password(
            password,
            &salt,
            iterations.max(1) as u32,
        )))
        .with_salt(Bytes::from(salt))
}

/// (user, error, [(mechanism, iterations)]) per described user.
type UserCredentials = (String, i16, Vec<(i8, i32)>);

fn describe(conn: &mut Connection, users: Option<&[&str]>) -> Vec<UserCredentials> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(str_bytes(n)))
            .collect()
    }));
    let response = conn.send(&request, 0).unwrap();
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .results
        .into_iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations))
                .collect();
            (r.user.to_string(), r.error_code, infos)
        })
        .collect()
}

#[test]
fn scram_credentials_are_altered_described_and_persisted() {
    let (mut broker, addr) = start();
    let mut admin = broker.connect().unwrap();
    let it = ITERATIONS as i32;
    let alter = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        upsert("carol", Scram::Sha256, "carol-pw", it),
        upsert("dave", Scram::Sha256, "x", 100),
        upsert("erin", Scram::Sha512, "x", it),
        upsert("erin", Scram::Sha512, "y", it),
    ]);
    let results = admin.send(&alter, 0).unwrap().results;
    let codes: Vec<(String, i16)> = results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("carol".into(), 0),
            ("dave".into(), UNACCEPTABLE_CREDENTIAL),
            ("erin".into(), DUPLICATE_RESOURCE)
        ]
    );
    assert_eq!(
        describe(&mut admin, Some(&["carol", "zed"])),
        [
            ("carol".into(), 0, vec![(1, it)]),
            ("zed".into(), RESOURCE_NOT_FOUND, vec![])
        ]
    );
    let everyone: Vec<String> = describe(&mut admin, None)
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(everyone, ["alice", "bob", "carol"]);

    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.login_scram(Scram::Sha256, "carol", "carol-pw", 2)
            .unwrap()
            .error_code,
        0
    );
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.login_plain("carol", "carol-pw", 2).unwrap().error_code,
        0
    );

    broker.restart().unwrap();
    // Kept in the metadata log (its entries and snapshots), never as the password.
    let stored = every_file_under(&broker.data_dir.path().join("data/__cluster_metadata"));
    assert!(!stored.contains("carol-pw") && stored.contains("carol"));
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.login_scram(Scram::Sha256, "carol", "carol-pw", 2)
            .unwrap()
            .error_code,
        0
    );

    let mut admin = broker.connect().unwrap();
    let delete = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(str_bytes("carol"))
            .with_mechanism(1),
        ScramCredentialDeletion::default()
            .with_name(str_bytes("bob"))
            .with_mechanism(1),
    ]);
    let codes: Vec<i16> = admin
        .send(&delete, 0)
        .unwrap()
        .results
        .iter()
        .map(|r| r.error_code)
        .collect();
    assert_eq!(
        codes,
        [0, RESOURCE_NOT_FOUND],
        "bob has no SHA-256 credential to delete"
    );
    let mut conn = Connection::open(&addr).unwrap();
    assert_eq!(
        conn.login_scram(Scram::Sha256, "carol", "carol-pw", 2)
            .unwrap()
            .error_code,
        SASL_AUTHENTICATION_FAILED
    );
}

/// The bytes of every file below `dir`, as text (lossily).
fn every_file_under(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&every_file_under(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}
