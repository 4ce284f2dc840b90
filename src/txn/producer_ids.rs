//! Producer ids: handed out from blocks reserved ahead in `data_dir/producer_ids.json`
//! (auth's versioned, checksummed, atomically replaced file form), so no id is handed out
//! twice, even after a crash: a restart starts past the whole reserved block, as Kafka's
//! controller hands brokers blocks of 1000.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::auth::file::{self, FileError};

const FILE_NAME: &str = "producer_ids.json";
const FORMAT: &str = "samsa-producer-ids";
/// Ids reserved per fsynced write.
pub const BLOCK_SIZE: i64 = 1000;

/// The file's contents: every id below `reserved_until` may have been handed out.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reservation {
    reserved_until: i64,
}

pub struct ProducerIds {
    dir: PathBuf,
    /// (next id to hand out, end of the reserved block).
    next: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn open(dir: &Path) -> Result<ProducerIds, FileError> {
        let reserved = file::load::<Reservation>(dir, FILE_NAME, FORMAT)?
            .unwrap_or_default()
            .reserved_until;
        Ok(ProducerIds {
            dir: dir.to_owned(),
            next: Mutex::new((reserved, reserved)),
        })
    }

    /// A producer id never handed out before.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut next = self.next.lock();
        let (id, end) = *next;
        if id >= end {
            let reserved_until = id + BLOCK_SIZE;
            file::store(&self.dir, FILE_NAME, FORMAT, &Reservation { reserved_until })?;
            next.1 = reserved_until;
        }
        next.0 = id + 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(ids.allocate().unwrap(), 0);
        assert_eq!(ids.allocate().unwrap(), 1);
        // A crash after handing out 0 and 1: the next run starts past the reserved block.
        let reopened = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(reopened.allocate().unwrap(), BLOCK_SIZE);
        let again = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(again.allocate().unwrap(), 2 * BLOCK_SIZE);
    }
}
