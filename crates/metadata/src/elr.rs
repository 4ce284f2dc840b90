//! Eligible leader replicas (KIP-966), and the leader and ISR changes they take part in.
//!
//! While a partition's ISR holds at least `min.insync.replicas` members no record is committed
//! without them, so a replica that leaves the ISR after it has fallen below that minimum still
//! has every committed record: it joins the partition's ELR and may lead again when the ISR is
//! empty, instead of the partition waiting for its last ISR member. Once the ISR is back at the
//! minimum the ELR is cleared. A broker that restarts without a clean shutdown may have lost
//! records it had acknowledged and leaves the ELR. When both ISR and ELR are empty, the leader
//! the partition had when its ISR emptied (the "last known ELR") is elected as soon as it is
//! back, as Kafka 4.4 does.
//!
//! [`Partition::settle`] mirrors Kafka 4.4's `PartitionChangeBuilder` (its
//! `maybePopulateTargetElr`, `electAnyLeader`, `maybeUpdateRecordElr` and
//! `maybeUpdateLastKnownLeader`), and the callers here its `ReplicationControlManager`
//! (`handleBrokerFenced`, `handleBrokerUnfenced`, `handleBrokerShutdown`, ClearElrRecord).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::features::ELR_VERSION;
use crate::state::{
    is_unfenced, BrokerId, ClusterMetadata, CommandError, CommandResult, Partition, NO_LEADER,
};

/// Kafka's default `min.insync.replicas`, for a cluster that has not recorded its own.
const DEFAULT_MIN_INSYNC_REPLICAS: u32 = 1;
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// How one partition change is decided.
pub(crate) struct PartitionChange<'a> {
    /// Whether KIP-966 is on (`eligible.leader.replicas.version` ≥ 1).
    pub elr_enabled: bool,
    /// The topic's effective `min.insync.replicas`, capped at its replication factor.
    pub min_isr: usize,
    /// Whether a replica may lead: alive, and not the broker being removed.
    pub acceptable: &'a dyn Fn(BrokerId) -> bool,
    /// A broker that restarted without a clean shutdown: it may not stay in the ELR.
    pub unclean_shutdown: Option<BrokerId>,
    /// An unclean election was asked for: any live replica may lead if no ISR or ELR member
    /// can.
    pub unclean_election: bool,
}

impl Partition {
    /// Completes a change: `self` holds the target ISR and replicas, `before` the partition as
    /// it was. Updates the ELR, elects a leader if the current one may not stay, keeps the
    /// last known leader, and bumps the epochs. Returns whether anything changed.
    pub(crate) fn settle(&mut self, before: &Partition, change: &PartitionChange) -> bool {
        let mut isr = std::mem::take(&mut self.isr);
        let mut elr = before.elr.clone();
        if change.elr_enabled {
            if isr.len() >= change.min_isr {
                elr.clear();
            } else {
                // Everyone in the ISR before the change who is not in it after: they left an
                // ISR already below the minimum, so they have all it committed.
                let candidates: BTreeSet<BrokerId> =
                    elr.iter().chain(&before.isr).copied().collect();
                elr = candidates
                    .into_iter()
                    .filter(|r| !isr.contains(r) && Some(*r) != change.unclean_shutdown)
                    .collect();
            }
        }
        let (leader, unclean) = self.choose_leader(before, &isr, &elr, change);
        let mut isr_forced = false;
        if leader != before.leader {
            if elr.contains(&leader) {
                // Led from the ELR: the new leader is the whole ISR, and leaves the ELR.
                isr = vec![leader];
                elr.retain(|&r| r != leader);
            }
            if unclean {
                isr = vec![leader];
                isr_forced = true;
            }
        }
        if isr_forced || !change.elr_enabled {
            elr.clear();
        }
        // Without ELR the last ISR member stays in the ISR, so that it can lead again.
        if !isr_forced && isr.is_empty() && !change.elr_enabled {
            isr = before.isr.clone();
        }
        let mut last_known = before.last_known_elr.clone();
        if change.elr_enabled {
            if isr.is_empty() && !before.isr.is_empty() {
                if last_known != [before.leader] {
                    last_known = vec![before.leader];
                }
            } else if leader != NO_LEADER {
                last_known.clear();
            }
        }
        self.isr = isr;
        self.elr = elr;
        self.last_known_elr = last_known;
        self.leader = leader;
        self.leader_epoch = before.leader_epoch + i32::from(leader != before.leader);
        self.partition_epoch = before.partition_epoch;
        let changed = *self != *before;
        if changed {
            self.partition_epoch += 1;
        }
        changed
    }

    /// Kafka's `electAnyLeader`: the current leader if it may stay, else the first replica in
    /// the ISR (or, with an empty ISR, in the ELR) that may lead, else the last known leader,
    /// else for an unclean election any live replica. The flag says the election was unclean.
    fn choose_leader(
        &self,
        before: &Partition,
        isr: &[BrokerId],
        elr: &[BrokerId],
        change: &PartitionChange,
    ) -> (BrokerId, bool) {
        let acceptable = change.acceptable;
        let valid = |r: BrokerId| {
            (isr.contains(&r) || (isr.is_empty() && elr.contains(&r))) && acceptable(r)
        };
        if before.leader != NO_LEADER && valid(before.leader) {
            return (before.leader, false);
        }
        if let Some(&r) = self.replicas.iter().find(|&&r| valid(r)) {
            return (r, false);
        }
        if change.elr_enabled
            && isr.is_empty()
            && elr.is_empty()
            && before.last_known_elr.len() == 1
            && acceptable(before.last_known_elr[0])
        {
            return (before.last_known_elr[0], true);
        }
        if change.unclean_election {
            if let Some(&r) = self.replicas.iter().find(|&&r| acceptable(r)) {
                return (r, true);
            }
        }
        (NO_LEADER, false)
    }
}

impl ClusterMetadata {
    /// Whether KIP-966 is on: the finalized `eligible.leader.replicas.version` is 1. Turned
    /// off, elections no longer add to the ELR, and each partition's ELR is dropped at its
    /// next change, as Kafka's builder does with the feature off.
    pub fn elr_enabled(&self) -> bool {
        self.features
            .as_ref()
            .is_some_and(|f| f.level(ELR_VERSION) >= 1)
    }

    /// `min.insync.replicas` for `topic`: its override, else the cluster's, capped at its
    /// replication factor (the first partition's, as Kafka counts it).
    pub(crate) fn effective_min_isr(&self, topic: &str) -> usize {
        let Some(t) = self.topics.get(topic) else {
            return 1;
        };
        let configured = t
            .configs
            .get(MIN_INSYNC_REPLICAS)
            .and_then(|v| v.parse::<u32>().ok())
            .or(self.default_min_insync_replicas)
            .unwrap_or(DEFAULT_MIN_INSYNC_REPLICAS) as usize;
        let replication = t.partitions.first().map_or(1, |p| p.replicas.len());
        configured.min(replication)
    }

    /// Applies `change` (built for each partition's topic) to every partition `affected`
    /// selects, after `target` has turned it into the target ISR and replicas. Returns how
    /// many partitions changed.
    fn change_partitions(
        &mut self,
        affected: impl Fn(&Partition) -> bool,
        target: impl Fn(&mut Partition),
        acceptable: impl Fn(BrokerId) -> bool,
        unclean_shutdown: Option<BrokerId>,
    ) -> usize {
        let elr_enabled = self.elr_enabled();
        let min_isr: BTreeMap<String, usize> = self
            .topics
            .keys()
            .map(|name| (name.clone(), self.effective_min_isr(name)))
            .collect();
        let mut changed = 0;
        for (name, topic) in self.topics.iter_mut() {
            // Only a topic with a partition to change is copied out of the shared state.
            if !topic.partitions.iter().any(&affected) {
                continue;
            }
            let topic = Arc::make_mut(topic);
            let change = PartitionChange {
                elr_enabled,
                min_isr: min_isr[name],
                acceptable: &acceptable,
                unclean_shutdown,
                unclean_election: false,
            };
            for p in topic.partitions.iter_mut().filter(|p| affected(p)) {
                let before = p.clone();
                target(p);
                changed += usize::from(p.settle(&before, &change));
            }
        }
        changed
    }

    /// Fenced or unregistered broker `id` leaves every ISR and leadership (Kafka's
    /// `handleBrokerFenced`); an unregistered one is also looked for in the ELRs. Returns how
    /// many partitions changed.
    pub(crate) fn move_away_from(&mut self, id: BrokerId, also_elr: bool) -> usize {
        let brokers = self.brokers.clone();
        self.change_partitions(
            |p| p.leader == id || p.isr.contains(&id) || (also_elr && p.elr.contains(&id)),
            |p| p.isr.retain(|&r| r != id),
            |r| r != id && is_unfenced(&brokers, r),
            None,
        )
    }

    /// Broker `id` came back without a clean shutdown: it leaves every ISR, ELR and
    /// leadership (Kafka's `handleBrokerUncleanShutdown`).
    pub(crate) fn broker_shut_down_uncleanly(&mut self, id: BrokerId) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = true;
        }
        let brokers = self.brokers.clone();
        self.change_partitions(
            |p| p.leader == id || p.isr.contains(&id) || p.elr.contains(&id),
            |p| p.isr.retain(|&r| r != id),
            |r| r != id && is_unfenced(&brokers, r),
            Some(id),
        );
    }

    /// Leaderless partitions try an election now that another broker is unfenced (Kafka's
    /// `handleBrokerUnfenced`). Returns how many got a leader.
    pub(crate) fn elect_leaderless(&mut self) -> usize {
        let brokers = self.brokers.clone();
        self.change_partitions(
            |p| p.leader == NO_LEADER,
            |_| {},
            |r| is_unfenced(&brokers, r),
            None,
        )
    }

    /// Replaces a topic's config overrides; a changed `min.insync.replicas` clears its
    /// partitions' ELRs, which were judged against the old minimum (Kafka's ClearElrRecord).
    pub(crate) fn alter_topic_configs(
        &mut self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<CommandResult, CommandError> {
        let t = self
            .topics
            .get_mut(topic)
            .map(Arc::make_mut)
            .ok_or_else(|| CommandError::UnknownTopic(topic.to_string()))?;
        let min_isr_changed =
            t.configs.get(MIN_INSYNC_REPLICAS) != configs.get(MIN_INSYNC_REPLICAS);
        t.configs = configs.clone();
        if min_isr_changed {
            clear_elr(t.partitions.iter_mut());
        }
        Ok(CommandResult::TopicConfigsAltered)
    }

    /// Records the cluster's `min.insync.replicas`; a change clears every ELR.
    pub(crate) fn set_default_min_insync_replicas(
        &mut self,
        value: u32,
    ) -> Result<CommandResult, CommandError> {
        if self.default_min_insync_replicas != Some(value) {
            self.default_min_insync_replicas = Some(value);
            self.clear_all_elr();
        }
        Ok(CommandResult::DefaultMinInsyncReplicasSet)
    }

    /// Empties every partition's ELR and last known ELR.
    pub(crate) fn clear_all_elr(&mut self) {
        // Only topics that hold an ELR are copied out of the shared state.
        let holds_elr = |p: &Partition| !p.elr.is_empty() || !p.last_known_elr.is_empty();
        clear_elr(
            self.topics
                .values_mut()
                .filter(|t| t.partitions.iter().any(holds_elr))
                .flat_map(|t| Arc::make_mut(t).partitions.iter_mut()),
        );
    }
}

/// Kafka's `removeTopicElrs`: partitions with an ELR or last known ELR lose both, which is a
/// change of the partition (its epoch grows).
fn clear_elr<'a>(partitions: impl Iterator<Item = &'a mut Partition>) {
    for p in partitions {
        if !p.elr.is_empty() || !p.last_known_elr.is_empty() {
            p.elr.clear();
            p.last_known_elr.clear();
            p.partition_epoch += 1;
        }
    }
}

#[cfg(test)]
#[path = "elr_tests.rs"]
mod tests;
