//! Syncing sealed segments off the append path.
//!
//! A roll used to fsync, while holding the partition's write lock, the segment it sealed, the
//! directory and the producer snapshot; with 1 GiB segments that stalled every producer of the
//! partition for up to seconds (the directory fsync alone waits for the ext4 journal, which
//! waits for the segment's data). Now a thread of its own does all three, and the partition's
//! recovery point (the offset below which everything is known to be on disk) moves past the
//! segment once that is done. After a crash, recovery checks every segment from the recovery
//! point on, as Kafka does.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

use crate::checkpoint::sync_dir;
use crate::producers::snapshot;
use crate::segment::SegmentSync;

/// What a roll leaves to be made durable.
pub(crate) struct RollSync {
    pub segment: SegmentSync,
    /// The partition directory, which now also holds the new active segment's files.
    pub dir: PathBuf,
    /// A producer snapshot `(offset, encoded bytes)` at the sealed segment's end; written
    /// after the segment's data, so it never describes batches that are not on disk.
    pub snapshot: Option<(i64, Vec<u8>)>,
}

impl RollSync {
    fn run(self) -> io::Result<()> {
        self.segment.run()?;
        sync_dir(&self.dir)?;
        if let Some((offset, bytes)) = self.snapshot {
            snapshot::write_encoded(&self.dir, offset, &bytes)?;
        }
        Ok(())
    }
}

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
    pub fn start(&mut self, end_offset: i64, sync: RollSync) -> io::Result<()> {
        let spawned = thread::Builder::new()
            .name("segment-sync".into())
            .spawn(move || sync.run());
        match spawned {
            Ok(thread) => {
                self.pending.push_back(Pending { end_offset, thread });
                Ok(())
            }
            Err(err) => {
                // That segment will never be synced: later ones must not vouch for it.
                self.failed = true;
                Err(err)
            }
        }
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
