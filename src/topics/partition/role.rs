//! This broker's part in a partition's replication: leading it (its leader epoch, the
//! followers' progress and the high watermark that follows from it) or following a leader
//! (taking its batches as they are and its high watermark).

use bytes::Bytes;
use std::sync::Arc;

use samsa_storage::{storage_threads, AppendInfo, PartitionLog};

use super::replicas::LeaderReplicas;
use super::Partition;
use crate::clock::now_ms;
use crate::error::{BrokerError, Result};

pub(super) struct Role {
    /// This broker.
    pub local: i32,
    /// The leader as last learnt; -1 when the partition has none.
    pub leader: i32,
    pub epoch: i32,
    /// The controller's version of this partition's record, quoted in ISR changes.
    pub partition_epoch: i32,
    /// The leader's bookkeeping of its followers; `None` while following.
    pub leading: Option<LeaderReplicas>,
}

/// A partition as the cluster metadata records it.
#[derive(Debug, Clone, Copy)]
pub struct Assignment<'a> {
    /// -1: the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
}

/// Who appends batches fetched with their offsets, and the leader epoch it holds its role at.
#[derive(Debug, Clone, Copy)]
pub(super) enum FetchedBy {
    Follower(i32),
    Mirror(i32),
}

/// What taking an assignment changed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    BecameLeader,
    BecameFollower,
    /// Same role and leader epoch; the replicas or the ISR may have changed.
    Unchanged,
}

/// An ISR change the leader proposes, quoting the epochs it was computed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

impl Role {
    fn leading(&mut self) -> Result<&mut LeaderReplicas> {
        self.leading
            .as_mut()
            .ok_or(BrokerError::NotLeaderOrFollower)
    }
}

impl Partition {
    pub fn leader_epoch(&self) -> i32 {
        self.role.lock().epoch
    }

    /// The partition's leader and its epoch, as this broker knows them.
    pub fn current_leader(&self) -> (i32, i32) {
        let role = self.role.lock();
        (role.leader, role.epoch)
    }

    /// NOT_LEADER_OR_FOLLOWER unless this broker leads the partition: clients produce to,
    /// consume from and list offsets of leaders only.
    pub fn ensure_leader(&self) -> Result<()> {
        match self.role.lock().leading {
            Some(_) => Ok(()),
            None => Err(BrokerError::NotLeaderOrFollower),
        }
    }

    /// Takes the role `assignment` gives this broker: leader (a new epoch, or the same with
    /// new replicas or ISR) or follower of another broker. Leading needs the log hosted.
    pub fn take_assignment(
        &self,
        assignment: Assignment<'_>,
        min_insync_replicas: usize,
    ) -> Result<RoleChange> {
        let local = self.role.lock().local;
        let change = if assignment.leader == local {
            let mut guard = self.log.write();
            let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
            let mut role = self.role.lock();
            if role.leading.is_some() && role.epoch == assignment.leader_epoch {
                let end = log.log_end_offset();
                let leading = role.leading()?;
                leading.set_replicas(assignment.replicas, assignment.isr, end, now_ms());
                leading.set_min_isr(min_insync_replicas);
                self.advance_high_watermark(log, &mut role);
                RoleChange::Unchanged
            } else {
                drop(role);
                drop(guard);
                self.become_leader(
                    assignment.leader_epoch,
                    assignment.replicas,
                    assignment.isr,
                    min_insync_replicas,
                )?;
                RoleChange::BecameLeader
            }
        } else {
            let role = self.role.lock();
            let same = role.leading.is_none()
                && role.leader == assignment.leader
                && role.epoch == assignment.leader_epoch;
            drop(role);
            if same {
                RoleChange::Unchanged
            } else {
                self.become_follower(assignment.leader, assignment.leader_epoch);
                RoleChange::BecameFollower
            }
        };
        self.role.lock().partition_epoch = assignment.partition_epoch;
        Ok(change)
    }

    /// The ISR change this leader should propose now, if any (see
    /// [`LeaderReplicas::isr_change`]).
    pub fn isr_proposal(&self, now_ms: i64, max_lag_ms: i64) -> Option<IsrProposal> {
        // A leader without followers (a single node's partitions) has no ISR to change, and
        // the check every 250 ms then stays clear of the log lock the appends take.
        let following = self.role.lock().leading.as_ref()?.has_followers();
        if !following {
            return None;
        }
        let guard = self.log.read();
        let end = guard.as_ref()?.log_end_offset();
        let mut role = self.role.lock();
        let (leader_epoch, partition_epoch) = (role.epoch, role.partition_epoch);
        let isr = role.leading.as_mut()?.isr_change(end, now_ms, max_lag_ms)?;
        Some(IsrProposal {
            leader_epoch,
            partition_epoch,
            isr,
        })
    }

    /// Takes (or keeps) leadership at `epoch` with the replicas and ISR the controller
    /// recorded. The epoch is recorded at the log end first (Kafka's makeLeader), so
    /// OffsetForLeaderEpoch can tell followers where older epochs end. Followers start with
    /// no known progress, so the high watermark waits for the ISR's first fetches.
    pub fn become_leader(
        &self,
        epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        min_insync_replicas: usize,
    ) -> Result<()> {
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        let mut role = self.role.lock();
        log.assign_leader_epoch(epoch)?;
        let leading = LeaderReplicas::new(
            role.local,
            replicas,
            isr,
            log.log_end_offset(),
            log.high_watermark(),
            min_insync_replicas,
            now_ms(),
        );
        role.leader = role.local;
        role.epoch = epoch;
        role.leading = Some(leading);
        self.advance_high_watermark(log, &mut role);
        Ok(())
    }

    /// Follows `leader` (-1: none known) at `epoch`: produce and consumer fetches are refused
    /// from now on; the fetcher truncates the log to where it agrees with the leader's and
    /// then replicates it.
    pub fn become_follower(&self, leader: i32, epoch: i32) {
        let mut role = self.role.lock();
        role.leader = leader;
        role.epoch = epoch;
        role.leading = None;
        drop(role);
        // Producers waiting for acks=all on this leadership learn that it ended.
        self.progress.send_modify(|_| {});
    }

    /// Checks the leader epoch a client believes current (-1: it does not say). An older one
    /// is fenced; a newer one is one this broker has not learnt of yet.
    pub fn check_leader_epoch(&self, claimed: i32) -> Result<()> {
        match claimed {
            -1 => Ok(()),
            claimed => same_epoch(claimed, self.leader_epoch()),
        }
    }

    /// A follower `replica` fetched from `fetch_offset`: its progress may move the ISR's
    /// high watermark. A broker without a replica here gets NOT_LEADER_OR_FOLLOWER.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Result<()> {
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        let mut role = self.role.lock();
        let end = log.log_end_offset();
        let moved = role
            .leading()?
            .record_fetch(replica, fetch_offset, end, now_ms)
            .map_err(|_| BrokerError::NotLeaderOrFollower)?;
        if moved {
            self.publish_high_watermark(log, role.leading()?.high_watermark());
        }
        Ok(())
    }

    /// (replicas, in-sync replicas) while this broker leads, for metrics.
    pub fn replication(&self) -> Option<(usize, usize)> {
        let role = self.role.lock();
        let leading = role.leading.as_ref()?;
        Some((leading.replica_count(), leading.isr().count()))
    }

    /// Whether a write may be appended, under one look at the role: NOT_LEADER_OR_FOLLOWER
    /// unless this broker leads (whatever the acks: a follower's answer is where the leader
    /// is), NOT_ENOUGH_REPLICAS for an acks=all write while the ISR is below the minimum.
    pub fn check_writable(&self, acks_all: bool) -> Result<()> {
        let role = self.role.lock();
        let leading = role
            .leading
            .as_ref()
            .ok_or(BrokerError::NotLeaderOrFollower)?;
        if acks_all && !leading.has_min_isr() {
            return Err(BrokerError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// Whether an acks=all write may be appended: this broker leads and the ISR holds at
    /// least `min(min.insync.replicas, replicas)` brokers.
    pub fn has_min_isr(&self) -> bool {
        self.role
            .lock()
            .leading
            .as_ref()
            .is_some_and(LeaderReplicas::has_min_isr)
    }

    /// Waits until the high watermark reaches `end_offset`, i.e. the in-sync replicas hold
    /// everything below it (an acks=all write), or `deadline` passes (REQUEST_TIMED_OUT). If
    /// the ISR shrank below the minimum meanwhile, the write is answered with
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, as Kafka does; if leadership moved, with
    /// NOT_LEADER_OR_FOLLOWER.
    pub async fn wait_until_replicated(
        &self,
        end_offset: i64,
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        let mut progress = self.progress.subscribe();
        loop {
            self.ensure_leader()?;
            if self.offsets()?.high_watermark >= end_offset {
                if !self.has_min_isr() {
                    return Err(BrokerError::NotEnoughReplicasAfterAppend);
                }
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                // The partition was deleted.
                Ok(Err(_)) => return Err(BrokerError::NotLeaderOrFollower),
                Err(_) => return Err(BrokerError::RequestTimedOut),
            }
        }
    }

    /// The largest epoch at or below `epoch` and where it ends in this log, or `None` when
    /// the log cannot say (Kafka's UNDEFINED answers).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>> {
        self.with_log(|log| Ok(log.end_offset_for_epoch(epoch)))
    }

    /// OffsetForLeaderEpoch as a leader answers it (Kafka's `lastOffsetForLeaderEpoch` with
    /// `fetchOnlyFromLeader`): the asker's `current_leader_epoch` (-1: unsaid) must be this
    /// leader's, and only a leader answers. A follower's log may itself be about to be cut,
    /// and an answer from it could make the asker cut acknowledged records.
    pub fn leader_end_offset_for_epoch(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<Option<(i32, i64)>> {
        self.with_log(|log| {
            let role = self.role.lock();
            if current_leader_epoch != -1 {
                same_epoch(current_leader_epoch, role.epoch)?;
            }
            if role.leading.is_none() {
                return Err(BrokerError::NotLeaderOrFollower);
            }
            Ok(log.end_offset_for_epoch(epoch))
        })
    }

    /// The newest leader epoch in this log, which a follower asks its leader about.
    pub fn latest_epoch(&self) -> Result<Option<i32>> {
        self.with_log(|log| Ok(log.latest_epoch()))
    }

    /// A follower's append of batches fetched from its leader at `epoch`, offsets and epochs
    /// as they are. Consumers wait for the high watermark, which only the leader's answers move.
    /// The write runs on a storage thread, as a produce's does.
    pub async fn append_replicated(
        self: &Arc<Self>,
        epoch: i32,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let info = self
            .append_fetched(FetchedBy::Follower(epoch), records, now_ms)
            .await?;
        self.progress.send_modify(|_| {});
        Ok(info)
    }

    /// Batches that carry their offsets, appended as they are on a storage thread while the
    /// writer still holds its role: a follower's fetcher following the leader of its epoch,
    /// or a cluster link's mirror leading at its epoch (which then moves the high watermark
    /// as a produce does).
    pub(super) async fn append_fetched(
        self: &Arc<Self>,
        by: FetchedBy,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let partition = self.clone();
        let (info, sync_due) = storage_threads()
            .run(move || {
                let mut guard = partition.log.write();
                let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
                let info = match by {
                    FetchedBy::Follower(epoch) => {
                        partition.check_following(epoch)?;
                        log.append_as_follower(records, now_ms)?
                    }
                    // The role stays locked through the write: a mirror's leadership cannot
                    // end between the check and the high watermark it moves.
                    FetchedBy::Mirror(epoch) => {
                        let mut role = partition.role.lock();
                        if role.leading.is_none() || role.epoch != epoch {
                            return Err(BrokerError::NotLeaderOrFollower);
                        }
                        let info = log.append_as_follower(records, now_ms)?;
                        partition.advance_high_watermark(log, &mut role);
                        info
                    }
                };
                Ok::<_, BrokerError>((info, log.take_sync_due()))
            })
            .await?;
        self.sync_through(sync_due).await?;
        Ok(info)
    }

    /// A follower at `epoch` takes the leader's high watermark, as far as its own log reaches.
    pub fn follow_high_watermark(&self, epoch: i32, leader_high_watermark: i64) -> Result<()> {
        let mut guard = self.log.write();
        let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
        self.check_following(epoch)?;
        let high_watermark = leader_high_watermark.min(log.log_end_offset());
        if high_watermark != log.high_watermark() {
            self.publish_high_watermark(log, high_watermark);
        }
        Ok(())
    }

    /// Cuts the log back to `offset`: a follower's divergent tail, found by the fetcher that
    /// follows the leader of `epoch`. Never a leader's log: a leader's log holds every
    /// acknowledged write, and its epoch starts at its log end.
    pub fn truncate_to(&self, epoch: i32, offset: i64) -> Result<()> {
        self.with_log_mut(|log| {
            self.check_following(epoch)?;
            Ok(log.truncate_to(offset)?)
        })?;
        self.sync.truncated(offset);
        self.progress.send_modify(|_| {});
        Ok(())
    }

    /// Empties the log and starts it at `offset` (a follower at `epoch` behind the leader's
    /// log start).
    pub fn truncate_fully_and_start_at(&self, epoch: i32, offset: i64) -> Result<()> {
        self.with_log_mut(|log| {
            self.check_following(epoch)?;
            Ok(log.truncate_fully_and_start_at(offset)?)
        })?;
        self.sync.reset(offset);
        self.progress.send_modify(|_| {});
        Ok(())
    }

    /// Whether this broker still follows the partition at leader `epoch`.
    pub fn follows(&self, epoch: i32) -> bool {
        self.check_following(epoch).is_ok()
    }

    /// Whether a replica fetcher that follows the leader of `epoch` may still change this
    /// log: only while this broker follows at exactly that epoch. Callers hold the log's write
    /// lock, which role changes to leader take too, so the answer holds for their whole
    /// change. A fetcher left over from before a role change (Kafka removes a partition from
    /// its fetcher before `makeLeader`; samsa does too, and this makes a late one harmless)
    /// is refused: a leader's log is never cut or written by a fetcher.
    fn check_following(&self, epoch: i32) -> Result<()> {
        let role = self.role.lock();
        if role.leading.is_some() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        same_epoch(epoch, role.epoch)
    }

    /// After the log grew: moves the high watermark as far as the in-sync replicas allow and
    /// wakes the waiting fetches (followers wait for the log end, consumers for the high
    /// watermark).
    pub(super) fn advance_high_watermark(&self, log: &mut PartitionLog, role: &mut Role) {
        let high_watermark = match role.leading.as_mut() {
            Some(leading) => {
                leading.advance_high_watermark(log.log_end_offset());
                leading.high_watermark()
            }
            None => log.high_watermark(),
        };
        self.publish_high_watermark(log, high_watermark);
    }

    fn publish_high_watermark(&self, log: &mut PartitionLog, high_watermark: i64) {
        log.set_high_watermark(high_watermark);
        self.progress.send_replace(high_watermark);
    }
}

/// FENCED_LEADER_EPOCH for a `claimed` epoch older than `current`, UNKNOWN_LEADER_EPOCH for
/// one this broker has not learnt of yet.
fn same_epoch(claimed: i32, current: i32) -> Result<()> {
    match claimed.cmp(&current) {
        std::cmp::Ordering::Less => Err(BrokerError::FencedLeaderEpoch {
            claimed,
            epoch: current,
        }),
        std::cmp::Ordering::Greater => Err(BrokerError::UnknownLeaderEpoch {
            claimed,
            epoch: current,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
