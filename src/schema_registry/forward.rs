//! Requests this broker cannot answer itself, sent to the registry of the broker leading
//! `_schemas` partition 0, as Confluent's followers forward to their leader: writes (the
//! leader alone hands out ids and versions, see [`super::log`]), and everything on a broker
//! that holds no replica of the topic (so has no schemas to read).
//!
//! The leader's address is the registry URL it registered with the cluster metadata. The
//! request goes as the caller sent it, its `Authorization` included, so the leader
//! authenticates and authorizes the caller itself; a header marks it forwarded, and a
//! forwarded request is never forwarded again (leadership moving mid-way answers 421 rather
//! than bouncing between brokers).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::http::{error_body, Service};
use super::listener::Stream;
use crate::broker::Broker;

/// Set on a forwarded request, to the forwarding broker's id.
const FORWARDED: HeaderName = HeaderName::from_static("x-samsa-forwarded-by");
/// The headers that travel with a forwarded request and back with its answer.
const REQUEST_HEADERS: [HeaderName; 3] =
    [header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION];
const RESPONSE_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::WWW_AUTHENTICATE];
/// Bounds connecting, sending and reading the answer together: longer than the leader may
/// take, up to 15 s for its registry to have read the topic after start plus 10 s for a
/// write to replicate.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger than any schema request axum accepts (2 MiB).
const BODY_LIMIT: usize = 4 << 20;
/// Confluent's code for a request its follower could not forward.
const FORWARDING_FAILED: u32 = 50003;

/// Put on a response that says this broker does not lead the topic: the forwarding layer
/// sends the request to broker `0` instead.
#[derive(Debug, Clone, Copy)]
pub struct ToLeader(pub i32);

pub struct Forwarder {
    pub broker: Arc<Broker>,
    pub topic: String,
    /// For `https://` peers: `None` without `[tls]`.
    pub tls: Option<TlsConnector>,
}

impl Forwarder {
    /// The leader of partition 0 when the topic exists and this broker holds no replica.
    fn leader_if_no_replica_here(&self) -> Option<i32> {
        let metadata = self.broker.cluster.published();
        let partition = metadata.topics.get(&self.topic)?.partitions.first()?;
        (!partition.replicas.contains(&self.broker.config.node_id)).then_some(partition.leader)
    }

    async fn send(&self, leader: i32, parts: &Parts, body: Bytes) -> Result<Response, String> {
        if leader < 0 || leader == self.broker.config.node_id {
            return Err("no other broker leads the schemas topic".into());
        }
        let url = self
            .broker
            .cluster
            .published()
            .brokers
            .get(&leader)
            .and_then(|b| b.registry_url.clone())
            .ok_or_else(|| format!("broker {leader} has registered no schema registry"))?;
        let (https, host, port) = parse_url(&url).ok_or_else(|| format!("bad URL {url}"))?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if https {
            let tls = self
                .tls
                .as_ref()
                .ok_or_else(|| format!("{url} needs TLS and this broker has no [tls]"))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("bad host in {url}: {e}"))?;
            Box::new(
                tls.connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {url}: {e}"))?,
            )
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {url}: {e}"))?;
        // Drives the connection; it ends when the answer has been read and `sender` dropped.
        tokio::spawn(connection);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = axum::http::Request::builder()
            .method(parts.method.clone())
            .uri(path)
            .header(header::HOST, format!("{host}:{port}"))
            .header(FORWARDED, self.broker.config.node_id);
        for name in REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(&name) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Body::from(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let (answer, incoming) = answer.into_parts();
        let bytes = axum::body::to_bytes(Body::new(incoming), BODY_LIMIT)
            .await
            .map_err(|e| format!("reading {url}'s answer: {e}"))?;
        let mut response = (answer.status, bytes).into_response();
        for name in RESPONSE_HEADERS {
            if let Some(value) = answer.headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        Ok(response)
    }

    async fn to_leader(&self, leader: i32, parts: &Parts, body: Bytes) -> Response {
        match tokio::time::timeout(FORWARD_TIMEOUT, self.send(leader, parts, body)).await {
            Ok(Ok(response)) => response,
            Ok(Err(reason)) => failed(&reason),
            Err(_) => failed(&format!("broker {leader} did not answer in time")),
        }
    }
}

fn failed(reason: &str) -> Response {
    tracing::warn!("schema registry: cannot forward a request to the leader: {reason}");
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        FORWARDING_FAILED,
        &format!("Error while forwarding the request to the leader: {reason}"),
    )
}

/// `http[s]://host:port[/]` as (TLS, host, port); the port defaults by scheme.
fn parse_url(url: &str) -> Option<(bool, String, u16)> {
    let (https, rest) = match url.split_once("://")? {
        ("https", rest) => (true, rest),
        ("http", rest) => (false, rest),
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, if https { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (https, host.to_owned(), port))
}

/// Serves the request here or at the leader (see the module doc).
pub async fn forward(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(&FORWARDED) {
        return next.run(request).await;
    }
    let forwarder = &service.forwarder;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return error_body(StatusCode::PAYLOAD_TOO_LARGE, 413, "Request body too large");
    };
    if let Some(leader) = forwarder.leader_if_no_replica_here() {
        return forwarder.to_leader(leader, &parts, body).await;
    }
    let here = Request::from_parts(parts.clone(), Body::from(body.clone()));
    let response = next.run(here).await;
    match response.extensions().get::<ToLeader>() {
        Some(&ToLeader(leader)) => forwarder.to_leader(leader, &parts, body).await,
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        let p = |u| parse_url(u);
        assert_eq!(p("http://h:8081"), Some((false, "h".into(), 8081)));
        assert_eq!(
            p("https://127.0.0.1:9/"),
            Some((true, "127.0.0.1".into(), 9))
        );
        assert_eq!(p("https://[::1]:8081"), Some((true, "::1".into(), 8081)));
        assert_eq!(p("https://h"), Some((true, "h".into(), 443)));
        assert_eq!(p("ftp://h:1"), None);
    }
}
