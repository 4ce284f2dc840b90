//! The Kafka listeners: accept connections (plaintext or TLS), enforce connection limits,
//! and run one request pipeline per connection.

mod connection;
mod limits;
mod send_file;
pub mod tls;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::config::{parse_host_port, Config, SecurityProtocol};
pub use crate::handlers::{ListenerInfo, Session};
use limits::ConnectionLimits;

/// A bound listener, ready to accept.
pub struct BoundListener {
    pub info: Arc<ListenerInfo>,
    pub local_addr: SocketAddr,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// Binds the plaintext listener on `listen` and every `[[listener]]`. With port 0 the OS
/// picks a port, and the bound one is what clients are told (unless advertised explicitly).
pub async fn bind(config: &Config) -> anyhow::Result<Vec<BoundListener>> {
    let acceptor = match &config.tls {
        Some(tls) if config.listeners.iter().any(|l| l.protocol.uses_tls()) => {
            Some(tls::acceptor(tls).context("cannot set up TLS")?)
        }
        _ => None,
    };
    let mut specs = vec![(
        "PLAINTEXT".to_owned(),
        config.listen,
        SecurityProtocol::Plaintext,
        config.advertised_listener.clone(),
    )];
    specs.extend(
        config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.address, l.protocol, l.advertised.clone())),
    );
    let mut bound = Vec::with_capacity(specs.len());
    for (name, address, protocol, advertised) in specs {
        let tcp = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} ({name})"))?;
        let local_addr = tcp.local_addr()?;
        let advertised = advertised
            .as_deref()
            .and_then(parse_host_port)
            .unwrap_or_else(|| (local_addr.ip().to_string(), i32::from(local_addr.port())));
        let tls = if protocol.uses_tls() {
            acceptor.clone()
        } else {
            None
        };
        bound.push(BoundListener {
            info: Arc::new(ListenerInfo {
                name,
                protocol,
                advertised,
            }),
            local_addr,
            tcp,
            tls,
        });
    }
    Ok(bound)
}

/// Accepts on every listener until `shutdown` turns true, then waits for every connection
/// to finish the requests it has already read.
pub async fn serve(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = Arc::new(ConnectionLimits::new(
        broker.config.max_connections,
        broker.config.max_connections_per_ip,
    ));
    let mut accept_loops = JoinSet::new();
    for listener in listeners {
        accept_loops.spawn(accept(
            listener,
            broker.clone(),
            limits.clone(),
            shutdown.clone(),
        ));
    }
    while accept_loops.join_next().await.is_some() {}
}

async fn accept(
    listener: BoundListener,
    broker: Arc<Broker>,
    limits: Arc<ConnectionLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    broker.metrics.connections_accepted.inc();
                    // Over its IP's connection_creation_rate: not served, and closed only once
                    // the throttle has passed, as Kafka's acceptor does (KIP-612).
                    if let Err(hold) = broker.quotas.connections.admit(peer.ip(), now_ms()) {
                        tracing::debug!(%peer, ms = hold.as_millis() as u64, "connection over its IP's creation rate: closing it after the throttle");
                        broker.metrics.connections_throttled.inc();
                        let mut shutdown = shutdown.clone();
                        connections.spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(hold) => {}
                                _ = shutdown.changed() => {}
                            }
                            drop(stream);
                        });
                        continue;
                    }
                    let Some(permit) = limits.admit(peer.ip()) else {
                        tracing::warn!(%peer, listener = %listener.info.name, "closing connection: connection limit reached");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let session = Session::new(peer, listener.info.clone());
                    let tls = listener.tls.clone();
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        start(stream, tls, session, broker, shutdown).await;
                        drop(permit);
                    });
                }
                // Running out of file descriptors must not end the listener; back off briefly.
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener.tcp);
    while connections.join_next().await.is_some() {}
}

/// Completes the TLS handshake where the listener needs one, then runs the connection.
async fn start(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    session: Session,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        return connection::run(stream, session, broker, shutdown).await;
    };
    // A client that opens a socket and never speaks must not hold a connection slot forever.
    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
    match handshake {
        Ok(Ok(stream)) => {
            let mut session = session;
            // On SSL (not SASL_SSL) the client certificate is the identity, as in Kafka.
            if !session.listener.protocol.uses_sasl() {
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first());
                if let Some(principal) =
                    certificate.and_then(|cert| crate::auth::certificate::principal(cert))
                {
                    session.principal = principal;
                }
            }
            connection::run(stream, session, broker, shutdown).await
        }
        Ok(Err(err)) => {
            tracing::warn!(peer = %session.peer, "closing connection: TLS handshake failed: {err}")
        }
        Err(_) => {
            tracing::warn!(peer = %session.peer, "closing connection: TLS handshake timed out")
        }
    }
}
