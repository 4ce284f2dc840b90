//! Producer-state snapshots: the state as of an offset, so that opening a log replays only
//! the batches after the newest snapshot instead of the whole log. Written when a segment
//! rolls and at clean close (like Kafka's `.snapshot` files), named by the offset they are
//! valid at: `{offset:020}.snapshot`.
//!
//! Bytes (big-endian): magic `"SMPS"` | version u8 (=1) | offset i64 | producer count u32 |
//! per producer: id i64, epoch i16, coordinator epoch i32, last timestamp i64, open
//! transaction's first offset i64 (-1 = none), batch count u8, per batch: first sequence
//! i32, last sequence i32, first offset i64, last offset i64, max timestamp i64 |
//! aborted count u32 | per aborted transaction: producer id i64, first offset i64, last
//! offset i64 | CRC-32C u32 of everything before it.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};

use super::{BatchMeta, ProducerEntry, ProducerStates, RETAINED_BATCHES};
use crate::checkpoint::{sync_dir, write_atomically};
use crate::AbortedTxn;

const MAGIC: &[u8; 4] = b"SMPS";
const VERSION: u8 = 1;
pub(crate) const SNAPSHOT_EXT: &str = "snapshot";

fn file_name(offset: i64) -> String {
    format!("{offset:020}.{SNAPSHOT_EXT}")
}

/// Fsync point "producer snapshot": written atomically (temp, fsync, rename, directory fsync).
pub(crate) fn write(dir: &Path, offset: i64, states: &ProducerStates) -> io::Result<()> {
    write_encoded(dir, offset, &encode(offset, states))
}

/// `write` of bytes from `encode`, for a snapshot written away from the state it describes.
pub(crate) fn write_encoded(dir: &Path, offset: i64, bytes: &[u8]) -> io::Result<()> {
    write_atomically(dir, &file_name(offset), bytes)
}

/// The newest readable snapshot at or below `log_end`, with its offset. Snapshots above
/// `log_end` describe batches recovery cut off and are deleted; unreadable ones are skipped
/// (and deleted) in favour of older ones.
pub(crate) fn load_newest(dir: &Path, log_end: i64) -> io::Result<Option<(i64, ProducerStates)>> {
    let mut found = None;
    for (offset, path) in list(dir)?.into_iter().rev() {
        if found.is_some() {
            break;
        }
        if offset > log_end {
            tracing::info!(path = %path.display(), log_end, "removing producer snapshot past the log end");
            fs::remove_file(&path)?;
            continue;
        }
        match decode(&fs::read(&path)?) {
            Some((stored, states)) if stored == offset => found = Some((offset, states)),
            _ => {
                tracing::warn!(path = %path.display(), "removing unreadable producer snapshot");
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(found)
}

/// Deletes snapshots below `offset` except the newest of them, which a log whose start
/// moved past every snapshot still needs.
pub(crate) fn delete_before(dir: &Path, offset: i64) -> io::Result<()> {
    let all = list(dir)?;
    let newest = all.last().map(|(o, _)| *o);
    let mut deleted = false;
    for (snapshot, path) in all {
        if snapshot < offset && Some(snapshot) != newest {
            fs::remove_file(path)?;
            deleted = true;
        }
    }
    if deleted {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Deletes snapshots above `offset`, durably: they describe batches a truncation removes,
/// and must not be taken for the state of the batches written after it.
pub(crate) fn delete_after(dir: &Path, offset: i64) -> io::Result<()> {
    let mut deleted = false;
    for (snapshot, path) in list(dir)? {
        if snapshot > offset {
            fs::remove_file(path)?;
            deleted = true;
        }
    }
    if deleted {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Every snapshot file, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if ext != SNAPSHOT_EXT || stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(offset) = stem.parse() {
            out.push((offset, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn encode(offset: i64, states: &ProducerStates) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_i64(offset);
    out.put_u32(states.producers.len() as u32);
    for (&id, e) in &states.producers {
        out.put_i64(id);
        out.put_i16(e.epoch);
        out.put_i32(e.coordinator_epoch);
        out.put_i64(e.last_timestamp);
        out.put_i64(e.txn_first_offset.unwrap_or(-1));
        out.put_u8(e.batches.len() as u8);
        for b in &e.batches {
            out.put_i32(b.first_seq);
            out.put_i32(b.last_seq);
            out.put_i64(b.first_offset);
            out.put_i64(b.last_offset);
            out.put_i64(b.max_timestamp);
        }
    }
    out.put_u32(states.aborted.len() as u32);
    for a in &states.aborted {
        out.put_i64(a.producer_id);
        out.put_i64(a.first_offset);
        out.put_i64(a.last_offset);
    }
    let crc = crc32c::crc32c(&out);
    out.put_u32(crc);
    out
}

fn decode(bytes: &[u8]) -> Option<(i64, ProducerStates)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut b = body;
    if b.len() < 17 || &b[..4] != MAGIC || b[4] != VERSION {
        return None;
    }
    b.advance(5);
    let offset = b.get_i64();
    let mut producers = BTreeMap::new();
    for _ in 0..b.get_u32() {
        if b.remaining() < 31 {
            return None;
        }
        let id = b.get_i64();
        let epoch = b.get_i16();
        let coordinator_epoch = b.get_i32();
        let last_timestamp = b.get_i64();
        let txn = b.get_i64();
        let count = usize::from(b.get_u8());
        if count > RETAINED_BATCHES || b.remaining() < count * 32 {
            return None;
        }
        let batches: VecDeque<BatchMeta> = (0..count)
            .map(|_| BatchMeta {
                first_seq: b.get_i32(),
                last_seq: b.get_i32(),
                first_offset: b.get_i64(),
                last_offset: b.get_i64(),
                max_timestamp: b.get_i64(),
            })
            .collect();
        let entry = ProducerEntry {
            epoch,
            batches,
            last_timestamp,
            coordinator_epoch,
            txn_first_offset: (txn >= 0).then_some(txn),
        };
        producers.insert(id, entry);
    }
    if b.remaining() < 4 {
        return None;
    }
    let count = b.get_u32() as usize;
    if b.remaining() != count.checked_mul(24)? {
        return None;
    }
    let aborted = (0..count)
        .map(|_| AbortedTxn {
            producer_id: b.get_i64(),
            first_offset: b.get_i64(),
            last_offset: b.get_i64(),
        })
        .collect();
    Some((offset, ProducerStates { producers, aborted }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProducerStates {
        let mut states = ProducerStates::default();
        let meta = |seq: i32, offset: i64| BatchMeta {
            first_seq: seq,
            last_seq: seq + 1,
            first_offset: offset,
            last_offset: offset + 1,
            max_timestamp: 1_000 + offset,
        };
        states.producers.insert(
            7,
            ProducerEntry {
                epoch: 3,
                batches: [meta(0, 0), meta(2, 2)].into(),
                last_timestamp: 1_003,
                coordinator_epoch: 4,
                txn_first_offset: Some(2),
            },
        );
        states.producers.insert(9, ProducerEntry::new());
        states.aborted.push(AbortedTxn {
            producer_id: 9,
            first_offset: 5,
            last_offset: 8,
        });
        states
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let states = sample();
        let bytes = encode(42, &states);
        assert_eq!(decode(&bytes), Some((42, states)));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert_eq!(decode(&damaged), None, "flipped byte {i}");
        }
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn newest_valid_snapshot_at_or_below_the_log_end_wins() {
        let dir = tempfile::tempdir().unwrap();
        let states = sample();
        for offset in [10, 20, 30] {
            write(dir.path(), offset, &states).unwrap();
        }
        fs::write(dir.path().join(file_name(20)), b"garbage").unwrap();
        let (offset, loaded) = load_newest(dir.path(), 25).unwrap().unwrap();
        assert_eq!((offset, loaded), (10, states));
        // Past the log end and unreadable ones are gone; the one used stays.
        let left: Vec<i64> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(left, vec![10]);
        assert!(load_newest(dir.path(), 5).unwrap().is_none());
    }

    #[test]
    fn deleting_old_snapshots_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [10, 20, 30] {
            write(dir.path(), offset, &ProducerStates::default()).unwrap();
        }
        delete_before(dir.path(), 25).unwrap();
        let left: Vec<i64> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(left, vec![30]);
        delete_before(dir.path(), 100).unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
    }
}
