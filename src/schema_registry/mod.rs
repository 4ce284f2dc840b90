//! A built-in schema registry that Confluent Schema Registry's clients use unchanged: its
//! REST API on a listener of its own, its schemas in a compacted topic (`_schemas`) in
//! Confluent's record format.
//!
//! It is a client of the partitions layer as a handler is ([`log`] writes and replays the
//! topic through `topics` and `cluster`); nothing below it imports it, and the server
//! starts it. [`state`] is what the topic says, [`registry`] the operations, [`formats`]
//! the schema formats and their compatibility rules, [`http`] the routes; [`listener`]
//! accepts plain or TLS connections, [`access`] authenticates and authorizes callers, and
//! [`forward`] sends to the leader of `_schemas` what this broker cannot serve itself.

mod access;
mod error;
mod formats;
mod forward;
mod http;
mod ids;
mod listener;
mod log;
mod metrics;
mod records;
mod registry;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::network::tls;

/// A running registry: what the server keeps to render its metrics.
pub struct SchemaRegistry {
    service: Arc<http::Service>,
    pub local_addr: SocketAddr,
}

impl SchemaRegistry {
    /// Binds the listener, starts replaying the topic and serving requests until `shutdown`.
    pub async fn start(
        broker: Arc<Broker>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<(SchemaRegistry, tokio::task::JoinHandle<()>)> {
        let config = broker.config.schema_registry.clone();
        let tls_error = |err: tls::TlsError| std::io::Error::other(err.to_string());
        // Validation made sure `[tls]` is there when `tls` is on.
        let tls_config = broker.config.tls.as_ref();
        let acceptor = match tls_config.filter(|_| config.tls) {
            Some(tls) => Some(tls::acceptor(tls).map_err(tls_error)?),
            None => None,
        };
        let connector = match tls_config {
            Some(tls) => {
                let ca_file = config.forward_ca_file.as_deref();
                Some(tls::connector(tls, ca_file).map_err(tls_error)?)
            }
            None => None,
        };
        let tcp = TcpListener::bind(config.listen).await?;
        let listener = listener::RegistryListener::start(tcp, acceptor, shutdown.clone())?;
        let local_addr = axum::serve::Listener::local_addr(&listener)?;
        let log = Arc::new(log::SchemaLog::new(broker.clone(), config.topic.clone()));
        let tailer = tokio::spawn(log.clone().tail(shutdown.clone()));
        // Produce's schema id validation reads the state this log replays.
        let _ = broker
            .schema_ids
            .set(Arc::new(ids::RegistryIds::new(log.clone())));
        let service = Arc::new(http::Service {
            registry: registry::Registry::new(log),
            counts: metrics::RequestCounts::default(),
            kafka_cluster_id: broker.topics.cluster_id().to_owned(),
            access: access::Access::new(
                config.authentication,
                broker.credentials.clone(),
                broker.authorizer.clone(),
                config.topic.clone(),
            ),
            forwarder: forward::Forwarder {
                broker: broker.clone(),
                topic: config.topic.clone(),
                tls: connector,
            },
        });
        let app =
            http::router(service.clone()).into_make_service_with_connect_info::<listener::Peer>();
        let mut stop = shutdown;
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.changed().await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!("schema registry listener failed: {err}");
            }
            let _ = tailer.await;
        });
        Ok((
            SchemaRegistry {
                service,
                local_addr,
            },
            server,
        ))
    }

    /// The registry's series in Prometheus text.
    pub fn render_metrics(&self) -> String {
        let state = self.service.registry.state();
        let (schemas, subjects) = (state.schema_count(), state.subjects(false).len());
        drop(state);
        self.service.counts.render(schemas, subjects)
    }
}
