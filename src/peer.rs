//! The broker as a Kafka client of other brokers: followers fetching from leaders, and
//! leaders asking where an epoch ended (OffsetForLeaderEpoch), coordinators sending
//! transaction markers. It knows nothing of the broker, so the layers that talk to other
//! brokers (replication, the coordinators) use it without reaching up into `network`. Plain Kafka requests over one
//! TCP connection, one request in flight at a time, which is all a replica fetcher needs.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What a connection runs over: TCP, or TLS over TCP (a cluster link to a secure source).
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

/// Responses larger than this are refused: a peer cannot make us allocate without bound.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("bad response from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

pub struct PeerConnection {
    addr: String,
    stream: BufReader<Box<dyn PeerStream>>,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl PeerConnection {
    /// Connects to `addr` (`host:port`), naming itself `client_id` in every request.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = Self::tcp(addr, timeout).await?;
        Ok(Self::over(addr, client_id, Box::new(stream)))
    }

    /// A TCP connection to `addr`, for a caller that wraps it (TLS) before [`Self::over`].
    pub async fn tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
        let connecting = tokio::time::timeout(timeout, TcpStream::connect(addr));
        let stream = match connecting.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    timeout,
                })
            }
        };
        // Replication is request/response of small frames; Nagle would add its delay to every
        // acks=all write.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A connection over a stream already open to `addr`.
    pub fn over(addr: &str, client_id: &str, stream: Box<dyn PeerStream>) -> Self {
        PeerConnection {
            addr: addr.to_string(),
            stream: BufReader::new(stream),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 0,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response. After any
    /// error the connection is in an unknown state: drop it and connect again.
    pub async fn send<R>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = self.encode(request, version, correlation_id)?;
        match tokio::time::timeout(timeout, self.exchange(frame)).await {
            Ok(result) => {
                let mut body = result?;
                let header =
                    ResponseHeader::decode(&mut body, R::Response::header_version(version))
                        .map_err(|e| self.protocol(format!("response header: {e}")))?;
                if header.correlation_id != correlation_id {
                    return Err(self.protocol(format!(
                        "correlation id {} for request {correlation_id}",
                        header.correlation_id
                    )));
                }
                let response = R::Response::decode(&mut body, version)
                    .map_err(|e| self.protocol(format!("{:?} v{version}: {e}", R::KEY)))?;
                Ok(response)
            }
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    fn encode<R>(
        &self,
        request: &R,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
    {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| self.protocol(format!("request header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| self.protocol(format!("{:?} v{version}: {e}", R::KEY)))?;
        let len =
            i32::try_from(buf.len() - 4).map_err(|_| self.protocol("request too large".into()))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf.freeze())
    }

    async fn exchange(&mut self, frame: Bytes) -> Result<Bytes, ClientError> {
        let io = |source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.get_mut().write_all(&frame).await.map_err(io)?;
        let len = self.stream.read_i32().await.map_err(io)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| self.protocol(format!("response length {len}")))?;
        let mut body = BytesMut::zeroed(len);
        self.stream.read_exact(&mut body).await.map_err(io)?;
        let body = body.freeze();
        if body.remaining() < 4 {
            return Err(self.protocol("response shorter than its header".into()));
        }
        Ok(body)
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// Connections to other brokers kept between requests, each to its own address: a request
/// takes an idle one (or connects), and puts it back once it worked. A connection that
/// failed is dropped, as its state is unknown.
pub struct PeerPool {
    client_id: String,
    idle: parking_lot::Mutex<Vec<PeerConnection>>,
}

impl PeerPool {
    pub fn new(client_id: String) -> PeerPool {
        PeerPool {
            client_id,
            idle: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// `request` at `version` to `addr`, answered within `timeout`.
    pub async fn send<R>(
        &self,
        addr: &str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let idle = {
            let mut idle = self.idle.lock();
            idle.iter()
                .position(|c| c.addr() == addr)
                .map(|i| idle.swap_remove(i))
        };
        let mut connection = match idle {
            Some(connection) => connection,
            None => PeerConnection::connect(addr, &self.client_id, timeout).await?,
        };
        let response = connection.send(request, version, timeout).await?;
        self.idle.lock().push(connection);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    use super::*;
    use crate::config::Config;
    use crate::testing::start_broker;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_get_their_responses_in_every_header_version() {
        let dir = tempfile::tempdir().unwrap();
        let broker = start_broker(dir.path(), Config::default()).await;
        let addr = broker.addr.clone();
        let timeout = Duration::from_secs(10);
        let mut peer = PeerConnection::connect(&addr, "samsa-test", timeout)
            .await
            .unwrap();
        // ApiVersions v3 has a flexible body but a v0 response header; Metadata v12 is
        // flexible on both sides; v1 is neither.
        // v3+ must name the client software (INVALID_REQUEST otherwise).
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("samsa"))
            .with_client_software_version(StrBytes::from_static_str("0.1"));
        for version in [0, 3] {
            let versions = peer.send(&request, version, timeout).await.unwrap();
            assert_eq!(versions.error_code, 0);
            assert!(!versions.api_keys.is_empty());
        }
        for version in [1, 12] {
            let metadata = peer
                .send(&MetadataRequest::default(), version, timeout)
                .await
                .unwrap();
            assert_eq!(metadata.brokers.len(), 1);
            assert_eq!(
                metadata.brokers[0].port,
                addr.rsplit(':').next().unwrap().parse::<i32>().unwrap()
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let result = PeerConnection::connect(&addr, "samsa-test", Duration::from_secs(5)).await;
        assert!(
            matches!(result, Err(ClientError::Connect { .. })),
            "{:?}",
            result.err()
        );
    }
}
