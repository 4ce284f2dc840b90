//! Open-time recovery: find the segments, decide which can be trusted, and repair the rest.
//!
//! Segments that end at or below the recovery point were on disk before the crash; only the
//! ones after it (always including the active one) can be torn. Without a clean-shutdown
//! marker those are scanned batch by batch (length, magic, CRC-32C, increasing offsets) and
//! truncated at the first bad batch, and their indexes are rebuilt. Trusted segments keep
//! their indexes unless those are missing or fail a sanity check, in which case they are
//! rebuilt the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::{check_batch, BatchHeader, HEADER_SIZE};
use crate::checkpoint::sync_dir;
use crate::segment::{Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::{LogConfig, StorageError};

/// Loads every segment in `dir`, creating one at `empty_base` for a new partition.
/// `clean` says whether the previous run shut down cleanly; if not, segments ending above
/// `recovery_point` are checked batch by batch. Every sealed segment is synced on return.
pub(crate) fn load_segments(
    dir: &Path,
    config: &LogConfig,
    clean: bool,
    recovery_point: i64,
    empty_base: i64,
    now_ms: i64,
) -> Result<BTreeMap<i64, Segment>, StorageError> {
    let bases: Vec<i64> = list_segments(dir)?.into_iter().collect();
    let interval = config.index_interval_bytes;
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        let segment = Segment::create(dir, empty_base, interval, now_ms)?;
        sync_dir(dir)?;
        segments.insert(empty_base, segment);
        return Ok(segments);
    }
    for (i, &base) in bases.iter().enumerate() {
        let mut segment = Segment::open(dir, base, interval, now_ms)?;
        let next_base = bases.get(i + 1).copied();
        let truncated = match next_base {
            Some(next_base) if clean || next_base <= recovery_point => {
                load_sealed(&mut segment, next_base)?
            }
            Some(next_base) => load_unsynced(&mut segment, next_base)?,
            None => load_active(&mut segment, clean)?,
        };
        segments.insert(base, segment);
        if truncated && next_base.is_some() {
            // Later segments would leave a hole in the offsets; like Kafka, drop them.
            for &later in &bases[i + 1..] {
                tracing::warn!(dir = %dir.display(), base = later, "deleting segment after a corrupt one");
                Segment::open(dir, later, interval, now_ms)?.delete_files()?;
            }
            sync_dir(dir)?;
            break;
        }
    }
    Ok(segments)
}

/// Lists segment base offsets and removes leftovers of interrupted operations: index files
/// whose log is gone (segment deletion removes the log first) and temp files.
fn list_segments(dir: &Path) -> io::Result<BTreeSet<i64>> {
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // A writer of the previous instance may have renamed it meanwhile.
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => continue,
            }
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Some(base) = parse_base(stem) else {
            continue;
        };
        match ext {
            LOG_EXT => {
                logs.insert(base);
            }
            INDEX_EXT | TIME_INDEX_EXT => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            tracing::warn!(path = %path.display(), "removing orphaned index file");
            fs::remove_file(path)?;
        }
    }
    Ok(logs)
}

fn parse_base(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A sealed segment ends where the next begins. Returns whether it had to be truncated.
fn load_sealed(segment: &mut Segment, next_base: i64) -> Result<bool, StorageError> {
    match segment.check_indexes(Some(next_base)) {
        Ok(()) => {
            segment.set_loaded_end(next_base)?;
            Ok(false)
        }
        Err(reason) => {
            tracing::warn!(base = segment.base_offset(), %reason, "rebuilding indexes of sealed segment");
            load_unsynced(segment, next_base)
        }
    }
}

/// A sealed segment that may not have reached the disk before a crash, or whose indexes
/// cannot be trusted: every batch is checked. Returns whether it had to be truncated.
fn load_unsynced(segment: &mut Segment, next_base: i64) -> Result<bool, StorageError> {
    let truncated = recover_segment(segment)? > 0;
    // Sealed segments keep their final max timestamp in the time index.
    segment.seal()?;
    if !truncated && segment.next_offset() != next_base {
        tracing::warn!(
            base = segment.base_offset(),
            end = segment.next_offset(),
            next_base,
            "sealed segment does not end where the next begins"
        );
    }
    Ok(truncated)
}

/// The active segment: trusted after a clean shutdown if its indexes and tail check out,
/// otherwise fully recovered.
fn load_active(segment: &mut Segment, clean: bool) -> Result<bool, StorageError> {
    if clean {
        let trusted = segment
            .check_indexes(None)
            .and_then(|()| scan_tail(segment));
        match trusted {
            Ok(next_offset) => {
                segment.set_loaded_end(next_offset)?;
                return Ok(false);
            }
            Err(reason) => {
                tracing::warn!(base = segment.base_offset(), %reason, "clean shutdown but inconsistent segment; recovering");
            }
        }
    }
    Ok(recover_segment(segment)? > 0)
}

/// Walks batch headers from the last index entry to the end: cheap, and enough to find the
/// log end offset of a cleanly closed segment.
fn scan_tail(segment: &Segment) -> Result<i64, String> {
    let (mut position, mut next_offset) = segment.last_indexed();
    while position < segment.size() {
        let header = segment.header_at(position).map_err(|e| e.to_string())?;
        if header.base_offset < next_offset {
            return Err(format!("offset {} goes backwards", header.base_offset));
        }
        next_offset = header.next_offset();
        position += header.total_size() as u64;
    }
    Ok(next_offset)
}

/// Replays the segment's log, re-indexing every valid batch and truncating the file at the
/// first torn or corrupt one. Returns the number of bytes cut off.
pub(crate) fn recover_segment(segment: &mut Segment) -> Result<u64, StorageError> {
    segment.reset_for_rebuild()?;
    let file_len = segment.log_file().metadata()?.len();
    let mut position = 0u64;
    let mut buf = Vec::new();
    while position < file_len {
        let expected = segment.next_offset();
        match read_valid_batch(segment.log_file(), position, file_len, expected, &mut buf)? {
            Some(header) => {
                segment.index_batch(position, &header)?;
                position += header.total_size() as u64;
            }
            None => break,
        }
    }
    let cut = file_len - position;
    if cut > 0 {
        tracing::warn!(
            base = segment.base_offset(),
            position,
            bytes = cut,
            "truncating torn or corrupt tail of segment"
        );
        segment.truncate_log(position)?;
    }
    Ok(cut)
}

/// The batch at `position` if it is whole, uncorrupted and does not go back in offsets.
/// Data problems end the scan (`None`); only I/O errors are errors.
fn read_valid_batch(
    file: &File,
    position: u64,
    file_len: u64,
    min_base_offset: i64,
    buf: &mut Vec<u8>,
) -> io::Result<Option<BatchHeader>> {
    let remaining = file_len - position;
    if remaining < HEADER_SIZE as u64 {
        return Ok(None);
    }
    let mut header_bytes = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut header_bytes, position)?;
    let Ok(header) = BatchHeader::parse(&header_bytes) else {
        return Ok(None);
    };
    if header.total_size() as u64 > remaining || header.base_offset < min_base_offset {
        return Ok(None);
    }
    buf.resize(header.total_size(), 0);
    file.read_exact_at(buf, position)?;
    Ok(check_batch(buf).ok())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::checkpoint::{self, CLEAN_SHUTDOWN_FILE};
    use crate::testutil::{
        batch, batch_with, files_with_ext, headers_of, read_all, test_config, Codec,
    };
    use crate::PartitionLog;

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            index_interval_bytes: 80,
            ..test_config()
        }
    }

    /// A multi-segment log, dropped without `close()` (a crash). Returns the log end offset
    /// before the last batch and the byte size of that batch.
    fn crashed_log(dir: &Path) -> (i64, usize) {
        let mut log = PartitionLog::open(dir, small_config()).unwrap();
        for i in 0..24 {
            let codec = Codec::ALL[i % Codec::ALL.len()];
            log.append(batch_with(&[i as i64 * 10, i as i64 * 10 + 3], codec), 1, 0)
                .unwrap();
        }
        let before_last = log.log_end_offset();
        let last = batch_with(&[1000, 1001, 1002], Codec::Gzip);
        let last_len = last.len();
        log.append(last, 1, 0).unwrap();
        assert!(log.segment_count() >= 3);
        (before_last, last_len)
    }

    fn active_log_file(dir: &Path) -> PathBuf {
        files_with_ext(dir, "log").pop().unwrap()
    }

    fn assert_recovered(dir: &Path, expected_leo: i64, intact: &[u8], what: &str) {
        let mut log = PartitionLog::open(dir, small_config()).unwrap();
        assert_eq!(log.log_end_offset(), expected_leo, "{what}");
        assert_eq!(read_all(&log, 0, expected_leo), intact, "{what}");
        let info = log.append(batch(2, 5), 1, 0).unwrap();
        assert_eq!(info.base_offset, expected_leo, "{what}");
        assert_eq!(
            log.read(expected_leo, 0, expected_leo + 2).unwrap().len(),
            batch(2, 5).len()
        );
    }

    #[test]
    fn torn_last_batch_is_truncated_at_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (before_last, last_len) = crashed_log(dir.path());
        let path = active_log_file(dir.path());
        let full = fs::read(&path).unwrap();
        let prev_end = full.len() - last_len;
        let intact = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            read_all(&log, 0, before_last)
        };
        for cut in prev_end..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            assert_recovered(dir.path(), before_last, &intact, &format!("cut at {cut}"));
            assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        }
    }

    #[test]
    fn corrupt_last_batch_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (before_last, last_len) = crashed_log(dir.path());
        let path = active_log_file(dir.path());
        let full = fs::read(&path).unwrap();
        let prev_end = full.len() - last_len;
        let intact = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            read_all(&log, 0, before_last)
        };
        // Everything from batchLength on, except the leader epoch (which the CRC does not cover).
        for i in (8..last_len).filter(|i| !(12..16).contains(i)) {
            let mut damaged = full.clone();
            damaged[prev_end + i] ^= 0x20;
            fs::write(&path, &damaged).unwrap();
            assert_recovered(
                dir.path(),
                before_last,
                &intact,
                &format!("flipped byte {i}"),
            );
        }
    }

    #[test]
    fn unclean_reopen_without_damage_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (before_last, _) = crashed_log(dir.path());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), before_last + 3);
        assert_eq!(log.max_timestamp().unwrap(), Some((before_last + 2, 1002)));
    }

    #[test]
    fn missing_or_garbage_indexes_are_rebuilt_identically() {
        let dir = tempfile::tempdir().unwrap();
        crashed_log(dir.path());
        PartitionLog::open(dir.path(), small_config())
            .unwrap()
            .close()
            .unwrap();
        let snapshot = |ext| -> Vec<Vec<u8>> {
            files_with_ext(dir.path(), ext)
                .iter()
                .map(|p| fs::read(p).unwrap())
                .collect()
        };
        let (indexes, time_indexes) = (snapshot("index"), snapshot("timeindex"));
        assert!(indexes.iter().any(|i| !i.is_empty()));

        for damage in ["delete", "garbage"] {
            for path in files_with_ext(dir.path(), "index")
                .into_iter()
                .chain(files_with_ext(dir.path(), "timeindex"))
            {
                match damage {
                    "delete" => fs::remove_file(path).unwrap(),
                    _ => fs::write(path, [0xAB; 13]).unwrap(),
                }
            }
            // With the clean marker still present: the damage must be noticed anyway.
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            let leo = log.log_end_offset();
            for offset in 0..leo {
                let h = headers_of(&log.read(offset, 0, leo).unwrap())[0];
                assert!(h.base_offset <= offset && offset <= h.last_offset());
            }
            assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((21, 103)));
            log.close().unwrap();
            assert_eq!(snapshot("index"), indexes, "{damage}");
            assert_eq!(snapshot("timeindex"), time_indexes, "{damage}");
        }
    }

    #[test]
    fn corrupt_sealed_segment_drops_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        crashed_log(dir.path());
        let first = files_with_ext(dir.path(), "log")[0].clone();
        let mut bytes = fs::read(&first).unwrap();
        let first_size = crate::BatchHeader::parse(&bytes).unwrap().total_size();
        bytes[first_size + 30] ^= 0xFF;
        fs::write(&first, &bytes).unwrap();
        fs::remove_file(first.with_extension("index")).unwrap();

        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(fs::metadata(&first).unwrap().len(), first_size as u64);
    }

    /// The first segment's file, with one byte of its second batch flipped and its indexes
    /// left as they were: only a batch-by-batch check can notice.
    fn damage_first_segment(dir: &Path) -> usize {
        let first = files_with_ext(dir, "log")[0].clone();
        let mut bytes = fs::read(&first).unwrap();
        let first_size = crate::BatchHeader::parse(&bytes).unwrap().total_size();
        bytes[first_size + 30] ^= 0xFF;
        fs::write(&first, &bytes).unwrap();
        first_size
    }

    #[test]
    fn rolled_segments_not_known_synced_are_checked_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        crashed_log(dir.path());
        // No checkpoint says the rolled segments reached the disk.
        assert!(checkpoint::read(dir.path()).unwrap().is_none());
        let first_size = damage_first_segment(dir.path());

        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 2);
        let first = files_with_ext(dir.path(), "log")[0].clone();
        assert_eq!(fs::metadata(first).unwrap().len(), first_size as u64);
    }

    #[test]
    fn segments_below_the_recovery_point_are_trusted_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
        for i in 0..24 {
            log.append(batch_with(&[i * 10, i * 10 + 3], Codec::None), 1, 0)
                .unwrap();
        }
        let segments = log.segment_count();
        let active_base = *log.segment_bases().last().unwrap();
        log.checkpoint_after_sealed_syncs();
        drop(log);
        let saved = checkpoint::read(dir.path()).unwrap().unwrap();
        assert_eq!(saved.recovery_point, active_base);
        // Not checked again, so the damage goes unseen: the point of the recovery point is
        // that reopening after a crash costs the unsynced tail, not the whole log.
        damage_first_segment(dir.path());

        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.segment_count(), segments);
        assert_eq!(log.log_end_offset(), 48);
    }

    #[test]
    fn garbage_segment_files_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = batch(2, 0).to_vec();
            let len = round * 37 % 700;
            bytes.extend((0..len).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            }));
            fs::write(dir.path().join("00000000000000000000.log"), &bytes).unwrap();
            fs::write(
                dir.path().join("00000000000000000000.index"),
                &bytes[..len / 2],
            )
            .unwrap();
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            assert_eq!(log.log_end_offset(), 2, "round {round}");
            log.close().unwrap();
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            assert_eq!(log.log_end_offset(), 2, "round {round}, clean reopen");
        }
    }

    #[test]
    fn leftovers_of_interrupted_operations_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        crashed_log(dir.path());
        let orphan = dir.path().join("00000000000000099999.index");
        let tmp = dir.path().join("partition.checkpoint.tmp");
        fs::write(&orphan, [0u8; 8]).unwrap();
        fs::write(&tmp, b"x").unwrap();
        PartitionLog::open(dir.path(), small_config()).unwrap();
        assert!(!orphan.exists() && !tmp.exists());
    }
}
