//! Producer ids, handed out from blocks reserved ahead so that no id is ever handed out twice.
//!
//! The controller hands out the blocks (AllocateProducerIds in the metadata log), so ids are
//! unique across brokers and restarts; the broker asks for the next block before the current
//! one runs out, as Kafka's brokers ask for blocks of 1000.
//!
//! Before a single node kept its metadata in the log it reserved its blocks in
//! `data_dir/producer_ids.json` (auth's versioned, checksummed file form): [`load_file`]
//! reads how far that went, once, so that the log reserves those ids too.

use std::path::Path;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::auth::file::{self, FileError};
use crate::error::{BrokerError, Result};

/// The file [`load_file`] reads, which nothing writes any more.
pub const FILE_NAME: &str = "producer_ids.json";
const FORMAT: &str = "samsa-producer-ids";
/// Ids per block asked of the controller.
pub const BLOCK_SIZE: i64 = 1000;
/// A broker asks for its next block when fewer ids than this are left.
const PREFETCH_BELOW: i64 = BLOCK_SIZE / 10;

/// The file's contents: every id below `reserved_until` may have been handed out.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reservation {
    reserved_until: i64,
}

#[derive(Default)]
struct Blocks {
    /// The next id to hand out and the end of its block.
    next: i64,
    end: i64,
    /// A block from the controller waiting for the current one to run out.
    queued: Option<(i64, i64)>,
}

#[derive(Default)]
pub struct ProducerIds {
    blocks: Mutex<Blocks>,
}

/// Every id below this may have been handed out by a data directory written before its
/// metadata moved into the log; 0 if it has no `producer_ids.json`.
pub fn load_file(dir: &Path) -> Result<i64, FileError> {
    Ok(file::load::<Reservation>(dir, FILE_NAME, FORMAT)?
        .unwrap_or_default()
        .reserved_until)
}

impl ProducerIds {
    /// Ids from the blocks [`Self::add_block`] is given; none until the first.
    pub fn from_controller() -> ProducerIds {
        ProducerIds::default()
    }

    /// A producer id never handed out before. Without a block from the controller the
    /// answer is COORDINATOR_LOAD_IN_PROGRESS, as Kafka's while its block is on the way.
    pub fn allocate(&self) -> Result<i64> {
        let mut blocks = self.blocks.lock();
        if blocks.next >= blocks.end {
            let (next, end) = blocks
                .queued
                .take()
                .ok_or(BrokerError::CoordinatorLoadInProgress)?;
            (blocks.next, blocks.end) = (next, end);
        }
        let id = blocks.next;
        blocks.next += 1;
        Ok(id)
    }

    /// Whether the controller should be asked for the next block now.
    pub fn wants_block(&self) -> bool {
        let blocks = self.blocks.lock();
        blocks.queued.is_none() && blocks.end - blocks.next < PREFETCH_BELOW
    }

    /// Hands out no id below `floor` any more: the ids of the blocks held below it are
    /// dropped (the cluster's floor, raised when it mirrors another cluster's producers).
    pub fn raise_floor(&self, floor: i64) {
        let mut blocks = self.blocks.lock();
        blocks.next = blocks.next.max(floor.min(blocks.end));
        if blocks.queued.is_some_and(|(_, end)| end <= floor) {
            blocks.queued = None;
        } else if let Some((next, _)) = blocks.queued.as_mut() {
            *next = (*next).max(floor);
        }
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
    fn the_legacy_file_reads_back_its_reservation() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_file(dir.path()).unwrap(), 0);
        let reserved = Reservation {
            reserved_until: 3 * BLOCK_SIZE,
        };
        file::store(dir.path(), FILE_NAME, FORMAT, &reserved).unwrap();
        assert_eq!(load_file(dir.path()).unwrap(), 3 * BLOCK_SIZE);
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

    #[test]
    fn no_id_below_the_floor_is_handed_out_from_blocks_held() {
        let ids = ProducerIds::from_controller();
        ids.add_block(0, 1000);
        assert_eq!(ids.allocate().unwrap(), 0);
        ids.raise_floor(500);
        assert_eq!(ids.allocate().unwrap(), 500);
        ids.add_block(1000, 1000);
        // Both blocks below the floor: none left until the controller's next.
        ids.raise_floor(3000);
        assert!(matches!(
            ids.allocate(),
            Err(BrokerError::CoordinatorLoadInProgress)
        ));
        assert!(ids.wants_block());
        ids.add_block(3000, 1000);
        ids.add_block(4000, 1000);
        // The queued block is cut at the floor.
        ids.raise_floor(4200);
        assert_eq!(ids.allocate().unwrap(), 4200);
        ids.raise_floor(10);
        assert_eq!(ids.allocate().unwrap(), 4201);
    }
}
