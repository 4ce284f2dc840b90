//! Producer ids, handed out from blocks reserved ahead so that no id is ever handed out twice.
//!
//! On a single node the blocks are reserved in `data_dir/producer_ids.json` (auth's versioned,
//! checksummed, atomically replaced file form): a restart starts past the whole reserved
//! block, as Kafka's controller hands brokers blocks of 1000. In a cluster the controller
//! hands out the blocks (AllocateProducerIds in the metadata log), so ids are unique across
//! brokers; the broker asks for the next block before the current one runs out.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::auth::file::{self, FileError};
use crate::error::{BrokerError, Result};

const FILE_NAME: &str = "producer_ids.json";
const FORMAT: &str = "samsa-producer-ids";
/// Ids reserved per fsynced write, or per block asked of the controller.
pub const BLOCK_SIZE: i64 = 1000;
/// A cluster broker asks for its next block when fewer ids than this are left.
const PREFETCH_BELOW: i64 = BLOCK_SIZE / 10;

/// The file's contents: every id below `reserved_until` may have been handed out.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reservation {
    reserved_until: i64,
}

/// Where the blocks come from.
enum Source {
    File(PathBuf),
    Controller,
}

#[derive(Default)]
struct Blocks {
    /// The next id to hand out and the end of its block.
    next: i64,
    end: i64,
    /// A block from the controller waiting for the current one to run out.
    queued: Option<(i64, i64)>,
}

pub struct ProducerIds {
    source: Source,
    blocks: Mutex<Blocks>,
}

impl ProducerIds {
    pub fn open(dir: &Path) -> Result<ProducerIds, FileError> {
        let reserved = file::load::<Reservation>(dir, FILE_NAME, FORMAT)?
            .unwrap_or_default()
            .reserved_until;
        Ok(ProducerIds {
            source: Source::File(dir.to_owned()),
            blocks: Mutex::new(Blocks {
                next: reserved,
                end: reserved,
                queued: None,
            }),
        })
    }

    /// Ids from the blocks [`Self::add_block`] is given; none until the first.
    pub fn from_controller() -> ProducerIds {
        ProducerIds {
            source: Source::Controller,
            blocks: Mutex::new(Blocks::default()),
        }
    }

    /// A producer id never handed out before. Without a block from the controller the
    /// answer is COORDINATOR_LOAD_IN_PROGRESS, as Kafka's while its block is on the way.
    pub fn allocate(&self) -> Result<i64> {
        let mut blocks = self.blocks.lock();
        if blocks.next >= blocks.end {
            match &self.source {
                Source::File(dir) => {
                    let reserved_until = blocks.next + BLOCK_SIZE;
                    file::store(dir, FILE_NAME, FORMAT, &Reservation { reserved_until })
                        .map_err(|e| BrokerError::Storage(e.into()))?;
                    blocks.end = reserved_until;
                }
                Source::Controller => {
                    let (next, end) = blocks
                        .queued
                        .take()
                        .ok_or(BrokerError::CoordinatorLoadInProgress)?;
                    (blocks.next, blocks.end) = (next, end);
                }
            }
        }
        let id = blocks.next;
        blocks.next += 1;
        Ok(id)
    }

    /// Whether the controller should be asked for the next block now.
    pub fn wants_block(&self) -> bool {
        let blocks = self.blocks.lock();
        matches!(self.source, Source::Controller)
            && blocks.queued.is_none()
            && blocks.end - blocks.next < PREFETCH_BELOW
    }

    /// Ids `first..first + count`, reserved for this broker by the controller.
    pub fn add_block(&self, first: i64, count: u32) {
        let mut blocks = self.blocks.lock();
        let block = (first, first + i64::from(count));
        if blocks.next >= blocks.end {
            (blocks.next, blocks.end) = block;
        } else {
            blocks.queued = Some(block);
        }
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

    #[test]
    fn controller_blocks_are_used_in_turn_and_asked_for_ahead() {
        let ids = ProducerIds::from_controller();
        assert!(matches!(
            ids.allocate(),
            Err(BrokerError::CoordinatorLoadInProgress)
        ));
        assert!(ids.wants_block());
        ids.add_block(5000, 200);
        assert!(!ids.wants_block());
        for expected in 5000..5101 {
            assert_eq!(ids.allocate().unwrap(), expected);
        }
        // 99 left: the next block is wanted, and queued behind the current one.
        assert!(ids.wants_block());
        ids.add_block(9000, 200);
        assert!(!ids.wants_block());
        for expected in 5101..5200 {
            assert_eq!(ids.allocate().unwrap(), expected);
        }
        assert_eq!(ids.allocate().unwrap(), 9000);
    }
}
