//! Records a plaintext fetch answers with but does not read: located in their segment file
//! ([`FileRange`]), they go from the file to the socket (`network::send_file`) without being
//! copied through the broker's memory, as Kafka's do.
//!
//! kafka-protocol encodes a partition's records from `Bytes`, copied into the frame. A
//! located range goes into the response as a stand-in instead: a slice of the same length
//! whose address names the range to the frame encoder (`protocol::response_frame`), which
//! puts the range in the frame where the encoder would have copied the stand-in.

use std::sync::OnceLock;

use bytes::Bytes;
use samsa_storage::FileRange;

/// The address space stand-ins are cut from. A range that does not fit is read instead.
const REGION: usize = 64 << 20;

/// Zeroed memory that is never written or read: allocated zeroed, it stays unmapped
/// address space and costs no memory.
fn region() -> &'static [u8] {
    static REGION_BYTES: OnceLock<&'static [u8]> = OnceLock::new();
    REGION_BYTES.get_or_init(|| Vec::leak(vec![0u8; REGION]))
}

/// A located range and the stand-in a response carries for it.
#[derive(Debug)]
pub struct UnreadRecords {
    pub range: FileRange,
    pub stand_in: Bytes,
}

impl UnreadRecords {
    /// The `index`-th range of one response (stand-ins of one response must differ in
    /// address, so each starts at its index); `Err` gives the range back when it does not
    /// fit the region.
    pub fn new(range: FileRange, index: usize) -> Result<UnreadRecords, FileRange> {
        let slice = index
            .checked_add(range.len())
            .and_then(|end| region().get(index..end));
        match slice {
            Some(slice) => Ok(UnreadRecords {
                range,
                stand_in: Bytes::from_static(slice),
            }),
            None => Err(range),
        }
    }

    /// Whether `bytes` is this range's stand-in.
    pub fn stands_for(&self, bytes: &[u8]) -> bool {
        bytes.as_ptr() == self.stand_in.as_ptr() && bytes.len() == self.stand_in.len()
    }
}
