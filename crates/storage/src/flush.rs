//! Syncing sealed segments off the append path.
//!
//! A roll used to fsync the segment it sealed while holding the partition's write lock; with
//! 1 GiB segments that stalled every producer of the partition for more than a second. Now a
//! thread of its own syncs the sealed segment, and the partition's recovery point (the offset
//! below which everything is known to be on disk) moves past the segment once that is done.
//! After a crash, recovery checks every segment from the recovery point on, as Kafka does.

use std::collections::VecDeque;
use std::io;
use std::thread::{self, JoinHandle};

use crate::segment::SegmentSync;

/// The sealed segments whose sync is still running, oldest first.
#[derive(Default)]
pub(crate) struct SealedSyncs {
    pending: VecDeque<Pending>,
    /// Set when a sync failed: what it should have made durable may not be, so the recovery
    /// point must never move past it again in this run.
    failed: bool,
}

struct Pending {
    /// The sealed segment's next offset: where the recovery point may move once it is synced.
    end_offset: i64,
    thread: JoinHandle<io::Result<()>>,
}

impl SealedSyncs {
    /// Starts syncing a just-sealed segment that ends at `end_offset`.
    pub fn start(&mut self, end_offset: i64, sync: SegmentSync) -> io::Result<()> {
        let thread = thread::Builder::new()
            .name("segment-sync".into())
            .spawn(move || sync.run())?;
        self.pending.push_back(Pending { end_offset, thread });
        Ok(())
    }

    /// True when every segment sealed so far is known to be on disk.
    pub fn all_synced(&self) -> bool {
        self.pending.is_empty() && !self.failed
    }

    /// The end of the newest segment that, with all older ones, has finished syncing since the
    /// last call. A failed sync is returned once; from then on nothing advances.
    pub fn finished(&mut self) -> io::Result<Option<i64>> {
        let mut synced = None;
        while !self.failed && self.pending.front().is_some_and(|p| p.thread.is_finished()) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            let end_offset = done.end_offset;
            self.settle(done)?;
            synced = Some(end_offset);
        }
        Ok(synced)
    }

    /// Waits for every pending sync; returns the end of the last one, as `finished` does.
    pub fn wait_all(&mut self) -> io::Result<Option<i64>> {
        let mut synced = None;
        while let Some(done) = self.pending.pop_front() {
            let end_offset = done.end_offset;
            self.settle(done)?;
            synced = Some(end_offset);
        }
        if self.failed {
            return Err(io::Error::other("an earlier segment sync failed"));
        }
        Ok(synced)
    }

    fn settle(&mut self, done: Pending) -> io::Result<()> {
        let result = done
            .thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("segment sync thread panicked")));
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}
