//! The controller's directory id (KIP-853): a random id kept with its metadata log, so that
//! the quorum tells this copy of the log from one a node had before it lost its disk. It
//! lives in `meta.properties` in the metadata log directory, in Kafka's format, which is
//! where Kafka's `kafka-metadata-quorum add-controller` reads it from (point its
//! `metadata.log.dir` at `<data_dir>/__cluster_metadata`).
//!
//! Bytes: Java properties text, `version=1`, `cluster.id=...`, `node.id=N`,
//! `directory.id=<Kafka Uuid, URL-safe base64 of 16 bytes>`, one per line.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

const FILE: &str = "meta.properties";

/// This controller's directory id, created (and written durably) on first start. A file that
/// names another node is refused: the directory belongs to another node. `cluster_id` is
/// written when known (a single node learns its own later, from its topic catalogue).
pub fn directory_id(dir: &Path, cluster_id: Option<&str>, node_id: i32) -> io::Result<Uuid> {
    let path = dir.join(FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return parse(&text, node_id),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(dir)?;
    let id = random_id();
    let cluster = cluster_id.map_or(String::new(), |c| format!("cluster.id={c}\n"));
    let text = format!(
        "#samsa's controller identity, in Kafka's meta.properties format\nversion=1\n\
         {cluster}node.id={node_id}\ndirectory.id={}\n",
        URL_SAFE_NO_PAD.encode(id.as_bytes())
    );
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(id)
}

/// A random id Kafka accepts as a directory id: not one of its reserved ids (all zeros, or
/// zeros but the last byte), and not printed with a leading '-' (Kafka's `Uuid.randomUuid`).
fn random_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let bytes = id.as_bytes();
        let reserved = bytes[..15].iter().all(|&b| b == 0);
        if !reserved && !URL_SAFE_NO_PAD.encode(bytes).starts_with('-') {
            return id;
        }
    }
}

fn parse(text: &str, node_id: i32) -> io::Result<Uuid> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    if value("node.id").as_deref() != Some(&node_id.to_string()) {
        return Err(invalid(format!(
            "{FILE} is another node's, not {node_id}'s"
        )));
    }
    let id = value("directory.id").ok_or_else(|| invalid(format!("{FILE} has no directory.id")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(&id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| invalid(format!("{FILE}: '{id}' is not a directory id")))?;
    Ok(Uuid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_kept_and_checked_against_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let id = directory_id(dir.path(), Some("c1"), 3).unwrap();
        assert_eq!(directory_id(dir.path(), Some("c1"), 3).unwrap(), id);
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("\ncluster.id=c1\nnode.id=3\n"), "{text}");
        assert!(directory_id(dir.path(), Some("c1"), 4).is_err());
    }
}
