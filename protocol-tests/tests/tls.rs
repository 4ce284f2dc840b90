//! SSL listeners: Kafka requests over TLS next to the plaintext listener, and mutual TLS
//! refusing clients without a certificate from the configured CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use samsa_protocol_tests::client::{create_topic, str_bytes};
use samsa_protocol_tests::free_port;
use samsa_protocol_tests::BrokerProcess;

const METADATA_VERSION: i16 = 12;

struct Pki {
    ca_cert: CertificateDer<'static>,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "samsa test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_cert: cert.der().clone(),
            ca: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `name`, as (PEM chain, PEM key, DER cert, DER key).
    fn leaf(
        &self,
        name: &str,
    ) -> (
        String,
        String,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        self.leaf_for(CertificateParams::new(vec![name.to_owned()]).unwrap())
    }

    /// A client certificate whose subject is O=`org`, CN=`common_name` (in that order, as
    /// most CAs write them).
    fn client(
        &self,
        org: &str,
        common_name: &str,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let (_, _, cert, key) = self.leaf_for(params);
        (cert, key)
    }

    fn leaf_for(
        &self,
        params: CertificateParams,
    ) -> (
        String,
        String,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.pem(), key.serialize_pem(), cert.der().clone(), der_key)
    }

    fn ca_pem(&self) -> String {
        let b64 = base64_lines(&self.ca_cert);
        format!("-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----\n")
    }
}

fn base64_lines(der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(64)
        .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Starts a broker with a plaintext listener and an SSL one on `ssl_port`.
fn start(pki: &Pki, dir: &Path, mutual: bool, ssl_port: u16) -> BrokerProcess {
    start_with(pki, dir, mutual, ssl_port, "")
}

/// The same, with top-level settings `extra` ahead of the listener tables.
fn start_with(pki: &Pki, dir: &Path, mutual: bool, ssl_port: u16, extra: &str) -> BrokerProcess {
    let (chain, key, _, _) = pki.leaf("localhost");
    let cert_file = write(dir, "server.pem", &chain);
    let key_file = write(dir, "server.key", &key);
    let ca_file = write(dir, "ca.pem", &pki.ca_pem());
    let client_ca = if mutual {
        format!("client_ca_file = \"{ca_file}\"\n")
    } else {
        String::new()
    };
    BrokerProcess::start(&format!(
        "{extra}[[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:{ssl_port}\"\nprotocol = \"SSL\"\n\
         advertised = \"localhost:{ssl_port}\"\n\
         [tls]\ncert_file = \"{cert_file}\"\nkey_file = \"{key_file}\"\n{client_ca}"
    ))
    .unwrap()
}

fn client_config(
    pki: &Pki,
    identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// Sends Metadata over TLS and decodes the answer.
fn metadata_over_tls(port: u16, config: Arc<ClientConfig>) -> anyhow::Result<MetadataResponse> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(config, ServerName::try_from("localhost")?.to_owned())?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(9)
        .encode(&mut body, MetadataRequest::header_version(METADATA_VERSION))?;
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, METADATA_VERSION)?;
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    tls.write_all(&frame)?;
    let mut len = [0u8; 4];
    tls.read_exact(&mut len)?;
    let mut response = vec![0u8; i32::from_be_bytes(len) as usize];
    tls.read_exact(&mut response)?;
    let mut response = bytes::Bytes::from(response);
    let header = ResponseHeader::decode(
        &mut response,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )?;
    anyhow::ensure!(
        header.correlation_id == 9,
        "correlation id {}",
        header.correlation_id
    );
    let metadata = MetadataResponse::decode(&mut response, METADATA_VERSION)?;
    anyhow::ensure!(!response.has_remaining(), "trailing bytes");
    Ok(metadata)
}

#[test]
fn tls_listener_serves_kafka_and_advertises_itself() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = start(&pki, dir.path(), false, port);
    let metadata = metadata_over_tls(port, client_config(&pki, None)).unwrap();
    let advertised = &metadata.brokers[0];
    assert_eq!(
        advertised.host.as_str(),
        "localhost",
        "SSL clients are told the SSL listener"
    );
    assert_eq!(advertised.port, i32::from(port));
    // The plaintext listener still answers, and advertises itself, not the SSL one.
    let mut plain = broker.connect().unwrap();
    let metadata = plain
        .send(
            &MetadataRequest::default().with_topics(None),
            METADATA_VERSION,
        )
        .unwrap();
    assert_eq!(
        metadata.brokers[0].port.to_string(),
        broker.addr.rsplit(':').next().unwrap()
    );
}

#[test]
fn plaintext_bytes_on_the_tls_port_close_the_connection() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start(&pki, dir.path(), false, port);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // An ApiVersions v0 request in the clear, as a client configured without TLS would send.
    tcp.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .unwrap();
    // The broker may answer with a TLS alert, but then it must close: read to the end.
    let mut rest = Vec::new();
    let ended = tcp.read_to_end(&mut rest);
    assert!(
        ended.is_ok()
            || matches!(ended, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "connection left open: {ended:?}"
    );
    assert!(
        !rest.starts_with(&[0, 0]),
        "a Kafka response came back over the TLS port: {rest:?}"
    );
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start(&pki, dir.path(), true, port);
    assert!(
        metadata_over_tls(port, client_config(&pki, None)).is_err(),
        "a client without a certificate must be refused"
    );
    let (_, _, cert, key) = pki.leaf("client");
    let metadata = metadata_over_tls(port, client_config(&pki, Some((cert, key)))).unwrap();
    assert_eq!(metadata.brokers.len(), 1);
    let stranger = Pki::new();
    let (_, _, cert, key) = stranger.leaf("client");
    let config = {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca_cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(vec![cert], key)
                .unwrap(),
        )
    };
    assert!(
        metadata_over_tls(port, config).is_err(),
        "a certificate from another CA must be refused"
    );
}

/// On an SSL listener with client authentication the principal is `User:` and the
/// certificate's subject in RFC 2253 form, as Kafka names it, and ACLs apply to it: the
/// writer sees the topic it was granted, another client of the same CA sees nothing.
#[test]
fn client_certificates_name_the_principal_acls_apply_to() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = start_with(
        &pki,
        dir.path(),
        true,
        port,
        "authorizer = true\nsuper_users = [\"User:ANONYMOUS\"]\n",
    );
    let mut admin = broker.connect().unwrap();
    for name in ["granted", "withheld"] {
        create_topic(&mut admin, name, 1, &[]).unwrap();
    }
    let grant = AclCreation::default()
        .with_resource_type(2) // topic
        .with_resource_name(str_bytes("granted"))
        .with_resource_pattern_type(3) // literal
        .with_principal(str_bytes("User:CN=writer,O=samsa tests"))
        .with_host(str_bytes("*"))
        .with_operation(8) // describe
        .with_permission_type(3); // allow
    let created = admin
        .send(&CreateAclsRequest::default().with_creations(vec![grant]), 3)
        .unwrap();
    assert_eq!(created.results[0].error_code, 0, "{created:?}");

    let topics = |identity| {
        let metadata = metadata_over_tls(port, client_config(&pki, Some(identity))).unwrap();
        metadata
            .topics
            .iter()
            .map(|t| t.name.as_ref().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(topics(pki.client("samsa tests", "writer")), vec!["granted"]);
    assert_eq!(
        topics(pki.client("samsa tests", "someone else")),
        Vec::<String>::new()
    );
}
