//! Incremental fetch sessions (KIP-227): the fetch session cache, Kafka's `FetchManager` and
//! `FetchSessionCache`. A fetcher that opens a session sends, after its first full fetch,
//! only the partitions whose fetch parameters changed, and is answered only the partitions
//! whose data changed; the cache remembers the rest.
//!
//! As in Kafka the cache is split into [`SHARDS`] shards, each with its share of
//! `max_incremental_fetch_session_cache_slots` and its own range of session ids; a new
//! session goes to the next shard in turn. A full shard makes room only by Kafka's eviction
//! rules ([`Shard::try_evict`]). Beyond Kafka, each shard also has a share of a partition
//! budget (`max_incremental_fetch_session_cache_partitions`), so that neither many sessions
//! nor large ones can grow the broker's memory without bound.
//!
//! The shards' locks are leaves: nothing else is taken while one is held. No wire types
//! here: the fetch handler translates.

mod session;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::FetchSessionError;
pub use session::{next_epoch, FetchParams, FetchSession, Outcome, PartitionKey, TopicKey};

/// Kafka's `NumFetchSessionCacheShards`.
pub const SHARDS: usize = 8;
/// Each shard's range of session ids (Kafka's `Int.MaxValue / NumFetchSessionCacheShards`).
const ID_RANGE: i32 = i32::MAX / SHARDS as i32;
/// The session id of a fetch outside any session (Kafka's `INVALID_SESSION_ID`).
pub const NO_SESSION: i32 = 0;

/// What an incremental fetch made of its session.
#[derive(Debug)]
pub enum Continued {
    /// The session goes on: fetch these partitions, then answer only those
    /// [`FetchSessionCache::select`] picks.
    Incremental {
        /// The epoch the session moved to, which the answer checks it still has.
        epoch: i32,
        partitions: Vec<(PartitionKey, FetchParams)>,
    },
    /// The session is closed (it has no partitions left, or outgrew its share of the
    /// budget): answer the request's own partitions without a session, as Kafka answers an
    /// emptied session, and the fetcher starts over with a full fetch.
    Closed,
}

/// The cache's size, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchSessionStats {
    pub sessions: usize,
    pub partitions: usize,
    /// Sessions evicted to make room for others since start.
    pub evictions: u64,
}

pub struct FetchSessionCache {
    shards: Vec<Mutex<Shard>>,
    next_shard: AtomicUsize,
    evictions: AtomicU64,
}

impl FetchSessionCache {
    /// `slots` sessions at most, `eviction_ms` before an idle or new session may be evicted,
    /// `max_partitions` cached over all sessions; each shard gets its (rounded-down) share,
    /// as in Kafka.
    pub fn new(slots: usize, eviction_ms: i64, max_partitions: usize) -> FetchSessionCache {
        let shards = (0..SHARDS)
            .map(|n| {
                Mutex::new(Shard {
                    number: n as i32,
                    max_sessions: slots / SHARDS,
                    max_cost: max_partitions / SHARDS,
                    eviction_ms,
                    sessions: HashMap::new(),
                    last_used: BTreeSet::new(),
                    evictable_by_all: BTreeSet::new(),
                    evictable_by_privileged: BTreeSet::new(),
                    partitions: 0,
                    cost: 0,
                })
            })
            .collect();
        FetchSessionCache {
            shards,
            next_shard: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, id: i32) -> Option<&Mutex<Shard>> {
        if id <= NO_SESSION {
            return None;
        }
        self.shards.get((id / ID_RANGE) as usize)
    }

    /// Closes session `id`, as a full fetch naming it does. Whether there was one.
    pub fn remove(&self, id: i32) -> bool {
        self.shard_of(id)
            .is_some_and(|shard| shard.lock().remove(id).is_some())
    }

    /// Opens a session with the partitions of a full fetch and what it found of each, when
    /// there is room or room can be made; its id, or [`NO_SESSION`].
    pub fn create(
        &self,
        now_ms: i64,
        privileged: bool,
        uses_topic_ids: bool,
        partitions: Vec<(PartitionKey, FetchParams, Outcome)>,
    ) -> i32 {
        let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let mut shard = self.shards[n].lock();
        let mut session = FetchSession::new(NO_SESSION, privileged, uses_topic_ids, now_ms);
        for (key, params, outcome) in partitions {
            session.insert(key, params, Some(&outcome));
        }
        let (room, evicted) = shard.make_room(now_ms, privileged, session.len());
        if evicted {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        if !room || shard.cost + session.cost() > shard.max_cost {
            tracing::debug!(privileged, size = session.len(), "no fetch session created");
            return NO_SESSION;
        }
        session.id = shard.new_id();
        let id = session.id;
        shard.cost += session.cost();
        shard.partitions += session.len();
        shard.sessions.insert(id, Entry::new(session));
        shard.touch(id, now_ms);
        tracing::debug!(id, privileged, "created fetch session");
        id
    }

    /// An incremental fetch of session `id` at `epoch`: the session takes the request's
    /// partitions (`changed`: added, or asked for differently) and drops `forgotten`.
    pub fn update(
        &self,
        now_ms: i64,
        id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        changed: Vec<(PartitionKey, FetchParams)>,
        forgotten: &[PartitionKey],
    ) -> Result<Continued, FetchSessionError> {
        let shard = self.shard_of(id).ok_or(FetchSessionError::NotFound)?;
        let mut shard = shard.lock();
        let max_cost = shard.max_cost;
        let (old_len, old_cost) = {
            let entry = shard
                .sessions
                .get_mut(&id)
                .ok_or(FetchSessionError::NotFound)?;
            let session = &mut entry.session;
            if session.epoch != epoch {
                return Err(FetchSessionError::InvalidEpoch);
            }
            if session.uses_topic_ids != uses_topic_ids {
                return Err(FetchSessionError::TopicIdMismatch);
            }
            let before = (session.len(), session.cost());
            for (key, params) in changed {
                session.insert(key, params, None);
            }
            for key in forgotten {
                session.forget(key);
            }
            before
        };
        let (len, cost) = {
            let session = &shard.sessions[&id].session;
            (session.len(), session.cost())
        };
        shard.cost = shard.cost - old_cost + cost;
        shard.partitions = shard.partitions - old_len + len;
        if len == 0 || shard.cost > max_cost {
            tracing::debug!(id, partitions = len, "fetch session closed by its update");
            shard.remove(id);
            return Ok(Continued::Closed);
        }
        shard.touch(id, now_ms);
        let session = &mut shard.sessions.get_mut(&id).expect("present").session;
        session.epoch = next_epoch(session.epoch);
        Ok(Continued::Incremental {
            epoch: session.epoch,
            partitions: session.partitions(),
        })
    }

    /// Which of an incremental fetch's partitions its answer carries (Kafka's
    /// `IncrementalFetchContext.updateAndGenerateResponseData`). INVALID_FETCH_SESSION_EPOCH
    /// when another fetch of the session came in meanwhile. A session evicted meanwhile
    /// has nothing to compare with: everything is sent.
    pub fn select(
        &self,
        id: i32,
        epoch: i32,
        fetched: &[(PartitionKey, Outcome)],
    ) -> Result<Vec<bool>, FetchSessionError> {
        let Some(shard) = self.shard_of(id) else {
            return Ok(vec![true; fetched.len()]);
        };
        let mut shard = shard.lock();
        match shard.sessions.get_mut(&id) {
            None => Ok(vec![true; fetched.len()]),
            Some(entry) if entry.session.epoch != epoch => {
                tracing::info!(
                    id,
                    expected = epoch,
                    found = entry.session.epoch,
                    "fetch session moved on: possible duplicate request"
                );
                Err(FetchSessionError::InvalidEpoch)
            }
            Some(entry) => Ok(entry.session.select(fetched)),
        }
    }

    pub fn stats(&self) -> FetchSessionStats {
        let mut stats = FetchSessionStats {
            evictions: self.evictions.load(Ordering::Relaxed),
            ..Default::default()
        };
        for shard in &self.shards {
            let shard = shard.lock();
            stats.sessions += shard.sessions.len();
            stats.partitions += shard.partitions;
        }
        stats
    }
}

/// Kafka's `EvictableKey`: unprivileged before privileged, then smaller before larger.
type EvictableKey = (bool, usize, i32);

struct Entry {
    session: FetchSession,
    /// The size last recorded by [`Shard::touch`], as ordered in the evictable sets.
    size: usize,
}

impl Entry {
    fn new(session: FetchSession) -> Entry {
        Entry { session, size: 0 }
    }

    fn evictable_key(&self) -> EvictableKey {
        (self.session.privileged, self.size, self.session.id)
    }
}

/// One shard of the cache (Kafka's `FetchSessionCacheShard`).
struct Shard {
    number: i32,
    max_sessions: usize,
    max_cost: usize,
    eviction_ms: i64,
    sessions: HashMap<i32, Entry>,
    /// (last used, id), least recently used first.
    last_used: BTreeSet<(i64, i32)>,
    /// Sessions older than `eviction_ms`: any new session may evict them.
    evictable_by_all: BTreeSet<EvictableKey>,
    /// Those and every unprivileged session: a new follower's session may evict them.
    evictable_by_privileged: BTreeSet<EvictableKey>,
    partitions: usize,
    cost: usize,
}

impl Shard {
    /// A random id of this shard's range that no session has.
    fn new_id(&self) -> i32 {
        let low = (self.number * ID_RANGE).max(1);
        let span = (ID_RANGE - (low - self.number * ID_RANGE)) as u32;
        loop {
            let random = getrandom::u32().unwrap_or_else(|_| rand_fallback());
            let id = low + (random % span) as i32;
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether a new session of `size` partitions fits, after evicting one if Kafka would;
    /// and whether one was evicted.
    fn make_room(&mut self, now_ms: i64, privileged: bool, size: usize) -> (bool, bool) {
        if self.sessions.len() < self.max_sessions {
            return (true, false);
        }
        let evicted = self.try_evict(now_ms, privileged, size);
        (evicted, evicted)
    }

    /// Kafka's eviction rules: a new session may evict one that has been idle longer than
    /// `eviction_ms`; failing that, the least valuable evictable one, if it is worth less
    /// than the new one (an unprivileged one for a follower's, a smaller one otherwise;
    /// sessions younger than `eviction_ms` are safe from consumers' sessions).
    fn try_evict(&mut self, now_ms: i64, privileged: bool, size: usize) -> bool {
        let Some(&(last_used, stale)) = self.last_used.first() else {
            return false;
        };
        if now_ms - last_used > self.eviction_ms {
            tracing::debug!(id = stale, "evicting a stale fetch session");
            self.remove(stale);
            return true;
        }
        let candidates = if privileged {
            &self.evictable_by_privileged
        } else {
            &self.evictable_by_all
        };
        match candidates.first().copied() {
            Some(victim) if (privileged, size, 0) >= victim => {
                tracing::debug!(id = victim.2, "evicting a fetch session for a larger one");
                self.remove(victim.2);
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, id: i32) -> Option<FetchSession> {
        let entry = self.sessions.remove(&id)?;
        self.last_used.remove(&(entry.session.last_used_ms, id));
        self.evictable_by_all.remove(&entry.evictable_key());
        self.evictable_by_privileged.remove(&entry.evictable_key());
        self.partitions -= entry.session.len();
        self.cost -= entry.session.cost();
        Some(entry.session)
    }

    /// Records a use of session `id`: its place among the least recently used and, by its
    /// new size and age, among the evictable (Kafka's `touch`).
    fn touch(&mut self, id: i32, now_ms: i64) {
        let eviction_ms = self.eviction_ms;
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        self.last_used.remove(&(entry.session.last_used_ms, id));
        entry.session.last_used_ms = now_ms;
        self.last_used.insert((now_ms, id));
        self.evictable_by_all.remove(&entry.evictable_key());
        self.evictable_by_privileged.remove(&entry.evictable_key());
        entry.size = entry.session.len();
        let old = now_ms - entry.session.created_ms > eviction_ms;
        if !entry.session.privileged || old {
            self.evictable_by_privileged.insert(entry.evictable_key());
        }
        if old {
            self.evictable_by_all.insert(entry.evictable_key());
        }
    }
}

/// Without the OS's random source, ids from the clock: unique is all they must be.
fn rand_fallback() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests;
