//! Writes a client is told about only once they are replicated: the offsets of OffsetCommit
//! and TxnOffsetCommit, and the leader's assignment of SyncGroup. Kafka appends them with
//! acks=-1 and a timeout of `offsets.commit.timeout.ms`; on a single node the high watermark
//! follows the log end, so they are replicated as soon as they are appended.
//!
//! The append happens under the group's lock, in log order; the wait does not hold it.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use super::store::{Entry, TxnProducer};
use super::{Group, GroupCoordinator, GroupSettings, LockedGroup};
use crate::clock::now_ms;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::topics::internal::Appended;

/// Offsets (or a consumer group's records) in the log, not yet acknowledged.
#[derive(Debug)]
#[must_use = "a commit is answered once it is acknowledged"]
pub struct PendingCommit {
    /// `None`: nothing was written (only checks ran).
    appended: Option<Appended>,
    deadline: Instant,
    write: CoordinatorWrite,
}

impl PendingCommit {
    /// Waits until the in-sync replicas hold the offsets; a failure is answered as Kafka
    /// answers a failed commit.
    pub async fn acknowledged(self) -> Result<()> {
        let Some(appended) = self.appended else {
            return Ok(());
        };
        appended
            .replicated(self.deadline)
            .await
            .map_err(|err| err.for_coordinator_write(self.write))
    }
}

impl GroupCoordinator {
    fn write_deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.config.offsets_commit_timeout_ms)
    }

    /// Appends offsets of `group` (of `producer`'s transaction, if any); an append that fails
    /// is answered as a commit whose write failed.
    pub(super) fn append_offsets(
        &self,
        group: &str,
        entries: &[Entry],
        producer: Option<TxnProducer>,
    ) -> Result<Option<Appended>> {
        let appended = match producer {
            Some(producer) => self
                .store
                .append_transactional(group, entries, producer, now_ms()),
            None => self.store.append(group, entries, now_ms()),
        };
        appended.map_err(|err| err.for_coordinator_write(CoordinatorWrite::Offsets))
    }

    pub(super) fn pending_commit(&self, appended: Option<Appended>) -> PendingCommit {
        self.pending_write(appended, CoordinatorWrite::Offsets)
    }

    pub(super) fn pending_write(
        &self,
        appended: Option<Appended>,
        write: CoordinatorWrite,
    ) -> PendingCommit {
        PendingCommit {
            appended,
            deadline: self.write_deadline(),
            write,
        }
    }

    /// The leader's assignment was written (or not): once it is replicated the group becomes
    /// Stable and its members get their assignments; if it is not, they get the error and the
    /// group rebalances. Waiting happens off the group's lock, in a task of its own, since the
    /// members wait whatever becomes of the leader's request.
    pub(super) fn acknowledge_assignment(&self, mut group: LockedGroup, written: Result<Appended>) {
        let generation = group.generation;
        let settings = self.settings;
        let appended = match written {
            Ok(appended) => appended,
            Err(err) => return settle(&mut group, generation, Err(err), &settings),
        };
        let deadline = self.write_deadline();
        // Replicated already (always, on a single node): answered under the lock we hold.
        if let Some(stored) = appended.replicated(deadline).now_or_never() {
            return settle(&mut group, generation, stored, &settings);
        }
        let group = {
            let unlocked = LockedGroup::mutex(&group);
            drop(group);
            unlocked
        };
        tokio::spawn(async move {
            let stored = appended.replicated(deadline).await;
            settle(&mut group.lock(), generation, stored, &settings);
        });
    }
}

fn settle(group: &mut Group, generation: i32, stored: Result<()>, settings: &GroupSettings) {
    match stored {
        Ok(()) => group.assignment_stored(generation),
        Err(err) => {
            let err: BrokerError = err.for_coordinator_write(CoordinatorWrite::GroupMetadata);
            tracing::warn!(group = %group.id, generation, "the group's assignment was not stored: {err}");
            group.assignment_not_stored(
                generation,
                err.for_each_waiter(),
                Instant::now(),
                now_ms(),
                settings,
            );
        }
    }
}
