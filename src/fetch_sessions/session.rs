//! One incremental fetch session: the partitions a fetcher asked for, with what it last asked
//! of each and what it was last told (Kafka's `FetchSession` and `CachedPartition`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

/// How a session names topics: by id from Fetch v13, by name before. A session keeps the
/// kind it was created with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

/// A partition of a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

impl PartitionKey {
    /// What the partition counts for against the cache's partition budget: one, and one
    /// more per 256 bytes of a topic name, so that names no topic can have (Kafka's are at
    /// most 249 characters) cannot make a session large for its count.
    pub fn cost(&self) -> usize {
        match &self.topic {
            TopicKey::Id(_) => 1,
            TopicKey::Name(name) => 1 + name.len() / 256,
        }
    }
}

/// What a fetcher asks of one partition; a session remembers it for the fetches that leave
/// the partition out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// -1 when the fetcher does not say.
    pub current_leader_epoch: i32,
    /// The follower's own log start offset; -1 from consumers.
    pub log_start_offset: i64,
    /// -1 when the fetcher does not say.
    pub last_fetched_epoch: i32,
}

/// What a fetch of one partition found, as far as deciding whether to send it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub has_records: bool,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub has_error: bool,
    pub has_preferred_replica: bool,
    pub has_diverging_epoch: bool,
}

#[derive(Debug)]
struct CachedPartition {
    key: PartitionKey,
    params: FetchParams,
    /// The last high watermark sent; -1 after an error, so the partition is sent again
    /// once the error clears.
    high_watermark: i64,
    /// The last log start offset sent.
    log_start_offset: i64,
}

impl CachedPartition {
    /// Whether a partition must be in an incremental answer, Kafka's rule
    /// (`CachedPartition.maybeUpdateResponseData`): records, a new high watermark or log
    /// start offset, an error, a preferred read replica or a diverging epoch. A changed last
    /// stable offset alone is not sent, as in Kafka.
    fn must_respond(&mut self, outcome: &Outcome) -> bool {
        let mut respond = outcome.has_records
            || outcome.has_preferred_replica
            || outcome.has_diverging_epoch
            || outcome.has_error;
        if self.high_watermark != outcome.high_watermark {
            respond = true;
            self.high_watermark = outcome.high_watermark;
        }
        if self.log_start_offset != outcome.log_start_offset {
            respond = true;
            self.log_start_offset = outcome.log_start_offset;
        }
        if outcome.has_error {
            self.high_watermark = -1;
        }
        respond
    }
}

/// The partitions of one session in Kafka's order: first added first, except that a
/// partition that returned records moves to the end, so the answer's byte budget rotates
/// over them.
#[derive(Debug)]
pub struct FetchSession {
    pub id: i32,
    /// A follower's session, which consumers' sessions cannot evict while it is young.
    pub privileged: bool,
    pub uses_topic_ids: bool,
    pub created_ms: i64,
    pub last_used_ms: i64,
    /// The epoch the next incremental fetch must carry.
    pub epoch: i32,
    slots: HashMap<PartitionKey, u64>,
    order: BTreeMap<u64, CachedPartition>,
    next_slot: u64,
    cost: usize,
}

/// The epoch after `epoch`: 1 after the highest, so a long session never reaches the
/// initial (0) or final (-1) epoch.
pub fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        e if e < 0 => -1,
        i32::MAX => 1,
        e => e + 1,
    }
}

impl FetchSession {
    pub fn new(id: i32, privileged: bool, uses_topic_ids: bool, now_ms: i64) -> FetchSession {
        FetchSession {
            id,
            privileged,
            uses_topic_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            epoch: next_epoch(0),
            slots: HashMap::new(),
            order: BTreeMap::new(),
            next_slot: 0,
            cost: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// What the session counts for against the cache's partition budget.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Adds a partition from a full fetch with what that fetch found, or, for a partition
    /// already in the session, updates what is asked of it in place.
    pub fn insert(&mut self, key: PartitionKey, params: FetchParams, found: Option<&Outcome>) {
        if let Some(cached) = self.slots.get(&key).and_then(|s| self.order.get_mut(s)) {
            cached.params = params;
            return;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.cost += key.cost();
        self.slots.insert(key.clone(), slot);
        self.order.insert(
            slot,
            CachedPartition {
                key,
                params,
                high_watermark: found.map_or(-1, |o| o.high_watermark),
                log_start_offset: found.map_or(-1, |o| o.log_start_offset),
            },
        );
    }

    pub fn forget(&mut self, key: &PartitionKey) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot);
            self.cost -= key.cost();
        }
    }

    /// The cost the session would have with `added` partitions added: for checking the
    /// budget before an update.
    pub fn cost_with(&self, added: &[(PartitionKey, FetchParams)]) -> usize {
        self.cost
            + added
                .iter()
                .filter(|(k, _)| !self.slots.contains_key(k))
                .map(|(k, _)| k.cost())
                .sum::<usize>()
    }

    /// Every partition of the session, in order, with what is asked of it.
    pub fn partitions(&self) -> Vec<(PartitionKey, FetchParams)> {
        self.order
            .values()
            .map(|c| (c.key.clone(), c.params))
            .collect()
    }

    /// Which of the fetched partitions an incremental answer carries, recording what it
    /// tells the fetcher and moving those that returned records to the end.
    pub fn select(&mut self, fetched: &[(PartitionKey, Outcome)]) -> Vec<bool> {
        fetched
            .iter()
            .map(|(key, outcome)| {
                let Some(slot) = self.slots.get(key).copied() else {
                    // Not (or no longer) in the session: nothing to compare with, so sent.
                    return true;
                };
                let cached = self.order.get_mut(&slot).expect("slots and order agree");
                let respond = cached.must_respond(outcome);
                if respond && outcome.has_records {
                    let cached = self.order.remove(&slot).expect("slots and order agree");
                    let moved = self.next_slot;
                    self.next_slot += 1;
                    self.slots.insert(key.clone(), moved);
                    self.order.insert(moved, cached);
                }
                respond
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name("t".into()),
            partition: p,
        }
    }

    fn params(offset: i64) -> FetchParams {
        FetchParams {
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            log_start_offset: -1,
            last_fetched_epoch: -1,
        }
    }

    fn outcome(hw: i64, records: bool) -> Outcome {
        Outcome {
            has_records: records,
            high_watermark: hw,
            log_start_offset: 0,
            has_error: false,
            has_preferred_replica: false,
            has_diverging_epoch: false,
        }
    }

    #[test]
    fn only_changed_partitions_are_selected_and_records_rotate() {
        let mut s = FetchSession::new(1, false, false, 0);
        for p in 0..3 {
            s.insert(key(p), params(0), Some(&outcome(5, false)));
        }
        let fetched: Vec<_> = (0..3).map(|p| (key(p), outcome(5, p == 0))).collect();
        assert_eq!(s.select(&fetched), [true, false, false]);
        let order: Vec<i32> = s.partitions().iter().map(|(k, _)| k.partition).collect();
        assert_eq!(
            order,
            [1, 2, 0],
            "a partition with records moves to the end"
        );
        // A new high watermark is sent once.
        let fetched = [(key(1), outcome(6, false))];
        assert_eq!(s.select(&fetched), [true]);
        assert_eq!(s.select(&fetched), [false]);
    }

    #[test]
    fn an_error_is_always_sent_and_its_clearing_too() {
        let mut s = FetchSession::new(1, false, false, 0);
        s.insert(key(0), params(0), Some(&outcome(5, false)));
        let failed = Outcome {
            has_error: true,
            high_watermark: -1,
            log_start_offset: -1,
            ..outcome(5, false)
        };
        assert_eq!(s.select(&[(key(0), failed)]), [true]);
        assert_eq!(s.select(&[(key(0), failed)]), [true]);
        assert_eq!(s.select(&[(key(0), outcome(5, false))]), [true]);
        assert_eq!(s.select(&[(key(0), outcome(5, false))]), [false]);
    }

    #[test]
    fn epochs_wrap_to_one_and_final_stays_final() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    #[test]
    fn long_names_cost_more() {
        let long = PartitionKey {
            topic: TopicKey::Name("x".repeat(1000).into()),
            partition: 0,
        };
        let mut s = FetchSession::new(1, false, false, 0);
        s.insert(long.clone(), params(0), None);
        s.insert(key(0), params(0), None);
        assert_eq!(s.cost(), 5);
        s.forget(&long);
        assert_eq!(s.cost(), 1);
    }
}
