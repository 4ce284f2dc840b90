//! Whether this broker's previous process shut down cleanly, which KIP-966 needs to know: a
//! broker that crashed may have lost records it acknowledged (samsa flushes its logs at a
//! clean shutdown, not at each write), so it must leave the eligible leader replicas. As
//! Kafka's `.kafka_cleanshutdown` file, a marker written last at a clean shutdown names the
//! broker epoch the process stopped at; the next process takes it (removing it before it
//! registers, so that a later crash cannot pass for a clean stop) and quotes the epoch in its
//! registration.
//!
//! The marker's bytes are Kafka's: `{"version":0,"brokerEpoch":N}`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = ".broker-clean-shutdown";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    version: u32,
    broker_epoch: u64,
}

/// The epoch the previous process stopped at if it shut down cleanly, removing the marker
/// durably. A damaged marker counts as none: the broker is then treated as having crashed.
pub fn take(data_dir: &Path) -> io::Result<Option<u64>> {
    let path = data_dir.join(FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    fs::remove_file(&path)?;
    sync_dir(data_dir)?;
    match serde_json::from_slice::<Marker>(&text) {
        Ok(marker) => Ok(Some(marker.broker_epoch)),
        Err(e) => {
            tracing::warn!("ignoring a damaged {}: {e}", path.display());
            Ok(None)
        }
    }
}

/// Fsync point "broker clean shutdown": written after every partition's log is closed.
pub fn write(data_dir: &Path, broker_epoch: u64) -> io::Result<()> {
    let marker = Marker {
        version: 0,
        broker_epoch,
    };
    let mut file = File::create(data_dir.join(FILE))?;
    file.write_all(&serde_json::to_vec(&marker).map_err(io::Error::other)?)?;
    file.sync_all()?;
    sync_dir(data_dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take(dir.path()).unwrap(), None);
        write(dir.path(), 42).unwrap();
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, r#"{"version":0,"brokerEpoch":42}"#);
        assert_eq!(take(dir.path()).unwrap(), Some(42));
        assert_eq!(take(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_damaged_marker_counts_as_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{\"version\":0").unwrap();
        assert_eq!(take(dir.path()).unwrap(), None);
        assert!(!dir.path().join(FILE).exists());
    }
}
