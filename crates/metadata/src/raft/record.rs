//! The one on-disk format of the quorum's files (log entries, vote, committed id, purge point,
//! snapshot): a record holding a JSON payload.
//!
//! Bytes: `version: u8 (=1) | crc32c(payload): u32 BE | payload length: u64 BE | payload`.
//!
//! Files are written whole to a temporary name, fsynced, renamed into place and the directory
//! fsynced, so a crash leaves either the old file or the new one; the checksum catches a torn or
//! damaged file on read.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 8;
pub const TMP_SUFFIX: &str = ".tmp";

pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a record, or InvalidData when it is torn, damaged or of an unknown version.
pub fn decode(bytes: &[u8]) -> io::Result<&[u8]> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if bytes.len() < HEADER_LEN {
        return Err(invalid("record shorter than its header"));
    }
    if bytes[0] != VERSION {
        return Err(invalid(&format!("unknown record version {}", bytes[0])));
    }
    let crc = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    let len = u64::from_be_bytes(bytes[5..13].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(invalid("record length does not match its header"));
    }
    if crc32c::crc32c(payload) != crc {
        return Err(invalid("record checksum mismatch"));
    }
    Ok(payload)
}

/// Replaces `dir/name` with a record of `payload`, durably (see the module doc).
pub fn write_durably(dir: &Path, name: &str, payload: &[u8]) -> io::Result<()> {
    write_synced(&dir.join(name), payload)?;
    sync_dir(dir)
}

/// Replaces the file at `path` with a record of `payload`, fsynced; the rename is durable only
/// once the caller syncs the directory (done once for a batch of files).
pub fn write_synced(path: &Path, payload: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let mut file = File::create(&tmp)?;
    file.write_all(&encode(payload))?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// The payload stored at `path`, None when there is no such file.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes).map(|p| Some(p.to_vec())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes creations, renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        write_durably(dir.path(), "r", b"hello").unwrap();
        assert_eq!(
            read(&dir.path().join("r")).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(read(&dir.path().join("missing")).unwrap(), None);

        let mut bytes = encode(b"hello");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            decode(&bytes).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(decode(&encode(b"hello")[..7]).is_err(), "torn record");
        let mut future = encode(b"x");
        future[0] = 9;
        assert!(decode(&future).is_err());
    }
}
