//! One client connection: a reader that frames and decodes requests ahead, and a
//! processor that serves them one at a time, in the order sent, writing each response
//! before starting the next request. Kafka promises exactly that order (a fetch sees every
//! produce sent before it on the same connection); decoding ahead keeps the socket busy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, watch};

use super::send_file;
use super::transport::Transport;
use super::Session;
use crate::broker::Broker;
use crate::handlers;
use crate::protocol::{self, Chunk, Frame, ResponseFrame};
use crate::topics::on_storage_thread;

/// Largest frame a client may send before SASL authentication completes, as Kafka's
/// `sasl.server.max.receive.size`: an unauthenticated peer cannot make the broker buffer
/// `socket_request_max_bytes`.
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// What the reader takes the next frame to be; set by the processor from the session's
/// SASL state before it sends the response that lets the client move on.
const READ_UNAUTHENTICATED: u8 = 0;
const READ_BARE_SASL_TOKENS: u8 = 1;
const READ_REQUESTS: u8 = 2;

fn read_mode(session: &Session) -> u8 {
    if session.sasl.is_complete() {
        READ_REQUESTS
    } else if session.sasl.expects_bare_tokens() {
        READ_BARE_SASL_TOKENS
    } else {
        READ_UNAUTHENTICATED
    }
}

/// Limits of the reader, from the broker config.
struct ReadLimits {
    max_frame: usize,
    idle: Duration,
    mode: Arc<AtomicU8>,
    muted: Arc<Mute>,
}

/// Until when a throttled connection is muted (KIP-219): the response goes out at once
/// with its `throttle_time_ms`, and no further request is read or served before then.
/// The processor sets it, the reader and the processor wait on it.
#[derive(Default)]
struct Mute {
    until: parking_lot::Mutex<Option<tokio::time::Instant>>,
}

impl Mute {
    fn set(&self, throttle: Duration) {
        *self.until.lock() = Some(tokio::time::Instant::now() + throttle);
    }

    /// Waits out the mute, if any; false when shutdown began meanwhile.
    async fn wait(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let Some(until) = *self.until.lock() else {
            return true;
        };
        if until <= tokio::time::Instant::now() || *shutdown.borrow() {
            return !*shutdown.borrow();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => true,
            _ = shutdown.changed() => false,
        }
    }
}

pub async fn run<S: Transport>(
    stream: S,
    mut session: Session,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let peer = session.peer;
    tracing::debug!(%peer, listener = %session.listener.name, "connection opened");
    broker.metrics.connections_open.inc();
    let (reader, writer) = stream.split();
    // The bound on decoded-ahead requests bounds a connection's memory.
    let (frames_tx, frames_rx) = mpsc::channel(broker.config.max_inflight_requests);
    let mode = Arc::new(AtomicU8::new(read_mode(&session)));
    let muted = Arc::new(Mute::default());
    let limits = ReadLimits {
        max_frame: broker.config.socket_request_max_bytes as usize,
        idle: Duration::from_millis(broker.config.connections_max_idle_ms),
        mode: mode.clone(),
        muted: muted.clone(),
    };
    let reader = tokio::spawn(read_frames(
        reader,
        frames_tx,
        peer,
        limits,
        shutdown.clone(),
    ));
    let pipeline = Pipeline {
        mode: &mode,
        muted: &muted,
        shutdown,
    };
    serve::<S>(writer, frames_rx, &mut session, &broker, pipeline).await;
    // The processor stopped (client gone, or a request that must close the connection):
    // stop reading too, so the socket closes.
    reader.abort();
    broker.telemetry.connection_closed(session.id);
    // Its share sessions end with it, and their members' acquired records are released.
    broker
        .share_leader
        .connection_closed(&broker.share_state, session.id, &broker.topics)
        .await;
    broker.metrics.connections_open.dec();
    broker.metrics.connections_closed.inc();
    tracing::debug!(%peer, "connection closed");
}

/// Reads and decodes frames until the client closes, a frame is bad, or shutdown begins.
async fn read_frames<R: AsyncRead + Unpin>(
    reader: R,
    frames: mpsc::Sender<Frame>,
    peer: SocketAddr,
    limits: ReadLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut buffer = BytesMut::new();
    loop {
        // A throttled connection's socket is not read until its throttle is over.
        if !limits.muted.wait(&mut shutdown).await {
            return;
        }
        let len = tokio::select! {
            len = tokio::time::timeout(limits.idle, reader.read_i32()) => match len {
                Ok(Ok(len)) => len,
                Ok(Err(_)) => return, // the client closed the connection
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        // The client sends its next frame only after the response that set the mode.
        let mode = limits.mode.load(Ordering::Acquire);
        let max_frame = if mode == READ_REQUESTS {
            limits.max_frame
        } else {
            limits.max_frame.min(MAX_UNAUTHENTICATED_FRAME)
        };
        if len < 0 || len as usize > max_frame {
            tracing::warn!(%peer, len, max_frame, "closing connection: request frame size out of bounds");
            return;
        }
        let frame = match read_frame_body(&mut reader, &mut buffer, len as usize).await {
            Ok(frame) => frame,
            Err(err) => {
                tracing::warn!(%peer, "closing connection: truncated request frame: {err}");
                return;
            }
        };
        let decoded = if mode == READ_BARE_SASL_TOKENS {
            Ok(Frame::SaslToken(frame.freeze()))
        } else {
            protocol::decode_frame(frame.freeze())
        };
        match decoded {
            Ok(frame) => {
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(%peer, "closing connection: {err}");
                return;
            }
        }
    }
}

/// Frames at least this large are read into the connection's reusable buffer: once the
/// request holding the previous one is done, its memory is reused instead of allocated and
/// faulted in again (page faults on fresh megabyte frames were ~10 % of produce CPU). Smaller
/// frames get their own allocation, so a small slice a request keeps (a group member's
/// metadata) never pins a large buffer.
const REUSE_FRAMES_FROM: usize = 64 * 1024;

/// Reads `len` bytes into unzeroed memory: zeroing a megabyte produce frame only to overwrite
/// it cost as much broker CPU as the CRC check (perf: memset 3.6 %).
async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    len: usize,
) -> std::io::Result<BytesMut> {
    let mut own = BytesMut::new();
    let target = if len >= REUSE_FRAMES_FROM {
        // Reclaims the allocation when every frame split from it has been dropped.
        buffer.reserve(len);
        buffer
    } else {
        own.reserve(len);
        &mut own
    };
    while target.len() < len {
        let want = (len - target.len()) as u64;
        if reader.take(want).read_buf(target).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(target.split_to(len))
}

/// What the processor shares with the reader.
struct Pipeline<'a> {
    mode: &'a AtomicU8,
    muted: &'a Mute,
    shutdown: watch::Receiver<bool>,
}

/// Serves decoded requests in order until the reader stops or a response cannot be sent.
async fn serve<S: Transport>(
    writer: S::Writer,
    mut frames: mpsc::Receiver<Frame>,
    session: &mut Session,
    broker: &Arc<Broker>,
    mut pipeline: Pipeline<'_>,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = frames.recv().await {
        // A request read ahead before the throttle began waits it out too. At shutdown
        // the ones already read are still served.
        pipeline.muted.wait(&mut pipeline.shutdown).await;
        let mut throttle = None;
        let response = match frame {
            Frame::Request(request)
                if !session.sasl.is_complete()
                    && !allowed_before_authentication(request.api_key) =>
            {
                // Kafka treats this as an illegal SASL state and closes the connection.
                tracing::warn!(
                    peer = %session.peer,
                    api = ?request.api_key,
                    "closing connection: request before SASL authentication completed"
                );
                break;
            }
            Frame::Request(request) => {
                let (reply, throttled) = respond(broker, session, *request).await;
                throttle = throttled;
                match reply {
                    Reply::Send(bytes) => Some(bytes),
                    Reply::Nothing => None,
                    Reply::Close => break,
                }
            }
            Frame::UnsupportedApiVersions { correlation_id } => {
                Some(unsupported_api_versions(correlation_id).into())
            }
            Frame::SaslToken(token) => {
                handlers::sasl::bare_token(broker, session, &token).map(|reply| {
                    let mut framed = BytesMut::with_capacity(4 + reply.len());
                    framed.extend_from_slice(&(reply.len() as i32).to_be_bytes());
                    framed.extend_from_slice(&reply);
                    ResponseFrame::from(framed.freeze())
                })
            }
        };
        pipeline.mode.store(read_mode(session), Ordering::Release);
        if let Some(frame) = response {
            if let Err(err) = write_frame::<S>(&mut writer, frame).await {
                // A file cut short under a frame being sent is the broker's to report.
                if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    tracing::warn!(peer = %session.peer, "closing connection: {err}");
                }
                break;
            }
        }
        if session.sasl.has_failed() {
            // The client gets the failure, then the connection closes, as in Kafka.
            tracing::info!(peer = %session.peer, "closing connection: SASL authentication failed");
            break;
        }

        // Flush only when nothing else is queued, so pipelined responses share a syscall;
        // a throttled response goes out before the mute.
        if (frames.is_empty() || throttle.is_some()) && writer.flush().await.is_err() {
            break;
        }
        if let Some(throttle) = throttle {
            pipeline.muted.set(throttle);
        }
    }
    let _ = writer.flush().await;
    let _ = writer.into_inner().shutdown().await;
}

/// Small chunks gather in the writer's buffer; large ones (fetched records) go to the
/// socket straight from where they were read, or, on a plaintext connection, from their
/// files (see `send_file`).
async fn write_frame<S: Transport>(
    writer: &mut BufWriter<S::Writer>,
    frame: ResponseFrame,
) -> std::io::Result<()> {
    if frame.has_files() {
        writer.flush().await?;
        if let Some(socket) = S::socket(writer.get_ref()) {
            return send_file::send(socket, frame.into_chunks()).await;
        }
    }
    for chunk in frame.into_chunks() {
        match chunk {
            Chunk::Bytes(bytes) => writer.write_all(&bytes).await?,
            // Not made for connections without a socket of their own (see `handlers::fetch`),
            // but sent right if they are.
            Chunk::File(range) => {
                let bytes = on_storage_thread(move || range.read()).await?;
                writer.write_all(&bytes).await?;
            }
        }
    }
    Ok(())
}

/// What a SASL listener serves before authentication: version discovery and SASL itself.
fn allowed_before_authentication(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    )
}

enum Reply {
    Send(ResponseFrame),
    /// acks=0 produce: the client expects no response.
    Nothing,
    Close,
}

/// Serves one request: what to send back, and how long the connection stays muted after.
async fn respond(
    broker: &Arc<Broker>,
    session: &mut Session,
    request: protocol::Request,
) -> (Reply, Option<Duration>) {
    let peer = session.peer;
    let api_key = request.api_key;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    let fire_and_forget = matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
    // The request log, as Kafka's kafka.request.logger: `RUST_LOG=samsa::network=trace` shows
    // each request as it starts and ends, so a request that never got its answer stands out.
    tracing::trace!(%peer, api = ?api_key, version, correlation_id, "request received");
    let started = Instant::now();
    let (response, throttle): (ResponseKind, _) = handlers::serve(broker, session, request).await;
    // Taken at once, so that no later response can take a range for one of its stand-ins.
    let unread = std::mem::take(&mut session.unread);
    let mute = throttle.map(|t| t.duration());
    let elapsed = started.elapsed();
    broker
        .metrics
        .observe_request(api_key, version, elapsed, &response);
    tracing::trace!(%peer, api = ?api_key, version, correlation_id, micros = elapsed.as_micros() as u64, "request served");
    if fire_and_forget {
        // The client cannot see an error it gets no response for; Kafka closes the
        // connection instead, which makes the client refresh its metadata.
        if let ResponseKind::Produce(produce) = &response {
            let failed = produce
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .any(|p| p.error_code != 0);
            if failed {
                tracing::debug!(%peer, "closing connection: an acks=0 produce failed");
                return (Reply::Close, None);
            }
        }
        // No response, but a producer over its byte rate is muted all the same.
        return (Reply::Nothing, mute);
    }
    match protocol::encode_response(api_key, version, correlation_id, &response, unread) {
        Ok(bytes) => (Reply::Send(bytes), mute),
        Err(err) => {
            tracing::error!(%peer, "closing connection: {err}");
            (Reply::Close, None)
        }
    }
}

/// The v0 ApiVersions response to a version samsa does not know (see
/// [`handlers::api_versions::unsupported_version`]).
fn unsupported_api_versions(correlation_id: i32) -> bytes::Bytes {
    let body = handlers::api_versions::unsupported_version();
    let frame =
        protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &body, Vec::new())
            .expect("a v0 ApiVersions response always encodes");
    frame
        .into_bytes()
        .expect("a frame without files is in memory")
}
