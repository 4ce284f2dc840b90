//! The on-disk form of the credential, ACL and producer id files of data directories from
//! before the metadata log kept their contents (read once, see `server::convert`): one header line
//! `<format> v1 crc32c=XXXXXXXX\n` (CRC-32C of the rest, lower-case hex), then a JSON
//! document. Replaced atomically: written to `<name>.tmp`, fsynced, renamed over the old
//! file, and the directory fsynced, so a crash leaves either the old or the new file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

/// Loads `dir/name`, or `None` if it does not exist yet.
pub fn load<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    format: &str,
) -> Result<Option<T>, FileError> {
    let path = dir.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FileError::Io { path, source }),
    };
    let damaged = |reason: String| FileError::Damaged {
        path: path.clone(),
        reason,
    };
    let (header, body) = text
        .split_once('\n')
        .ok_or_else(|| damaged("no header line".into()))?;
    let expected = header
        .strip_prefix(&format!("{format} v1 crc32c="))
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| damaged(format!("unrecognised header '{header}'")))?;
    let actual = crc32c::crc32c(body.as_bytes());
    if actual != expected {
        return Err(damaged(format!("checksum {actual:08x} != {expected:08x}")));
    }
    serde_json::from_str(body)
        .map(Some)
        .map_err(|err| damaged(err.to_string()))
}

/// Only tests write these files now: the metadata log keeps what they kept (see
/// `server::convert`).
#[cfg(test)]
pub fn store<T: serde::Serialize>(
    dir: &Path,
    name: &str,
    format: &str,
    value: &T,
) -> io::Result<()> {
    use std::fs::File;
    use std::io::Write;
    let body = serde_json::to_string_pretty(value)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    write!(
        file,
        "{format} v1 crc32c={:08x}\n{body}",
        crc32c::crc32c(body.as_bytes())
    )?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load::<Vec<String>>(dir.path(), "f.json", "samsa-test")
            .unwrap()
            .is_none());
        store(dir.path(), "f.json", "samsa-test", &vec!["a".to_owned()]).unwrap();
        let loaded: Vec<String> = load(dir.path(), "f.json", "samsa-test").unwrap().unwrap();
        assert_eq!(loaded, ["a"]);
        let path = dir.path().join("f.json");
        fs::write(
            &path,
            fs::read_to_string(&path).unwrap().replace("\"a\"", "\"b\""),
        )
        .unwrap();
        assert!(matches!(
            load::<Vec<String>>(dir.path(), "f.json", "samsa-test"),
            Err(FileError::Damaged { .. })
        ));
    }
}
