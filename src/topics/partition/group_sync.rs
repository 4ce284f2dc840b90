//! Group commit for `flush_messages`: appends that need their records on disk share fsyncs.
//! One fsync runs at a time, with no lock held across it: an append that arrives meanwhile
//! waits for it to end and then either finds its records covered or runs the next fsync,
//! which covers every append made in the meantime. Produce waits asynchronously
//! ([`GroupSync::through_async`]), so a slow disk holds no thread; coordinators writing
//! from blocking code wait on the condition variable.

use std::future::Future;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::error::Result;

pub(super) struct GroupSync {
    state: Mutex<State>,
    ended: Condvar,
    ended_async: Notify,
}

struct State {
    /// The offset below which the log is known to be on disk.
    synced: i64,
    /// An fsync is running (outside the lock).
    syncing: bool,
    /// Bumped when the log is replaced (a replica hosted again) or cut back: an fsync that
    /// began before says nothing about the log after.
    generation: u64,
}

impl GroupSync {
    pub(super) fn new(synced: i64) -> GroupSync {
        GroupSync {
            state: Mutex::new(State {
                synced,
                syncing: false,
                generation: 0,
            }),
            ended: Condvar::new(),
            ended_async: Notify::new(),
        }
    }

    /// A new log, or one emptied to start at `synced`, replaces the one before.
    pub(super) fn reset(&self, synced: i64) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.synced = synced;
    }

    /// The log was cut back to end at `end`.
    pub(super) fn truncated(&self, end: i64) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.synced = state.synced.min(end);
    }

    /// Makes the log durable below `end`: runs `sync(from)`, which syncs from `from` and
    /// returns the offset it made durable, unless an fsync that ends meanwhile covers `end`.
    /// Returns whether this call ran one.
    pub(super) fn through(&self, end: i64, sync: impl FnOnce(i64) -> Result<i64>) -> Result<bool> {
        let mut state = self.state.lock();
        loop {
            if state.synced >= end {
                return Ok(false);
            }
            if !state.syncing {
                break;
            }
            self.ended.wait(&mut state);
        }
        state.syncing = true;
        let (from, generation) = (state.synced, state.generation);
        drop(state);
        // Ends the fsync even if `sync` panics, or the appends waiting would wait forever.
        let mut running = Running {
            owner: self,
            generation,
            synced: None,
        };
        running.synced = Some(sync(from)?);
        Ok(true)
    }

    /// As [`Self::through`], waiting without blocking the thread; `sync` returns the future
    /// of the fsync. A caller that stops waiting ends its turn, and the next append syncs.
    pub(super) async fn through_async<F>(
        &self,
        end: i64,
        sync: impl FnOnce(i64) -> F,
    ) -> Result<bool>
    where
        F: Future<Output = Result<i64>>,
    {
        let (from, generation) = loop {
            // Created before the state is read: it sees every end after that.
            let ended = self.ended_async.notified();
            {
                let mut state = self.state.lock();
                if state.synced >= end {
                    return Ok(false);
                }
                if !state.syncing {
                    state.syncing = true;
                    break (state.synced, state.generation);
                }
            }
            ended.await;
        };
        let mut running = Running {
            owner: self,
            generation,
            synced: None,
        };
        running.synced = Some(sync(from).await?);
        Ok(true)
    }

    /// Test-only: an fsync that stays in progress until the guard is dropped, and makes
    /// nothing durable.
    #[cfg(test)]
    pub(super) fn hold(&self) -> impl Drop + '_ {
        let mut state = self.state.lock();
        assert!(!state.syncing);
        state.syncing = true;
        let generation = state.generation;
        Running {
            owner: self,
            generation,
            synced: None,
        }
    }

    #[cfg(test)]
    pub(super) fn synced(&self) -> i64 {
        self.state.lock().synced
    }
}

/// An fsync in progress; dropping it ends it, recording `synced` if it is for the current
/// log, and wakes the appends waiting.
struct Running<'a> {
    owner: &'a GroupSync,
    generation: u64,
    synced: Option<i64>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.owner.state.lock();
        state.syncing = false;
        if let Some(synced) = self.synced.filter(|_| state.generation == self.generation) {
            state.synced = state.synced.max(synced);
        }
        drop(state);
        self.owner.ended.notify_all();
        self.owner.ended_async.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::GroupSync;
    use crate::error::BrokerError;

    #[test]
    fn no_lock_is_held_while_the_fsync_runs_and_a_cut_during_it_voids_it() {
        let sync = GroupSync::new(0);
        // The log is cut back while the fsync runs (which would deadlock if the state were
        // locked across it): what that fsync made durable no longer describes the log.
        let ran = sync
            .through(100, |from| {
                assert_eq!(from, 0);
                sync.truncated(50);
                Ok(100)
            })
            .unwrap();
        assert!(ran);
        assert_eq!(sync.synced(), 0);
        let mut again = false;
        sync.through(80, |from| {
            again = true;
            assert_eq!(from, 0);
            Ok(80)
        })
        .unwrap();
        assert!(again, "records written after the cut must be synced");
        assert_eq!(sync.synced(), 80);
        // Covered already: no fsync.
        assert!(!sync.through(60, |_| unreachable!()).unwrap());
    }

    #[test]
    fn a_failed_fsync_is_retried_by_the_next_append() {
        let sync = GroupSync::new(0);
        let failed = sync.through(10, |_| {
            Err(BrokerError::Storage(samsa_storage::StorageError::Io(
                std::io::Error::other("disk gone"),
            )))
        });
        assert!(failed.is_err());
        assert_eq!(sync.synced(), 0);
        assert!(sync.through(10, |_| Ok(10)).unwrap());
        assert_eq!(sync.synced(), 10);
    }
}
