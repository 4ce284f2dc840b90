//! Sparse per-segment indexes. Both are small enough to keep in memory (one entry per
//! `index_interval_bytes` of log) and are appended to their file with positional writes, so a
//! failed write is simply overwritten by the next one. Neither is fsynced on append: the
//! active segment's indexes are rebuilt by recovery after a crash.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One `.index` entry: a batch's base offset relative to the segment base and its byte position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One `.timeindex` entry: the segment's max timestamp so far and the relative base offset of
/// the first batch that reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

const OFFSET_ENTRY_SIZE: usize = 8;
const TIME_ENTRY_SIZE: usize = 12;

/// Shared file handling: an index file whose contents are a flat array of fixed-size entries.
struct EntryFile {
    path: PathBuf,
    file: File,
    /// True when the file had to be created: the caller must rebuild from the log.
    was_missing: bool,
    /// Length of the file as found, to detect torn trailing entries.
    loaded_len: u64,
}

impl EntryFile {
    fn open(path: &Path) -> io::Result<(Self, Vec<u8>)> {
        let was_missing = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let loaded_len = file.metadata()?.len();
        let mut bytes = vec![0u8; usize::try_from(loaded_len).unwrap_or(0)];
        file.read_exact_at(&mut bytes, 0)?;
        let entries = EntryFile {
            path: path.to_path_buf(),
            file,
            was_missing,
            loaded_len,
        };
        Ok((entries, bytes))
    }

    /// Renames the file; the open handle follows it.
    fn rename(&mut self, to: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.path = to.to_path_buf();
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.loaded_len = 0;
        self.was_missing = false;
        Ok(())
    }
}

/// `.index` bytes: a flat array of 8-byte entries, `relative_offset u32 BE | position u32 BE`,
/// where relative_offset = batch base offset - segment base offset and position is that
/// batch's byte position in the `.log`. Both fields strictly increase.
pub(crate) struct OffsetIndex {
    store: EntryFile,
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn open(path: &Path) -> io::Result<Self> {
        let (store, bytes) = EntryFile::open(path)?;
        let entries = bytes
            .chunks_exact(OFFSET_ENTRY_SIZE)
            .map(|c| OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(OffsetIndex { store, entries })
    }

    pub fn was_missing(&self) -> bool {
        self.store.was_missing
    }

    pub fn path(&self) -> &Path {
        &self.store.path
    }

    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        self.store.rename(to)
    }

    /// Kafka-style sanity check: whole entries, both fields strictly increasing, positions
    /// inside the log.
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        if !self
            .store
            .loaded_len
            .is_multiple_of(OFFSET_ENTRY_SIZE as u64)
        {
            return Err(format!(
                "length {} is not whole entries",
                self.store.loaded_len
            ));
        }
        for pair in self.entries.windows(2) {
            if pair[1].relative_offset <= pair[0].relative_offset
                || pair[1].position <= pair[0].position
            {
                return Err(format!(
                    "entries out of order: {:?} then {:?}",
                    pair[0], pair[1]
                ));
            }
        }
        match self.entries.last() {
            Some(last) if u64::from(last.position) >= log_size => Err(format!(
                "last entry position {} is beyond the log size {log_size}",
                last.position
            )),
            _ => Ok(()),
        }
    }

    pub fn append(&mut self, entry: OffsetEntry) -> io::Result<()> {
        let at = (self.entries.len() * OFFSET_ENTRY_SIZE) as u64;
        let mut bytes = [0u8; OFFSET_ENTRY_SIZE];
        bytes[..4].copy_from_slice(&entry.relative_offset.to_be_bytes());
        bytes[4..].copy_from_slice(&entry.position.to_be_bytes());
        self.store.file.write_all_at(&bytes, at)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The last entry whose offset is <= `relative_offset`: where a scan for it may start.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry for which `wanted` holds, where it holds for a prefix of the entries.
    pub fn last_where(&self, wanted: impl Fn(&OffsetEntry) -> bool) -> Option<OffsetEntry> {
        let after = self.entries.partition_point(wanted);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.store.reset()
    }

    /// Forgets the entries of batches at or past byte `position` of the log.
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
        self.trim()
    }

    /// Drops any bytes past the in-memory entries (left by a failed write).
    pub fn trim(&mut self) -> io::Result<()> {
        let len = (self.entries.len() * OFFSET_ENTRY_SIZE) as u64;
        self.store.file.set_len(len)
    }

    pub fn sync(&self) -> io::Result<()> {
        crate::durable::sync_all(&self.store.file, self.path())
    }

    /// A second handle on the file, to sync it without borrowing the index.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.store.file.try_clone()
    }
}

/// `.timeindex` bytes: a flat array of 12-byte entries, `timestamp i64 BE | relative_offset
/// u32 BE`. An entry is added (at the offset index's cadence, and when a segment is sealed)
/// only when the segment's max timestamp has grown, so timestamps strictly increase and every
/// batch before an entry's batch has a smaller max timestamp.
pub(crate) struct TimeIndex {
    store: EntryFile,
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn open(path: &Path) -> io::Result<Self> {
        let (store, bytes) = EntryFile::open(path)?;
        let entries = bytes
            .chunks_exact(TIME_ENTRY_SIZE)
            .map(|c| TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            })
            .collect();
        Ok(TimeIndex { store, entries })
    }

    pub fn was_missing(&self) -> bool {
        self.store.was_missing
    }

    pub fn path(&self) -> &Path {
        &self.store.path
    }

    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        self.store.rename(to)
    }

    /// Whole entries, strictly increasing timestamps, non-decreasing offsets that stay below
    /// `relative_end` (the segment's next offset relative to its base), when known.
    pub fn sanity_check(&self, relative_end: Option<u64>) -> Result<(), String> {
        if !self.store.loaded_len.is_multiple_of(TIME_ENTRY_SIZE as u64) {
            return Err(format!(
                "length {} is not whole entries",
                self.store.loaded_len
            ));
        }
        for pair in self.entries.windows(2) {
            if pair[1].timestamp <= pair[0].timestamp
                || pair[1].relative_offset < pair[0].relative_offset
            {
                return Err(format!(
                    "entries out of order: {:?} then {:?}",
                    pair[0], pair[1]
                ));
            }
        }
        if self.entries.first().is_some_and(|e| e.timestamp < 0) {
            return Err("negative timestamp".into());
        }
        match (self.entries.last(), relative_end) {
            (Some(last), Some(end)) if u64::from(last.relative_offset) >= end => Err(format!(
                "last entry offset {} is beyond the segment end {end}",
                last.relative_offset
            )),
            _ => Ok(()),
        }
    }

    /// Appends unless the timestamp does not exceed the last entry's (or is a missing -1).
    pub fn maybe_append(&mut self, entry: TimeEntry) -> io::Result<()> {
        if entry.timestamp <= self.last_timestamp() {
            return Ok(());
        }
        let at = (self.entries.len() * TIME_ENTRY_SIZE) as u64;
        let mut bytes = [0u8; TIME_ENTRY_SIZE];
        bytes[..8].copy_from_slice(&entry.timestamp.to_be_bytes());
        bytes[8..].copy_from_slice(&entry.relative_offset.to_be_bytes());
        self.store.file.write_all_at(&bytes, at)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The last entry with timestamp <= `timestamp`: batches before its batch are all older.
    pub fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let after = self.entries.partition_point(|e| e.timestamp <= timestamp);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    fn last_timestamp(&self) -> i64 {
        self.entries.last().map_or(-1, |e| e.timestamp)
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.store.reset()
    }

    /// Forgets the entries pointing at or past `relative_end`. Those kept still hold: each
    /// names a batch that stays, and the batches before it are as old as they were.
    pub fn truncate_to_offset(&mut self, relative_end: u32) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_end);
        self.entries.truncate(keep);
        self.trim()
    }

    pub fn trim(&mut self) -> io::Result<()> {
        let len = (self.entries.len() * TIME_ENTRY_SIZE) as u64;
        self.store.file.set_len(len)
    }

    pub fn sync(&self) -> io::Result<()> {
        crate::durable::sync_all(&self.store.file, self.path())
    }

    /// A second handle on the file, to sync it without borrowing the index.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.store.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn offset_index_persists_and_looks_up_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::open(&path).unwrap();
        assert!(index.was_missing());
        for (o, p) in [(0, 0), (10, 500), (20, 1000)] {
            index.append(entry(o, p)).unwrap();
        }
        drop(index);
        let index = OffsetIndex::open(&path).unwrap();
        assert!(!index.was_missing());
        assert_eq!(index.sanity_check(2000), Ok(()));
        assert_eq!(index.lookup(0), Some(entry(0, 0)));
        assert_eq!(index.lookup(9), Some(entry(0, 0)));
        assert_eq!(index.lookup(10), Some(entry(10, 500)));
        assert_eq!(index.lookup(u32::MAX), Some(entry(20, 1000)));
        assert!(index.sanity_check(1000).is_err(), "position beyond the log");
    }

    #[test]
    fn offset_index_sanity_rejects_torn_and_unordered_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 11]).unwrap();
        assert!(OffsetIndex::open(&path).unwrap().sanity_check(100).is_err());
        let mut index = OffsetIndex::open(&path).unwrap();
        index.reset().unwrap();
        index.append(entry(5, 50)).unwrap();
        index.append(entry(4, 60)).unwrap();
        assert!(index.sanity_check(100).is_err());
    }

    #[test]
    fn time_index_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::open(&path).unwrap();
        let te = |timestamp, relative_offset| TimeEntry {
            timestamp,
            relative_offset,
        };
        index.maybe_append(te(-1, 0)).unwrap();
        index.maybe_append(te(100, 0)).unwrap();
        index.maybe_append(te(100, 3)).unwrap();
        index.maybe_append(te(90, 4)).unwrap();
        index.maybe_append(te(200, 5)).unwrap();
        drop(index);
        let index = TimeIndex::open(&path).unwrap();
        assert_eq!(index.last(), Some(te(200, 5)));
        assert_eq!(index.lookup(99), None);
        assert_eq!(index.lookup(150), Some(te(100, 0)));
        assert_eq!(index.sanity_check(Some(6)), Ok(()));
        assert!(index.sanity_check(Some(5)).is_err());
    }
}
