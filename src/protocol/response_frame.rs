//! An encoded response frame as a list of chunks. The encoder's fields are written into one
//! owned buffer, but record data the response already holds as `Bytes` (a fetch's batches,
//! read from the log) is referenced rather than copied, and records it left in their files
//! (see `topics::unread`) go in as those files' ranges: such a fetched byte is copied by the
//! kernel alone, once, from the page cache into the socket.

use std::io;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use samsa_storage::FileRange;

use crate::topics::unread::UnreadRecords;

/// Record data at least this large is referenced; smaller is cheaper to copy than to track.
const SHARE_AT_LEAST: usize = 4096;

/// A part of a frame: bytes in memory, or bytes of a segment file.
#[derive(Debug)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRange),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(bytes) => bytes.len(),
            Chunk::File(range) => range.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole response frame, length prefix included, in the order its chunks go out.
#[derive(Debug)]
pub struct ResponseFrame {
    chunks: Vec<Chunk>,
}

impl ResponseFrame {
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn into_chunks(self) -> Vec<Chunk> {
        self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a chunk is to be sent from a file.
    pub fn has_files(&self) -> bool {
        self.chunks.iter().any(|c| matches!(c, Chunk::File(_)))
    }

    /// One contiguous buffer, file ranges read (blocking: not for the event loop when
    /// [`Self::has_files`]); copies only when the frame has more than one chunk.
    pub fn into_bytes(mut self) -> io::Result<Bytes> {
        if let [Chunk::Bytes(_)] = self.chunks.as_slice() {
            if let Some(Chunk::Bytes(bytes)) = self.chunks.pop() {
                return Ok(bytes);
            }
        }
        let mut all = BytesMut::with_capacity(self.len());
        for chunk in &self.chunks {
            match chunk {
                Chunk::Bytes(bytes) => all.extend_from_slice(bytes),
                Chunk::File(range) => all.extend_from_slice(&range.read()?),
            }
        }
        Ok(all.freeze())
    }
}

impl From<Bytes> for ResponseFrame {
    fn from(bytes: Bytes) -> Self {
        ResponseFrame {
            chunks: vec![Chunk::Bytes(bytes)],
        }
    }
}

enum Part {
    Owned(BytesMut),
    Shared(Bytes),
    File(FileRange),
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
    unread: Vec<UnreadRecords>,
    poisoned: bool,
    scratch: Vec<u8>,
}

impl ChunkedBuf {
    /// A buffer that references, instead of copying, any of `shareable` put into it whole,
    /// and puts the range of any of `unread` in place of its stand-in.
    pub fn new(shareable: Vec<Bytes>, unread: Vec<UnreadRecords>) -> Self {
        ChunkedBuf {
            parts: Vec::new(),
            parts_len: 0,
            head: BytesMut::with_capacity(128),
            shareable,
            unread,
            poisoned: false,
            scratch: Vec::new(),
        }
    }

    /// What goes in the frame instead of a copy of `src`, if anything. A stand-in is never
    /// copied, whatever its length: its bytes are not the records.
    fn instead(&self, src: &[u8]) -> Option<Part> {
        if let Some(unread) = self.unread.iter().find(|u| u.stands_for(src)) {
            return Some(Part::File(unread.range.clone()));
        }
        if src.len() < SHARE_AT_LEAST {
            return None;
        }
        self.shareable
            .iter()
            .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            .map(|b| Part::Shared(b.clone()))
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
                    chunks.push(Chunk::Bytes(owned.freeze()));
                }
                Part::Shared(shared) => chunks.push(Chunk::Bytes(shared)),
                Part::File(range) => chunks.push(Chunk::File(range)),
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
        match self.instead(src) {
            Some(part) => {
                let owned = self.head.split();
                self.parts_len += owned.len() + src.len();
                if !owned.is_empty() {
                    self.parts.push(Part::Owned(owned));
                }
                self.parts.push(part);
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

    use samsa_storage::LogConfig;

    use super::Chunk;
    use crate::protocol::{encode_response, ResponseFrame};
    use crate::topics::internal::{encode_batch, record};
    use crate::topics::unread::UnreadRecords;
    use crate::topics::{Isolation, Partition};

    fn encode(version: i16, body: &FetchResponse, unread: Vec<UnreadRecords>) -> ResponseFrame {
        encode_response(
            ApiKey::Fetch,
            version,
            7,
            &ResponseKind::Fetch(body.clone()),
            unread,
        )
        .unwrap()
    }

    /// A fetch response of one topic, a partition for each of `records`.
    fn fetch_response(version: i16, records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(r.clone()))
            })
            .collect();
        // From v13 topics are named by id.
        let name = if version >= 13 { "" } else { "t" };
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str(name)))
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
            let body = fetch_response(version, &records);
            let frame = encode(version, &body, Vec::new());
            let shared = frame
                .chunks()
                .iter()
                .filter(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == large.as_ptr()))
                .count();
            assert_eq!(
                shared, 2,
                "v{version}: both large record sets referenced, not copied"
            );
            assert_eq!(
                frame.into_bytes().unwrap(),
                copied(version, &body),
                "v{version}"
            );
        }
    }

    /// Records left in their file: the frame holds the file's range where the response
    /// holds its stand-in, whatever its length, and reads back as the records themselves.
    #[test]
    fn stand_ins_become_their_files_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let partition =
            Partition::open("t", 0, dir.path().join("t-0"), LogConfig::default(), 1, 1).unwrap();
        let batch = |count: i64| {
            let records: Vec<_> = (0..count)
                .map(|i| record(Bytes::from(format!("value {i}")), None, i, 0))
                .collect();
            encode_batch(&records, "test").unwrap()
        };
        partition.append_unsynced(batch(3), 0).unwrap();
        partition.append_unsynced(batch(500), 0).unwrap();
        let locate = |offset, max_bytes| {
            partition
                .locate(offset, max_bytes, Isolation::LogEnd)
                .unwrap()
                .records
                .unwrap()
        };
        let (first, both) = (locate(0, 1), locate(0, 1 << 20));
        assert_eq!((first.records(), both.records()), (3, 503));
        let bytes = [first.read().unwrap(), both.read().unwrap()];
        for version in 4..=18 {
            let unread = vec![
                UnreadRecords::new(first.clone(), 0).unwrap(),
                UnreadRecords::new(both.clone(), 1).unwrap(),
            ];
            let stand_ins = [unread[0].stand_in.clone(), unread[1].stand_in.clone()];
            let frame = encode(version, &fetch_response(version, &stand_ins), unread);
            let files = frame
                .chunks()
                .iter()
                .filter(|c| matches!(c, Chunk::File(_)))
                .count();
            assert_eq!(files, 2, "v{version}");
            assert!(frame.has_files());
            let expected = copied(version, &fetch_response(version, &bytes));
            assert_eq!(frame.into_bytes().unwrap(), expected, "v{version}");
        }
    }
}
