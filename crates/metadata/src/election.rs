//! Leader elections asked for by an operator or the active controller, besides the ones that
//! fencing makes: the preferred leader (the first replica) taking back its partitions once it
//! is in sync again, as Kafka's auto leader rebalance and ElectLeaders do, and an unclean
//! election, which gives a partition without any in-sync replica alive a leader outside the
//! ISR at the price of the records only the lost replicas had.

use crate::elr::PartitionChange;
use crate::state::{
    is_unfenced, BrokerId, ClusterMetadata, CommandError, CommandResult, NO_LEADER,
};

/// A partition by topic name and index.
pub type TopicPartition = (String, u32);

impl ClusterMetadata {
    /// The first replica leads again, if it is unfenced and in the ISR.
    pub(crate) fn elect_preferred_leader(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<CommandResult, CommandError> {
        let preferred = self.preferred_leader_target(topic, partition)?;
        let p = self.partition_mut(topic, partition)?;
        p.leader = preferred;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        Ok(CommandResult::LeaderElected { leader: preferred })
    }

    /// The broker a preferred leader election of the partition would make its leader, or why
    /// it would make none: what applying one decides, and what the active controller checks
    /// first against the brokers it knows alive.
    pub(crate) fn preferred_leader_target(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<BrokerId, CommandError> {
        let unknown_partition = || CommandError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        };
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| CommandError::UnknownTopic(topic.to_string()))?;
        let p = t
            .partitions
            .get(partition as usize)
            .ok_or_else(unknown_partition)?;
        let preferred = p.replicas[0];
        if p.leader == preferred {
            return Err(CommandError::ElectionNotNeeded);
        }
        if !p.isr.contains(&preferred) || !is_unfenced(&self.brokers, preferred) {
            return Err(CommandError::PreferredLeaderNotAvailable(preferred));
        }
        Ok(preferred)
    }

    /// A partition without a leader takes one: an unfenced ISR member, else (KIP-966) an
    /// unfenced ELR member or its last known leader, which are clean elections, else the first
    /// unfenced replica, whose ISR becomes that replica alone. A partition with a leader needs
    /// no election.
    pub(crate) fn elect_unclean_leader(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<CommandResult, CommandError> {
        let brokers = self.brokers.clone();
        let change = PartitionChange {
            elr_enabled: self.elr_enabled(),
            min_isr: self.effective_min_isr(topic),
            acceptable: &|r| is_unfenced(&brokers, r),
            unclean_shutdown: None,
            unclean_election: true,
        };
        let p = self.partition_mut(topic, partition)?;
        if p.leader != NO_LEADER {
            return Err(CommandError::ElectionNotNeeded);
        }
        let before = p.clone();
        p.settle(&before, &change);
        if p.leader == NO_LEADER {
            return Err(CommandError::NoAvailableReplica(p.replicas.clone()));
        }
        Ok(CommandResult::LeaderElected { leader: p.leader })
    }

    /// Per broker: how many partitions it is the preferred leader of, and those of them led
    /// elsewhere while it could lead them: what an auto leader rebalance would move.
    pub fn preferred_leader_imbalance(&self) -> Vec<(BrokerId, usize, Vec<TopicPartition>)> {
        let mut by_broker: std::collections::BTreeMap<BrokerId, (usize, Vec<TopicPartition>)> =
            Default::default();
        for topic in self.topics.values() {
            for (index, p) in topic.partitions.iter().enumerate() {
                let preferred = p.replicas[0];
                let entry = by_broker.entry(preferred).or_default();
                entry.0 += 1;
                if p.leader != preferred
                    && p.isr.contains(&preferred)
                    && is_unfenced(&self.brokers, preferred)
                {
                    entry.1.push((topic.name.clone(), index as u32));
                }
            }
        }
        by_broker
            .into_iter()
            .map(|(broker, (preferred_of, movable))| (broker, preferred_of, movable))
            .collect()
    }
}
