//! An encoded response frame as a list of chunks. The encoder's fields are written into one
//! owned buffer, but record data the response already holds as `Bytes` (a fetch's batches,
//! read from the log) is referenced rather than copied: a fetched byte is then copied once
//! from the file and once into the socket, whatever the response's size.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record data at least this large is referenced; smaller is cheaper to copy than to track.
const SHARE_AT_LEAST: usize = 4096;

/// A whole response frame, length prefix included, in the order its chunks go out.
#[derive(Debug)]
pub struct ResponseFrame {
    chunks: Vec<Bytes>,
}

impl ResponseFrame {
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One contiguous buffer; copies only when the frame has more than one chunk.
    pub fn into_bytes(mut self) -> Bytes {
        if self.chunks.len() == 1 {
            return self.chunks.remove(0);
        }
        let mut all = BytesMut::with_capacity(self.len());
        for chunk in &self.chunks {
            all.extend_from_slice(chunk);
        }
        all.freeze()
    }
}

impl From<Bytes> for ResponseFrame {
    fn from(bytes: Bytes) -> Self {
        ResponseFrame {
            chunks: vec![bytes],
        }
    }
}

enum Part {
    Owned(BytesMut),
    Shared(Bytes),
}

/// The buffer `kafka-protocol` encodes into. Message encoders only append; only record
/// batch encoders seek back (to fill sizes and CRCs), and those never run on a response
/// here. A seek into a part already handed on is refused: the frame is then `poisoned`
/// and `finish` fails rather than send wrong bytes.
pub struct ChunkedBuf {
    parts: Vec<Part>,
    parts_len: usize,
    head: BytesMut,
    shareable: Vec<Bytes>,
    poisoned: bool,
    scratch: Vec<u8>,
}

impl ChunkedBuf {
    /// A buffer that references, instead of copying, any of `shareable` put into it whole.
    pub fn new(shareable: Vec<Bytes>) -> Self {
        ChunkedBuf {
            parts: Vec::new(),
            parts_len: 0,
            head: BytesMut::with_capacity(128),
            shareable,
            poisoned: false,
            scratch: Vec::new(),
        }
    }

    fn shared(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARE_AT_LEAST {
            return None;
        }
        self.shareable
            .iter()
            .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            .cloned()
    }

    /// The frame, with the first four bytes (reserved by the caller) set to the length of
    /// the rest. `None` if the encoder seeked back into a part already handed on.
    pub fn finish(mut self) -> Option<ResponseFrame> {
        if self.poisoned {
            return None;
        }
        let total = self.parts_len + self.head.len();
        if !self.head.is_empty() {
            self.parts.push(Part::Owned(self.head));
        }
        let mut chunks = Vec::with_capacity(self.parts.len());
        for (i, part) in self.parts.into_iter().enumerate() {
            match part {
                Part::Owned(mut owned) => {
                    if i == 0 && owned.len() >= 4 {
                        let len = i32::try_from(total - 4).ok()?;
                        owned[..4].copy_from_slice(&len.to_be_bytes());
                    }
                    chunks.push(owned.freeze());
                }
                Part::Shared(shared) => chunks.push(shared),
            }
        }
        Some(ResponseFrame { chunks })
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose contract this inherits.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut() - self.parts_len
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (cnt bytes of chunk_mut initialised) is about `head`.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared(src) {
            Some(shared) => {
                let owned = self.head.split();
                self.parts_len += owned.len() + shared.len();
                if !owned.is_empty() {
                    self.parts.push(Part::Owned(owned));
                }
                self.parts.push(Part::Shared(shared));
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.parts_len + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.parts_len) {
            Some(in_head) => self.head.resize(in_head, 0),
            None => self.poisoned = true,
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.checked_sub(self.parts_len);
        let end = r.end.saturating_sub(self.parts_len);
        match start {
            Some(start) if start <= end && end <= self.head.len() => &mut self.head[start..end],
            _ => {
                self.poisoned = true;
                self.scratch = vec![0; r.len()];
                &mut self.scratch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{
        ApiKey, FetchResponse, ResponseHeader, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use crate::protocol::encode_response;

    fn fetch_response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    /// The frame kafka-protocol's own encoder makes, copying everything.
    fn copied(version: i16, body: &FetchResponse) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }

    #[test]
    fn fetch_frames_match_the_copying_encoder_and_share_large_records() {
        let large = Bytes::from(vec![0xab; 10_000]);
        let small = Bytes::from(vec![0xcd; 100]);
        let records = [large.clone(), small, Bytes::new(), large.clone()];
        for version in 4..=18 {
            let mut body = fetch_response(&records);
            if version >= 13 {
                body.responses[0].topic = TopicName::default();
            }
            let frame = encode_response(
                ApiKey::Fetch,
                version,
                7,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            let shared = frame
                .chunks()
                .iter()
                .filter(|c| c.as_ptr() == large.as_ptr())
                .count();
            assert_eq!(
                shared, 2,
                "v{version}: both large record sets referenced, not copied"
            );
            assert_eq!(frame.into_bytes(), copied(version, &body), "v{version}");
        }
    }
}
