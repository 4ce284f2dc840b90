//! The registry's listener, plain TCP or TLS, as axum's [`Listener`]. TLS handshakes run in
//! tasks of their own (bounded by a timeout) so that a client stalling in its handshake does
//! not hold up the others; finished connections are handed to axum through a channel.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// A client connection, TLS or not.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed accept (out of file descriptors, say), before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct RegistryListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(Box<dyn Stream>, SocketAddr)>,
}

/// The caller's address, for the ACLs' host.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, RegistryListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, RegistryListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl RegistryListener {
    /// Starts accepting on `tcp` until `shutdown`, through `tls` when given.
    pub fn start(
        tcp: TcpListener,
        tls: Option<TlsAcceptor>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<RegistryListener> {
        let local_addr = tcp.local_addr()?;
        let (sender, accepted) = mpsc::channel::<(Box<dyn Stream>, SocketAddr)>(64);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            tracing::warn!("schema registry: accept failed: {err}");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    },
                    _ = shutdown.changed() => return,
                    () = sender.closed() => return,
                };
                let _ = socket.set_nodelay(true);
                let Some(tls) = tls.clone() else {
                    if sender.send((Box::new(socket), peer)).await.is_err() {
                        return;
                    }
                    continue;
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((Box::new(stream), peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::info!(
                                "schema registry: TLS handshake with {peer} failed: {err}"
                            )
                        }
                        Err(_) => {
                            tracing::info!("schema registry: TLS handshake with {peer} timed out")
                        }
                    }
                });
            }
        });
        Ok(RegistryListener {
            local_addr,
            accepted,
        })
    }
}

impl Listener for RegistryListener {
    type Io = Box<dyn Stream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}
