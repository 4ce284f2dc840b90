//! A built-in schema registry that Confluent Schema Registry's clients use unchanged: its
//! REST API on a listener of its own, its schemas in a compacted topic (`_schemas`) in
//! Confluent's record format.
//!
//! It is a client of the partitions layer as a handler is ([`log`] writes and replays the
//! topic through `topics` and `cluster`); nothing below it imports it, and the server
//! starts it. [`state`] is what the topic says, [`registry`] the operations, [`formats`]
//! the schema formats and their compatibility rules, [`http`] the routes.

mod error;
mod formats;
mod http;
mod ids;
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
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
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
        });
        let app = http::router(service.clone());
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
