//! TLS for SSL listeners and the schema registry's HTTPS: the configurations built from
//! the PEM files in `[tls]`.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA verifier: {0}")]
    Verifier(String),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Pem {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn private_key(config: &TlsConfig) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(&config.key_file).map_err(|err| TlsError::Pem {
        path: config.key_file.display().to_string(),
        reason: err.to_string(),
    })
}

/// Builds the acceptor; with `client_ca_file` every client must present a certificate
/// that CA signed (Kafka's `ssl.client.auth=required`).
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&config.cert_file)?;
    let key = private_key(config)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_file)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| TlsError::Verifier(err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A client of another cluster (a cluster link's source): it trusts the CAs in `ca_file`
/// and, with `identity` (certificate chain, key), presents that certificate.
pub fn source_connector(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots.add(cert)?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let client = match identity {
        Some((cert_file, key_file)) => {
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| TlsError::Pem {
                path: key_file.display().to_string(),
                reason: err.to_string(),
            })?;
            builder.with_client_auth_cert(certificates(cert_file)?, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(client)))
}

/// A client for this broker's peers (the schema registry forwarding to another broker's):
/// it trusts the CAs in `ca_file`, else in `client_ca_file` (the CA the cluster's
/// certificates come from), else the certificates of this broker's own chain (brokers
/// sharing one certificate or one chain with its CA), and presents this broker's
/// certificate, which a peer requiring client certificates accepts.
pub fn connector(config: &TlsConfig, ca_file: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let trusted = ca_file
        .or(config.client_ca_file.as_deref())
        .unwrap_or(&config.cert_file);
    for cert in certificates(trusted)? {
        roots.add(cert)?;
    }
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates(&config.cert_file)?, private_key(config)?)?;
    Ok(TlsConnector::from(Arc::new(client)))
}
