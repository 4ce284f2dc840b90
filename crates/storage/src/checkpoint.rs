//! Small per-partition state files: the offsets checkpoint and the clean-shutdown marker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Buf;

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";
/// Present only between a clean `close()` and the next open; its absence means a crash.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

const MAGIC: &[u8; 4] = b"SMCP";
const VERSION: u8 = 2;
/// Version 1 had no recovery point: it was written when every rolled segment was synced
/// before the roll returned.
const V1_LEN: usize = 25;
const ENCODED_LEN: usize = 33;

/// Offsets that cannot be derived from the segments themselves.
///
/// `partition.checkpoint` bytes (33, big-endian): magic `"SMCP"` | version u8 (=2) |
/// log_start_offset i64 | high_watermark i64 | recovery_point i64 | CRC-32C u32 of the
/// preceding 29 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Everything below this offset was on disk when the checkpoint was written; recovery
    /// after a crash checks the segments from here on.
    pub recovery_point: i64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[5..13].copy_from_slice(&self.log_start_offset.to_be_bytes());
        out[13..21].copy_from_slice(&self.high_watermark.to_be_bytes());
        out[21..29].copy_from_slice(&self.recovery_point.to_be_bytes());
        let crc = crc32c::crc32c(&out[..29]);
        out[29..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 5 || &bytes[..4] != MAGIC {
            return Err("bad magic".into());
        }
        let expected_len = match bytes[4] {
            1 => V1_LEN,
            VERSION => ENCODED_LEN,
            other => return Err(format!("unsupported version {other}")),
        };
        if bytes.len() != expected_len {
            return Err(format!("length {} (expected {expected_len})", bytes.len()));
        }
        let (body, mut crc) = bytes.split_at(expected_len - 4);
        if crc32c::crc32c(body) != crc.get_u32() {
            return Err("checksum mismatch".into());
        }
        let mut rest = &body[5..];
        let log_start_offset = rest.get_i64();
        let high_watermark = rest.get_i64();
        // Version 1 logs synced every segment as it rolled: all sealed ones can be trusted.
        let recovery_point = if rest.is_empty() {
            i64::MAX
        } else {
            rest.get_i64()
        };
        Ok(Checkpoint {
            log_start_offset,
            high_watermark,
            recovery_point,
        })
    }
}

pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";
const CLEANER_MAGIC: &[u8; 4] = b"SMCL";

const CLEANER_VERSION: u8 = 1;
const CLEANER_LEN: usize = 25;

/// Where the log cleaner got to (Kafka keeps the same in `cleaner-offset-checkpoint`).
///
/// `cleaner.checkpoint` bytes (25, big-endian): magic `"SMCL"` | version u8 (=1) |
/// first_dirty_offset i64 | next_delete_horizon i64 (-1 = none) | CRC-32C u32 of the
/// preceding 21 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Everything below this has been cleaned at least once.
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a batch whose tombstones were kept: when it passes, a
    /// cleaning is due even without new dirty data.
    pub next_delete_horizon: Option<i64>,
}

impl CleanerCheckpoint {
    fn encode(&self) -> [u8; CLEANER_LEN] {
        let mut out = [0u8; CLEANER_LEN];
        out[..4].copy_from_slice(CLEANER_MAGIC);
        out[4] = CLEANER_VERSION;
        out[5..13].copy_from_slice(&self.first_dirty_offset.to_be_bytes());
        out[13..21].copy_from_slice(&self.next_delete_horizon.unwrap_or(-1).to_be_bytes());
        let crc = crc32c::crc32c(&out[..21]);
        out[21..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != CLEANER_LEN || &bytes[..4] != CLEANER_MAGIC || bytes[4] != CLEANER_VERSION
        {
            return None;
        }
        let mut rest = &bytes[5..];
        let first_dirty_offset = rest.get_i64();
        let horizon = rest.get_i64();
        if crc32c::crc32c(&bytes[..21]) != rest.get_u32() {
            return None;
        }
        Some(CleanerCheckpoint {
            first_dirty_offset,
            next_delete_horizon: (horizon >= 0).then_some(horizon),
        })
    }
}

/// Reads the cleaner checkpoint; a missing or corrupt one means "nothing cleaned yet", which
/// only costs a cleaning of the whole log.
pub(crate) fn read_cleaner(dir: &Path) -> io::Result<Option<CleanerCheckpoint>> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let decoded = CleanerCheckpoint::decode(&bytes);
            if decoded.is_none() {
                tracing::warn!(path = %path.display(), "ignoring corrupt cleaner checkpoint");
            }
            Ok(decoded)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn write_cleaner(dir: &Path, checkpoint: CleanerCheckpoint) -> io::Result<()> {
    write_atomically(dir, CLEANER_CHECKPOINT_FILE, &checkpoint.encode())
}

/// Reads the checkpoint. A corrupt one is reported and ignored: the log's own bounds are safe
/// fallbacks, and refusing to open the partition would be worse.
pub(crate) fn read(dir: &Path) -> io::Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match Checkpoint::decode(&bytes) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "ignoring corrupt checkpoint");
            Ok(None)
        }
    }
}

/// Fsync point "checkpoint": write-temp + fsync + rename + directory fsync, so a crash leaves
/// either the old or the new checkpoint, never a torn one.
pub(crate) fn write(dir: &Path, checkpoint: Checkpoint) -> io::Result<()> {
    write_atomically(dir, CHECKPOINT_FILE, &checkpoint.encode())
}

/// A partition's checkpoint file, written in the order its contents were taken. Its fsyncs
/// can wait for the filesystem journal, so the periodic checkpoint is written after the
/// partition's lock is released; a write taken earlier but arriving later is dropped, so the
/// file never goes back to older offsets.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    dir: PathBuf,
    /// Sequence number of the newest checkpoint on disk.
    written: Mutex<u64>,
}

impl CheckpointFile {
    pub fn new(dir: &Path) -> Self {
        CheckpointFile {
            dir: dir.to_path_buf(),
            written: Mutex::new(0),
        }
    }

    pub fn write(&self, sequence: u64, checkpoint: Checkpoint) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if *written >= sequence {
            return Ok(());
        }
        write(&self.dir, checkpoint)?;
        *written = sequence;
        Ok(())
    }
}

/// A checkpoint taken under the partition's lock, to be written after it is released.
#[must_use = "a pending checkpoint does nothing until written"]
pub struct PendingCheckpoint {
    file: Arc<CheckpointFile>,
    sequence: u64,
    checkpoint: Checkpoint,
}

impl PendingCheckpoint {
    pub(crate) fn new(file: Arc<CheckpointFile>, sequence: u64, checkpoint: Checkpoint) -> Self {
        PendingCheckpoint {
            file,
            sequence,
            checkpoint,
        }
    }

    pub fn write(self) -> Result<(), crate::StorageError> {
        Ok(self.file.write(self.sequence, self.checkpoint)?)
    }
}

/// Replaces `dir/name` with `bytes` all or nothing: the temp file (`.tmp`, which recovery
/// removes) is synced before the rename, the directory after it.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(bytes)?;
    crate::durable::sync_all(&file, &tmp)?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Fsync point "directory": makes file creations, renames and removals durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    crate::durable::sync_dir(dir)
}

/// Removes the clean-shutdown marker, returning whether it was there. The removal is made
/// durable before anything is written, or a later crash could pass for a clean shutdown.
pub(crate) fn take_clean_marker(dir: &Path) -> io::Result<bool> {
    match fs::remove_file(dir.join(CLEAN_SHUTDOWN_FILE)) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fsync point "clean shutdown": written last by `close()`, after everything else is synced.
pub(crate) fn write_clean_marker(dir: &Path) -> io::Result<()> {
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    crate::durable::sync_all(&File::create(&marker)?, &marker)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let cp = Checkpoint {
            log_start_offset: 42,
            high_watermark: 1000,
            recovery_point: 900,
        };
        write(dir.path(), cp).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(cp));

        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read(dir.path()).unwrap(), None, "flipped byte {i}");
            bytes[i] ^= 0x01;
        }
        fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_checkpoint_taken_earlier_never_overwrites_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::new(dir.path());
        let at = |offset| Checkpoint {
            log_start_offset: offset,
            high_watermark: offset,
            recovery_point: offset,
        };
        file.write(2, at(20)).unwrap();
        file.write(1, at(10)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(at(20)));
        file.write(3, at(30)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(at(30)));
    }

    #[test]
    fn version_1_checkpoints_trust_every_sealed_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = b"SMCP\x01".to_vec();
        v1.extend(42i64.to_be_bytes());
        v1.extend(1000i64.to_be_bytes());
        v1.extend(crc32c::crc32c(&v1).to_be_bytes());
        fs::write(dir.path().join(CHECKPOINT_FILE), &v1).unwrap();
        let expected = Checkpoint {
            log_start_offset: 42,
            high_watermark: 1000,
            recovery_point: i64::MAX,
        };
        assert_eq!(read(dir.path()).unwrap(), Some(expected));
    }

    #[test]
    fn cleaner_checkpoint_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_cleaner(dir.path()).unwrap(), None);
        for horizon in [None, Some(77)] {
            let cp = CleanerCheckpoint {
                first_dirty_offset: 12,
                next_delete_horizon: horizon,
            };
            write_cleaner(dir.path(), cp).unwrap();
            assert_eq!(read_cleaner(dir.path()).unwrap(), Some(cp));
        }
        let path = dir.path().join(CLEANER_CHECKPOINT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[7] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read_cleaner(dir.path()).unwrap(), None);
    }

    #[test]
    fn clean_marker_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_marker(dir.path()).unwrap());
        write_clean_marker(dir.path()).unwrap();
        assert!(take_clean_marker(dir.path()).unwrap());
        assert!(!take_clean_marker(dir.path()).unwrap());
    }
}
