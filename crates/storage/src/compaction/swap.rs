//! Crash-safe replacement of segments by their cleaned versions.
//!
//! 1. Stage: the cleaner writes each new segment as `<base>.log.cleaned`, `<base>.index.cleaned`
//!    and `<base>.timeindex.cleaned`, then fsyncs them and the directory.
//! 2. Commit: the manifest `cleaner.swap` (replaced and installed base offsets) is written
//!    atomically: temp file, fsync, rename, directory fsync. A crash before this point rolls
//!    back (open deletes every `*.cleaned` file; the originals were never touched); after it,
//!    open rolls forward.
//! 3. Swap: the replaced segments' files are deleted (each log before its indexes), then each
//!    new segment is renamed to its final names, log first; directory fsync.
//! 4. Done: the manifest is removed; directory fsync.
//!
//! Rolling forward redoes 3 and 4 and is idempotent: a replaced base is deleted unless it is
//! also an installed base whose `.log.cleaned` is gone (then `<base>.log` is already the new
//! segment: every original was deleted before the first rename), and every `.cleaned` file
//! of an installed base left is renamed. Kafka commits by renaming `.cleaned` to `.swap`;
//! samsa writes a manifest instead because the range a new segment replaces cannot be read
//! off its contents (its trailing batches may all have been removed).
//!
//! `cleaner.swap` bytes (big-endian): magic `"SMSW"` | version u8 (=1) | replaced count u32 |
//! replaced base i64 * count | installed count u32 | installed base i64 * count |
//! CRC-32C u32 of all preceding bytes.

use std::fs;
use std::io;
use std::path::Path;

use bytes::{Buf, BufMut};

use crate::checkpoint::{sync_dir, write_atomically};
use crate::segment::{
    file_name, staged_name, Segment, CLEANED_SUFFIX, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};

pub(crate) const MANIFEST_FILE: &str = "cleaner.swap";
const MAGIC: &[u8; 4] = b"SMSW";
const VERSION: u8 = 1;

#[derive(Debug, PartialEq, Eq)]
struct Manifest {
    replaced: Vec<i64>,
    installed: Vec<i64>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        for list in [&self.replaced, &self.installed] {
            out.put_u32(list.len() as u32);
            list.iter().for_each(|b| out.put_i64(*b));
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Manifest> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut rest = body.strip_prefix(MAGIC)?.strip_prefix(&[VERSION])?;
        let mut list = || -> Option<Vec<i64>> {
            let count = rest.try_get_u32().ok()? as usize;
            if rest.len() < count.checked_mul(8)? {
                return None;
            }
            Some((0..count).map(|_| rest.get_i64()).collect())
        };
        let replaced = list()?;
        let installed = list()?;
        Some(Manifest {
            replaced,
            installed,
        })
    }
}

/// Steps 2 to 4: commits the swap of `originals` (already out of the log's map) for `staged`,
/// which end up under their final names.
pub(crate) fn swap(dir: &Path, originals: Vec<Segment>, staged: &mut [Segment]) -> io::Result<()> {
    if dir.join(MANIFEST_FILE).exists() {
        return Err(io::Error::other(
            "an earlier segment swap is unfinished; restart to complete it",
        ));
    }
    let manifest = Manifest {
        replaced: originals.iter().map(Segment::base_offset).collect(),
        installed: staged.iter().map(Segment::base_offset).collect(),
    };
    write_atomically(dir, MANIFEST_FILE, &manifest.encode())?;
    for segment in originals {
        segment.delete_files()?;
    }
    for segment in staged.iter_mut() {
        segment.install(dir)?;
    }
    sync_dir(dir)?;
    fs::remove_file(dir.join(MANIFEST_FILE))?;
    sync_dir(dir)
}

/// Run on open, before segments are listed: finishes a committed swap, then removes whatever
/// staged files are left (an uncommitted cleaning). A manifest that fails its checksum cannot
/// be torn (it is written atomically), so it is damage: the partition refuses to open rather
/// than guess which segments are current.
pub(crate) fn recover(dir: &Path) -> io::Result<()> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let manifest = Manifest::decode(&bytes).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt segment swap manifest {}", path.display()),
                )
            })?;
            tracing::warn!(dir = %dir.display(), "finishing an interrupted compaction swap");
            roll_forward(dir, &manifest)?;
            fs::remove_file(&path)?;
            sync_dir(dir)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    remove_staged(dir)
}

fn roll_forward(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    for &base in &manifest.replaced {
        let installed =
            manifest.installed.contains(&base) && !dir.join(staged_name(base, LOG_EXT)).exists();
        if installed {
            continue;
        }
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            remove_if_present(&dir.join(file_name(base, ext)))?;
        }
    }
    for &base in &manifest.installed {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let staged = dir.join(staged_name(base, ext));
            if staged.exists() {
                fs::rename(staged, dir.join(file_name(base, ext)))?;
            }
        }
    }
    sync_dir(dir)
}

/// Deletes every `*.cleaned` file: staging left by a cleaning that never committed.
pub(crate) fn remove_staged(dir: &Path) -> io::Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(CLEANED_SUFFIX))
        {
            fs::remove_file(entry.path())?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Manifest bytes, for tests that stage a crash after the commit.
    pub fn manifest(replaced: &[i64], installed: &[i64]) -> Vec<u8> {
        super::Manifest {
            replaced: replaced.to_vec(),
            installed: installed.to_vec(),
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_damage() {
        let manifest = Manifest {
            replaced: vec![0, 10, 20],
            installed: vec![0, 17],
        };
        let bytes = manifest.encode();
        assert_eq!(Manifest::decode(&bytes), Some(manifest));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert_eq!(Manifest::decode(&damaged), None, "flipped byte {i}");
        }
        for cut in 0..bytes.len() {
            assert_eq!(Manifest::decode(&bytes[..cut]), None);
        }
    }
}
