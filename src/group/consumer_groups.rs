//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe over the groups this broker coordinates, with the same routing
//! (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) as the classic APIs. A group id is either
//! a classic group or a consumer group; an empty one of either kind becomes the other when a
//! member of the other protocol joins, as Kafka does.
//!
//! The group's state is written to `__consumer_offsets` after each change, in Kafka's records
//! ([`super::consumer::records`]), and rebuilt when the partition is loaded: members carry on
//! with their epochs and assignments across a restart or a move of the coordinator.
//!
//! A classic group with members becomes a consumer group in place (see [`super::migration`]).

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::consumer::{
    self, Assignment, ConsumerGroup, ConsumerGroupState, ConsumerSettings, Heartbeat,
    HeartbeatResult, TopicImage,
};
use super::store::Entry;
use super::{GroupCoordinator, PendingCommit};
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::topics::internal::Appended;

/// What ConsumerGroupDescribe shows of a group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSummary {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberSummary>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
    /// The member uses the classic protocol.
    pub classic: bool,
}

pub fn consumer_settings(config: &Config) -> ConsumerSettings {
    ConsumerSettings {
        session_timeout: Duration::from_millis(config.group_consumer_session_timeout_ms),
        heartbeat_interval: Duration::from_millis(config.group_consumer_heartbeat_interval_ms),
        max_size: config.group_consumer_max_size as usize,
        assignors: config.group_consumer_assignors.clone(),
    }
}

fn not_found(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Group {group_id} not found."))
}

fn not_found_for_heartbeat(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Consumer group {group_id} not found."))
}

fn not_consumer(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Group {group_id} is not a consumer group."))
}

/// A member id as Kafka's `Uuid.randomUuid().toString()` writes one (22 characters).
pub(super) fn new_member_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: joins, heartbeats or leaves (by the member epoch). The answer
    /// may be given once the group's records it wrote are replicated ([`PendingCommit`]).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: Heartbeat,
        version: i16,
        topics: &TopicImage,
    ) -> Result<(HeartbeatResult, PendingCommit)> {
        let mut settings = self.consumer_settings.clone();
        let timing = [
            &mut settings.session_timeout,
            &mut settings.heartbeat_interval,
        ];
        self.overrides.timing(group_id, "consumer", timing);
        let settings = &settings;
        consumer::validate(group_id, &req, version, &settings.assignors)?;
        self.coordinating(group_id)?;
        let leaving = req.member_epoch < 0;
        let joining = req.member_epoch == 0;
        // Kafka's getOrMaybeCreateConsumerGroup: only a joining member creates the group.
        let mut group = if joining {
            self.lock_live(group_id, || Ok(()))?
        } else {
            self.existing(group_id)?
                .ok_or_else(|| not_found_for_heartbeat(group_id))?
        };
        // An empty classic group (one that only holds offsets) becomes a consumer group; its
        // classic metadata, if it was written, is deleted.
        let mut first = Vec::new();
        if group.share.is_some() {
            return Err(not_consumer(group_id));
        }
        if group.consumer.is_none() && joining && group.is_empty() {
            if group.protocol_type.is_some() || group.generation > 0 {
                first.push(Entry::Group(group.id.clone(), None));
            }
            group.protocol_type = None;
            group.protocol = None;
            group.leader = None;
            group.generation = 0;
            // So is an empty streams group's.
            if let Some(streams) = group.streams.take() {
                first.extend(
                    streams
                        .tombstones()
                        .into_iter()
                        .map(|(k, v)| Entry::Streams(k, v)),
                );
            }
            group.consumer = Some(ConsumerGroup::new(group_id));
        }
        if group.consumer.is_none() && joining {
            first.extend(self.upgrade(&mut group, topics)?);
        }
        let was_empty = group.is_empty();
        let consumer = group
            .consumer
            .as_mut()
            .ok_or_else(|| not_consumer(group_id))?;
        // Decided before the member goes: the classic group takes the epoch from before.
        let downgrade = (req.member_epoch == consumer::LEAVE_EPOCH)
            .then(|| consumer.downgrade_plan(&req.member_id))
            .flatten();
        let result = if leaving {
            consumer.leave(
                &req.member_id,
                req.instance_id.as_deref(),
                req.member_epoch,
                settings,
            )
        } else {
            consumer.heartbeat(req, topics, settings, Instant::now(), new_member_id)
        };
        if group.is_empty() != was_empty {
            group.state_timestamp = now_ms();
        }
        let downgraded = match (&result, downgrade) {
            (Ok(_), Some(plan)) => self.downgrade(&mut group, plan),
            _ => None,
        };
        let written = match downgraded {
            Some(entries) => self.write_downgrade(&group, &entries),
            None => self.write_consumer_group(&mut group, first),
        };
        let result = result?;
        Ok((
            result,
            self.pending_write(written?, CoordinatorWrite::GroupRecords),
        ))
    }

    /// Appends what changed in the group's consumer state, after `first` (records the change
    /// of protocol deletes); once appended, the group counts it as written.
    pub(super) fn write_consumer_group(
        &self,
        group: &mut super::Group,
        first: Vec<Entry>,
    ) -> Result<Option<Appended>> {
        let Some(consumer) = group.consumer.as_mut() else {
            return Ok(None);
        };
        let (records, image) = consumer.unwritten_records(now_ms());
        let mut entries = first;
        entries.extend(records.into_iter().map(|(k, v)| Entry::Consumer(k, v)));
        let appended = self.append_group_records(&group.id, &entries);
        if appended.is_ok() {
            consumer.written(image);
        }
        appended
    }

    /// Appends a consumer or streams group's records; a failure is logged, and answered as
    /// Kafka answers a failed write of group records.
    pub(super) fn append_group_records(
        &self,
        group_id: &str,
        entries: &[Entry],
    ) -> Result<Option<Appended>> {
        let appended = self
            .store
            .append(group_id, entries, now_ms())
            .map_err(|err| err.for_coordinator_write(CoordinatorWrite::GroupRecords));
        if let Err(err) = &appended {
            tracing::error!(group = %group_id, "cannot write the group's records: {err}");
        }
        appended
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupSummary> {
        let group = self
            .existing(group_id)?
            .ok_or_else(|| not_found(group_id))?;
        let consumer = group
            .consumer
            .as_ref()
            .ok_or_else(|| not_consumer(group_id))?;
        Ok(summary(consumer, &self.consumer_settings))
    }

    /// Fences the consumer-protocol members whose session or revocation timed out.
    pub(super) fn tick_consumer_group(&self, group: &mut super::Group, now: Instant) {
        let Some(consumer) = group.consumer.as_mut() else {
            return;
        };
        let was_empty = consumer.is_empty();
        // The last consumer-protocol member lapsing may turn the group classic again.
        let expired = consumer.expired(now);
        if let [one] = expired.as_slice() {
            let plan = consumer.downgrade_plan(one);
            if let Some(entries) = plan.and_then(|plan| self.downgrade(group, plan)) {
                let _ = self.write_downgrade(group, &entries);
                return;
            }
        }
        let Some(consumer) = group.consumer.as_mut() else {
            return;
        };
        if consumer.tick(now, &self.consumer_settings).is_empty() {
            return;
        }
        if consumer.is_empty() && !was_empty {
            group.state_timestamp = now_ms();
        }
        // Nobody waits for these: a lost write leaves fenced members on disk, whose
        // sessions lapse again after the next load.
        let _ = self.write_consumer_group(group, Vec::new());
    }
}

fn summary(group: &ConsumerGroup, settings: &ConsumerSettings) -> ConsumerGroupSummary {
    let empty = Assignment::new();
    ConsumerGroupSummary {
        state: group.state(),
        group_epoch: group.group_epoch,
        assignment_epoch: group.assignment_epoch,
        assignor: group.assignor(settings),
        members: group
            .members
            .values()
            .map(|m| ConsumerMemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.clone(),
                subscribed_topic_regex: m.regex_source(),
                assignment: m.assigned.clone(),
                target_assignment: group.target.get(&m.id).unwrap_or(&empty).clone(),
                classic: m.classic.is_some(),
            })
            .collect(),
    }
}
