//! The catalogue on disk: the cluster id and, in a data directory from before the metadata log
//! kept them (read once by `server::convert`), which topics exist, their ids, partition
//! counts and config overrides.
//!
//! File `catalogue.json` in the data directory. Bytes: one header line
//! `samsa-catalogue v1 crc32c=XXXXXXXX\n` (CRC-32C of the rest, lower-case hex), then
//! the JSON document [`CatalogueFile`]. It is replaced atomically: written to
//! `catalogue.json.tmp`, fsynced, renamed over the old file, and the directory fsynced.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::config::TopicConfig;

const FILE_NAME: &str = "catalogue.json";
const HEADER_PREFIX: &str = "samsa-catalogue v1 crc32c=";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogueFile {
    pub cluster_id: String,
    pub topics: Vec<TopicRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: TopicConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Loads the catalogue, or `None` if this data directory has never held one.
pub fn load(data_dir: &Path) -> Result<Option<CatalogueFile>, CatalogueError> {
    let path = path_in(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CatalogueError::Io { path, source }),
    };
    let damaged = |reason: String| CatalogueError::Damaged {
        path: path.clone(),
        reason,
    };
    let (header, body) = text
        .split_once('\n')
        .ok_or_else(|| damaged("no header line".into()))?;
    let expected = header
        .strip_prefix(HEADER_PREFIX)
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

pub fn store(data_dir: &Path, catalogue: &CatalogueFile) -> io::Result<()> {
    let body = serde_json::to_string_pretty(catalogue)?;
    let path = path_in(data_dir);
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = File::create(&tmp)?;
    write!(
        file,
        "{HEADER_PREFIX}{:08x}\n{body}",
        crc32c::crc32c(body.as_bytes())
    )?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CatalogueFile {
        CatalogueFile {
            cluster_id: "c1".into(),
            topics: vec![TopicRecord {
                name: "t".into(),
                id: Uuid::new_v4(),
                partitions: 3,
                configs: TopicConfig::default(),
            }],
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        store(dir.path(), &sample()).unwrap();
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.topics[0].partitions, 3);
    }

    #[test]
    fn a_changed_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &sample()).unwrap();
        let path = path_in(dir.path());
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"c1\"", "\"c2\"");
        fs::write(&path, text).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CatalogueError::Damaged { .. })
        ));
    }
}
