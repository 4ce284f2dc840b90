//! One segment: a `.log` of stored batches starting at `base_offset`, plus its `.index` and
//! `.timeindex`. Files are named by the 20-digit zero-padded base offset, as in Kafka.
//!
//! All reads are positional (`read_exact_at`) so any number of readers can share `&Segment`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::durable;
use crate::file_range::{read_unzeroed, FileRange};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::StorageError;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Suffix of a segment the cleaner is still writing (see `compaction` for the protocol).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// `file_name` plus the cleaner's staging suffix.
pub(crate) fn staged_name(base_offset: i64, ext: &str) -> String {
    format!("{}{CLEANED_SUFFIX}", file_name(base_offset, ext))
}

pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with the [`FileRange`]s reads hand out, which may outlive the segment (a
    /// response still being sent when retention deletes it).
    log: Arc<File>,
    /// Bytes of valid batches; the file may be longer after a failed write (trimmed on seal).
    size: u64,
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Largest batch max timestamp seen, -1 when none.
    max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: what time-based rolling measures against.
    first_batch_timestamp: Option<i64>,
    /// Wall clock at creation or load, for time-based rolling when batches carry no timestamps.
    created_ms: i64,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
}

impl Segment {
    /// Creates a new empty segment, replacing any stale files with the same base offset.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<Self> {
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            match fs::remove_file(dir.join(file_name(base_offset, ext))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        let mut segment = Self::from_parts(
            dir,
            base_offset,
            log_path,
            log,
            index_interval_bytes,
            file_name,
        )?;
        segment.created_ms = now_ms;
        Ok(segment)
    }

    /// Creates an empty segment under the cleaner's staging names (`*.log.cleaned`, ...), so
    /// it can be written beside the segments it will replace.
    pub fn create_staged(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
    ) -> io::Result<Self> {
        let open = |ext| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(staged_name(base_offset, ext)))
        };
        let log = open(LOG_EXT)?;
        // Truncate leftovers; the indexes reopen the same (now empty) files.
        open(INDEX_EXT)?;
        open(TIME_INDEX_EXT)?;
        let log_path = dir.join(staged_name(base_offset, LOG_EXT));
        Self::from_parts(
            dir,
            base_offset,
            log_path,
            log,
            index_interval_bytes,
            staged_name,
        )
    }

    /// Renames a staged segment's files to their final names: the log first, so that a
    /// staged log still present means none of its files were renamed yet.
    pub fn install(&mut self, dir: &Path) -> io::Result<()> {
        let log_path = dir.join(file_name(self.base_offset, LOG_EXT));
        fs::rename(&self.log_path, &log_path)?;
        self.log_path = log_path;
        self.offset_index
            .rename(&dir.join(file_name(self.base_offset, INDEX_EXT)))?;
        self.time_index
            .rename(&dir.join(file_name(self.base_offset, TIME_INDEX_EXT)))
    }

    /// Deletes a staged segment that will not be installed.
    pub fn discard(self) -> io::Result<()> {
        self.delete_files()
    }

    /// Opens an existing segment as found on disk. Only index-derived state is loaded; the
    /// caller (recovery) must establish `next_offset` by sanity-checking or rebuilding.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let mut segment = Self::from_parts(
            dir,
            base_offset,
            log_path,
            log,
            index_interval_bytes,
            file_name,
        )?;
        segment.created_ms = now_ms;
        segment.size = segment.log.metadata()?.len();
        if let Some(last) = segment.time_index.last() {
            segment.max_timestamp = last.timestamp;
            segment.offset_of_max_timestamp = base_offset + i64::from(last.relative_offset);
        }
        let last_indexed = segment
            .offset_index
            .last()
            .map_or(0, |e| u64::from(e.position));
        segment.bytes_since_index_entry = segment.size.saturating_sub(last_indexed);
        Ok(segment)
    }

    /// A segment with no batches yet over an open log; `name` gives its index files' names
    /// (final, or the cleaner's staging names).
    fn from_parts(
        dir: &Path,
        base_offset: i64,
        log_path: PathBuf,
        log: File,
        index_interval_bytes: u64,
        name: fn(i64, &str) -> String,
    ) -> io::Result<Self> {
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::open(&dir.join(name(base_offset, INDEX_EXT)))?,
            time_index: TimeIndex::open(&dir.join(name(base_offset, TIME_INDEX_EXT)))?,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: 0,
            bytes_since_index_entry: 0,
            index_interval_bytes,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn log_file(&self) -> &File {
        &self.log
    }

    /// Second handles on the index files, to sync them with the segment released.
    pub(crate) fn offset_index_file(&self) -> io::Result<File> {
        self.offset_index.try_clone_file()
    }

    pub(crate) fn time_index_file(&self) -> io::Result<File> {
        self.time_index.try_clone_file()
    }

    /// The timestamp retention judges by: the largest record timestamp, or (like Kafka) the
    /// file's modification time when no batch carries one.
    pub fn largest_timestamp(&self) -> io::Result<i64> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        let modified = self.log.metadata()?.modified()?;
        let ms = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Ok(ms)
    }

    /// Kafka's `segment.ms` rule: compare the incoming batch's timestamp with the first batch's
    /// rather than the wall clock, so replaying old data does not roll on every append.
    pub fn is_due_for_time_roll(&self, incoming_max_ts: i64, now_ms: i64, segment_ms: i64) -> bool {
        if self.is_empty() {
            return false;
        }
        let waited = match self.first_batch_timestamp {
            Some(first) if first >= 0 => incoming_max_ts.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        waited > segment_ms
    }

    /// Writes already-stamped batches at the end of the log and indexes them. Each batch only
    /// counts once indexed, so an I/O error leaves the segment consistent up to a batch
    /// boundary; stray bytes past `size` are overwritten by the next append.
    pub fn append(&mut self, bytes: &[u8], headers: &[BatchHeader]) -> io::Result<()> {
        self.log.write_all_at(bytes, self.size)?;
        for header in headers {
            self.index_batch(self.size, header)?;
        }
        Ok(())
    }

    /// As `append`, for batches whose first `HEADER_SIZE` bytes were stamped apart: `heads`
    /// holds one per batch of `records`, whose own headers are skipped. One `pwritev` puts
    /// each stamped header before its body, so the bodies are copied only into the page cache.
    pub fn append_with_heads(
        &mut self,
        records: &[u8],
        heads: &[[u8; HEADER_SIZE]],
        headers: &[BatchHeader],
    ) -> io::Result<()> {
        let mut slices = Vec::with_capacity(heads.len() * 2);
        let mut position = 0;
        for (head, header) in heads.iter().zip(headers) {
            let end = position + header.total_size();
            slices.push(IoSlice::new(head));
            slices.push(IoSlice::new(&records[position + HEADER_SIZE..end]));
            position = end;
        }
        pwritev_all(&self.log, &mut slices, self.size)?;
        for header in headers {
            self.index_batch(self.size, header)?;
        }
        Ok(())
    }

    /// Accounts for one batch written at `position` (which must equal `size`): advances the
    /// segment and adds sparse index entries. Shared by append and recovery.
    pub fn index_batch(&mut self, position: u64, header: &BatchHeader) -> io::Result<()> {
        debug_assert_eq!(position, self.size);
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        if self.bytes_since_index_entry > self.index_interval_bytes {
            let position = u32::try_from(position).map_err(|_| too_big(position))?;
            self.offset_index.append(OffsetEntry {
                relative_offset: self.relative(header.base_offset),
                position,
            })?;
            self.append_time_entry()?;
            self.bytes_since_index_entry = 0;
        }
        let size = header.total_size() as u64;
        self.bytes_since_index_entry += size;
        self.size = position + size;
        self.next_offset = header.next_offset();
        Ok(())
    }

    fn append_time_entry(&mut self) -> io::Result<()> {
        self.time_index.maybe_append(TimeEntry {
            timestamp: self.max_timestamp,
            relative_offset: self.relative(self.offset_of_max_timestamp),
        })
    }

    /// Offsets are relative to the base in indexes; rolling keeps them within u32.
    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX)
    }

    /// Where a scan for `offset` can start: the nearest indexed batch at or below it.
    fn scan_start(&self, offset: i64) -> u64 {
        self.offset_index
            .lookup(self.relative(offset))
            .map_or(0, |e| u64::from(e.position))
    }

    /// Reads and parses the batch header at `position`, checking the batch fits the segment.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader, StorageError> {
        let end = position.checked_add(HEADER_SIZE as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(self.corrupt(position, "batch header runs past the end of the segment"));
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.log.read_exact_at(&mut buf, position)?;
        let header = BatchHeader::parse(&buf)?;
        if position + header.total_size() as u64 > self.size {
            return Err(self.corrupt(position, "batch runs past the end of the segment"));
        }
        Ok(header)
    }

    /// `len` bytes at `position`.
    pub fn read_at(&self, position: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        let len = usize::try_from(len).map_err(|_| self.corrupt(position, "read too large"))?;
        Ok(read_unzeroed(&self.log, position, len)?)
    }

    /// The first batch whose last offset is >= `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let mut position = self.scan_start(offset);
        while position < self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Whole batches from `position` (where `first` starts): at most `max_bytes` but always
    /// `first` (KIP-74), stopping before any batch whose base offset is >= `upper_bound`.
    /// Found from the batch headers, not read: the bytes stay in the file.
    pub fn batches_from(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Option<FileRange>, StorageError> {
        if first.base_offset >= upper_bound {
            return Ok(None);
        }
        let first_end = position + first.total_size() as u64;
        let limit = position
            .saturating_add(max_bytes as u64)
            .min(self.size)
            .max(first_end);
        // Every batch before the last indexed one that starts within both limits is in: the
        // headers are read only from there, at most an index interval's worth.
        let upper_relative =
            u32::try_from(upper_bound.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let indexed = self
            .offset_index
            .last_where(|e| u64::from(e.position) <= limit && e.relative_offset < upper_relative);
        let (mut end, mut next_offset) = match indexed {
            Some(e) if u64::from(e.position) > position => (
                u64::from(e.position),
                self.base_offset + i64::from(e.relative_offset),
            ),
            _ => (first_end, first.last_offset() + 1),
        };
        while end < self.size {
            let header = self.header_at(end)?;
            let batch_end = end + header.total_size() as u64;
            if header.base_offset >= upper_bound || batch_end > limit {
                break;
            }
            end = batch_end;
            next_offset = header.last_offset() + 1;
        }
        Ok(Some(FileRange::new(
            self.log.clone(),
            position,
            (end - position) as usize,
            first.base_offset,
            next_offset,
        )))
    }

    /// The first record in this segment with timestamp >= `target` and offset >= `min_offset`.
    pub fn offset_for_timestamp(
        &self,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if self.is_empty() || self.max_timestamp < target {
            return Ok(None);
        }
        // Every batch before the time index entry's batch has an older max timestamp.
        let indexed = self
            .time_index
            .lookup(target)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            });
        let mut position = self.scan_start(indexed.max(min_offset));
        while position < self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= min_offset && header.max_timestamp >= target {
                let records = self.records_of(position, &header)?;
                let found = records
                    .into_iter()
                    .find(|&(offset, ts)| offset >= min_offset && ts >= target);
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// `(offset, timestamp)` of the earliest record holding this segment's max timestamp.
    pub fn max_timestamp_record(&self) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < 0 {
            return Ok(None);
        }
        let Some((position, header)) = self.find_batch(self.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let mut best: Option<(i64, i64)> = None;
        for (offset, ts) in self.records_of(position, &header)? {
            if best.is_none_or(|(_, best_ts)| ts > best_ts) {
                best = Some((offset, ts));
            }
        }
        Ok(best)
    }

    fn records_of(
        &self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let bytes = self.read_at(position, header.total_size() as u64)?;
        batch::record_timestamps(Bytes::from(bytes), header)
    }

    /// Fsync point "flush": log and both indexes.
    pub fn sync(&self) -> io::Result<()> {
        durable::sync_data(&self.log, &self.log_path)?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Makes the segment final: records its max timestamp in the time index (so a reopen
    /// knows it without scanning) and trims stray bytes. Nothing is synced; see
    /// [`Segment::seal`] and [`Segment::sync_handle`].
    pub fn finish(&mut self) -> io::Result<()> {
        self.append_time_entry()?;
        if self.log.metadata()?.len() != self.size {
            self.log.set_len(self.size)?;
        }
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// Fsync point "seal", at close and after recovery: `finish` and sync everything.
    pub fn seal(&mut self) -> io::Result<()> {
        self.finish()?;
        self.sync()
    }

    /// Handles on the segment's files that sync them with the same effect as
    /// [`Segment::sync`], from another thread and whatever happens to the segment meanwhile.
    pub fn sync_handle(&self) -> io::Result<SegmentSync> {
        Ok(SegmentSync {
            path: self.log_path.clone(),
            log: self.log.try_clone()?,
            indexes: [
                self.offset_index.try_clone_file()?,
                self.time_index.try_clone_file()?,
            ],
        })
    }

    pub fn delete_files(self) -> io::Result<()> {
        let index_paths = [
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        // The log goes first: an orphaned index is cleaned up on open, an index-less log is
        // rebuilt, but a half-deleted log must never look valid.
        fs::remove_file(&self.log_path)?;
        for path in index_paths {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    // ---- recovery support ----

    /// Whether the index files can be trusted for a segment that ends at `next_offset`.
    pub fn check_indexes(&self, next_offset: Option<i64>) -> Result<(), String> {
        if self.offset_index.was_missing() || self.time_index.was_missing() {
            return Err("index file missing".into());
        }
        self.offset_index.sanity_check(self.size)?;
        let relative_end = next_offset.map(|n| n.saturating_sub(self.base_offset).max(0) as u64);
        self.time_index.sanity_check(relative_end)?;
        if let Some(last) = self.offset_index.last() {
            let header = self
                .header_at(u64::from(last.position))
                .map_err(|e| e.to_string())?;
            if header.base_offset != self.base_offset + i64::from(last.relative_offset) {
                return Err(format!(
                    "last index entry does not point at offset {}",
                    header.base_offset
                ));
            }
        }
        if !self.is_empty() {
            let first = self.header_at(0).map_err(|e| e.to_string())?;
            if first.max_timestamp >= 0 && self.time_index.last().is_none() {
                return Err("time index is empty but batches carry timestamps".into());
            }
        }
        Ok(())
    }

    /// Forgets everything derived from the log so recovery can replay it batch by batch.
    pub fn reset_for_rebuild(&mut self) -> io::Result<()> {
        self.offset_index.reset()?;
        self.time_index.reset()?;
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = None;
        self.bytes_since_index_entry = 0;
        Ok(())
    }

    /// Adopts a trusted, already-indexed segment's end after a headers-only scan.
    pub fn set_loaded_end(&mut self, next_offset: i64) -> Result<(), StorageError> {
        self.next_offset = next_offset;
        if !self.is_empty() {
            self.first_batch_timestamp = Some(self.header_at(0)?.max_timestamp);
        }
        Ok(())
    }

    /// Cuts the log file back to `len` bytes (recovery's truncation of a torn tail).
    pub fn truncate_log(&mut self, len: u64) -> io::Result<()> {
        self.log.set_len(len)?;
        durable::sync_data(&self.log, &self.log_path)
    }

    /// Position of the last indexed batch and its offset: where a tail scan can start.
    pub fn last_indexed(&self) -> (u64, i64) {
        self.offset_index.last().map_or((0, self.base_offset), |e| {
            (
                u64::from(e.position),
                self.base_offset + i64::from(e.relative_offset),
            )
        })
    }

    fn corrupt(&self, position: u64, what: &str) -> StorageError {
        StorageError::CorruptRecord(format!(
            "{} at position {position}: {what}",
            self.log_path.display()
        ))
    }
}

/// A segment's files, detached from it so they can be synced off the append path.
pub(crate) struct SegmentSync {
    path: PathBuf,
    log: File,
    indexes: [File; 2],
}

impl SegmentSync {
    pub fn run(self) -> io::Result<()> {
        durable::sync_data(&self.log, &self.path)?;
        for index in &self.indexes {
            durable::sync_all(index, &self.path)?;
        }
        Ok(())
    }
}

/// Writes every byte of `slices` at `at`, in as few `pwritev(2)` calls as the kernel allows.
fn pwritev_all(file: &File, mut slices: &mut [IoSlice<'_>], mut at: u64) -> io::Result<()> {
    // Linux's IOV_MAX.
    const MAX_SLICES: usize = 1024;
    while !slices.is_empty() {
        let count = slices.len().min(MAX_SLICES);
        let offset = libc::off_t::try_from(at)
            .map_err(|_| io::Error::other("write position beyond off_t"))?;
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix; the `count` slices borrow
        // memory that outlives the call; the fd stays open as long as `file` is borrowed.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast(),
                count as libc::c_int,
                offset,
            )
        };
        match usize::try_from(n) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                IoSlice::advance_slices(&mut slices, n);
                at += n as u64;
            }
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

fn too_big(position: u64) -> io::Error {
    io::Error::other(format!(
        "segment position {position} does not fit an index entry"
    ))
}

mod truncation;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, batch_with, headers_of, Codec};

    fn segment_with(dir: &Path, batches: &[Bytes]) -> Segment {
        segment_with_interval(dir, batches, 0)
    }

    fn segment_with_interval(dir: &Path, batches: &[Bytes], index_interval: u64) -> Segment {
        let mut segment = Segment::create(dir, 100, index_interval, 5_000).unwrap();
        let mut next = 100;
        for bytes in batches {
            let mut bytes = bytes.to_vec();
            batch::assign_offset_and_epoch(&mut bytes, next, 0);
            let headers = headers_of(&bytes);
            next = headers[0].next_offset();
            segment.append(&bytes, &headers).unwrap();
        }
        segment
    }

    #[test]
    fn time_roll_falls_back_to_wall_clock_without_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_with(dir.path(), &[batch_with(&[-1], Codec::None)]);
        assert!(!segment.is_due_for_time_roll(-1, 5_500, 1_000));
        assert!(segment.is_due_for_time_roll(-1, 6_001, 1_000));
        assert!(
            segment.largest_timestamp().unwrap() > 1_000_000,
            "file mtime"
        );
        let empty = Segment::create(dir.path(), 7, 0, 0).unwrap();
        assert!(!empty.is_due_for_time_roll(i64::MAX, i64::MAX, 0));
    }

    #[test]
    fn batches_from_respects_limits() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_with(dir.path(), &[batch(2, 0), batch(2, 0), batch(2, 0)]);
        let (position, first) = segment.find_batch(103).unwrap().unwrap();
        assert_eq!(first.base_offset, 102);
        let read = |max_bytes, upper| {
            let range = segment
                .batches_from(position, &first, max_bytes, upper)
                .unwrap()
                .unwrap();
            let bytes = range.read().unwrap();
            (headers_of(&bytes).len(), range.records())
        };
        assert_eq!(read(1 << 20, 104), (1, 2));
        assert_eq!(read(1 << 20, 105), (2, 4));
        // KIP-74: the first batch even past max_bytes, and no more.
        assert_eq!(read(1, 106), (1, 2));
        assert!(segment
            .batches_from(position, &first, 1 << 20, 102)
            .unwrap()
            .is_none());
        assert!(segment.find_batch(106).unwrap().is_none());
    }

    #[test]
    fn batches_from_ends_on_batch_boundaries_with_or_without_index_entries() {
        // An index entry every batch (the end found from the entries, then the headers), and
        // none past the first (from the headers alone).
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<Bytes> = (0..40).map(|_| batch(3, 100)).collect();
        for interval in [0, 1 << 20] {
            let segment = segment_with_interval(dir.path(), &batches, interval);
            check_batches_from(&segment, batches[0].len());
        }
    }

    fn check_batches_from(segment: &Segment, size: usize) {
        let (position, first) = segment.find_batch(100).unwrap().unwrap();
        for max_bytes in [
            0,
            size - 1,
            size,
            size + 1,
            7 * size + 3,
            40 * size,
            1 << 20,
        ] {
            for upper in [101, 103, 104, 130, 131, 220] {
                let range = segment
                    .batches_from(position, &first, max_bytes, upper)
                    .unwrap()
                    .unwrap();
                let whole = (max_bytes / size).clamp(1, 40);
                let below_upper = ((upper - 100 + 2) / 3) as usize;
                let expected = whole.min(below_upper).max(1);
                assert_eq!(
                    range.len(),
                    expected * size,
                    "max_bytes {max_bytes}, upper {upper}"
                );
                assert_eq!(range.records(), 3 * expected as u64);
                assert_eq!(headers_of(&range.read().unwrap()).len(), expected);
            }
        }
    }

    #[test]
    fn header_reads_past_the_end_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_with(dir.path(), &[batch(1, 0)]);
        assert!(segment.header_at(segment.size()).is_err());
        assert!(segment.header_at(u64::MAX - 3).is_err());
        assert!(segment.header_at(1).is_err());
    }
}
