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

/// Content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the endpoint; returns the bound address so logs and tests can name it.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What `/metrics` answers: the text exposition of everything at the moment of the scrape.
/// Blocking: it reads every partition.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves the endpoint until `shutdown`, `/metrics` with what `render` returns (the server
/// hands it the broker's state: this layer knows nothing of the broker).
pub async fn serve(listener: TcpListener, render: Render, mut shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(render);
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

async fn metrics(axum::extract::State(render): axum::extract::State<Render>) -> impl IntoResponse {
    let body = tokio::task::block_in_place(|| render());
    (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], body)
}
