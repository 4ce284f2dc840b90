//! Syncing sealed segments off the append path.
//!
//! A roll used to fsync, while holding the partition's write lock, the segment it sealed, the
//! directory and the producer snapshot; with 1 GiB segments that stalled every producer of the
//! partition for up to seconds (the directory fsync alone waits for the ext4 journal, which
//! waits for the segment's data). Now a storage thread (see `threads`) does all three, and
//! the partition's recovery point (the offset below which everything is known to be on disk)
//! moves past the segment once that is done. After a crash, recovery checks every segment
//! from the recovery point on, as Kafka does.
//!
//! Whoever must wait for a sync (a truncation, a close) runs it itself if no storage thread
//! has taken it up yet: a caller on a storage thread then never waits for a job queued
//! behind it.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::checkpoint::sync_dir;
use crate::checkpoint::PendingCheckpoint;
use crate::producers::snapshot;
use crate::segment::{Segment, SegmentSync};
use crate::threads::storage_threads;

/// What a roll, a retention pass or a DeleteRecords leaves to be made durable, in this order:
/// the checkpoint (a moved log start), the removed segments' files, the sealed segment's data,
/// the directory, then the producer snapshot and the removal of those below the log start.
#[derive(Default)]
pub(crate) struct SyncJob {
    pub checkpoint: Option<PendingCheckpoint>,
    /// Segments taken out of the log, whose files go.
    pub doomed: Vec<Segment>,
    pub segment: Option<SegmentSync>,
    /// The partition directory, which holds the new active segment's files or lost some.
    pub dir: PathBuf,
    /// A producer snapshot `(offset, encoded bytes)` at the sealed segment's end; written
    /// after the segment's data, so it never describes batches that are not on disk.
    pub snapshot: Option<(i64, Vec<u8>)>,
    /// Snapshots below this offset (the new log start) are removed.
    pub snapshots_below: Option<i64>,
}

impl SyncJob {
    fn run(self) -> io::Result<()> {
        if let Some(checkpoint) = self.checkpoint {
            checkpoint.write().map_err(io::Error::other)?;
        }
        for segment in self.doomed {
            segment.delete_files()?;
        }
        if let Some(segment) = self.segment {
            segment.run()?;
        }
        sync_dir(&self.dir)?;
        if let Some((offset, bytes)) = self.snapshot {
            snapshot::write_encoded(&self.dir, offset, &bytes)?;
        }
        if let Some(offset) = self.snapshots_below {
            snapshot::delete_before(&self.dir, offset)?;
        }
        Ok(())
    }
}

/// The sync jobs still running (rolls' sealed segments, removals), oldest first.
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
    task: Arc<SyncTask>,
}

/// One job, run once by whichever comes first: a storage thread or a waiter. Jobs of one
/// log run in the order queued (two may write the same snapshot file), so each first sees
/// its predecessor done.
struct SyncTask {
    state: Mutex<TaskState>,
    ended: Condvar,
    previous: Mutex<Option<Arc<SyncTask>>>,
}

enum TaskState {
    Queued(SyncJob),
    Running,
    Ended(io::Result<()>),
    Settled,
}

impl SyncTask {
    /// Runs the job unless someone has taken it up already; either way returns once it is
    /// done. Never waits for a job that is not running, so storage threads cannot deadlock.
    fn complete(&self) {
        if let Some(previous) = self.previous.lock().take() {
            previous.complete();
        }
        let mut state = self.state.lock();
        loop {
            match &*state {
                TaskState::Queued(_) => {
                    let TaskState::Queued(job) = std::mem::replace(&mut *state, TaskState::Running)
                    else {
                        unreachable!()
                    };
                    drop(state);
                    let result = job.run();
                    *self.state.lock() = TaskState::Ended(result);
                    self.ended.notify_all();
                    return;
                }
                TaskState::Running => self.ended.wait(&mut state),
                TaskState::Ended(_) | TaskState::Settled => return,
            }
        }
    }

    fn is_ended(&self) -> bool {
        matches!(*self.state.lock(), TaskState::Ended(_))
    }

    /// The job's result, once: running it here if it has not started, waiting if it runs.
    fn settle(&self) -> io::Result<()> {
        self.complete();
        match std::mem::replace(&mut *self.state.lock(), TaskState::Settled) {
            TaskState::Ended(result) => result,
            _ => Err(io::Error::other("storage job settled twice")),
        }
    }
}

impl SealedSyncs {
    /// Queues a job; once it and all older ones are done, the recovery point may move to
    /// `end_offset` (a roll: the sealed segment's end; a removal: the recovery point as is).
    pub fn start(&mut self, end_offset: i64, sync: SyncJob) -> io::Result<()> {
        let task = Arc::new(SyncTask {
            state: Mutex::new(TaskState::Queued(sync)),
            ended: Condvar::new(),
            previous: Mutex::new(self.pending.back().map(|p| p.task.clone())),
        });
        let queued = task.clone();
        storage_threads().spawn(move || queued.complete());
        self.pending.push_back(Pending { end_offset, task });
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
        while !self.failed && self.pending.front().is_some_and(|p| p.task.is_ended()) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            let end_offset = done.end_offset;
            self.settle(done)?;
            synced = synced.max(Some(end_offset));
        }
        Ok(synced)
    }

    /// Waits for every pending sync; returns the end of the last one, as `finished` does.
    pub fn wait_all(&mut self) -> io::Result<Option<i64>> {
        let mut synced = None;
        while let Some(done) = self.pending.pop_front() {
            let end_offset = done.end_offset;
            self.settle(done)?;
            synced = synced.max(Some(end_offset));
        }
        if self.failed {
            return Err(io::Error::other("an earlier segment sync failed"));
        }
        Ok(synced)
    }

    fn settle(&mut self, done: Pending) -> io::Result<()> {
        let result = done.task.settle();
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}
