//! One mirror partition's fetcher, run by the broker that leads the partition here: fetches
//! from the source partition's leader from the mirror's log end and appends what comes at
//! its source offsets. It stops when this broker no longer leads at the epoch it started
//! under (the new leader's link starts its own), when the topic is promoted, or, loudly,
//! when the source's log diverged from the mirror's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_storage::{BatchHeader, HEADER_SIZE};
use tokio::sync::watch;

use super::secure::Connector;
use super::source::{self, FetchAt, Fetched, SourceError};
use super::stats::{LinkStats, MirrorState};
use super::LinkHost;
use crate::clock::now_ms;
use crate::config::link::LinkConfig;
use crate::error::BrokerError;
use crate::peer::PeerConnection;
use crate::topics::{on_storage_thread, Isolation, Partition, TopicRegistry};

/// How long the source may hold a fetch that finds nothing: also how soon a promotion or a
/// leadership change is noticed by an idle mirror.
const FETCH_WAIT_MS: i32 = 500;

pub struct PartitionMirror {
    pub host: Arc<dyn LinkHost>,
    pub link: Arc<LinkConfig>,
    pub connector: Arc<Connector>,
    pub topics: Arc<TopicRegistry>,
    pub stats: Arc<LinkStats>,
    pub partition: Arc<Partition>,
    /// The destination leader epoch this mirror runs under.
    pub epoch: i32,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Local(#[from] BrokerError),
    #[error("the source has no leader for the partition")]
    NoLeader,
}

/// Why a mirror stops for good (until its leadership changes or the broker restarts).
enum Stop {
    Diverged(String),
}

impl PartitionMirror {
    fn topic(&self) -> &str {
        &self.partition.topic
    }

    /// Whether the partition is still this link's mirror and led here at our epoch.
    fn still_ours(&self) -> bool {
        self.partition.leads_at(self.epoch)
            && self
                .topics
                .get(self.topic())
                .is_some_and(|t| t.configs.mirror_link() == Some(self.link.name.as_str()))
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (link, topic, index) = (
            &self.link.name,
            self.topic().to_string(),
            self.partition.index,
        );
        let timeout = Duration::from_millis(FETCH_WAIT_MS as u64) + Duration::from_secs(10);
        let backoff = Duration::from_millis(self.link.backoff_ms);
        let mut session = Session::default();
        let mut failing = false;
        self.stats
            .set_state(link, &topic, index, MirrorState::Mirroring);
        tracing::info!(link = %link, topic = %topic, partition = index, epoch = self.epoch, "mirroring partition from the source");
        while !*shutdown.borrow() {
            if !self.still_ours() {
                tracing::info!(link = %link, topic = %topic, partition = index, "partition no longer mirrored here");
                self.stats.forget(link, &topic, index);
                return;
            }
            let outcome = tokio::select! {
                outcome = self.step(&mut session, timeout) => outcome,
                _ = shutdown.changed() => return,
            };
            match outcome {
                Ok(None) => {
                    if failing {
                        tracing::info!(link = %link, topic = %topic, partition = index, "the source answers again");
                        failing = false;
                    }
                }
                Ok(Some(Stop::Diverged(reason))) => {
                    tracing::error!(
                        link = %link, topic = %topic, partition = index,
                        "MIRROR STOPPED: {reason}; the mirror keeps what it has and fetches no more until an operator promotes or recreates it"
                    );
                    self.stats
                        .set_state(link, &topic, index, MirrorState::Failed);
                    // Parked until the partition is no longer ours, so the link does not
                    // start it again for the same leadership.
                    while self.still_ours() && !*shutdown.borrow() {
                        tokio::select! {
                            _ = tokio::time::sleep(backoff * 4) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                    self.stats.forget(link, &topic, index);
                    return;
                }
                Err(err) => {
                    if failing {
                        tracing::debug!(link = %link, topic = %topic, partition = index, "link fetch: {err}; retrying");
                    } else {
                        tracing::warn!(link = %link, topic = %topic, partition = index, "link fetch: {err}; retrying");
                        failing = true;
                    }
                    session.reset();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// One exchange with the source: finds its leader, checks where to start, fetches and
    /// appends.
    async fn step(
        &self,
        session: &mut Session,
        timeout: Duration,
    ) -> Result<Option<Stop>, StepError> {
        let (topic, index) = (self.topic(), self.partition.index);
        let conn = match session.conn.as_mut() {
            Some(conn) => conn,
            None => {
                let mut bootstrap = self
                    .connector
                    .connect(&self.link, &self.link.bootstrap, timeout)
                    .await?;
                let metadata = source::metadata(&mut bootstrap, timeout).await?;
                let addr = metadata
                    .leader_addr(topic, index)
                    .ok_or(StepError::NoLeader)?
                    .to_string();
                let conn = if addr == self.link.bootstrap {
                    bootstrap
                } else {
                    self.connector.connect(&self.link, &addr, timeout).await?
                };
                session.conn.insert(conn)
            }
        };
        if !session.started {
            let start = source::log_start(conn, topic, index, timeout).await?;
            if self.partition.offsets()?.log_end < start {
                tracing::info!(link = %self.link.name, topic, partition = index, start, "mirror starts at the source's log start");
                self.partition.restart_mirror_at(self.epoch, start).await?;
            }
            session.last_epoch = self.last_batch_epoch().await?;
            // Mirrored before the floor was kept (or by a leader that died before raising
            // it): the producers already here count too.
            let held = self
                .partition
                .producers()?
                .iter()
                .map(|p| p.producer_id)
                .max();
            self.keep_producer_ids_apart(held.unwrap_or(-1)).await?;
            session.started = true;
        }
        let offset = self.partition.offsets()?.log_end;
        let at = FetchAt {
            topic,
            partition: index,
            offset,
            last_fetched_epoch: session.last_epoch,
        };
        let fetched =
            source::fetch(conn, at, self.link.fetch_max_bytes, FETCH_WAIT_MS, timeout).await?;
        match fetched {
            Fetched::Records { records, high_watermark } => {
                let Whole { records: whole, last_epoch, count, max_producer_id } = whole_batches(records);
                if !whole.is_empty() {
                    let bytes = whole.len();
                    self.keep_producer_ids_apart(max_producer_id).await?;
                    let start = self.align_start(&whole, offset).await?;
                    self.partition.append_mirrored(self.epoch, whole, now_ms()).await?;
                    if let Some(start) = start {
                        let partition = self.partition.clone();
                        on_storage_thread(move || partition.delete_records_before(start)).await?;
                    }
                    session.last_epoch = last_epoch;
                    let end = self.partition.offsets()?.log_end;
                    self.stats.fetched(&self.link.name, topic, index, high_watermark - end, bytes, count);
                } else {
                    self.stats.fetched(&self.link.name, topic, index, high_watermark - offset, 0, 0);
                }
                Ok(None)
            }
            Fetched::Diverged { epoch, end_offset } => Ok(Some(Stop::Diverged(format!(
                "the source's log diverged from the mirror's: the source's epoch {epoch} ends at offset {end_offset}, the mirror holds up to {offset} (an unclean election or truncation at the source)"
            )))),
            Fetched::OutOfRange => {
                let start = source::log_start(conn, topic, index, timeout).await?;
                if offset < start {
                    tracing::warn!(link = %self.link.name, topic, partition = index, from = offset, to = start, "mirror fell behind the source's log start (retention there); records in between are lost to it");
                    self.partition.restart_mirror_at(self.epoch, start).await?;
                    session.last_epoch = -1;
                    Ok(None)
                } else {
                    Ok(Some(Stop::Diverged(format!(
                        "the mirror's log end {offset} is past the source's log end (the source's log was truncated)"
                    ))))
                }
            }
        }
    }
}

impl PartitionMirror {
    /// A source log may start inside a batch (DeleteRecords there), and the source then
    /// sends that whole batch: an empty mirror starts at the batch's base offset, takes it,
    /// and moves its log start to where the source's is, as a follower of Kafka's does.
    /// Returns the log start to set once the batch is in.
    async fn align_start(&self, batches: &Bytes, offset: i64) -> Result<Option<i64>, StepError> {
        let Ok(first) = BatchHeader::parse(batches) else {
            return Ok(None); // The append refuses it, with the reason.
        };
        let offsets = self.partition.offsets()?;
        if first.base_offset < offset && offsets.log_start == offsets.log_end {
            self.partition
                .restart_mirror_at(self.epoch, first.base_offset)
                .await?;
            return Ok(Some(offset));
        }
        Ok(None)
    }
}

impl PartitionMirror {
    /// The mirrored batches keep the source's producer ids, and their producers' state
    /// comes with them: a producer given the same id here after a promotion would be taken
    /// for the source's (and refused, its epoch or sequence out of line). So before a batch
    /// with an id at or above the cluster's producer id floor is stored, the floor is raised
    /// past it, to the next whole block, and no broker here hands out such an id again.
    async fn keep_producer_ids_apart(&self, max_producer_id: i64) -> Result<(), StepError> {
        let cluster = self.host.cluster();
        if max_producer_id < cluster.producer_id_floor() {
            return Ok(()); // Also: no producer id (-1).
        }
        let block = crate::txn::PRODUCER_ID_BLOCK;
        let floor = (max_producer_id / block + 1).saturating_mul(block);
        cluster.raise_producer_id_floor(floor).await?;
        tracing::info!(link = %self.link.name, topic = %self.topic(), partition = self.partition.index, floor, "producer ids below {floor} kept for the source's producers");
        Ok(())
    }

    /// The leader epoch of the mirror's last batch (the source's, kept in the batch), so the
    /// first fetch after a restart is checked against the source's log too; -1 when empty.
    async fn last_batch_epoch(&self) -> Result<i32, StepError> {
        let offsets = self.partition.offsets()?;
        if offsets.log_end <= offsets.log_start {
            return Ok(-1);
        }
        let partition = self.partition.clone();
        let read =
            on_storage_thread(move || partition.read(offsets.log_end - 1, 1, Isolation::LogEnd))
                .await?;
        Ok(whole_batches(read.records).last_epoch)
    }
}

/// The connection to the source partition's leader and what this run learnt.
struct Session {
    conn: Option<PeerConnection>,
    /// Whether the mirror's start was checked against the source's log start.
    started: bool,
    /// The leader epoch of the last batch fetched (-1: none yet in this run).
    last_epoch: i32,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            conn: None,
            started: false,
            last_epoch: -1,
        }
    }
}

impl Session {
    /// After a failed exchange: the leader may have moved, so it is looked up again.
    fn reset(&mut self) {
        self.conn = None;
    }
}

/// The whole batches at the front of a fetch's records (a fetch may end in a cut-off one,
/// which the next fetch brings whole).
struct Whole {
    records: Bytes,
    /// The leader epoch of the last batch; -1 without one.
    last_epoch: i32,
    /// Records in them.
    count: u64,
    /// The highest producer id a batch carries; -1 without one.
    max_producer_id: i64,
}

fn whole_batches(records: Bytes) -> Whole {
    let mut end = 0;
    let mut last_epoch = -1;
    let mut count = 0u64;
    let mut max_producer_id = -1;
    while records.len() - end >= HEADER_SIZE {
        let Ok(header) = BatchHeader::parse(&records[end..]) else {
            break;
        };
        let size = header.total_size();
        if size < HEADER_SIZE || records.len() - end < size {
            break;
        }
        end += size;
        last_epoch = header.leader_epoch;
        count += header.record_count.max(0) as u64;
        max_producer_id = max_producer_id.max(header.producer_id);
    }
    Whole {
        records: records.slice(..end),
        last_epoch,
        count,
        max_producer_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_last_batch_is_left_for_the_next_fetch() {
        let whole = whole_batches(Bytes::new());
        assert!(whole.records.is_empty());
        assert_eq!(
            (whole.last_epoch, whole.count, whole.max_producer_id),
            (-1, 0, -1)
        );
        let whole = whole_batches(Bytes::from_static(&[0u8; 10]));
        assert!(whole.records.is_empty());
    }
}
