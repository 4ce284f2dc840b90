//! The Kafka listener: accepts connections and runs one request pipeline per connection.

mod connection;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;

/// Accepts connections until `shutdown` turns true, then waits for every connection to
/// finish the requests it has already read.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    broker.metrics.connections_accepted.inc();
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(connection::run(stream, peer, broker, shutdown));
                }
                // Running out of file descriptors must not end the listener; back off briefly.
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
