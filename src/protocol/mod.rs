//! Request and response bodies on the wire, via the `kafka-protocol` crate: a frame's
//! header and body are decoded for the API key and version its header names, and a
//! response is encoded with the header version that API and version call for.

mod response_frame;
pub mod versions;

pub use response_frame::{Chunk, ResponseFrame};

#[cfg(test)]
mod fuzz_tests;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

pub use crate::handlers::Request;
use crate::topics::unread::UnreadRecords;

/// The fixed start of every request header, whatever its version: key, version, correlation id.
const HEADER_PREFIX_LEN: usize = 8;

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Frame {
    Request(Box<Request>),
    /// An ApiVersions request of a version samsa does not know. Kafka answers it with a
    /// v0 response carrying UNSUPPORTED_VERSION and its version table, so a newer client
    /// can retry with a version both sides know; clients rely on that.
    UnsupportedApiVersions {
        correlation_id: i32,
    },
    /// After a SaslHandshake v0, frames are bare SASL tokens rather than requests, until
    /// authentication completes (Kafka's pre-KIP-152 framing). The network layer knows
    /// when; this layer only names the case.
    SaslToken(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api_key:?} v{version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("cannot decode {api_key:?} v{version}: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api_key:?} v{version} response: {reason}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one frame (the bytes after the length prefix).
pub fn decode_frame(mut frame: Bytes) -> Result<Frame, ProtocolError> {
    if frame.len() < HEADER_PREFIX_LEN {
        return Err(ProtocolError::TooShort(frame.len()));
    }
    let size = frame.len();
    let mut prefix = &frame[..HEADER_PREFIX_LEN];
    let key = prefix.get_i16();
    let version = prefix.get_i16();
    let correlation_id = prefix.get_i32();
    let api_key = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey(key))?;
    if !versions::is_supported(api_key, version) {
        if api_key == ApiKey::ApiVersions && version > 0 {
            return Ok(Frame::UnsupportedApiVersions { correlation_id });
        }
        return Err(ProtocolError::UnsupportedVersion { api_key, version });
    }
    let malformed = |err: anyhow::Error| ProtocolError::Malformed {
        api_key,
        version,
        reason: format!("{err:#}"),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Frame::Request(Box::new(Request {
        header,
        api_key,
        body,
        size,
    })))
}

/// Encodes a response as a whole frame, length prefix included. A fetch response's record
/// data is referenced by the frame, not copied into it, and `unread`'s ranges take the
/// place of their stand-ins.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    unread: Vec<UnreadRecords>,
) -> Result<ResponseFrame, ProtocolError> {
    let failed = |reason: String| ProtocolError::Encode {
        api_key,
        version,
        reason,
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    if let ResponseKind::Fetch(fetch) = body {
        let records = fetch
            .responses
            .iter()
            .flat_map(|topic| topic.partitions.iter())
            .filter_map(|partition| partition.records.clone())
            .collect();
        let mut buf = response_frame::ChunkedBuf::new(records, unread);
        buf.put_i32(0);
        header
            .encode(&mut buf, header_version)
            .map_err(|err| failed(format!("{err:#}")))?;
        fetch
            .encode(&mut buf, version)
            .map_err(|err| failed(format!("{err:#}")))?;
        return buf.finish().ok_or_else(|| {
            failed("the encoder rewrote bytes already framed, or the frame exceeds 2 GiB".into())
        });
    }
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|err| failed(format!("{err:#}")))?;
    body.encode(&mut buf, version)
        .map_err(|err| failed(format!("{err:#}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(ResponseFrame::from(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(key);
        buf.put_i16(version);
        buf.put_i32(7);
        buf.put_slice(body);
        buf.freeze()
    }

    #[test]
    fn short_and_unknown_frames_are_errors() {
        assert!(matches!(
            decode_frame(Bytes::from_static(&[0, 1])),
            Err(ProtocolError::TooShort(2))
        ));
        assert!(matches!(
            decode_frame(frame(9999, 0, &[])),
            Err(ProtocolError::UnknownApiKey(9999))
        ));
        assert!(matches!(
            // Kafka's own Raft vote, which samsa's quorum does not speak.
            decode_frame(frame(ApiKey::Vote as i16, 1, &[])),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn future_api_versions_gets_the_fallback() {
        match decode_frame(frame(ApiKey::ApiVersions as i16, 99, &[])).unwrap() {
            Frame::UnsupportedApiVersions { correlation_id } => assert_eq!(correlation_id, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flexible_request_round_trips() {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(42);
        header.encode(&mut buf, 2).unwrap();
        ApiVersionsRequest::default().encode(&mut buf, 3).unwrap();
        match decode_frame(buf.freeze()).unwrap() {
            Frame::Request(req) => {
                assert_eq!(req.header.correlation_id, 42);
                assert!(matches!(req.body, RequestKind::ApiVersions(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_body_is_malformed() {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(1);
        header.encode(&mut buf, 2).unwrap();
        assert!(matches!(
            decode_frame(buf.freeze()),
            Err(ProtocolError::Malformed { .. })
        ));
    }
}
