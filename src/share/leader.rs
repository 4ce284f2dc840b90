//! The share-partition leader (Kafka's `SharePartitionManager`): the [`SharePartition`]s of
//! the partitions this broker leads, one per share group reading them, loaded from the share
//! coordinator at first use and written back after each change; the share sessions; and a
//! fetch's two steps around its log read (which the handler's long poll does, on a storage
//! thread): where to read from, and acquiring what was read for a member.
//!
//! Locks: a share-partition's mutex is held for its in-memory work only, never across the
//! log read or the persister's write, and no two are held at once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::iso_duration_ms;
use crate::config::Config;
use crate::error::BrokerError;
pub use crate::metrics::share::SharePartitionStats;
use crate::share::partition::{AcquireLimits, Acquired, Limits, LogBatch, SharePartition};
use crate::share::sessions::{SessionPartition, ShareSessions};
use crate::share::state::{Persister, SharePartitionKey};
use crate::topics::{Isolation, Partition, ReadResult};

/// A share group's own settings (its `share.*` group configs), over the broker's defaults.
#[derive(Debug, Clone, Default)]
pub struct GroupSettings {
    pub record_lock_duration_ms: Option<i64>,
    pub delivery_count_limit: Option<i16>,
    pub partition_max_record_locks: Option<i64>,
    /// `share.auto.offset.reset`: `latest` (Kafka's default), `earliest` or `by_duration:<ISO-8601>`.
    pub auto_offset_reset: Option<String>,
    /// `share.isolation.level`: read_committed when true.
    pub read_committed: bool,
}

/// What a fetch got from one share-partition.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Whole log batches covering the acquired records.
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// Where a fetch reads a share-partition's log to acquire: from its next fetch offset, up
/// to the end `isolation` lets it read (as it was when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFrom {
    pub offset: i64,
    pub isolation: Isolation,
    pub readable_end: i64,
}

type Shared = Arc<Mutex<SharePartition>>;

/// A loaded share-partition and the leader epoch it was loaded at.
struct Loaded {
    leader_epoch: i32,
    partition: Shared,
}

pub struct ShareLeader {
    defaults: Limits,
    partitions: Mutex<HashMap<SharePartitionKey, Loaded>>,
    groups: Mutex<HashMap<String, GroupSettings>>,
    pub sessions: ShareSessions,
    /// Woken when records become available again (released, lock expired), so that long
    /// polls waiting on them look again.
    released: Notify,
}

impl ShareLeader {
    pub fn new(config: &Config) -> ShareLeader {
        ShareLeader {
            defaults: Limits {
                max_delivery_count: config.group_share_delivery_count_limit,
                record_lock_duration_ms: config.group_share_record_lock_duration_ms,
                max_in_flight_records: config.group_share_partition_max_record_locks,
            },
            partitions: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            sessions: ShareSessions::new(config.group_share_max_share_sessions),
            released: Notify::new(),
        }
    }

    /// The group side sets a group's `share.*` configs here; they apply to its
    /// share-partitions from their next operation.
    pub fn set_group_settings(&self, group: &str, settings: GroupSettings) {
        self.groups.lock().insert(group.to_owned(), settings);
        let limits = self.limits_of(group);
        for (key, loaded) in self.partitions.lock().iter() {
            if key.group_id == group {
                loaded.partition.lock().limits = limits;
            }
        }
    }

    fn settings(&self, group: &str) -> GroupSettings {
        self.groups.lock().get(group).cloned().unwrap_or_default()
    }

    fn limits_of(&self, group: &str) -> Limits {
        let s = self.settings(group);
        Limits {
            max_delivery_count: s
                .delivery_count_limit
                .unwrap_or(self.defaults.max_delivery_count),
            record_lock_duration_ms: s
                .record_lock_duration_ms
                .unwrap_or(self.defaults.record_lock_duration_ms),
            max_in_flight_records: s
                .partition_max_record_locks
                .unwrap_or(self.defaults.max_in_flight_records),
        }
    }

    /// The lock duration a ShareFetch response reports for the group.
    pub fn record_lock_duration_ms(&self, group: &str) -> i64 {
        self.limits_of(group).record_lock_duration_ms
    }

    fn cached(&self, key: &SharePartitionKey) -> Option<Shared> {
        self.partitions.lock().get(key).map(|l| l.partition.clone())
    }

    /// The share-partition, read from the share coordinator at the partition's leader epoch
    /// if this broker has not loaded it at that epoch (Kafka's `maybeInitialize`; a broker
    /// that led the partition before, lost it and leads it again continues from the state
    /// the leaders in between wrote, not from what it had).
    async fn load(
        &self,
        persister: &Persister,
        key: &SharePartitionKey,
        partition: &Partition,
    ) -> Result<Shared, BrokerError> {
        partition.ensure_leader()?;
        let epoch = partition.leader_epoch();
        {
            let mut partitions = self.partitions.lock();
            match partitions.get(key) {
                Some(l) if l.leader_epoch == epoch => return Ok(l.partition.clone()),
                Some(_) => {
                    partitions.remove(key);
                }
                None => {}
            }
        }
        let state = persister.read(key, epoch).await.map_err(persister_error)?;
        let offsets = partition.offsets()?;
        let start = if state.start_offset >= 0 {
            state.start_offset.max(offsets.log_start)
        } else {
            self.reset_offset(&key.group_id, partition)?
        };
        let mut sp = SharePartition::new(&state, start, self.limits_of(&key.group_id));
        sp.log_start_moved(offsets.log_start);
        let mut partitions = self.partitions.lock();
        // Another fetch may have loaded it meanwhile: keep the first.
        Ok(partitions
            .entry(key.clone())
            .or_insert_with(|| Loaded {
                leader_epoch: epoch,
                partition: Arc::new(Mutex::new(sp)),
            })
            .partition
            .clone())
    }

    /// Where a share-partition with no start offset begins (`share.auto.offset.reset`).
    fn reset_offset(&self, group: &str, partition: &Partition) -> Result<i64, BrokerError> {
        let offsets = partition.offsets()?;
        let reset = self.settings(group).auto_offset_reset.unwrap_or_default();
        if reset == "earliest" {
            return Ok(offsets.log_start);
        }
        if let Some(duration) = reset.strip_prefix("by_duration:") {
            if let Some(ms) = iso_duration_ms(duration) {
                let since = crate::clock::now_ms() - ms;
                return Ok(partition
                    .offset_for_timestamp(since)?
                    .map_or(offsets.high_watermark, |(offset, _)| offset));
            }
        }
        Ok(offsets.high_watermark)
    }

    /// Where a fetch for `key` would read to acquire, or `None` when the share-partition
    /// can acquire nothing now: its in-flight records at their cap, or nothing past its
    /// next fetch offset readable (Kafka's `acquirablePartitions` and the check its read
    /// makes). In memory only: a long poll asks this on each wake-up without reading.
    pub async fn acquirable(
        &self,
        persister: &Persister,
        key: &SharePartitionKey,
        partition: &Partition,
        now: i64,
    ) -> Result<Option<ReadFrom>, BrokerError> {
        let sp = self.load(persister, key, partition).await?;
        let isolation = if self.settings(&key.group_id).read_committed {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let offsets = partition.offsets()?;
        let mut sp = sp.lock();
        sp.log_start_moved(offsets.log_start);
        if sp.expire_locks(now) {
            self.released.notify_waiters();
        }
        let from = sp.next_fetch_offset();
        let readable = from < offsets.readable_end(isolation) && from >= offsets.log_start;
        Ok((sp.can_acquire() && readable).then_some(ReadFrom {
            offset: from,
            isolation,
            readable_end: offsets.readable_end(isolation),
        }))
    }

    /// Acquires for `member` what a read at [`Self::acquirable`]'s offset returned.
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire(
        &self,
        persister: &Persister,
        key: &SharePartitionKey,
        partition: &Partition,
        member: &str,
        read: &ReadResult,
        limits: AcquireLimits,
        now: i64,
    ) -> Result<Fetched, BrokerError> {
        let sp = self.load(persister, key, partition).await?;
        let batches = log_batches(&read.records);
        if batches.is_empty() {
            return Ok(Fetched::default());
        }
        let aborted: Vec<(i64, i64)> = batches
            .iter()
            .filter(|(_, b, pid)| {
                read.aborted.iter().any(|t| {
                    t.producer_id == *pid
                        && t.first_offset <= b.last_offset
                        && b.base_offset < t.last_offset
                })
            })
            .map(|(_, b, _)| (b.base_offset, b.last_offset))
            .collect();
        let log: Vec<LogBatch> = batches.iter().map(|(_, b, _)| *b).collect();
        let acquired = {
            let mut sp = sp.lock();
            let acquired = sp.acquire(member, &log, limits, now);
            // read_committed: aborted transactions' records are archived, never delivered.
            if aborted.is_empty() {
                acquired
            } else {
                sp.archive_acquired(&aborted);
                without(acquired, &aborted)
            }
        };
        if !aborted.is_empty() {
            // Not written: the next fetch loads the share-partition again and archives anew.
            let _ = self.persist(persister, key, &sp, partition).await;
        }
        let records = slice(&read.records, &batches, &acquired);
        Ok(Fetched { records, acquired })
    }

    /// Applies `member`'s acknowledgements to a loaded share-partition and writes the state.
    pub async fn acknowledge(
        &self,
        persister: &Persister,
        key: &SharePartitionKey,
        partition: &Partition,
        member: &str,
        acks: &[(i64, i64, Vec<i8>)],
        now: i64,
    ) -> Result<(), BrokerError> {
        // Loaded at this leader epoch, or not in flight here (Kafka: not in its cache).
        let epoch = partition.leader_epoch();
        let sp = self
            .partitions
            .lock()
            .get(key)
            .filter(|l| l.leader_epoch == epoch)
            .map(|l| l.partition.clone())
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        {
            let mut sp = sp.lock();
            sp.expire_locks(now);
            sp.acknowledge(member, acks, now)?;
        }
        // An acknowledgement holds only once the share coordinator has it: one whose write
        // failed is refused (Kafka fails the acknowledgement with the persister's error), or
        // the member would count as done a record that, reloaded, is delivered again.
        let written = self.persist(persister, key, &sp, partition).await;
        self.released.notify_waiters();
        written.map_err(persister_error)
    }

    /// Releases what `member` holds in `group` (its share session or connection ended), on
    /// every partition or those named.
    pub async fn release_member(
        &self,
        persister: &Persister,
        group: &str,
        member: &str,
        only: Option<&[SessionPartition]>,
        topics: &crate::topics::TopicRegistry,
    ) {
        let held: Vec<(SharePartitionKey, Shared)> = self
            .partitions
            .lock()
            .iter()
            .filter(|(k, _)| k.group_id == group)
            .filter(|(k, _)| only.is_none_or(|ps| ps.contains(&(k.topic_id, k.partition))))
            .map(|(k, l)| (k.clone(), l.partition.clone()))
            .collect();
        for (key, sp) in held {
            if !sp.lock().release_member(member) {
                continue;
            }
            let partition = topics
                .get_by_id(key.topic_id)
                .and_then(|t| t.partition(key.partition).cloned());
            if let Some(partition) = partition {
                // Not written: loaded again, the records are available once more anyway.
                let _ = self.persist(persister, &key, &sp, &partition).await;
            }
        }
        self.released.notify_waiters();
    }

    /// A connection closed: its share sessions end, and their members' records are released.
    pub async fn connection_closed(
        &self,
        persister: &Persister,
        connection: u64,
        topics: &crate::topics::TopicRegistry,
    ) {
        for (group, member, partitions) in self.sessions.connection_closed(connection) {
            self.release_member(persister, &group, &member, Some(&partitions), topics)
                .await;
        }
    }

    /// Waits until records may have become available again, or until the earliest lock
    /// of the given share-partitions expires.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// The earliest lock expiry among `keys`.
    pub fn next_lock_expiry(&self, keys: &[SharePartitionKey]) -> Option<i64> {
        keys.iter()
            .filter_map(|k| self.cached(k))
            .filter_map(|sp| sp.lock().next_lock_expiry())
            .min()
    }

    /// What metrics show of each share-partition.
    pub fn snapshot(&self) -> Vec<SharePartitionStats> {
        self.partitions
            .lock()
            .iter()
            .map(|(k, l)| {
                let sp = l.partition.lock();
                let (acquired, archived, redelivered) = sp.counts();
                let delivery_complete = sp.state(-1).delivery_complete_count;
                SharePartitionStats {
                    group: k.group_id.clone(),
                    topic_id: k.topic_id,
                    partition: k.partition,
                    start_offset: sp.start_offset(),
                    acquired,
                    archived,
                    redelivered,
                    delivery_complete,
                }
            })
            .collect()
    }

    /// Forgets the share-partitions of a partition this broker no longer leads, or of a
    /// deleted group: they are loaded again from the share coordinator when next used.
    pub fn forget(&self, which: impl Fn(&SharePartitionKey) -> bool) {
        self.partitions.lock().retain(|k, _| !which(k));
    }

    /// Whether `sp` is still the share-partition cached for `key`.
    fn is_current(&self, key: &SharePartitionKey, sp: &Shared) -> bool {
        self.partitions
            .lock()
            .get(key)
            .is_some_and(|l| Arc::ptr_eq(&l.partition, sp))
    }

    async fn persist(
        &self,
        persister: &Persister,
        key: &SharePartitionKey,
        sp: &Shared,
        partition: &Partition,
    ) -> Result<(), BrokerError> {
        let state = sp.lock().state(partition.leader_epoch());
        if let Err(err) = persister.write(key, state).await {
            tracing::warn!(group = %key.group_id, topic = %key.topic_id, partition = key.partition,
                "cannot write the share-partition state: {err}");
            // The in-memory state is ahead of the durable one: the share-partition is loaded
            // again from the share coordinator, which undoes what the write would have kept.
            self.partitions
                .lock()
                .retain(|k, l| !(k == key && Arc::ptr_eq(&l.partition, sp)));
            return Err(err);
        }
        // Forgotten while the write was out (another write failed, or leadership moved): the
        // share-partition serving now was loaded without this change and may hand its records
        // out again, so the change does not count as done.
        if !self.is_current(key, sp) {
            return Err(BrokerError::CoordinatorNotAvailable);
        }
        Ok(())
    }
}

/// What the share coordinator's errors mean to a fetch or an acknowledgement (Kafka's
/// `fetchPersisterError`).
fn persister_error(err: BrokerError) -> BrokerError {
    match err {
        BrokerError::NotCoordinator
        | BrokerError::CoordinatorNotAvailable
        | BrokerError::CoordinatorLoadInProgress => BrokerError::CoordinatorNotAvailable,
        BrokerError::GroupIdNotFound => BrokerError::GroupIdNotFound,
        BrokerError::UnknownTopicOrPartition => BrokerError::UnknownTopicOrPartition,
        BrokerError::FencedLeaderEpoch { .. } => BrokerError::NotLeaderOrFollower,
        BrokerError::ShareState {
            error: ResponseError::FencedStateEpoch,
            ..
        } => BrokerError::NotLeaderOrFollower,
        other => other,
    }
}

/// The whole batches of `records` that fit in `limit` bytes, or the first alone when none
/// fits and `min_one` (Kafka's log read: only the first partition of a fetch that returns
/// records may exceed its share of the fetch's bytes).
pub fn within(records: &Bytes, limit: usize, min_one: bool) -> Bytes {
    let mut end = 0;
    for (range, _, _) in log_batches(records) {
        if range.end > limit && !(min_one && end == 0) {
            break;
        }
        end = range.end;
    }
    records.slice(..end)
}

/// The batches in `records`: byte range, offsets, producer id.
fn log_batches(records: &[u8]) -> Vec<(std::ops::Range<usize>, LogBatch, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(header) = samsa_storage::BatchHeader::parse(&records[at..]) {
        let end = at + header.total_size();
        if end > records.len() {
            break;
        }
        let batch = LogBatch {
            base_offset: header.base_offset,
            last_offset: header.base_offset + i64::from(header.last_offset_delta),
        };
        out.push((at..end, batch, header.producer_id));
        at = end;
    }
    out
}

/// The whole batches overlapping the acquired ranges (Kafka's slicing of the fetched records).
fn slice(
    records: &Bytes,
    batches: &[(std::ops::Range<usize>, LogBatch, i64)],
    acquired: &[Acquired],
) -> Bytes {
    let (Some(first), Some(last)) = (
        acquired.iter().map(|a| a.first_offset).min(),
        acquired.iter().map(|a| a.last_offset).max(),
    ) else {
        return Bytes::new();
    };
    let overlapping: Vec<&std::ops::Range<usize>> = batches
        .iter()
        .filter(|(_, b, _)| b.last_offset >= first && b.base_offset <= last)
        .map(|(r, _, _)| r)
        .collect();
    match (overlapping.first(), overlapping.last()) {
        (Some(a), Some(b)) => records.slice(a.start..b.end),
        _ => Bytes::new(),
    }
}

/// `acquired` without the offsets in `removed`.
fn without(acquired: Vec<Acquired>, removed: &[(i64, i64)]) -> Vec<Acquired> {
    let mut out = Vec::new();
    for a in acquired {
        let mut pieces = vec![(a.first_offset, a.last_offset)];
        for &(rf, rl) in removed {
            pieces = pieces
                .into_iter()
                .flat_map(|(f, l)| {
                    if rl < f || rf > l {
                        vec![(f, l)]
                    } else {
                        let mut keep = Vec::new();
                        if f < rf {
                            keep.push((f, rf - 1));
                        }
                        if rl < l {
                            keep.push((rl + 1, l));
                        }
                        keep
                    }
                })
                .collect();
        }
        out.extend(pieces.into_iter().map(|(f, l)| Acquired {
            first_offset: f,
            last_offset: l,
            delivery_count: a.delivery_count,
        }));
    }
    out
}

pub use crate::share::sessions::Context as SessionContext;

/// The key of a share-partition.
pub fn key(group: &str, topic_id: Uuid, partition: i32) -> SharePartitionKey {
    SharePartitionKey {
        group_id: group.to_owned(),
        topic_id,
        partition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(iso_duration_ms("P1DT0.5S"), Some(86_400_500));
        assert_eq!(iso_duration_ms("1H"), None);
    }

    #[test]
    fn aborted_offsets_are_cut_out_of_the_acquired_ranges() {
        let a = |f, l| Acquired {
            first_offset: f,
            last_offset: l,
            delivery_count: 1,
        };
        assert_eq!(without(vec![a(0, 9)], &[(3, 4)]), vec![a(0, 2), a(5, 9)]);
        assert_eq!(without(vec![a(0, 9)], &[(0, 9)]), vec![]);
    }
}
