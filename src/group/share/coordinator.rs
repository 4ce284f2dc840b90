//! The coordinator's side of share groups: ShareGroupHeartbeat and ShareGroupDescribe over
//! the groups this broker coordinates, with the same routing (NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS) as the other group APIs. A group id is a share group or
//! another kind, never both: Kafka does not convert between share groups and the others.
//!
//! Every change of a group is written to `__consumer_offsets` before the heartbeat that
//! made it is answered. The share-partition state the heartbeat asks for is initialized by
//! the caller (the handler, over `share::state::Persister`), which then reports it here
//! ([`GroupCoordinator::share_initialized`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::{
    Assignment, Heartbeat, HeartbeatResult, Initialize, ShareGroup, ShareGroupState, ShareSettings,
    TopicId, TopicImage,
};
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::group::store::Entry;
use crate::group::{Group, GroupCoordinator, PendingCommit};
use crate::topics::internal::Appended;

/// What ShareGroupDescribe shows of a group.
#[derive(Debug, Clone)]
pub struct ShareGroupSummary {
    pub state: ShareGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ShareMemberSummary>,
}

#[derive(Debug, Clone)]
pub struct ShareMemberSummary {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: Assignment,
}

/// Share-partitions by topic id, with the topic's name.
pub type InitializedPartitions = BTreeMap<TopicId, (String, BTreeSet<i32>)>;

pub fn share_settings(config: &Config) -> ShareSettings {
    ShareSettings {
        session_timeout: Duration::from_millis(config.group_share_session_timeout_ms),
        heartbeat_interval: Duration::from_millis(config.group_share_heartbeat_interval_ms),
        max_size: config.group_share_max_size as usize,
        assignment_interval: Duration::from_millis(config.group_share_assignment_interval_ms),
    }
}

pub fn not_share(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Group {group_id} is not a share group."))
}

impl GroupCoordinator {
    /// ShareGroupHeartbeat: joins, heartbeats or leaves (by the member epoch). The answer
    /// may be given once the group's records are replicated ([`PendingCommit`]); the
    /// share-partitions to initialize before they can be assigned come with it.
    pub fn share_heartbeat(
        &self,
        group_id: &str,
        req: Heartbeat,
        topics: &TopicImage,
    ) -> Result<(HeartbeatResult, PendingCommit, Option<Initialize>)> {
        super::validate(group_id, &req)?;
        self.coordinating(group_id)?;
        let mut settings = share_settings(&self.config);
        let s = &mut settings;
        let timing = [
            &mut s.session_timeout,
            &mut s.heartbeat_interval,
            &mut s.assignment_interval,
        ];
        self.overrides.timing(group_id, "share", timing);
        let joining = req.member_epoch == 0;
        // Kafka's getOrMaybeCreateShareGroup: only a joining member creates the group.
        let mut group = if joining {
            self.lock_live(group_id, || Ok(()))?
        } else {
            self.existing(group_id)?.ok_or_else(|| {
                BrokerError::NoSuchGroup(format!("Share group {group_id} not found."))
            })?
        };
        if group.share.is_none()
            && group.is_untouched()
            && group.consumer.is_none()
            && group.streams.is_none()
        {
            group.share = Some(ShareGroup::new(group_id));
        }
        let was_empty = group.is_empty();
        let share = group.share.as_mut().ok_or_else(|| not_share(group_id))?;
        let result = if req.member_epoch == super::LEAVE_EPOCH {
            let left = share.leave(&req.member_id);
            if left.is_ok() {
                release_member(group_id, &req.member_id);
            }
            left
        } else {
            share.heartbeat(req, topics, &settings, Instant::now(), now_ms())
        };
        let initialize = match &result {
            Ok(_) => share.to_initialize(topics, now_ms()),
            Err(_) => None,
        };
        if group.is_empty() != was_empty {
            group.state_timestamp = now_ms();
        }
        let written = self.write_share_group(&mut group);
        let result = result?;
        Ok((
            result,
            self.pending_write(written?, CoordinatorWrite::GroupRecords),
            initialize,
        ))
    }

    /// The share coordinator answered the initialization of `partitions`: they become
    /// assignable (`ok`), or are asked for again later. Written before the caller answers.
    pub fn share_initialized(
        &self,
        group_id: &str,
        partitions: &BTreeMap<TopicId, BTreeSet<i32>>,
        ok: bool,
        topics: &TopicImage,
    ) -> Result<PendingCommit> {
        let Some(mut group) = self.existing(group_id)? else {
            return Ok(self.pending_write(None, CoordinatorWrite::GroupRecords));
        };
        let Some(share) = group.share.as_mut() else {
            return Ok(self.pending_write(None, CoordinatorWrite::GroupRecords));
        };
        if ok {
            share.initialized(partitions, topics);
        } else {
            share.uninitialized(partitions);
        }
        let written = self.write_share_group(&mut group)?;
        Ok(self.pending_write(written, CoordinatorWrite::GroupRecords))
    }

    /// Appends what changed in the group's share state; once appended, the group counts it
    /// as written.
    pub(crate) fn write_share_group(&self, group: &mut Group) -> Result<Option<Appended>> {
        let Some(share) = group.share.as_mut() else {
            return Ok(None);
        };
        let (records, image) = share.unwritten_records();
        let entries: Vec<Entry> = records
            .into_iter()
            .map(|(k, v)| Entry::Share(k, v))
            .collect();
        let appended = self.append_group_records(&group.id, &entries);
        if appended.is_ok() {
            share.written(image);
        }
        appended
    }

    /// ShareGroupDescribe of one group.
    pub fn share_describe(&self, group_id: &str) -> Result<ShareGroupSummary> {
        let group = self
            .existing(group_id)?
            .ok_or_else(|| BrokerError::NoSuchGroup(format!("Group {group_id} not found.")))?;
        let share = group.share.as_ref().ok_or_else(|| not_share(group_id))?;
        Ok(ShareGroupSummary {
            state: share.state(),
            group_epoch: share.group_epoch,
            assignment_epoch: share.assignment_epoch,
            assignor: super::assignor::SIMPLE,
            members: share
                .members
                .values()
                .map(|m| ShareMemberSummary {
                    member_id: m.id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    assignment: m.assigned.clone(),
                })
                .collect(),
        })
    }

    /// The share-partitions of an empty share group whose state exists, for DeleteGroups
    /// to delete with the share coordinator before the group goes (Kafka's
    /// `shareGroupBuildPartitionDeleteRequest`); `None` when the group is not a share group
    /// (or does not exist), NON_EMPTY_GROUP while it has members.
    pub fn share_partitions_to_delete(
        &self,
        group_id: &str,
    ) -> Result<Option<BTreeMap<TopicId, BTreeSet<i32>>>> {
        let Some(group) = self.existing(group_id)? else {
            return Ok(None);
        };
        let Some(share) = group.share.as_ref() else {
            return Ok(None);
        };
        if !share.is_empty() {
            return Err(BrokerError::NonEmptyGroup);
        }
        Ok(Some(share.share_partitions()))
    }

    /// The share-partitions of a share group whose state is initialized, by topic id with
    /// the topic's name (Kafka's `initializedShareGroupPartitions`); `None` when the group
    /// does not exist or is not a share group.
    pub fn share_initialized_partitions(
        &self,
        group_id: &str,
    ) -> Result<Option<InitializedPartitions>> {
        let Some(group) = self.existing(group_id)? else {
            return Ok(None);
        };
        Ok(group.share.as_ref().map(|s| {
            s.state_partitions
                .initialized
                .iter()
                .map(|(id, t)| (*id, (t.name.clone(), t.partitions.clone())))
                .collect()
        }))
    }

    /// Fences the share members whose session timed out.
    pub(crate) fn tick_share_group(&self, group: &mut Group, now: Instant) {
        let Some(share) = group.share.as_mut() else {
            return;
        };
        let expired = share.expired(now);
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            tracing::info!(group = %share.id, member = %id, "share group member fenced: session timeout");
            share.fence(id);
            release_member(&group.id, id);
        }
        if group.is_empty() {
            group.state_timestamp = now_ms();
        }
        // Nobody waits for these: a lost write leaves fenced members on disk, whose
        // sessions lapse again after the next load.
        let _ = self.write_share_group(group);
    }
}

/// A member left the share group or was fenced. As in Kafka, the group coordinator does not
/// release its acquired records: the share-partition leader does when the member's share
/// session ends (`ShareLeader::connection_closed`, or ShareFetch's final epoch), and
/// otherwise when their acquisition locks expire.
fn release_member(group_id: &str, member_id: &str) {
    tracing::debug!(group = %group_id, member = %member_id, "share group member gone");
}
