//! The metrics endpoint: `/metrics` in Prometheus text format, `/health` (the process
//! answers) and `/ready` (the broker has opened its logs and accepts clients).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// Content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the endpoint; returns the bound address so logs and tests can name it.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(broker);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!("metrics endpoint failed: {err}");
    }
}

async fn metrics(
    axum::extract::State(broker): axum::extract::State<Arc<Broker>>,
) -> impl IntoResponse {
    let body = tokio::task::block_in_place(|| {
        broker
            .metrics
            .render(&broker.topics, &broker.groups.stats())
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], body)
}
