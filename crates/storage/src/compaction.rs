//! Log compaction (Kafka's log cleaner, `cleanup.policy=compact`): a partition keeps at least
//! the last record of every key, and deletes a key once its tombstone has aged out.
//!
//! The model is Kafka's:
//! - Only sealed segments are cleaned. The *cleanable* section ends at the first uncleanable
//!   segment: the active one, one holding records younger than `min.compaction.lag.ms`, or one
//!   reaching past the high watermark.
//! - The *dirty* section is the part of it at or after the cleaner checkpoint's first dirty
//!   offset (everything below was cleaned before). A cleaning is due when dirty bytes /
//!   cleanable bytes >= `min.cleanable.dirty.ratio`, or when the delete horizon of a kept
//!   tombstone has passed.
//! - A cleaning maps each key of the dirty section to its last offset, then rewrites the whole
//!   cleanable section keeping a record unless the map has a later offset for its key, it has
//!   no key, or it is a tombstone whose batch's delete horizon has passed. A tombstone kept for
//!   the first time gets the horizon now + `delete.retention.ms` (KIP-534: attribute bit 6 and
//!   the horizon in the base timestamp, see `records`). Control batches are kept whole.
//! - Transactions: the cleanable section also ends before the first open transaction (the
//!   last stable offset), so only decided transactions are cleaned. Batches of aborted
//!   transactions are dropped and never enter the key map (a read_committed consumer must
//!   not lose a committed record to an aborted one); their markers, like every control
//!   batch, stay.
//! - Offsets never move: a rewritten batch keeps its base offset and lastOffsetDelta; a batch
//!   left with no records goes. A fetch at a removed offset gets the next batch, as in Kafka.
//! - The output is cut into segments of at most `segment.bytes`, so small cleaned segments
//!   merge. The first keeps the first original's base offset.
//!
//! Concurrency: [`crate::PartitionLog::compaction_plan`] snapshots the cleanable segments
//! (cloned file handles) under the broker's read lock, [`CleanPlan::run`] reads and writes
//! with no lock held, and [`crate::PartitionLog::install_cleaned`] swaps under the write lock,
//! giving up if retention removed a replaced segment meanwhile. The swap protocol that makes
//! the replacement crash-safe is in [`swap`].

pub(crate) mod swap;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{check_batch, BatchHeader, HEADER_SIZE};
use crate::checkpoint::{sync_dir, CleanerCheckpoint};
use crate::records::BatchRecords;
use crate::segment::Segment;
use crate::{AbortedTxn, LogConfig, StorageError};

/// Rough cap on the key → offset map (Kafka's `log.cleaner.dedupe.buffer.size` plays this
/// role): past it, a cleaning covers only the dirty segments mapped so far.
const MAX_OFFSET_MAP_BYTES: usize = 128 * 1024 * 1024;
/// Per-entry overhead counted against the cap besides the key bytes.
const MAP_ENTRY_OVERHEAD: usize = 64;

/// What one cleaning did, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

/// A sealed segment as it was when the plan was made. The cloned handle keeps the bytes
/// readable even if retention unlinks the file meanwhile.
struct Source {
    base: i64,
    next_base: i64,
    file: File,
    size: u64,
}

/// The cleanable section of one partition, ready to be cleaned without any lock.
pub struct CleanPlan {
    dir: PathBuf,
    config: LogConfig,
    now_ms: i64,
    first_dirty: i64,
    sources: Vec<Source>,
    /// Aborted transactions that may have batches in the sources.
    aborted: Vec<AbortedTxn>,
}

/// Cleaned segments written under staging names, waiting to be installed.
pub struct CleanedSegments {
    replaced: Vec<i64>,
    segments: Vec<Segment>,
    /// The first offset after the cleaned section: the next first dirty offset.
    end: i64,
    next_delete_horizon: Option<i64>,
    stats: CleanStats,
}

/// Decides whether a cleaning is due and snapshots what it would clean.
pub(crate) fn plan(
    dir: &Path,
    config: &LogConfig,
    segments: &BTreeMap<i64, Segment>,
    cleaner: CleanerCheckpoint,
    stable_end: i64,
    aborted: &[AbortedTxn],
    now_ms: i64,
) -> Result<Option<CleanPlan>, StorageError> {
    let Some(&first_base) = segments.keys().next() else {
        return Ok(None);
    };
    let first_dirty = cleaner.first_dirty_offset.max(first_base);
    let lag_limit = (config.min_compaction_lag_ms > 0)
        .then(|| now_ms.saturating_sub(config.min_compaction_lag_ms));
    let mut sources = Vec::new();
    let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
    for (segment, &next_base) in segments.values().zip(segments.keys().skip(1)) {
        if next_base > stable_end {
            break;
        }
        if next_base > first_dirty {
            if lag_limit.is_some_and(|limit| segment.max_timestamp() > limit) {
                break;
            }
            dirty_bytes += segment.size();
        } else {
            clean_bytes += segment.size();
        }
        sources.push(Source {
            base: segment.base_offset(),
            next_base,
            file: segment.log_file().try_clone()?,
            size: segment.size(),
        });
    }
    let cleanable = clean_bytes + dirty_bytes;
    let ratio_due = dirty_bytes > 0
        && dirty_bytes as f64 >= config.min_cleanable_dirty_ratio * cleanable as f64;
    let horizon_due = cleaner.next_delete_horizon.is_some_and(|h| h <= now_ms);
    if sources.is_empty() || !(ratio_due || horizon_due) {
        return Ok(None);
    }
    Ok(Some(CleanPlan {
        dir: dir.to_path_buf(),
        config: config.clone(),
        now_ms,
        first_dirty,
        aborted: aborted
            .iter()
            .filter(|a| sources.last().is_some_and(|s| a.first_offset < s.next_base))
            .copied()
            .collect(),
        sources,
    }))
}

impl CleanPlan {
    /// Builds the key map and writes the cleaned segments (sealed and fsynced) under staging
    /// names. On error every staged file is removed and the log is as before.
    pub fn run(self) -> Result<CleanedSegments, StorageError> {
        let result = self.clean();
        if result.is_err() {
            if let Err(err) = swap::remove_staged(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), "cannot remove staged segments: {err}");
            }
        }
        result
    }

    fn clean(&self) -> Result<CleanedSegments, StorageError> {
        let (map, usable) = self.offset_map()?;
        let sources = &self.sources[..usable];
        let end = sources.last().map_or(self.first_dirty, |s| s.next_base);
        let mut output = Output {
            dir: &self.dir,
            limit: self.config.effective_segment_bytes(),
            interval: self.config.index_interval_bytes,
            segments: vec![Segment::create_staged(
                &self.dir,
                sources[0].base,
                self.config.index_interval_bytes,
            )?],
        };
        let mut stats = CleanStats {
            segments_before: sources.len(),
            ..CleanStats::default()
        };
        let mut next_delete_horizon: Option<i64> = None;
        for source in sources {
            stats.bytes_before += source.size;
            for_each_batch(source, |bytes, header| {
                if header.is_control() {
                    return output.push(&bytes, &header);
                }
                if self.is_aborted(&header) {
                    stats.records_removed += header.record_count.max(0) as u64;
                    return Ok(());
                }
                let batch = BatchRecords::parse(&bytes)?;
                let horizon = batch.delete_horizon();
                let horizon_passed = horizon.is_some_and(|h| h <= self.now_ms);
                let mut keep = Vec::with_capacity(batch.records.len());
                let mut tombstones = false;
                for (i, record) in batch.records.iter().enumerate() {
                    let Some(key) = batch.key(record) else {
                        continue;
                    };
                    if map.get(key).is_some_and(|&latest| latest > record.offset) {
                        continue;
                    }
                    if !record.has_value {
                        if horizon_passed {
                            continue;
                        }
                        tombstones = true;
                    }
                    keep.push(i);
                }
                stats.records_removed += (batch.records.len() - keep.len()) as u64;
                let new_horizon = (tombstones && horizon.is_none())
                    .then(|| self.now_ms.saturating_add(self.config.delete_retention_ms));
                if tombstones {
                    let h = new_horizon.or(horizon).unwrap_or(i64::MAX);
                    next_delete_horizon = Some(next_delete_horizon.map_or(h, |n| n.min(h)));
                }
                if keep.len() == batch.records.len() && new_horizon.is_none() {
                    return output.push(&bytes, &header);
                }
                match batch.rebuild(&keep, new_horizon)? {
                    Some(rebuilt) => {
                        let header = BatchHeader::parse(&rebuilt)?;
                        output.push(&rebuilt, &header)
                    }
                    None => Ok(()),
                }
            })?;
        }
        let segments = output.finish(end)?;
        stats.segments_after = segments.len();
        stats.bytes_after = segments.iter().map(Segment::size).sum();
        Ok(CleanedSegments {
            replaced: sources.iter().map(|s| s.base).collect(),
            segments,
            end,
            next_delete_horizon,
            stats,
        })
    }

    fn is_aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && self.aborted.iter().any(|a| {
                a.producer_id == header.producer_id
                    && a.first_offset <= header.base_offset
                    && header.base_offset < a.last_offset
            })
    }

    /// Last offset of every key in the dirty section, and how many sources the cleaning can
    /// cover (all, unless the map outgrew its cap).
    fn offset_map(&self) -> Result<(HashMap<Vec<u8>, i64>, usize), StorageError> {
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        for (i, source) in self.sources.iter().enumerate() {
            if source.next_base <= self.first_dirty {
                continue;
            }
            if map_bytes > MAX_OFFSET_MAP_BYTES && source.base > self.first_dirty {
                tracing::info!(dir = %self.dir.display(), "key map full; cleaning up to offset {}", source.base);
                return Ok((map, i));
            }
            for_each_batch(source, |bytes, header| {
                if header.is_control() || self.is_aborted(&header) {
                    return Ok(());
                }
                let batch = BatchRecords::parse(&bytes)?;
                for record in &batch.records {
                    let Some(key) = batch.key(record) else {
                        continue;
                    };
                    if record.offset < self.first_dirty {
                        continue;
                    }
                    match map.get_mut(key) {
                        Some(latest) => *latest = (*latest).max(record.offset),
                        None => {
                            map_bytes += key.len() + MAP_ENTRY_OVERHEAD;
                            map.insert(key.to_vec(), record.offset);
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok((map, self.sources.len()))
    }
}

impl CleanedSegments {
    pub fn stats(&self) -> CleanStats {
        self.stats
    }

    pub(crate) fn replaced(&self) -> &[i64] {
        &self.replaced
    }

    pub(crate) fn end(&self) -> i64 {
        self.end
    }

    /// The parts [`crate::PartitionLog::install_cleaned`] needs.
    pub(crate) fn into_parts(self) -> (Vec<i64>, Vec<Segment>, CleanerCheckpoint, CleanStats) {
        let checkpoint = CleanerCheckpoint {
            first_dirty_offset: self.end,
            next_delete_horizon: self.next_delete_horizon,
        };
        (self.replaced, self.segments, checkpoint, self.stats)
    }

    /// Throws the staged segments away (the log changed under the cleaner, or is closing).
    pub fn discard(self) -> Result<(), StorageError> {
        for segment in self.segments {
            segment.discard()?;
        }
        Ok(())
    }
}

/// The staged segments being written, cut at `limit` bytes like the active segment.
struct Output<'a> {
    dir: &'a Path,
    limit: u64,
    interval: u64,
    segments: Vec<Segment>,
}

impl Output<'_> {
    fn push(&mut self, bytes: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
        let current = self.segments.last().expect("output starts with a segment");
        let full = current.size() + bytes.len() as u64 > self.limit;
        let offsets_overflow = header.last_offset() - current.base_offset() > i64::from(i32::MAX);
        if !current.is_empty() && (full || offsets_overflow) {
            let next = Segment::create_staged(self.dir, header.base_offset, self.interval)?;
            self.segments.push(next);
        }
        let current = self
            .segments
            .last_mut()
            .expect("output starts with a segment");
        current.append(bytes, std::slice::from_ref(header))?;
        Ok(())
    }

    /// Seals every staged segment (fsync point "seal") and gives each the offset range of
    /// what it replaces: up to the next one's base, the last up to `end`.
    fn finish(mut self, end: i64) -> Result<Vec<Segment>, StorageError> {
        let mut ends: Vec<i64> = self
            .segments
            .iter()
            .skip(1)
            .map(Segment::base_offset)
            .collect();
        ends.push(end);
        for (segment, next) in self.segments.iter_mut().zip(ends) {
            segment.seal()?;
            segment.set_loaded_end(next)?;
        }
        sync_dir(self.dir)?;
        Ok(self.segments)
    }
}

/// Calls `f` with each whole, CRC-checked batch of `source`, in order. A damaged batch stops
/// the cleaning: better to keep a dirty log than to drop what follows it.
fn for_each_batch(
    source: &Source,
    mut f: impl FnMut(Vec<u8>, BatchHeader) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut position = 0u64;
    let mut head = [0u8; HEADER_SIZE];
    while position < source.size {
        let corrupt = |what: &str| {
            StorageError::CorruptRecord(format!(
                "segment {} at position {position}: {what}",
                source.base
            ))
        };
        if position + HEADER_SIZE as u64 > source.size {
            return Err(corrupt("truncated batch header"));
        }
        source.file.read_exact_at(&mut head, position)?;
        let size = BatchHeader::parse(&head)?.total_size() as u64;
        if position + size > source.size {
            return Err(corrupt("batch runs past the end of the segment"));
        }
        let mut bytes = vec![0u8; size as usize];
        source.file.read_exact_at(&mut bytes, position)?;
        let header = check_batch(&bytes)?;
        f(bytes, header)?;
        position += size;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
