//! One client connection: a reader that frames and decodes requests, a task per request,
//! and a writer that sends responses strictly in request order. Requests are decoded and
//! started while earlier ones are still being answered (pipelining), yet the client sees
//! responses in the order it sent the requests, as the protocol requires.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::broker::Broker;
use crate::handlers;
use crate::protocol::{self, Frame};

/// Requests read ahead of the response being written. Bounds memory per connection.
const MAX_IN_FLIGHT: usize = 64;

type PendingResponse = oneshot::Receiver<Option<Bytes>>;

pub async fn run(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    tracing::debug!(%peer, "connection opened");
    let (reader, writer) = stream.into_split();
    let (pending_tx, pending_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(writer, pending_rx, peer));
    read_requests(reader, pending_tx, peer, broker, shutdown).await;
    // The reader dropped its sender, so the writer drains what is pending and ends.
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

async fn read_requests(
    reader: OwnedReadHalf,
    pending: mpsc::Sender<PendingResponse>,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_frame = broker.config.socket_request_max_bytes as usize;
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    loop {
        let len = tokio::select! {
            len = reader.read_i32() => match len {
                Ok(len) => len,
                Err(_) => return, // the client closed the connection
            },
            _ = shutdown.changed() => return,
        };
        if len < 0 || len as usize > max_frame {
            tracing::warn!(%peer, len, max_frame, "closing connection: request frame size out of bounds");
            return;
        }
        let mut frame = BytesMut::zeroed(len as usize);
        if let Err(err) = reader.read_exact(&mut frame).await {
            tracing::warn!(%peer, "closing connection: truncated request frame: {err}");
            return;
        }
        let request = match protocol::decode_frame(frame.freeze()) {
            Ok(Frame::Request(request)) => request,
            Ok(Frame::UnsupportedApiVersions { correlation_id }) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Some(handlers::api_versions::unsupported_version_response(correlation_id)));
                if pending.send(rx).await.is_err() {
                    return;
                }
                continue;
            }
            Err(err) => {
                tracing::warn!(%peer, "closing connection: {err}");
                return;
            }
        };
        // acks=0 produce requests get no response at all; the client does not wait for one.
        let expects_response = !matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
        let (tx, rx) = oneshot::channel();
        let broker = broker.clone();
        tokio::spawn(async move {
            let _ = tx.send(respond(&broker, *request, expects_response, peer).await);
        });
        if expects_response && pending.send(rx).await.is_err() {
            return;
        }
    }
}

/// Runs the handler and encodes its response; `None` closes the connection.
async fn respond(
    broker: &Arc<Broker>,
    request: protocol::Request,
    expects_response: bool,
    peer: SocketAddr,
) -> Option<Bytes> {
    let api_key = request.api_key;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    let response: ResponseKind = handlers::handle(broker, request, peer).await;
    if !expects_response {
        return None;
    }
    match protocol::encode_response(api_key, version, correlation_id, &response) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::error!(%peer, "closing connection: {err}");
            None
        }
    }
}

async fn write_responses(writer: OwnedWriteHalf, mut pending: mpsc::Receiver<PendingResponse>, peer: SocketAddr) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(response) = pending.recv().await {
        let bytes = match response.await {
            Ok(Some(bytes)) => bytes,
            // The handler failed to produce a response (or panicked): the client would wait
            // forever for it, so the connection must close.
            Ok(None) | Err(_) => {
                tracing::warn!(%peer, "closing connection: a request produced no response");
                break;
            }
        };
        if writer.write_all(&bytes).await.is_err() {
            break;
        }
        // Flush only when nothing else is ready, so pipelined responses share a syscall.
        if pending.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.into_inner().shutdown().await;
}
