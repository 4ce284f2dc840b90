//! The coordinator's side of streams groups: StreamsGroupHeartbeat and StreamsGroupDescribe
//! over the groups this broker coordinates, with the routing of the other group APIs
//! (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS). A group id is a classic, a consumer or a
//! streams group; an empty classic group (one holding only offsets) becomes a streams group
//! when a streams member joins, as in Kafka.
//!
//! Every change of a group is written to `__consumer_offsets` ([`super::image`]) before
//! the heartbeat that made it is answered, so a coordinator that restarts, or takes the
//! partition over, goes on with the same members, topology and assignment.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::description::{TopologyDescription, NOT_STORED, UNCERTAIN};
use super::heartbeat::{Heartbeat, HeartbeatResult};
use super::topology::{ConfiguredTopology, StatusCode, TopicPartitions, Topology};
use super::{Endpoint, StreamsGroup, StreamsGroupState, StreamsSettings, Tasks};
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::group::store::Entry;
use crate::group::{Group, GroupCoordinator, PendingCommit};
use crate::topics::internal::Appended;

/// What StreamsGroupDescribe shows of a group.
#[derive(Debug, Clone)]
pub struct StreamsGroupSummary {
    pub state: StreamsGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
    pub configured: Option<ConfiguredTopology>,
    pub members: Vec<StreamsMemberSummary>,
    pub description: DescribedDescription,
}

/// The topology description StreamsGroupDescribe v1 shows (its TopologyDescriptionStatus).
#[derive(Debug, Clone)]
pub enum DescribedDescription {
    NotRequested,
    /// No store, or it holds nothing for the group's current topology epoch.
    NotStored,
    Available(Arc<TopologyDescription>),
}

#[derive(Debug, Clone)]
pub struct StreamsMemberSummary {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Vec<(String, String)>,
    pub assignment: Tasks,
    pub target_assignment: Tasks,
}

pub fn streams_settings(config: &Config) -> StreamsSettings {
    StreamsSettings {
        session_timeout: Duration::from_millis(config.group_streams_session_timeout_ms),
        heartbeat_interval: Duration::from_millis(config.group_streams_heartbeat_interval_ms),
        max_size: config.group_streams_max_size as usize,
        num_standby_replicas: config.group_streams_num_standby_replicas as usize,
        initial_rebalance_delay: Duration::from_millis(
            config.group_streams_initial_rebalance_delay_ms,
        ),
        assignment_interval: Duration::from_millis(config.group_streams_assignment_interval_ms),
        task_offset_interval: Duration::from_millis(config.group_streams_task_offset_interval_ms),
        acceptable_recovery_lag: config.group_streams_acceptable_recovery_lag,
    }
}

fn not_found(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Streams group {group_id} not found."))
}

/// Kafka's answer to a push while no store is configured.
pub fn no_description_store() -> BrokerError {
    BrokerError::UnsupportedVersion(
        "The broker has no streams group topology description plugin configured.".to_owned(),
    )
}

fn not_streams(group_id: &str) -> BrokerError {
    BrokerError::NoSuchGroup(format!("Group {group_id} is not a streams group."))
}

impl GroupCoordinator {
    /// StreamsGroupHeartbeat: joins, heartbeats or leaves (by the member epoch). The answer
    /// may be given once the group's records it wrote are replicated ([`PendingCommit`]).
    /// `may_solicit`: the member's version of the API can be asked to push its topology's
    /// description (v1+).
    pub fn streams_heartbeat(
        &self,
        group_id: &str,
        req: Heartbeat,
        topics: &TopicPartitions,
        may_solicit: bool,
    ) -> Result<(HeartbeatResult, PendingCommit)> {
        super::validate(group_id, &req)?;
        self.coordinating(group_id)?;
        let mut settings = streams_settings(&self.config);
        let s = &mut settings;
        let timing = [
            &mut s.session_timeout,
            &mut s.heartbeat_interval,
            &mut s.assignment_interval,
        ];
        self.overrides.timing(group_id, "streams", timing);
        let leaving = req.member_epoch < 0;
        let joining = req.member_epoch == 0;
        // Kafka's getOrCreateStreamsGroup: only a joining member creates the group.
        let mut group = if joining {
            self.lock_live(group_id, || Ok(()))?
        } else {
            self.existing(group_id)?
                .ok_or_else(|| not_found(group_id))?
        };
        // An empty classic group (one that only holds offsets) becomes a streams group; its
        // classic metadata, if it was written, is deleted.
        let mut first = Vec::new();
        let convertible = group.consumer.is_none() && group.share.is_none() && group.is_empty();
        if group.streams.is_none() && joining && convertible {
            if group.protocol_type.is_some() || group.generation > 0 {
                first.push(Entry::Group(group.id.clone(), None));
            }
            group.protocol_type = None;
            group.protocol = None;
            group.leader = None;
            group.generation = 0;
            group.streams = Some(StreamsGroup::new(group_id));
        }
        let was_empty = group.is_empty();
        let streams = group
            .streams
            .as_mut()
            .ok_or_else(|| not_streams(group_id))?;
        let result = if leaving {
            streams.leave(
                &req.member_id,
                req.instance_id.as_deref(),
                req.member_epoch,
                req.shutdown_application,
            )
        } else {
            streams.heartbeat(req, topics, &settings, Instant::now())
        };
        if group.is_empty() != was_empty {
            group.state_timestamp = now_ms();
        }
        let written = self.write_streams_group(&mut group, first);
        let mut result = result?;
        if may_solicit && !leaving {
            if let Some(streams) = &group.streams {
                result.topology_description_required = self.solicit_description(streams, &result);
            }
        }
        Ok((
            result,
            self.pending_write(written?, CoordinatorWrite::GroupRecords),
        ))
    }

    /// Appends what changed in the group's streams state, after `first`; once appended, the
    /// group counts it as written.
    pub(crate) fn write_streams_group(
        &self,
        group: &mut Group,
        first: Vec<Entry>,
    ) -> Result<Option<Appended>> {
        let Some(streams) = group.streams.as_mut() else {
            return Ok(None);
        };
        let (records, image) = streams.unwritten_records(now_ms());
        let mut entries = first;
        entries.extend(records.into_iter().map(|(k, v)| Entry::Streams(k, v)));
        let appended = self.append_group_records(&group.id, &entries);
        if appended.is_ok() {
            streams.written(image);
        }
        appended
    }

    /// Kafka's `maybeSetTopologyDescriptionRequired`: ask for the current topology's
    /// description if a store is configured, does not hold it, has not refused it, the
    /// topology is not stale, and the group was not asked within its back-off.
    fn solicit_description(&self, streams: &StreamsGroup, result: &HeartbeatResult) -> bool {
        let Some(descriptions) = &self.descriptions else {
            return false;
        };
        let current = streams.topology.as_ref().map_or(-1, |t| t.epoch);
        current >= 0
            && streams.stored_description_epoch != current
            && streams.failed_description_epoch != current
            && !result
                .statuses
                .iter()
                .any(|s| s.code == StatusCode::StaleTopology)
            && descriptions.solicit(&streams.id, current, Instant::now())
    }

    /// Whether pushed topology descriptions are kept (else Kafka answers the push
    /// UNSUPPORTED_VERSION).
    pub fn topology_descriptions_enabled(&self) -> bool {
        self.descriptions.is_some()
    }

    /// StreamsGroupTopologyDescriptionUpdate, as Kafka's `streamsGroupTopologyDescriptionUpdate`:
    /// the member must be in the group and describe its current topology epoch; `description`
    /// (converted only then, as Kafka does) is stored, and the group's metadata record says
    /// which epoch the store holds: first [`UNCERTAIN`] while storing, then the epoch. The
    /// answer waits for those records.
    pub fn streams_topology_description_update(
        &self,
        group_id: &str,
        member_id: &str,
        topology_epoch: i32,
        description: impl FnOnce() -> Result<TopologyDescription>,
    ) -> Result<PendingCommit> {
        let Some(descriptions) = &self.descriptions else {
            return Err(no_description_store());
        };
        self.coordinating(group_id)?;
        let mut group = self
            .existing(group_id)?
            .ok_or_else(|| not_found(group_id))?;
        let streams = group
            .streams
            .as_mut()
            .ok_or_else(|| not_streams(group_id))?;
        if !streams.members.contains_key(member_id) {
            return Err(BrokerError::UnknownMember(format!(
                "Member {member_id} is not a member of group {group_id}."
            )));
        }
        let current = streams.topology.as_ref().map_or(-1, |t| t.epoch);
        if topology_epoch != current {
            return Err(BrokerError::InvalidRequest(format!(
                "Topology epoch {topology_epoch} does not match the group's current topology epoch {current}."
            )));
        }
        let description = description()?;
        if streams.stored_description_epoch != UNCERTAIN {
            streams.stored_description_epoch = UNCERTAIN;
            self.write_streams_group(&mut group, Vec::new())?;
        }
        descriptions.set(group_id, topology_epoch, description);
        let streams = group.streams.as_mut().ok_or_else(|| not_found(group_id))?;
        // Kafka's `updateTopologyDescriptionEpochs`: never back to an older epoch.
        streams.stored_description_epoch = match streams.stored_description_epoch {
            NOT_STORED => UNCERTAIN,
            stored => stored.max(topology_epoch),
        };
        let written = self.write_streams_group(&mut group, Vec::new())?;
        descriptions.stored(group_id, topology_epoch);
        Ok(self.pending_write(written, CoordinatorWrite::GroupRecords))
    }

    /// StreamsGroupDescribe of one group; with `include_description`, the description of
    /// its current topology if the store holds it (Kafka's `attachTopologyDescriptions`).
    pub fn streams_describe(
        &self,
        group_id: &str,
        include_description: bool,
    ) -> Result<StreamsGroupSummary> {
        let group = self
            .existing(group_id)?
            .ok_or_else(|| BrokerError::NoSuchGroup(format!("Group {group_id} not found.")))?;
        let streams = group
            .streams
            .as_ref()
            .ok_or_else(|| not_streams(group_id))?;
        let mut summary = summary(streams);
        if include_description {
            let epoch = streams.topology.as_ref().map(|t| t.epoch);
            let stored = streams.stored_description_epoch;
            summary.description = match (&self.descriptions, epoch) {
                (Some(descriptions), Some(epoch)) if stored >= 0 && stored == epoch => {
                    descriptions.get(group_id, epoch).map_or(
                        DescribedDescription::NotStored,
                        DescribedDescription::Available,
                    )
                }
                _ => DescribedDescription::NotStored,
            };
        }
        Ok(summary)
    }

    /// Fences the streams members whose session or revocation timed out.
    pub(crate) fn tick_streams_group(&self, group: &mut Group, now: Instant) {
        let Some(streams) = group.streams.as_mut() else {
            return;
        };
        let was_empty = streams.is_empty();
        streams.tick(now, &streams_settings(&self.config));
        if streams.is_empty() && !was_empty {
            group.state_timestamp = now_ms();
        }
        // Nobody waits for these: a lost write leaves fenced members on disk, whose
        // sessions lapse again after the next load.
        let _ = self.write_streams_group(group, Vec::new());
    }
}

fn summary(group: &StreamsGroup) -> StreamsGroupSummary {
    StreamsGroupSummary {
        state: group.state(),
        group_epoch: group.group_epoch,
        assignment_epoch: group.assignment_epoch,
        topology: group.topology.clone(),
        configured: group.configured.clone(),
        members: group
            .members
            .values()
            .map(|m| StreamsMemberSummary {
                member_id: m.id.clone(),
                member_epoch: m.epoch,
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                topology_epoch: m.topology_epoch,
                process_id: m.process_id.clone(),
                user_endpoint: m.user_endpoint.clone(),
                client_tags: m
                    .client_tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                assignment: m.assigned.clone(),
                target_assignment: group.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect(),
        description: DescribedDescription::NotRequested,
    }
}
