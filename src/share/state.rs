//! The share-partition state API: what the share-partition leader and the group coordinator
//! ask of the share coordinator (Kafka's `Persister`), one call per Initialize, Read, Write,
//! ReadSummary and Delete ShareGroupState request.
//!
//! The state is kept here in memory for now, on one node only and not across restarts; the
//! share coordinator over `__share_group_state` replaces the map behind the same calls.

use std::collections::HashMap;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::error::BrokerError;

/// One share-partition: a share group reading one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharePartitionKey {
    pub group_id: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// A run of offsets in one delivery state (Kafka's `StateBatch`): 0 available, 2 acknowledged,
/// 4 archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_state: i8,
    pub delivery_count: i16,
}

/// What ReadShareGroupState answers and WriteShareGroupState writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareState {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    /// -1 until the start offset is known (`share.auto.offset.reset` decides it then).
    pub start_offset: i64,
    /// Offsets at or after the start offset whose delivery is complete; -1 when unknown.
    pub delivery_complete_count: i32,
    pub batches: Vec<StateBatch>,
}

/// What ReadShareGroupStateSummary answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSummary {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub delivery_complete_count: i32,
}

/// The share coordinator as its callers see it.
#[derive(Default)]
pub struct Persister {
    states: Mutex<HashMap<SharePartitionKey, ShareState>>,
}

impl Persister {
    pub fn new() -> Persister {
        Persister::default()
    }

    /// InitializeShareGroupState: a new state epoch and start offset, no batches.
    pub async fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), BrokerError> {
        let mut states = self.states.lock();
        // Kafka's share coordinator starts a new share-partition at leader epoch 0, as
        // DescribeShareGroupOffsets shows it.
        let leader_epoch = states.get(key).map_or(0, |s| s.leader_epoch);
        states.insert(
            key.clone(),
            ShareState {
                state_epoch,
                leader_epoch,
                start_offset,
                delivery_complete_count: 0,
                batches: Vec::new(),
            },
        );
        Ok(())
    }

    /// ReadShareGroupState by the share-partition leader at `leader_epoch`.
    pub async fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<ShareState, BrokerError> {
        let mut states = self.states.lock();
        let state = states
            .get_mut(key)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if leader_epoch < state.leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch {
                claimed: leader_epoch,
                epoch: state.leader_epoch,
            });
        }
        state.leader_epoch = leader_epoch;
        Ok(state.clone())
    }

    /// WriteShareGroupState: the batches replace those they overlap; a start offset of -1
    /// keeps the current one.
    pub async fn write(
        &self,
        key: &SharePartitionKey,
        update: ShareState,
    ) -> Result<(), BrokerError> {
        let mut states = self.states.lock();
        let state = states
            .get_mut(key)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if update.leader_epoch < state.leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch {
                claimed: update.leader_epoch,
                epoch: state.leader_epoch,
            });
        }
        state.leader_epoch = update.leader_epoch;
        state.state_epoch = update.state_epoch;
        if update.start_offset >= 0 {
            state.start_offset = update.start_offset;
        }
        state.delivery_complete_count = update.delivery_complete_count;
        let start = state.start_offset;
        state.batches.retain(|b| {
            b.last_offset >= start
                && !update
                    .batches
                    .iter()
                    .any(|u| u.first_offset <= b.last_offset && b.first_offset <= u.last_offset)
        });
        state.batches.extend(update.batches);
        state.batches.sort_by_key(|b| b.first_offset);
        Ok(())
    }

    /// ReadShareGroupStateSummary.
    pub async fn read_summary(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<StateSummary, BrokerError> {
        let _ = leader_epoch;
        let states = self.states.lock();
        let state = states
            .get(key)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        Ok(StateSummary {
            state_epoch: state.state_epoch,
            leader_epoch: state.leader_epoch,
            start_offset: state.start_offset,
            delivery_complete_count: state.delivery_complete_count,
        })
    }

    /// DeleteShareGroupState.
    pub async fn delete(&self, key: &SharePartitionKey) -> Result<(), BrokerError> {
        self.states.lock().remove(key);
        Ok(())
    }
}
