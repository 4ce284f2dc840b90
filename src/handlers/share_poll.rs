//! ShareFetch's long poll, as Kafka 4.4's `DelayedShareFetch` completes it:
//!
//! - A partition takes part when its share-partition can acquire (in-flight records under
//!   their cap) and has records readable past its next fetch offset; the others are
//!   answered empty.
//! - The fetch's MaxBytes is shared evenly among those partitions (Kafka's uniform
//!   `PartitionMaxBytesStrategy`); the bytes readable in each, up to its share, add up
//!   across partitions, and the fetch is answered once they reach MinBytes (at most
//!   MaxBytes), when a partition fails, or at MaxWaitMs with whatever can be acquired then.
//!   With nothing acquirable it waits out MaxWaitMs, whatever MinBytes says.
//! - Answering reads each partition within its share and what is left of MaxBytes; only the
//!   first partition that returns records may exceed it by one batch (Kafka's log read).
//!   Records past that are not acquired: the next fetch gets them. MaxRecords counts across
//!   partitions; each acquires at most what the partitions before it left.
//!
//! A wait wakes on an append to a wanted partition, on records released anywhere, or at the
//! earliest lock expiry of its share-partitions; a wake-up checks each share-partition in
//! memory and reads again only a partition whose fetch offset or readable end moved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::share::leader::{within, Fetched, ReadFrom};
use crate::share::partition::AcquireLimits;
use crate::share::state::SharePartitionKey;
use crate::topics::{on_storage_thread, Partition, ReadResult};

/// What the request asks of the wait (its MaxWaitMs, MinBytes and MaxBytes).
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
}

/// A partition taking part: its share-partition's key and its log.
pub struct Wanted {
    pub key: SharePartitionKey,
    pub partition: Arc<Partition>,
}

/// What one partition answers: records acquired, or an error.
pub type Outcome = Result<Fetched, BrokerError>;

/// A read kept across wake-ups, with where it was read from.
struct Kept {
    from: ReadFrom,
    read: ReadResult,
}

/// Each of `n` partitions' share of `max_bytes` (Kafka's uniform strategy; when there are
/// more partitions than bytes, a byte each).
fn share_of(max_bytes: usize, n: usize) -> usize {
    if n == 0 {
        return max_bytes;
    }
    (max_bytes / n).max(1)
}

/// Waits and acquires for `member`, as the module says. The outcome of each partition
/// that had something to say, by its index in `wanted`.
pub async fn poll(
    broker: &Broker,
    member: &str,
    wanted: &[Wanted],
    wait: Wait,
    limits: AcquireLimits,
) -> HashMap<usize, Outcome> {
    if wanted.is_empty() {
        return HashMap::new();
    }
    let max_bytes = wait.max_bytes.max(0) as usize;
    let min_bytes = (wait.min_bytes.max(0) as usize).min(max_bytes);
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(wait.max_wait_ms.max(0) as u64);
    let keys: Vec<SharePartitionKey> = wanted.iter().map(|w| w.key.clone()).collect();
    let mut kept: HashMap<usize, Kept> = HashMap::new();
    loop {
        // Subscribe before looking, so that news arriving meanwhile still wakes us.
        let released = broker.share_leader.released();
        let watchers: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .map(|w| w.partition.watch_progress())
            .collect();
        let mut failed: HashMap<usize, Outcome> = HashMap::new();
        let mut acquirable: Vec<(usize, ReadFrom)> = Vec::new();
        for (i, w) in wanted.iter().enumerate() {
            let found = broker
                .share_leader
                .acquirable(&broker.share_state, &w.key, &w.partition, now_ms())
                .await;
            match found {
                Ok(Some(from)) => acquirable.push((i, from)),
                Ok(None) => {}
                Err(err) => {
                    failed.insert(i, Err(err));
                }
            }
        }
        let share = share_of(max_bytes, acquirable.len());
        let stale: Vec<(usize, ReadFrom)> = acquirable
            .iter()
            .filter(|(i, from)| {
                !kept.get(i).is_some_and(|k| {
                    k.from.offset == from.offset
                        && (k.from.readable_end == from.readable_end
                            || k.read.records.len() >= share)
                })
            })
            .copied()
            .collect();
        for (i, read) in read_all(wanted, &stale, share).await {
            match read {
                Ok(read) => {
                    let from = stale.iter().find(|(j, _)| *j == i).expect("read").1;
                    kept.insert(i, Kept { from, read });
                }
                Err(err) => {
                    failed.insert(i, Err(err));
                }
            }
        }
        acquirable.retain(|(i, _)| !failed.contains_key(i));
        let bytes: usize = acquirable
            .iter()
            .filter_map(|(i, _)| kept.get(i))
            .map(|k| k.read.records.len().min(share))
            .sum();
        let satisfied = !acquirable.is_empty() && bytes >= min_bytes;
        let now = tokio::time::Instant::now();
        if satisfied || !failed.is_empty() || now >= deadline {
            let mut outcomes = failed;
            acquire(
                broker,
                member,
                wanted,
                &acquirable,
                &mut kept,
                share,
                max_bytes,
                limits,
                &mut outcomes,
            )
            .await;
            return outcomes;
        }
        let mut wake = deadline;
        if let Some(expiry) = broker.share_leader.next_lock_expiry(&keys) {
            let after = Duration::from_millis((expiry - now_ms()).max(1) as u64);
            wake = wake.min(now + after);
        }
        sleep_until_news(watchers, released, wake).await;
    }
}

/// Reads each partition of `which` from its offset, its `share` of bytes at most (one batch
/// at least), on a storage thread. A log start that moved past the offset reads nothing:
/// the share-partition moves its start on its next look.
async fn read_all(
    wanted: &[Wanted],
    which: &[(usize, ReadFrom)],
    share: usize,
) -> Vec<(usize, Result<ReadResult, BrokerError>)> {
    if which.is_empty() {
        return Vec::new();
    }
    let jobs: Vec<(usize, Arc<Partition>, ReadFrom)> = which
        .iter()
        .map(|(i, from)| (*i, wanted[*i].partition.clone(), *from))
        .collect();
    on_storage_thread(move || {
        jobs.into_iter()
            .map(|(i, partition, from)| {
                let read = match partition.read(from.offset, share, from.isolation) {
                    Err(BrokerError::Storage(samsa_storage::StorageError::OffsetOutOfRange {
                        ..
                    })) => partition.offsets().map(|offsets| ReadResult {
                        records: Bytes::new(),
                        offsets,
                        aborted: Vec::new(),
                    }),
                    other => other,
                };
                (i, read)
            })
            .collect()
    })
    .await
}

/// Acquires from the acquirable partitions, in the request's order, within the byte and
/// record limits (see the module's rules).
#[allow(clippy::too_many_arguments)]
async fn acquire(
    broker: &Broker,
    member: &str,
    wanted: &[Wanted],
    acquirable: &[(usize, ReadFrom)],
    kept: &mut HashMap<usize, Kept>,
    share: usize,
    max_bytes: usize,
    limits: AcquireLimits,
    outcomes: &mut HashMap<usize, Outcome>,
) {
    let mut budget = max_bytes;
    let mut first = true;
    let mut records_left = limits.max_records;
    for (i, from) in acquirable {
        if limits.max_records > 0 && records_left <= 0 {
            break;
        }
        let Some(Kept { read, .. }) = kept.remove(i).filter(|k| k.from.offset == from.offset)
        else {
            continue;
        };
        let records = within(&read.records, share.min(budget), first);
        if records.is_empty() {
            continue;
        }
        first = false;
        budget = budget.saturating_sub(records.len());
        let read = ReadResult { records, ..read };
        let limits = AcquireLimits {
            max_records: records_left,
            ..limits
        };
        let w = &wanted[*i];
        let fetched = broker
            .share_leader
            .acquire(
                &broker.share_state,
                &w.key,
                &w.partition,
                member,
                &read,
                limits,
                now_ms(),
            )
            .await;
        if let Ok(f) = &fetched {
            let count: i64 = f
                .acquired
                .iter()
                .map(|a| a.last_offset - a.first_offset + 1)
                .sum();
            records_left -= count;
        }
        outcomes.insert(*i, fetched);
    }
}

async fn sleep_until_news(
    mut watchers: Vec<watch::Receiver<i64>>,
    released: tokio::sync::futures::Notified<'_>,
    until: tokio::time::Instant,
) {
    let appended =
        futures_util::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
    let _ = tokio::time::timeout_at(until, async {
        tokio::select! {
            _ = appended => {},
            _ = released => {},
        }
    })
    .await;
}
