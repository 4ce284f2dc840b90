//! One share-partition's in-flight records, as its leader keeps them (Kafka's
//! `SharePartition`): the records between the share-partition start offset (SPSO) and the
//! first record never acquired, each Available, Acquired by a member under a time-limited
//! lock, Acknowledged or Archived, with the number of times it has been delivered.
//!
//! A pure state machine: the caller passes the time and the record batches it read from the
//! log, and writes [`SharePartition::state`] through the persister after each change. The
//! records are kept in the in-flight batches Kafka keeps (one per run of acquired log
//! batches, split by the fetch's batch size), each tracked as a whole until an operation
//! covers part of it and then offset by offset, because the acquired ranges a fetch returns
//! follow that structure: a whole batch is one range, a tracked offset its own.

use std::collections::BTreeMap;

use crate::share::state::{ShareState, StateBatch};

/// A record's delivery state; the numbers are those written to the share coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    fn persisted(self) -> i8 {
        match self {
            // A new leader offers an acquired record again: its lock dies with this leader.
            RecordState::Available | RecordState::Acquired => 0,
            RecordState::Acknowledged => 2,
            RecordState::Archived => 4,
        }
    }

    fn terminal(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// Why an acknowledgement was refused; the whole partition's acknowledgement fails, and
/// nothing of it is applied, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// INVALID_RECORD_STATE: not acquired, by another member, or not in flight.
    #[error("{0}")]
    InvalidRecordState(String),
    /// INVALID_REQUEST: offsets past what is in flight, or an unknown type.
    #[error("{0}")]
    InvalidRequest(String),
}

impl From<AckError> for crate::error::BrokerError {
    fn from(err: AckError) -> Self {
        match err {
            AckError::InvalidRecordState(m) => crate::error::BrokerError::InvalidRecordState(m),
            AckError::InvalidRequest(m) => crate::error::BrokerError::InvalidRequest(m),
        }
    }
}

/// The acknowledgement types of ShareFetch and ShareAcknowledge.
pub const GAP: i8 = 0;
pub const ACCEPT: i8 = 1;
pub const RELEASE: i8 = 2;
pub const REJECT: i8 = 3;
pub const RENEW: i8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
    member: Option<String>,
    /// When the acquisition lock expires (ms); meaningful while Acquired.
    lock_until: i64,
}

impl InFlight {
    fn fresh(state: RecordState, delivery_count: i16) -> InFlight {
        InFlight {
            state,
            delivery_count,
            member: None,
            lock_until: 0,
        }
    }

    /// Back to Available without counting a delivery, or Archived once the record has had
    /// all its deliveries (Kafka's `tryUpdateState(AVAILABLE, NO_OP, maxDeliveryCount)`).
    fn release(&mut self, max_delivery: i16) {
        self.state = if self.delivery_count >= max_delivery {
            RecordState::Archived
        } else {
            RecordState::Available
        };
        self.member = None;
    }

    fn acquire(&mut self, member: &str, lock_until: i64) {
        self.state = RecordState::Acquired;
        self.delivery_count = self.delivery_count.saturating_add(1);
        self.member = Some(member.to_owned());
        self.lock_until = lock_until;
    }
}

/// An in-flight batch: whole, or tracked per offset once an operation split it.
#[derive(Debug, Clone)]
struct Batch {
    last: i64,
    offsets: Vec<InFlight>,
    per_offset: bool,
}

impl Batch {
    fn whole(first: i64, last: i64, state: InFlight) -> Batch {
        Batch {
            last,
            offsets: vec![state; (last - first + 1) as usize],
            per_offset: false,
        }
    }
}

/// A range of records handed to a member, as ShareFetch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// A log batch the fetch read: its first and last offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatch {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// The per-group limits in force (`group.share.*`, overridden by the group's `share.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_delivery_count: i16,
    pub record_lock_duration_ms: i64,
    pub max_in_flight_records: i64,
}

/// What one fetch asks for (ShareFetch v1+'s MaxRecords and BatchSize).
#[derive(Debug, Clone, Copy)]
pub struct AcquireLimits {
    pub max_records: i64,
    pub batch_size: i64,
    /// ShareAcquireMode 1 (record_limit): never more than `max_records`.
    pub record_limit: bool,
}

#[derive(Debug)]
pub struct SharePartition {
    state_epoch: i32,
    start_offset: i64,
    /// The first offset never acquired: where new records are taken from.
    next_new: i64,
    batches: BTreeMap<i64, Batch>,
    pub limits: Limits,
}

/// Kafka's `throttleRecordsDeliveryLimit`: from this delivery on, a batch is handed out in
/// ever smaller parts so that one bad record does not drag a whole batch to its limit.
fn throttle_limit(max_delivery: i16) -> i16 {
    2.max((f64::from(max_delivery) / 2.0).ceil() as i16)
}

impl SharePartition {
    /// The state read from the share coordinator, its start offset already resolved (not -1).
    pub fn new(state: &ShareState, start_offset: i64, limits: Limits) -> SharePartition {
        let mut batches = BTreeMap::new();
        let mut next = start_offset;
        for b in state
            .batches
            .iter()
            .filter(|b| b.last_offset >= start_offset)
        {
            let first = b.first_offset.max(start_offset);
            // Offsets the coordinator lists no state for were never delivered.
            if first > next {
                let fresh = InFlight::fresh(RecordState::Available, 0);
                batches.insert(next, Batch::whole(next, first - 1, fresh));
            }
            let recorded = match b.delivery_state {
                2 => RecordState::Acknowledged,
                4 => RecordState::Archived,
                _ => RecordState::Available,
            };
            let mut inflight = InFlight::fresh(recorded, b.delivery_count);
            if recorded == RecordState::Available {
                inflight.release(limits.max_delivery_count);
            }
            batches.insert(first, Batch::whole(first, b.last_offset, inflight));
            next = b.last_offset + 1;
        }
        let mut partition = SharePartition {
            state_epoch: state.state_epoch,
            start_offset,
            next_new: next,
            batches,
            limits,
        };
        partition.advance_start();
        partition
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Where the next fetch reads the log: the first Available record, else the first new one.
    pub fn next_fetch_offset(&self) -> i64 {
        for (first, batch) in &self.batches {
            if let Some(i) = batch
                .offsets
                .iter()
                .position(|s| s.state == RecordState::Available)
            {
                return first + i as i64;
            }
        }
        self.next_new
    }

    /// Records past the start offset whose delivery is not complete, acquired or not.
    fn in_flight_records(&self) -> i64 {
        self.next_new - self.start_offset
    }

    /// Whether a fetch may acquire anything: some record is available again, or the
    /// in-flight records are under `group.share.partition.max.record.locks`.
    pub fn can_acquire(&self) -> bool {
        self.next_fetch_offset() < self.next_new
            || self.in_flight_records() < self.limits.max_in_flight_records
    }

    /// The earliest acquisition lock to expire, if any record is acquired.
    pub fn next_lock_expiry(&self) -> Option<i64> {
        self.batches
            .values()
            .flat_map(|b| &b.offsets)
            .filter(|s| s.state == RecordState::Acquired)
            .map(|s| s.lock_until)
            .min()
    }

    /// Releases the records whose lock has expired by `now`. Whether any changed.
    pub fn expire_locks(&mut self, now: i64) -> bool {
        let max = self.limits.max_delivery_count;
        let changed = self.update_acquired(|s| s.lock_until <= now, |s| s.release(max));
        if changed {
            self.advance_start();
        }
        changed
    }

    /// Releases every record `member` holds (it left the group or closed its session).
    pub fn release_member(&mut self, member: &str) -> bool {
        let max = self.limits.max_delivery_count;
        let changed =
            self.update_acquired(|s| s.member.as_deref() == Some(member), |s| s.release(max));
        if changed {
            self.advance_start();
        }
        changed
    }

    fn update_acquired(
        &mut self,
        which: impl Fn(&InFlight) -> bool,
        update: impl Fn(&mut InFlight),
    ) -> bool {
        let mut changed = false;
        for batch in self.batches.values_mut() {
            let hit = |s: &InFlight| s.state == RecordState::Acquired && which(s);
            let hits = batch.offsets.iter().filter(|s| hit(s)).count();
            if hits == 0 {
                continue;
            }
            if hits < batch.offsets.len() {
                batch.per_offset = true;
            }
            for s in batch.offsets.iter_mut().filter(|s| hit(s)) {
                update(s);
            }
            changed = true;
        }
        changed
    }

    /// Acquires for `member` what the fetch read (`log`, in order, starting at
    /// [`Self::next_fetch_offset`]): Available records in flight first, then new ones.
    pub fn acquire(
        &mut self,
        member: &str,
        log: &[LogBatch],
        limits: AcquireLimits,
        now: i64,
    ) -> Vec<Acquired> {
        let lock_until = now + self.limits.record_lock_duration_ms;
        let mut acquired = Vec::new();
        let mut count = 0i64;
        let Some(fetched_last) = log.last().map(|b| b.last_offset) else {
            return acquired;
        };
        let fetched_first = log[0].base_offset.max(self.start_offset);
        if !self.acquire_in_flight(
            member,
            fetched_first,
            fetched_last,
            limits,
            lock_until,
            &mut count,
            &mut acquired,
        ) {
            return acquired;
        }
        if fetched_last < self.next_new || (count >= limits.max_records && limits.max_records > 0) {
            return acquired;
        }
        self.acquire_new(
            member,
            log,
            limits.max_records - count,
            limits,
            lock_until,
            &mut acquired,
        );
        acquired
    }

    /// The in-flight part; false when Kafka's rules end the acquisition here.
    #[allow(clippy::too_many_arguments)]
    fn acquire_in_flight(
        &mut self,
        member: &str,
        from: i64,
        to: i64,
        limits: AcquireLimits,
        lock_until: i64,
        count: &mut i64,
        acquired: &mut Vec<Acquired>,
    ) -> bool {
        let max = self.limits.max_delivery_count;
        let throttle = throttle_limit(max);
        let firsts: Vec<i64> = self
            .batches
            .range(..=to)
            .filter(|(_, b)| b.last >= from)
            .map(|(f, _)| *f)
            .collect();
        for first in firsts {
            if limits.max_records > 0 && *count >= limits.max_records {
                return false;
            }
            let batch = self.batches.get_mut(&first).expect("listed above");
            let whole_available = !batch.per_offset
                && batch
                    .offsets
                    .iter()
                    .all(|s| s.state == RecordState::Available);
            let throttled = whole_available && batch.offsets[0].delivery_count >= throttle;
            if throttled && *count > 0 {
                return false;
            }
            let subset = first < from
                || batch.last > to
                || (limits.record_limit
                    && *count + batch.offsets.len() as i64 > limits.max_records);
            if whole_available && !throttled && !subset {
                for s in batch.offsets.iter_mut() {
                    s.acquire(member, lock_until);
                }
                *count += batch.offsets.len() as i64;
                acquired.push(Acquired {
                    first_offset: first,
                    last_offset: batch.last,
                    delivery_count: batch.offsets[0].delivery_count,
                });
                continue;
            }
            if !batch
                .offsets
                .iter()
                .any(|s| s.state == RecordState::Available)
            {
                continue;
            }
            // Kafka's acquireSubsetBatchRecords: offset by offset from here on.
            batch.per_offset = true;
            let size = batch.offsets.len() as i64;
            let mut cap: i64 = -1;
            for (i, s) in batch.offsets.iter_mut().enumerate() {
                let offset = first + i as i64;
                if offset < from || offset > to || s.state != RecordState::Available {
                    continue;
                }
                let d = s.delivery_count;
                // A record on its last delivery goes alone, in the next fetch if need be.
                if max > 1 && d == max - 1 && *count > 0 {
                    return false;
                }
                if d >= throttle && cap < 0 {
                    cap = 1.max(size >> (d - throttle + 1));
                }
                s.acquire(member, lock_until);
                acquired.push(Acquired {
                    first_offset: offset,
                    last_offset: offset,
                    delivery_count: s.delivery_count,
                });
                *count += 1;
                if s.delivery_count == max && max > 1 {
                    return false;
                }
                if limits.record_limit && *count == limits.max_records {
                    return false;
                }
                if cap >= 0 && *count >= cap {
                    return false;
                }
            }
        }
        true
    }

    /// New records: whole log batches from the first never acquired, up to the batch that
    /// holds the `remaining`th record (Kafka may exceed MaxRecords to keep batches whole)
    /// and within the in-flight cap, in in-flight batches of about `batch_size` records.
    fn acquire_new(
        &mut self,
        member: &str,
        log: &[LogBatch],
        remaining: i64,
        limits: AcquireLimits,
        lock_until: i64,
        acquired: &mut Vec<Acquired>,
    ) {
        let first = self.next_new;
        let log: Vec<LogBatch> = log
            .iter()
            .copied()
            .filter(|b| b.last_offset >= first)
            .collect();
        let Some(mut last) = log.last().map(|b| b.last_offset) else {
            return;
        };
        let room = self.limits.max_in_flight_records - self.in_flight_records();
        let wanted = if limits.max_records > 0 {
            remaining.min(room)
        } else {
            room
        };
        if wanted <= 0 {
            return;
        }
        if last - first + 1 > wanted {
            let target = first + wanted - 1;
            last = if limits.record_limit {
                target
            } else {
                log.iter()
                    .find(|b| b.last_offset >= target)
                    .map_or(last, |b| b.last_offset)
            };
        }
        let mut runs = Vec::new();
        let mut run_first = first;
        if !limits.record_limit && limits.batch_size > 0 {
            for b in &log {
                if b.last_offset >= last {
                    break;
                }
                if b.last_offset - run_first + 1 >= limits.batch_size {
                    runs.push((run_first, b.last_offset));
                    run_first = b.last_offset + 1;
                }
            }
        }
        if run_first <= last {
            runs.push((run_first, last));
        }
        for (f, l) in runs {
            let mut state = InFlight::fresh(RecordState::Available, 0);
            state.acquire(member, lock_until);
            self.batches.insert(f, Batch::whole(f, l, state));
            acquired.push(Acquired {
                first_offset: f,
                last_offset: l,
                delivery_count: 1,
            });
        }
        self.next_new = last + 1;
    }

    /// Archives the acquired records in `ranges`: under read_committed, those of aborted
    /// transactions, which are never delivered.
    pub fn archive_acquired(&mut self, ranges: &[(i64, i64)]) {
        let within = |o: i64| ranges.iter().any(|&(f, l)| f <= o && o <= l);
        for (first, batch) in self.batches.iter_mut() {
            let mut hit = false;
            for (i, s) in batch.offsets.iter_mut().enumerate() {
                if s.state == RecordState::Acquired && within(first + i as i64) {
                    s.state = RecordState::Archived;
                    s.member = None;
                    hit = true;
                }
            }
            batch.per_offset |= hit;
        }
        self.advance_start();
    }

    /// Applies `member`'s acknowledgements: (first offset, last offset, types), one type
    /// for the whole range or one per offset. All or nothing.
    pub fn acknowledge(
        &mut self,
        member: &str,
        acks: &[(i64, i64, Vec<i8>)],
        now: i64,
    ) -> Result<(), AckError> {
        let mut batches = self.batches.clone();
        let max = self.limits.max_delivery_count;
        let lock_ms = self.limits.record_lock_duration_ms;
        for (first, last, types) in acks {
            let (first, last) = (*first, *last);
            // Records before the start offset are acknowledged or archived for good (a lock
            // that expired at the delivery limit, say): Kafka skips acknowledgements of
            // them, the whole range or offset by offset below, and answers success.
            if last < self.start_offset {
                continue;
            }
            // As Kafka's floorKey: a range that starts before everything in flight is not
            // found; one that ends after it asks for offsets never delivered.
            let Some(start) = batches.range(..=first).next_back().map(|(f, _)| *f) else {
                return Err(AckError::InvalidRecordState(format!(
                    "Batch record {first}-{last} not found"
                )));
            };
            let cached_last = batches.values().next_back().map_or(-1, |b| b.last);
            if last > cached_last {
                return Err(AckError::InvalidRequest(format!(
                    "Request batch {first}-{last} has offsets which are not found"
                )));
            }
            let type_at = |offset: i64| -> i8 {
                if types.len() == 1 {
                    types[0]
                } else {
                    types[(offset - first) as usize]
                }
            };
            for (bfirst, batch) in batches.range_mut(start..=last) {
                let covers = *bfirst >= first && batch.last <= last;
                let one_type = (*bfirst..=batch.last).all(|o| type_at(o) == type_at(*bfirst));
                if !(covers && one_type) {
                    batch.per_offset = true;
                }
                for (i, s) in batch.offsets.iter_mut().enumerate() {
                    let offset = bfirst + i as i64;
                    if offset < first.max(self.start_offset) || offset > last {
                        continue;
                    }
                    if s.state != RecordState::Acquired {
                        return Err(AckError::InvalidRecordState(format!(
                            "The offset {offset} is not acquired"
                        )));
                    }
                    if s.member.as_deref() != Some(member) {
                        return Err(AckError::InvalidRecordState(format!(
                            "Member {member} is not the owner of offset {offset}"
                        )));
                    }
                    match type_at(offset) {
                        ACCEPT => s.state = RecordState::Acknowledged,
                        GAP | REJECT => s.state = RecordState::Archived,
                        RELEASE => s.release(max),
                        RENEW => s.lock_until = now + lock_ms,
                        other => {
                            return Err(AckError::InvalidRequest(format!(
                                "Invalid acknowledge type: {other}"
                            )))
                        }
                    }
                    if s.state.terminal() {
                        s.member = None;
                    }
                }
            }
        }
        self.batches = batches;
        self.advance_start();
        Ok(())
    }

    /// Moves the start offset past the leading Acknowledged and Archived records and drops
    /// the batches wholly before it.
    fn advance_start(&mut self) {
        while let Some((&first, batch)) = self.batches.iter().next() {
            let from = (self.start_offset - first).max(0) as usize;
            let done = batch.offsets[from..]
                .iter()
                .take_while(|s| s.state.terminal())
                .count();
            self.start_offset = first + (from + done) as i64;
            if from + done < batch.offsets.len() {
                break;
            }
            self.batches.remove(&first);
        }
        if self.batches.is_empty() {
            self.start_offset = self.start_offset.max(self.next_new);
            self.next_new = self.start_offset;
        }
    }

    /// The log's start moved past records in flight (retention, DeleteRecords): those
    /// before it are gone, as Kafka archives them.
    pub fn log_start_moved(&mut self, log_start: i64) {
        if log_start <= self.start_offset {
            return;
        }
        let keep = self.batches.split_off(&log_start);
        let mut cut = std::mem::replace(&mut self.batches, keep);
        if let Some((&first, batch)) = cut.iter_mut().next_back() {
            if batch.last >= log_start {
                let tail = batch.offsets.split_off((log_start - first) as usize);
                self.batches.insert(
                    log_start,
                    Batch {
                        last: batch.last,
                        offsets: tail,
                        per_offset: true,
                    },
                );
            }
        }
        self.start_offset = log_start;
        self.next_new = self.next_new.max(log_start);
        self.advance_start();
    }

    /// The state to write to the share coordinator: the start offset and each run of
    /// offsets in one state with one delivery count.
    pub fn state(&self, leader_epoch: i32) -> ShareState {
        let mut runs: Vec<StateBatch> = Vec::new();
        for (first, batch) in &self.batches {
            for (i, s) in batch.offsets.iter().enumerate() {
                let offset = first + i as i64;
                if offset < self.start_offset {
                    continue;
                }
                let (state, count) = (s.state.persisted(), s.delivery_count);
                match runs.last_mut() {
                    Some(r)
                        if r.last_offset + 1 == offset
                            && r.delivery_state == state
                            && r.delivery_count == count =>
                    {
                        r.last_offset = offset
                    }
                    _ => runs.push(StateBatch {
                        first_offset: offset,
                        last_offset: offset,
                        delivery_state: state,
                        delivery_count: count,
                    }),
                }
            }
        }
        let complete = self
            .batches
            .values()
            .flat_map(|b| &b.offsets)
            .filter(|s| s.state.terminal())
            .count();
        ShareState {
            state_epoch: self.state_epoch,
            leader_epoch,
            start_offset: self.start_offset,
            delivery_complete_count: complete as i32,
            batches: runs,
        }
    }

    /// For metrics: (acquired records, archived records in flight, delivered more than once).
    pub fn counts(&self) -> (usize, usize, usize) {
        let all = || self.batches.values().flat_map(|b| &b.offsets);
        (
            all().filter(|s| s.state == RecordState::Acquired).count(),
            all().filter(|s| s.state == RecordState::Archived).count(),
            all().filter(|s| s.delivery_count > 1).count(),
        )
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
