//! The leader's view of its followers: how far each has fetched, which of them are in sync,
//! and the high watermark that follows from it.
//!
//! The rules are Kafka's. A follower's log end offset is the offset it fetches from, since a
//! fetch at `n` says it has everything below `n`. The high watermark is the smallest log end
//! offset in the ISR (the leader's own included) and never moves back while this broker
//! leads. A follower is caught up when a fetch reaches the leader's log end offset as it was at
//! that fetch, or at the previous fetch; one that has not been caught up for
//! `replica_lag_time_max_ms` leaves the ISR, unless it has exactly the leader's log end
//! offset (an idle partition gives nothing to catch up with). A replica rejoins when it has
//! reached the high watermark and fetched past the start of the current leader epoch, where a
//! log that diverged under an older leader has been truncated. Since Kafka 3.7 (KAFKA-15583)
//! the high watermark also stands still while the ISR is smaller than the effective minimum,
//! `min(min.insync.replicas, replicas)`: acks=1 writes still land, but no consumer sees a
//! record that fewer replicas than promised hold.

use std::collections::{BTreeMap, BTreeSet};

/// Progress of one follower, as learnt from its fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// `None` until its first fetch under this leadership.
    log_end_offset: Option<i64>,
    last_fetch_ms: i64,
    /// The leader's log end offset when that fetch arrived.
    leader_end_at_last_fetch: i64,
    last_caught_up_ms: i64,
}

impl Follower {
    /// Not heard from yet; counted as caught up `now_ms`, so that it has the whole
    /// `replica_lag_time_max_ms` to fetch before it leaves the ISR.
    fn new(log_end_offset: i64, now_ms: i64) -> Follower {
        Follower {
            log_end_offset: None,
            last_fetch_ms: now_ms,
            leader_end_at_last_fetch: log_end_offset,
            last_caught_up_ms: now_ms,
        }
    }
}

/// A fetch from a broker that is not a replica of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broker {0} is not a replica of this partition")]
pub struct NotAReplica(pub i32);

#[derive(Debug)]
pub struct LeaderReplicas {
    local_id: i32,
    /// Where the current leader epoch began in the log.
    epoch_start_offset: i64,
    isr: BTreeSet<i32>,
    /// Caught-up replicas proposed to join the ISR, not yet accepted by the controller.
    /// They hold the high watermark back already (Kafka's maximal ISR): a replica must never
    /// join with less than what the high watermark has promised.
    joining: BTreeSet<i32>,
    followers: BTreeMap<i32, Follower>,
    high_watermark: i64,
    /// The topic's `min.insync.replicas`, before capping at the replica count.
    min_insync_replicas: usize,
}

impl LeaderReplicas {
    /// Taking over leadership with `replicas` and `isr` as the controller recorded them.
    /// Followers count as just caught up, so none is dropped from the ISR before it has had
    /// `replica_lag_time_max_ms` to fetch from the new leader.
    pub fn new(
        local_id: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end_offset: i64,
        high_watermark: i64,
        min_insync_replicas: usize,
        now_ms: i64,
    ) -> Self {
        let followers: BTreeMap<i32, Follower> = replicas
            .iter()
            .filter(|id| **id != local_id)
            .map(|id| (*id, Follower::new(log_end_offset, now_ms)))
            .collect();
        let mut isr: BTreeSet<i32> = isr.iter().copied().collect();
        isr.insert(local_id);
        LeaderReplicas {
            local_id,
            epoch_start_offset: log_end_offset,
            isr,
            joining: BTreeSet::new(),
            high_watermark: high_watermark.min(log_end_offset),
            min_insync_replicas,
            followers,
        }
    }

    /// `min(min.insync.replicas, replicas)`, as Kafka caps it since 3.7.
    fn min_isr(&self) -> usize {
        self.min_insync_replicas.clamp(1, self.followers.len() + 1)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> impl Iterator<Item = i32> + '_ {
        self.isr.iter().copied()
    }

    /// Replicas of the partition, the leader included.
    pub fn replica_count(&self) -> usize {
        self.followers.len() + 1
    }

    /// Whether an acks=all write may be appended (else NOT_ENOUGH_REPLICAS).
    pub fn has_min_isr(&self) -> bool {
        self.isr.len() >= self.min_isr()
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at `log_end_offset`.
    /// Returns whether the high watermark moved.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Result<bool, NotAReplica> {
        let follower = self
            .followers
            .get_mut(&replica)
            .ok_or(NotAReplica(replica))?;
        if fetch_offset >= log_end_offset {
            follower.last_caught_up_ms = now_ms;
        } else if fetch_offset >= follower.leader_end_at_last_fetch {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end_offset = Some(fetch_offset);
        follower.last_fetch_ms = now_ms;
        follower.leader_end_at_last_fetch = log_end_offset;
        Ok(self.advance_high_watermark(log_end_offset))
    }

    /// Recomputes the high watermark after the leader's own log grew (or the ISR shrank).
    /// Returns whether it moved.
    pub fn advance_high_watermark(&mut self, log_end_offset: i64) -> bool {
        if self.isr.len() < self.min_isr() {
            return false;
        }
        let mut low = log_end_offset;
        for id in self.isr.union(&self.joining) {
            if *id == self.local_id {
                continue;
            }
            match self.followers.get(id).and_then(|f| f.log_end_offset) {
                Some(end) => low = low.min(end),
                // An in-sync follower that has not fetched yet holds the watermark back.
                None => return false,
            }
        }
        if low > self.high_watermark {
            self.high_watermark = low;
            return true;
        }
        false
    }

    /// ISR members that have not been caught up for longer than `max_lag_ms`.
    pub fn lagging(&self, log_end_offset: i64, now_ms: i64, max_lag_ms: i64) -> Vec<i32> {
        self.isr
            .iter()
            .filter_map(|id| self.followers.get(id).map(|f| (*id, f)))
            .filter(|(_, f)| {
                f.log_end_offset != Some(log_end_offset)
                    && now_ms - f.last_caught_up_ms > max_lag_ms
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Replicas outside the ISR that may rejoin it.
    pub fn caught_up(&self) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(id, _)| !self.isr.contains(id))
            .filter(|(_, f)| {
                f.log_end_offset
                    .is_some_and(|end| end >= self.high_watermark && end >= self.epoch_start_offset)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// A changed `min.insync.replicas`, capped at the replica count like the first.
    pub fn set_min_isr(&mut self, min_insync_replicas: usize) {
        self.min_insync_replicas = min_insync_replicas;
    }

    /// Installs the ISR the controller accepted. The leader is always in it. Proposed
    /// joiners are forgotten: accepted, they are in it; refused, they are proposed again.
    pub fn set_isr(&mut self, isr: &[i32], log_end_offset: i64) {
        self.isr = isr.iter().copied().collect();
        self.isr.insert(self.local_id);
        self.joining.clear();
        self.advance_high_watermark(log_end_offset);
    }

    /// A reassignment changed the replica set under the same leadership: new replicas start
    /// as followers not yet heard from, removed ones are forgotten.
    pub fn set_replicas(
        &mut self,
        replicas: &[i32],
        isr: &[i32],
        log_end_offset: i64,
        now_ms: i64,
    ) {
        let local = self.local_id;
        self.followers.retain(|id, _| replicas.contains(id));
        for id in replicas.iter().filter(|id| **id != local) {
            self.followers
                .entry(*id)
                .or_insert_with(|| Follower::new(log_end_offset, now_ms));
        }
        self.set_isr(isr, log_end_offset);
    }

    /// Whether any other replica is followed: without one the ISR can never change.
    pub fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }

    /// The ISR to propose to the controller now: members lagging for longer than
    /// `max_lag_ms` out, caught-up replicas in; `None` when it would stay as it is. The
    /// joiners count toward the high watermark from now on.
    pub fn isr_change(
        &mut self,
        log_end_offset: i64,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> Option<Vec<i32>> {
        let lagging = self.lagging(log_end_offset, now_ms, max_lag_ms);
        let joining = self.caught_up();
        if lagging.is_empty() && joining.is_empty() {
            return None;
        }
        self.joining = joining.iter().copied().collect();
        let mut isr = self.isr.clone();
        isr.retain(|id| !lagging.contains(id));
        isr.extend(joining);
        Some(isr.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn three_in_sync(end: i64) -> LeaderReplicas {
        LeaderReplicas::new(1, &[1, 2, 3], &[1, 2, 3], end, end, 1, 0)
    }

    #[test]
    fn high_watermark_is_the_smallest_end_in_the_isr() {
        let mut leader = three_in_sync(10);
        assert_eq!(leader.high_watermark(), 10);
        // Appends alone do not move it while followers are in the ISR.
        assert!(!leader.advance_high_watermark(15));
        assert!(!leader.record_fetch(2, 15, 15, 1).unwrap());
        assert_eq!(leader.high_watermark(), 10);
        assert!(leader.record_fetch(3, 12, 15, 1).unwrap());
        assert_eq!(leader.high_watermark(), 12);
        assert!(leader.record_fetch(3, 15, 15, 2).unwrap());
        assert_eq!(leader.high_watermark(), 15);
    }

    #[test]
    fn high_watermark_never_moves_back() {
        let mut leader = three_in_sync(10);
        leader.record_fetch(2, 10, 10, 1).unwrap();
        leader.record_fetch(3, 10, 10, 1).unwrap();
        // A follower that truncated and refetches lower does not pull it back.
        leader.record_fetch(2, 4, 10, 2).unwrap();
        assert_eq!(leader.high_watermark(), 10);
    }

    #[test]
    fn a_leader_alone_in_the_isr_commits_its_own_appends() {
        let mut leader = LeaderReplicas::new(1, &[1, 2, 3], &[1], 0, 0, 1, 0);
        assert!(leader.advance_high_watermark(5));
        assert_eq!(leader.high_watermark(), 5);
    }

    #[test]
    fn followers_that_stop_catching_up_are_lagging() {
        let mut leader = three_in_sync(100);
        leader.record_fetch(2, 100, 100, 1_000).unwrap();
        leader.record_fetch(3, 100, 100, 1_000).unwrap();
        // The log grows; follower 2 keeps up, follower 3 stops fetching.
        for t in 1..=40 {
            let end = 100 + t;
            leader.advance_high_watermark(end);
            leader.record_fetch(2, end, end, 1_000 + t * 1_000).unwrap();
        }
        assert_eq!(leader.lagging(140, 41_000, LAG), vec![3]);
    }

    #[test]
    fn a_follower_always_one_fetch_behind_stays_in_sync() {
        // Under steady load a follower never equals the leader's end, but each fetch reaches
        // where the leader was at its previous fetch.
        let mut leader = three_in_sync(0);
        let mut end = 0;
        for t in 1..=100 {
            let previous_end = end;
            end += 10;
            leader
                .record_fetch(2, previous_end, end, t * 1_000)
                .unwrap();
            leader
                .record_fetch(3, previous_end, end, t * 1_000)
                .unwrap();
        }
        assert!(leader.lagging(end, 100_000, LAG).is_empty());
    }

    #[test]
    fn an_idle_partition_keeps_silent_followers_in_sync() {
        let mut leader = three_in_sync(50);
        leader.record_fetch(2, 50, 50, 0).unwrap();
        leader.record_fetch(3, 50, 50, 0).unwrap();
        assert!(leader.lagging(50, 10 * LAG, LAG).is_empty());
    }

    #[test]
    fn a_new_leader_gives_followers_time_to_fetch() {
        let leader = three_in_sync(50);
        assert!(leader.lagging(60, LAG, LAG).is_empty());
        assert_eq!(leader.lagging(60, LAG + 1, LAG), vec![2, 3]);
    }

    #[test]
    fn followers_rejoin_at_the_high_watermark_and_past_the_epoch_start() {
        let mut leader = LeaderReplicas::new(1, &[1, 2, 3], &[1, 2], 20, 20, 1, 0);
        leader.record_fetch(2, 20, 20, 1).unwrap();
        leader.advance_high_watermark(30);
        leader.record_fetch(2, 30, 30, 2).unwrap();
        assert_eq!(leader.high_watermark(), 30);
        leader.record_fetch(3, 25, 30, 3).unwrap();
        assert!(leader.caught_up().is_empty());
        leader.record_fetch(3, 30, 30, 4).unwrap();
        assert_eq!(leader.caught_up(), vec![3]);
        leader.set_isr(&[1, 2, 3], 30);
        assert!(leader.caught_up().is_empty());
        assert_eq!(leader.isr().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn shrinking_the_isr_releases_the_high_watermark() {
        let mut leader = three_in_sync(10);
        leader.advance_high_watermark(20);
        leader.record_fetch(2, 20, 20, 1).unwrap();
        assert_eq!(leader.high_watermark(), 10);
        leader.set_isr(&[1, 2], 20);
        assert_eq!(leader.high_watermark(), 20);
    }

    #[test]
    fn below_the_minimum_isr_the_high_watermark_stands_still() {
        let mut leader = LeaderReplicas::new(1, &[1, 2, 3], &[1, 2], 10, 10, 2, 0);
        assert!(leader.has_min_isr());
        leader.record_fetch(2, 15, 15, 1).unwrap();
        assert_eq!(leader.high_watermark(), 15);
        leader.set_isr(&[1], 20);
        assert!(!leader.has_min_isr());
        assert!(!leader.advance_high_watermark(20));
        assert_eq!(leader.high_watermark(), 15);
        // Back at the minimum, it catches up at once.
        leader.record_fetch(3, 20, 20, 2).unwrap();
        leader.set_isr(&[1, 3], 20);
        assert_eq!(leader.high_watermark(), 20);
    }

    #[test]
    fn the_minimum_isr_is_capped_at_the_replica_count() {
        let mut leader = LeaderReplicas::new(1, &[1], &[1], 0, 0, 3, 0);
        assert!(leader.has_min_isr());
        assert!(leader.advance_high_watermark(4));
    }

    #[test]
    fn isr_changes_drop_laggards_and_add_caught_up_replicas_who_hold_the_watermark() {
        let mut leader = LeaderReplicas::new(1, &[1, 2, 3], &[1, 2], 10, 10, 1, 0);
        leader.record_fetch(2, 10, 10, 1).unwrap();
        assert_eq!(leader.isr_change(10, 2, LAG), None);
        leader.record_fetch(3, 10, 10, 2).unwrap();
        assert_eq!(leader.isr_change(10, 3, LAG), Some(vec![1, 2, 3]));
        // Proposed, not yet accepted: 3 already holds the high watermark back.
        leader.record_fetch(2, 20, 20, 4).unwrap();
        assert_eq!(leader.high_watermark(), 10);
        leader.set_isr(&[1, 2, 3], 20);
        assert_eq!(leader.high_watermark(), 10);
        // 2 stops fetching while the log grows: out once it lags for longer than LAG.
        leader.record_fetch(3, 30, 30, 5).unwrap();
        assert_eq!(leader.isr_change(30, 6, LAG), None);
        assert_eq!(leader.isr_change(30, 5 + LAG + 1, LAG), Some(vec![1, 3]));
    }

    #[test]
    fn reassignment_adds_and_removes_followers_under_one_leadership() {
        let mut leader = LeaderReplicas::new(1, &[1, 2], &[1, 2], 10, 10, 2, 0);
        leader.record_fetch(2, 10, 10, 1).unwrap();
        leader.set_replicas(&[1, 2, 3], &[1, 2], 10, 2);
        assert_eq!(leader.record_fetch(3, 10, 10, 3), Ok(false));
        assert_eq!(leader.caught_up(), vec![3]);
        leader.set_replicas(&[1, 3], &[1, 3], 10, 4);
        assert_eq!(leader.record_fetch(2, 10, 10, 5), Err(NotAReplica(2)));
        assert!(leader.has_min_isr());
    }

    #[test]
    fn fetches_from_non_replicas_are_refused() {
        let mut leader = three_in_sync(10);
        assert_eq!(leader.record_fetch(7, 10, 10, 1), Err(NotAReplica(7)));
    }
}
