//! The leader epoch cache: at which offset each partition leader epoch began, as Kafka's
//! `LeaderEpochFileCache` keeps it (KIP-101, KIP-279). A follower asks its leader where
//! its own latest epoch ended (OffsetForLeaderEpoch) and truncates what diverges; the
//! answer comes from this cache.
//!
//! The cache only ever gains an entry before the batch that starts the epoch is written,
//! so the file never lacks an epoch whose data is on disk; entries that run ahead of the
//! data (a crash, a failed write, a truncation) are dropped when the log opens.
//!
//! `leader-epoch.checkpoint` bytes (big-endian): magic `"SMLE"` | version u8 (=1) | entry
//! count u32 | per entry: leader epoch i32, start offset i64 | CRC-32C u32 of everything
//! before it. Entries strictly increase in both fields.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use bytes::{Buf, BufMut};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::segment::Segment;
use crate::StorageError;

pub(crate) const EPOCH_FILE: &str = "leader-epoch.checkpoint";

const MAGIC: &[u8; 4] = b"SMLE";
const VERSION: u8 = 1;
const ENTRY_LEN: usize = 12;
/// Magic, version and count.
const PREFIX_LEN: usize = 9;

/// One epoch and the first offset written in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cached entries, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochs {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    /// The cache of a log that opened with `segments` and `[log_start, log_end)`: the file,
    /// or batch headers when it is missing or unreadable, cut to the log's bounds. Written
    /// back only when that changed something.
    pub fn load(
        dir: &Path,
        segments: &BTreeMap<i64, Segment>,
        log_start: i64,
        log_end: i64,
    ) -> Result<Self, StorageError> {
        let (mut epochs, mut changed) = match read(dir)? {
            Some(epochs) => (epochs, false),
            None => (rebuild(segments)?, true),
        };
        changed |= epochs.truncate_from_end(log_end);
        changed |= epochs.truncate_from_start(log_start);
        if changed {
            epochs.write(dir)?;
        }
        Ok(epochs)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Whether a batch of `epoch` would add an entry: batches without an epoch (-1) and
    /// of the latest or an older epoch do not.
    pub fn is_new(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest().is_none_or(|latest| epoch > latest)
    }

    /// Records that `epoch` starts at `start_offset` when [`LeaderEpochs::is_new`]; returns
    /// whether it was. Entries that start at or after `start_offset` conflict with it and
    /// go, as in Kafka.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.is_new(epoch) {
            return false;
        }
        self.truncate_from_end(start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries starting at or after `end`: their batches are gone. Returns whether
    /// any were.
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < end);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start`: the entry covering it stays, starting at `start`, and
    /// older ones go. Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let covering = self.entries.partition_point(|e| e.start_offset <= start);
        let Some(floor) = covering.checked_sub(1) else {
            return false;
        };
        let changed = floor > 0 || self.entries[floor].start_offset != start;
        self.entries.drain(..floor);
        self.entries[0].start_offset = start;
        changed
    }

    /// OffsetForLeaderEpoch, as Kafka answers it: the requested epoch (or the largest cached
    /// one below it) and the offset where the next cached epoch starts, or `log_end` for the
    /// latest epoch. Kafka answers a requested epoch older than every cached one with that
    /// epoch and the first entry's start (its data is gone, the follower restarts from
    /// there), and one newer than the latest, or any request to an empty cache, with
    /// UNDEFINED (`None`).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> Option<(i32, i64)> {
        let latest = self.entries.last()?;
        if requested < 0 {
            return None;
        }
        if requested == latest.epoch {
            return Some((requested, log_end));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].epoch, next.start_offset)),
            None => Some((requested, next.start_offset)),
        }
    }

    /// Fsync point "leader epochs": written atomically.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        write_atomically(dir, EPOCH_FILE, &self.encode())
    }

    /// Removes the file durably, so that until it is written again a crash rebuilds the
    /// cache from whatever batches survived (truncations do this first).
    pub fn remove_file(dir: &Path) -> io::Result<()> {
        match fs::remove_file(dir.join(EPOCH_FILE)) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PREFIX_LEN + self.entries.len() * ENTRY_LEN + 4);
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        out.put_u32(self.entries.len() as u32);
        for entry in &self.entries {
            out.put_i32(entry.epoch);
            out.put_i64(entry.start_offset);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < PREFIX_LEN + 4 || &bytes[..4] != MAGIC {
            return Err("bad magic or too short".into());
        }
        if bytes[4] != VERSION {
            return Err(format!("unsupported version {}", bytes[4]));
        }
        let (body, mut crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != crc.get_u32() {
            return Err("checksum mismatch".into());
        }
        let mut rest = &body[5..];
        let count = rest.get_u32() as usize;
        if rest.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(format!("{} entry bytes for {count} entries", rest.len()));
        }
        let mut epochs = LeaderEpochs::default();
        for _ in 0..count {
            let entry = EpochEntry {
                epoch: rest.get_i32(),
                start_offset: rest.get_i64(),
            };
            let ordered = epochs.entries.last().is_none_or(|last| {
                entry.epoch > last.epoch && entry.start_offset > last.start_offset
            });
            if entry.epoch < 0 || entry.start_offset < 0 || !ordered {
                return Err(format!("entry {entry:?} out of order or negative"));
            }
            epochs.entries.push(entry);
        }
        Ok(epochs)
    }
}

/// The cache as saved; `None` when there is no file or it cannot be trusted.
fn read(dir: &Path) -> io::Result<Option<LeaderEpochs>> {
    let path = dir.join(EPOCH_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match LeaderEpochs::decode(&bytes) {
        Ok(epochs) => Ok(Some(epochs)),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "rebuilding unreadable leader epoch cache");
            Ok(None)
        }
    }
}

/// The cache from every batch header of the log: one read per batch, no record data.
fn rebuild(segments: &BTreeMap<i64, Segment>) -> Result<LeaderEpochs, StorageError> {
    let mut epochs = LeaderEpochs::default();
    for segment in segments.values() {
        let mut position = 0;
        while position < segment.size() {
            let header = segment.header_at(position)?;
            epochs.assign(header.leader_epoch, header.base_offset);
            position += header.total_size() as u64;
        }
    }
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::default();
        for &(epoch, start) in entries {
            assert!(epochs.assign(epoch, start));
        }
        epochs
    }

    fn pairs(epochs: &LeaderEpochs) -> Vec<(i32, i64)> {
        epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        // Epochs 1, 3 and 6 start at 0, 10 and 25; the log ends at 40.
        let epochs = cache(&[(1, 0), (3, 10), (6, 25)]);
        let at = |epoch| epochs.end_offset_for(epoch, 40);
        assert_eq!(
            at(1),
            Some((1, 10)),
            "an older cached epoch ends where the next starts"
        );
        assert_eq!(
            at(2),
            Some((1, 10)),
            "an uncached epoch answers the largest one below it"
        );
        assert_eq!(at(3), Some((3, 25)));
        assert_eq!(at(5), Some((3, 25)));
        assert_eq!(at(6), Some((6, 40)), "the latest epoch ends at the log end");
        assert_eq!(at(7), None, "newer than the latest: UNDEFINED");
        assert_eq!(at(-1), None, "UNDEFINED_EPOCH asks nothing");

        let trimmed = cache(&[(4, 100), (6, 120)]);
        assert_eq!(
            trimmed.end_offset_for(2, 130),
            Some((2, 100)),
            "older than every cached epoch: the first entry's start"
        );
        assert_eq!(LeaderEpochs::default().end_offset_for(0, 5), None);
    }

    #[test]
    fn assign_keeps_both_fields_increasing() {
        let mut epochs = cache(&[(1, 0), (2, 10)]);
        assert!(!epochs.assign(2, 15), "same epoch");
        assert!(!epochs.assign(1, 20), "older epoch");
        assert!(!epochs.assign(-1, 20), "no epoch");
        assert!(
            epochs.assign(5, 10),
            "a newer epoch replaces entries from its start on"
        );
        assert_eq!(pairs(&epochs), [(1, 0), (5, 10)]);
        assert_eq!(epochs.latest(), Some(5));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut epochs = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert!(!epochs.truncate_from_end(26));
        assert!(epochs.truncate_from_end(25));
        assert_eq!(pairs(&epochs), [(1, 0), (3, 10)]);

        let mut epochs = cache(&[(1, 0), (3, 10), (6, 25)]);
        assert!(!epochs.truncate_from_start(0));
        assert!(
            epochs.truncate_from_start(12),
            "the covering entry is clamped"
        );
        assert_eq!(pairs(&epochs), [(3, 12), (6, 25)]);
        assert!(epochs.truncate_from_start(25));
        assert_eq!(pairs(&epochs), [(6, 25)]);
        assert!(!epochs.truncate_from_start(25));
        assert!(epochs.truncate_from_start(30));
        assert_eq!(pairs(&epochs), [(6, 30)]);
    }

    #[test]
    fn file_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        for epochs in [LeaderEpochs::default(), cache(&[(1, 0), (3, 10), (6, 25)])] {
            epochs.write(dir.path()).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(epochs));
        }
        let path = dir.path().join(EPOCH_FILE);
        let mut bytes = fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x04;
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read(dir.path()).unwrap(), None, "flipped byte {i}");
            bytes[i] ^= 0x04;
        }
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);

        // A checksummed file whose entries go backwards is refused too.
        let mut bad = cache(&[(1, 0), (3, 10)]);
        bad.entries[1].start_offset = 0;
        fs::write(&path, bad.encode()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);

        LeaderEpochs::remove_file(dir.path()).unwrap();
        LeaderEpochs::remove_file(dir.path()).unwrap();
        assert!(!path.exists());
    }
}
