//! The coordinator's side of AlterShareGroupOffsets, DeleteShareGroupOffsets and the deletion
//! of a topic, as Kafka 4.4's `GroupMetadataManager` does them through a share group's
//! `ShareGroupStatePartitionMetadata`:
//!
//! - altering puts the share-partitions back among the initializing ones (and out of the
//!   deleting ones); the caller then initializes their state anew, at the group's epoch as
//!   state epoch, with the share coordinator, and reports it ([`GroupCoordinator::share_initialized`]);
//! - deleting moves an initialized topic to the deleting ones; once the share coordinator has
//!   deleted its state the caller says so ([`GroupCoordinator::share_offsets_deleted`]) and
//!   the topic is forgotten. A topic left deleting (the deletion failed) is deleted again,
//!   every partition of it, when asked for again;
//! - a deleted topic leaves every share group this broker coordinates.
//!
//! Both requests need an empty group. Altering creates the share group when there is none,
//! as Kafka's does (its record brings the group into being).

use std::collections::{BTreeMap, BTreeSet};

use super::records::TopicPartitions;
use super::{ShareGroup, TopicId, TopicImage};
use crate::error::{BrokerError, CoordinatorWrite, Result};
use crate::group::{Group, GroupCoordinator, GroupState, PendingCommit};

/// One topic of an AlterShareGroupOffsets request: the partitions and their start offsets.
pub type AlterTopic = (String, Vec<(i32, i64)>);

/// What the coordinator decided of one requested topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicOutcome {
    pub name: String,
    /// `None` when the topic does not exist.
    pub id: Option<TopicId>,
    /// Each partition, and whether it exists (else UNKNOWN_TOPIC_OR_PARTITION).
    pub partitions: Vec<(i32, bool)>,
}

/// The share-partitions to initialize, once `written` is acknowledged.
pub struct AlterPlan {
    pub topics: Vec<TopicOutcome>,
    pub state_epoch: i32,
    /// Start offset per partition, per topic.
    pub initialize: BTreeMap<TopicId, BTreeMap<i32, i64>>,
    pub written: PendingCommit,
}

/// Why a requested topic has nothing to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NothingToDelete {
    /// The topic does not exist.
    UnknownTopic,
    /// The group has no state for it.
    NoOffsets,
}

/// The share-partitions whose state to delete, once `written` is acknowledged.
pub struct DeletePlan {
    pub refused: Vec<(String, NothingToDelete)>,
    /// (topic id, name, partitions).
    pub delete: Vec<(TopicId, String, BTreeSet<i32>)>,
    pub written: PendingCommit,
}

impl ShareGroup {
    /// Kafka's `addInitializingTopicsRecords` for altered offsets: the partitions become
    /// initializing again, and their topics stop being deleted.
    fn altering(&mut self, topics: &BTreeMap<TopicId, (String, BTreeSet<i32>)>, now_ms: i64) {
        for (id, (name, partitions)) in topics {
            let entry = self
                .state_partitions
                .initializing
                .entry(*id)
                .or_insert_with(|| TopicPartitions {
                    name: name.clone(),
                    partitions: BTreeSet::new(),
                });
            entry.partitions.extend(partitions);
            self.initializing_since.insert(*id, now_ms);
            self.state_partitions.deleting.remove(id);
        }
    }

    /// Whether the group has ever recorded which share-partitions have state; Kafka answers
    /// a deletion of offsets with nothing at all before.
    fn has_state_metadata(&self) -> bool {
        self.persisted_state_partitions() || self.state_partitions != Default::default()
    }

    /// Kafka's `maybeCleanupShareGroupState`: forgets the deleted topics; whether anything
    /// changed.
    fn topics_deleted(&mut self, ids: &BTreeSet<TopicId>) -> bool {
        let sp = &mut self.state_partitions;
        let before = (
            sp.initializing.len(),
            sp.initialized.len(),
            sp.deleting.len(),
        );
        sp.initializing.retain(|id, _| !ids.contains(id));
        sp.initialized.retain(|id, _| !ids.contains(id));
        sp.deleting.retain(|id, _| !ids.contains(id));
        self.initializing_since.retain(|id, _| !ids.contains(id));
        before
            != (
                sp.initializing.len(),
                sp.initialized.len(),
                sp.deleting.len(),
            )
    }
}

fn outcome_of(name: &str, partitions: &[(i32, i64)], topics: &TopicImage) -> TopicOutcome {
    let meta = topics.get(name);
    TopicOutcome {
        name: name.to_owned(),
        id: meta.map(|m| m.id),
        partitions: partitions
            .iter()
            // Kafka checks only the upper bound; the share coordinator refuses a negative one.
            .map(|(p, _)| (*p, meta.is_some_and(|m| *p < m.partitions)))
            .collect(),
    }
}

/// The group's share group, which offsets may be altered or deleted in only while it has no
/// member: GROUP_ID_NOT_FOUND for another kind of group, NON_EMPTY_GROUP with members.
fn empty_share<'g>(group: &'g mut Group, group_id: &str) -> Result<&'g mut ShareGroup> {
    let share = group
        .share
        .as_mut()
        .ok_or_else(|| super::coordinator::not_share(group_id))?;
    if !share.is_empty() {
        return Err(BrokerError::NonEmptyGroup);
    }
    Ok(share)
}

impl GroupCoordinator {
    /// AlterShareGroupOffsets' decision (Kafka's `alterShareGroupOffsets`): which of the
    /// requested partitions exist, recorded as initializing at the group's epoch.
    pub fn share_alter_offsets(
        &self,
        group_id: &str,
        request: &[AlterTopic],
        topics: &TopicImage,
    ) -> Result<AlterPlan> {
        self.coordinating(group_id)?;
        let outcomes: Vec<TopicOutcome> = request
            .iter()
            .map(|(name, partitions)| outcome_of(name, partitions, topics))
            .collect();
        let mut initialize: BTreeMap<TopicId, BTreeMap<i32, i64>> = BTreeMap::new();
        let mut named: BTreeMap<TopicId, (String, BTreeSet<i32>)> = BTreeMap::new();
        for ((name, partitions), outcome) in request.iter().zip(&outcomes) {
            let Some(id) = outcome.id else { continue };
            for ((p, offset), (_, exists)) in partitions.iter().zip(&outcome.partitions) {
                if *exists {
                    initialize.entry(id).or_default().insert(*p, *offset);
                    let entry = named
                        .entry(id)
                        .or_insert_with(|| (name.clone(), BTreeSet::new()));
                    entry.1.insert(*p);
                }
            }
        }
        let nothing = |state_epoch| AlterPlan {
            topics: outcomes.clone(),
            state_epoch,
            initialize: BTreeMap::new(),
            written: self.pending_write(None, CoordinatorWrite::GroupRecords),
        };
        let mut group = match self.existing(group_id)? {
            Some(group) => group,
            // Without partitions to initialize nothing is written, and no group made.
            None if initialize.is_empty() => return Ok(nothing(0)),
            None => self.lock_live(group_id, || Ok(()))?,
        };
        if group.share.is_none()
            && group.is_untouched()
            && group.consumer.is_none()
            && group.streams.is_none()
        {
            if initialize.is_empty() {
                return Ok(nothing(0));
            }
            group.share = Some(ShareGroup::new(group_id));
        }
        let share = empty_share(&mut group, group_id)?;
        let state_epoch = share.group_epoch;
        if initialize.is_empty() {
            return Ok(nothing(state_epoch));
        }
        share.altering(&named, crate::clock::now_ms());
        let written = self.write_share_group(&mut group)?;
        Ok(AlterPlan {
            topics: outcomes,
            state_epoch,
            initialize,
            written: self.pending_write(written, CoordinatorWrite::GroupRecords),
        })
    }

    /// DeleteShareGroupOffsets' first step (Kafka's `sharePartitionsEligibleForOffsetDeletion`):
    /// the requested topics with state move to the deleting ones.
    pub fn share_delete_offsets(
        &self,
        group_id: &str,
        names: &[String],
        topics: &TopicImage,
    ) -> Result<DeletePlan> {
        self.coordinating(group_id)?;
        let mut group = self
            .existing(group_id)?
            .ok_or_else(|| BrokerError::NoSuchGroup(format!("Group {group_id} not found.")))?;
        let share = empty_share(&mut group, group_id)?;
        let mut plan = DeletePlan {
            refused: Vec::new(),
            delete: Vec::new(),
            written: self.pending_write(None, CoordinatorWrite::GroupRecords),
        };
        if !share.has_state_metadata() {
            return Ok(plan);
        }
        for name in names {
            let Some(meta) = topics.get(name) else {
                plan.refused
                    .push((name.clone(), NothingToDelete::UnknownTopic));
                continue;
            };
            let sp = &mut share.state_partitions;
            if let Some(t) = sp.initialized.remove(&meta.id) {
                sp.deleting.insert(meta.id, name.clone());
                plan.delete.push((meta.id, name.clone(), t.partitions));
            } else if sp.deleting.contains_key(&meta.id) {
                // A deletion that failed before: every partition of the topic again.
                plan.delete
                    .push((meta.id, name.clone(), (0..meta.partitions).collect()));
            } else {
                plan.refused
                    .push((name.clone(), NothingToDelete::NoOffsets));
            }
        }
        let written = self.write_share_group(&mut group)?;
        plan.written = self.pending_write(written, CoordinatorWrite::GroupRecords);
        Ok(plan)
    }

    /// The share coordinator deleted the state of these topics (Kafka's
    /// `completeDeleteShareGroupOffsets`): they are no longer deleting.
    pub fn share_offsets_deleted(
        &self,
        group_id: &str,
        deleted: &BTreeSet<TopicId>,
    ) -> Result<PendingCommit> {
        let none = || self.pending_write(None, CoordinatorWrite::GroupRecords);
        let Some(mut group) = self.existing(group_id)? else {
            return Ok(none());
        };
        let Some(share) = group.share.as_mut() else {
            return Ok(none());
        };
        share
            .state_partitions
            .deleting
            .retain(|id, _| !deleted.contains(id));
        let written = self.write_share_group(&mut group)?;
        Ok(self.pending_write(written, CoordinatorWrite::GroupRecords))
    }

    /// Topics were deleted: every share group coordinated here forgets them. Nobody waits
    /// for the records; one that is lost leaves the topics to the next deletion's cleanup
    /// (their ids never come back).
    pub fn share_topics_deleted(&self, ids: &BTreeSet<TopicId>) {
        if ids.is_empty() {
            return;
        }
        let groups = self.groups.read().all();
        for group in groups {
            let mut group = group.lock_arc();
            if group.state == GroupState::Dead {
                continue;
            }
            let Some(share) = group.share.as_mut() else {
                continue;
            };
            if !share.topics_deleted(ids) {
                continue;
            }
            tracing::info!(group = %share.id, "deleted topics left the share group");
            if let Err(err) = self.write_share_group(&mut group) {
                tracing::warn!(group = %group.id, "cannot record deleted topics of a share group: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, partitions: &[i32]) -> TopicPartitions {
        TopicPartitions {
            name: name.to_owned(),
            partitions: partitions.iter().copied().collect(),
        }
    }

    #[test]
    fn altering_makes_partitions_initializing_and_stops_a_deletion() {
        let (a, b) = (TopicId::from_u128(1), TopicId::from_u128(2));
        let mut group = ShareGroup::new("g");
        group
            .state_partitions
            .initialized
            .insert(a, named("a", &[0, 1]));
        group.state_partitions.deleting.insert(b, "b".to_owned());
        let altered = BTreeMap::from([
            (a, ("a".to_owned(), BTreeSet::from([1]))),
            (b, ("b".to_owned(), BTreeSet::from([0]))),
        ]);
        group.altering(&altered, 5);
        let sp = &group.state_partitions;
        assert_eq!(sp.initializing[&a], named("a", &[1]));
        assert_eq!(sp.initializing[&b], named("b", &[0]));
        // Still initialized until the share coordinator answers.
        assert_eq!(sp.initialized[&a], named("a", &[0, 1]));
        assert!(sp.deleting.is_empty());
        assert!(group.has_state_metadata());
    }

    #[test]
    fn a_deleted_topic_leaves_every_list_and_others_stay() {
        let (a, b, c) = (
            TopicId::from_u128(1),
            TopicId::from_u128(2),
            TopicId::from_u128(3),
        );
        let mut group = ShareGroup::new("g");
        assert!(!group.has_state_metadata());
        let sp = &mut group.state_partitions;
        sp.initialized.insert(a, named("a", &[0]));
        sp.initializing.insert(a, named("a", &[1]));
        sp.deleting.insert(b, "b".to_owned());
        sp.initialized.insert(c, named("c", &[0]));
        assert!(group.topics_deleted(&BTreeSet::from([a, b])));
        let sp = &group.state_partitions;
        assert_eq!(sp.initialized.keys().collect::<Vec<_>>(), vec![&c]);
        assert!(sp.initializing.is_empty() && sp.deleting.is_empty());
        assert!(!group.topics_deleted(&BTreeSet::from([a])));
    }
}
