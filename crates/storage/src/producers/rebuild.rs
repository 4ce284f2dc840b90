//! Rebuilding producer state when a log opens: the newest usable snapshot, then the batches
//! written after it. Only batch headers are read, plus the one record of each control batch,
//! so opening a big log never decompresses data.

use std::collections::BTreeMap;
use std::path::Path;

use super::{snapshot, DataBatch, Marker, ProducerStates};
use crate::batch;
use crate::segment::Segment;
use crate::StorageError;

/// The producer state at `log_end` (the recovered log end), aborted transactions wholly
/// below `log_start` left out.
pub(crate) fn load(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_start: i64,
    log_end: i64,
) -> Result<ProducerStates, StorageError> {
    let (from, mut states) = match snapshot::load_newest(dir, log_end)? {
        Some(found) => found,
        None => (i64::MIN, ProducerStates::default()),
    };
    for segment in segments.values() {
        if segment.next_offset() <= from {
            continue;
        }
        let Some((mut position, _)) = segment.find_batch(from.max(segment.base_offset()))? else {
            continue;
        };
        while position < segment.size() {
            let header = segment.header_at(position)?;
            replay(
                &header,
                || segment.read_at(position, header.total_size() as u64),
                &mut states,
            )?;
            position += header.total_size() as u64;
        }
    }
    states.drop_aborted_before(log_start);
    Ok(states)
}

/// Replays one stored batch into `states`; `bytes` gives the whole batch, needed only for the one
/// record of a control batch. Returns whether the batch concerned a producer. Shared by
/// opening a log and by follower appends, which trust the leader's batches alike.
pub(crate) fn replay<B: AsRef<[u8]>>(
    header: &batch::BatchHeader,
    bytes: impl FnOnce() -> Result<B, StorageError>,
    states: &mut ProducerStates,
) -> Result<bool, StorageError> {
    if header.producer_id < 0 {
        return Ok(false);
    }
    if !header.is_control() {
        if let Some(data) = DataBatch::of(header, header.base_offset, header.max_timestamp) {
            states.replay_data(&data);
        }
        return Ok(true);
    }
    match batch::control_marker(bytes()?.as_ref()) {
        Ok(Some((control, coordinator_epoch))) => states.replay_marker(&Marker {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            control,
            coordinator_epoch,
            offset: header.base_offset,
            timestamp: header.max_timestamp,
            transaction_version: 0,
        }),
        Ok(None) => {}
        // The CRC was checked; a marker that still does not parse is logged and skipped
        // rather than making the partition unreadable.
        Err(err) => tracing::warn!(offset = header.base_offset, %err, "unreadable control batch"),
    }
    Ok(true)
}
