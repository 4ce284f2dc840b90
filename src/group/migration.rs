//! Online migration between the classic and the consumer protocol (KIP-848), as Kafka 4.4's
//! `GroupMetadataManager`: a consumer-protocol member joining a classic group of consumers
//! turns it into a consumer group in place ([`GroupCoordinator::upgrade`]), whose classic
//! members carry on through JoinGroup, SyncGroup, Heartbeat and LeaveGroup answered from the
//! consumer group; and a classic member may join a consumer group that has members. Both
//! follow `group_consumer_migration_policy`.
//!
//! And the way back ([`GroupCoordinator::maybe_downgrade`]): when the last consumer-protocol
//! member leaves (or is fenced) and classic members remain, the group becomes a classic group
//! again and rebalances.

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::consumer::{self, ClassicJoin, ClassicSource, ConsumerGroup, TopicImage};
use super::consumer_groups::new_member_id;
use super::state::{self, JoinError, JoinOutcome, JoinResult, SyncOutcome, SyncResult};
use super::store::Entry;
use super::{group_record, Group, GroupCoordinator, JoinRequest, LockedGroup};
use crate::clock::now_ms;
use crate::config::MigrationPolicy;
use crate::error::{BrokerError, CoordinatorWrite, Result};

impl GroupCoordinator {
    /// A JoinGroup to a consumer group with members (Kafka's
    /// `classicGroupJoinToConsumerGroup`): answered once the member's records are written.
    pub(super) fn join_consumer_group(
        &self,
        mut group: LockedGroup,
        req: JoinRequest,
        topics: &TopicImage,
        reply: oneshot::Sender<JoinOutcome>,
    ) {
        let fail = |reply: oneshot::Sender<JoinOutcome>, error, member_id: &str| {
            let _ = reply.send(Err(JoinError {
                error,
                member_id: member_id.to_owned(),
            }));
        };
        if self.config.group_consumer_migration_policy == MigrationPolicy::Disabled {
            tracing::info!(group = %group.id, "a classic member may not join the consumer group: migration is disabled");
            return fail(
                reply,
                BrokerError::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        let unknown = req.member_id.is_empty();
        let member_id = if unknown {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let settings = &self.consumer_settings;
        let consumer = group.consumer.as_mut().expect("a consumer group");
        if consumer.members.len() >= settings.max_size && !consumer.members.contains_key(&member_id)
        {
            let error = BrokerError::GroupMaxSizeReached(format!(
                "The consumer group has reached its maximum capacity of {} members.",
                settings.max_size
            ));
            return fail(reply, error, &req.member_id);
        }
        if !consumer.supports_classic(&req.protocol_type, &req.protocols) {
            return fail(
                reply,
                BrokerError::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        if unknown && req.require_known_member_id && req.instance_id.is_none() {
            return fail(reply, BrokerError::MemberIdRequired, &member_id);
        }
        let join = ClassicJoin {
            member_id: member_id.clone(),
            instance_id: req.instance_id,
            protocols: req.protocols,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            client_id: req.client_id,
            client_host: req.client_host,
        };
        let joined = consumer.classic_join(join, topics, settings, Instant::now());
        let written = self.write_consumer_group(&mut group, Vec::new());
        let (joined, written) = match (joined, written) {
            (Err(error), _) | (Ok(_), Err(error)) => return fail(reply, error, &member_id),
            (Ok(joined), Ok(written)) => (joined, written),
        };
        let result = JoinResult {
            generation: joined.generation,
            protocol_type: consumer::PROTOCOL_TYPE.to_owned(),
            protocol: joined.protocol,
            leader: String::new(),
            member_id: joined.member_id,
            members: Vec::new(),
            skip_assignment: false,
        };
        let pending = self.pending_write(written, CoordinatorWrite::GroupRecords);
        drop(group);
        let answer = async move {
            let outcome = match pending.acknowledged().await {
                Ok(()) => Ok(result),
                Err(error) => Err(JoinError { error, member_id }),
            };
            let _ = reply.send(outcome);
        };
        // Replicated already (always, on a single node): answered now; else once it is.
        let mut answer = Box::pin(answer);
        if (&mut answer).now_or_never().is_none() {
            tokio::spawn(answer);
        }
    }

    /// SyncGroup of a classic member of a consumer group.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sync_consumer_group(
        &self,
        group: &mut LockedGroup,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        topics: &TopicImage,
        reply: oneshot::Sender<SyncOutcome>,
    ) {
        let consumer = group.consumer.as_mut().expect("a consumer group");
        let outcome = consumer
            .classic_sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol,
                topics,
                Instant::now(),
            )
            .map(|assignment| SyncResult {
                protocol_type: protocol_type.unwrap_or_default().to_owned(),
                protocol: protocol.unwrap_or_default().to_owned(),
                assignment,
            });
        let _ = reply.send(outcome);
    }

    /// LeaveGroup of classic members of a consumer group; one result per member.
    pub(super) fn leave_consumer_group(
        &self,
        group: &mut LockedGroup,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<()>> {
        let consumer = group.consumer.as_mut().expect("a consumer group");
        let was_empty = consumer.is_empty();
        let results = members
            .iter()
            .map(|(member, instance)| {
                consumer
                    .classic_leave(member, instance.as_deref(), &self.consumer_settings)
                    .map(|_| ())
            })
            .collect();
        if consumer.is_empty() && !was_empty {
            group.state_timestamp = now_ms();
        }
        // Kafka answers once the records are written; the members are gone either way.
        let _ = self.write_consumer_group(group, Vec::new());
        results
    }

    /// Turns a classic group with members into a consumer group in place (Kafka's
    /// `validateOnlineUpgrade` then `convertToConsumerGroup`): members waiting in a
    /// rebalance are told to rejoin, the classic metadata is deleted and the consumer
    /// group's records follow it.
    pub(super) fn upgrade(
        &self,
        group: &mut super::Group,
        topics: &TopicImage,
    ) -> Result<Vec<Entry>> {
        let cannot = |why: &str| {
            tracing::info!(group = %group.id, "cannot upgrade the classic group to a consumer group: {why}");
            BrokerError::NoSuchGroup(format!(
                "Cannot upgrade classic group {} to consumer group because {why}.",
                group.id
            ))
        };
        if !self.config.group_consumer_migration_policy.upgrades() {
            return Err(cannot("online upgrade is disabled"));
        }
        if group.protocol_type.as_deref() != Some(consumer::PROTOCOL_TYPE) {
            return Err(cannot(
                "the group does not use the consumer embedded protocol",
            ));
        }
        if group.members.len() > self.consumer_settings.max_size {
            return Err(cannot(
                "the group size exceeds the consumer group maximum size",
            ));
        }
        let sources: Vec<ClassicSource> = group
            .members
            .values()
            .map(|m| ClassicSource {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: m.protocols.clone(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let converted =
            ConsumerGroup::from_classic(
                &group.id,
                group.generation,
                group.protocol.as_deref(),
                sources,
                topics,
                Instant::now(),
            )
                .ok_or_else(|| {
                    tracing::warn!(group = %group.id, "cannot upgrade the classic group: a member's embedded consumer protocol is malformed");
                    BrokerError::NoSuchGroup(format!(
                        "Cannot upgrade the classic group {} to consumer group because the \
                         embedded consumer protocol is malformed.",
                        group.id
                    ))
                })?;
        tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), "classic group upgraded to a consumer group");
        group.abandon_waiters(|| BrokerError::RebalanceInProgress);
        group.clear_classic_members();
        group.consumer = Some(converted);
        Ok(vec![Entry::Group(group.id.clone(), None)])
    }

    /// The downgrade `plan` (from [`ConsumerGroup::downgrade_plan`], made before the last
    /// consumer-protocol member was removed, as the classic group takes the consumer group's
    /// epoch and targets from before), if the policy allows it (Kafka's
    /// `convertToClassicGroup`): the consumer group's records are deleted and the classic
    /// group's written after them. `None`: the group stays a consumer group.
    pub(super) fn downgrade(
        &self,
        group: &mut Group,
        (generation, members): (i32, Vec<ClassicSource>),
    ) -> Option<Vec<Entry>> {
        if !self.config.group_consumer_migration_policy.downgrades() {
            tracing::info!(group = %group.id, "cannot downgrade the consumer group to a classic group: online downgrade is disabled");
            return None;
        }
        let consumer = group.consumer.take()?;
        let mut entries: Vec<Entry> = consumer
            .tombstones()
            .into_iter()
            .map(|(k, v)| Entry::Consumer(k, v))
            .collect();
        let (now, ms) = (Instant::now(), now_ms());
        let members = members
            .into_iter()
            .map(|m| {
                state::restored_member(
                    m.member_id,
                    m.instance_id,
                    m.client_id,
                    m.client_host,
                    m.session_timeout,
                    m.rebalance_timeout,
                    consumer::PROTOCOL_TYPE.to_owned(),
                    m.protocols,
                    m.assignment,
                    now,
                )
            })
            .collect();
        tracing::info!(group = %group.id, generation, "consumer group downgraded to a classic group: its last consumer-protocol member left");
        group.downgrade(generation, members, now, ms, &self.settings);
        group.take_dirty();
        entries.push(Entry::Group(group.id.clone(), Some(group_record(group))));
        Some(entries)
    }

    /// Appends a downgrade's records; nobody waits for them but the member that left.
    pub(super) fn write_downgrade(
        &self,
        group: &Group,
        entries: &[Entry],
    ) -> Result<Option<crate::topics::internal::Appended>> {
        let appended = self
            .store
            .append(&group.id, entries, now_ms())
            .map_err(|err| err.for_coordinator_write(CoordinatorWrite::GroupRecords));
        if let Err(err) = &appended {
            tracing::error!(group = %group.id, "cannot write the downgraded group's records: {err}");
        }
        appended
    }
}
