//! Moving a partition's replicas (Kafka's AlterPartitionReassignments): the target replicas
//! join first, catch up as followers and enter the ISR through the leader's AlterPartition;
//! once all of them are in sync the replicas outside the target leave. Until then the
//! reassignment can be replaced by another target or cancelled.

use crate::state::{BrokerId, ClusterMetadata, CommandError, CommandResult, Partition};

impl ClusterMetadata {
    /// Adds the target replicas that are new to the replica set (they join the ISR through the
    /// leader's AlterPartition once caught up); replicas outside the target are dropped when
    /// every target replica is in the ISR, at once if that is already so.
    pub(crate) fn reassign_partition(
        &mut self,
        topic: &str,
        partition: u32,
        target: &[BrokerId],
    ) -> Result<CommandResult, CommandError> {
        self.check_replicas(target)?;
        let brokers = self.brokers.clone();
        let p = self.partition_mut(topic, partition)?;
        // A new target replaces one in progress; the replicas started from stay the same.
        let original = p.original_replicas();
        let mut replicas = target.to_vec();
        replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
        p.isr.retain(|r| replicas.contains(r));
        p.adding_replicas = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        p.replicas = replicas;
        p.target_replicas = target.to_vec();
        p.try_complete_reassignment();
        if !p.replicas.contains(&p.leader) {
            p.elect(&brokers, p.leader);
        }
        p.partition_epoch += 1;
        Ok(CommandResult::ReassignmentStarted {
            complete: p.target_replicas.is_empty(),
        })
    }

    /// Back to the replicas the reassignment started from; replicas it added leave the
    /// replica set and the ISR, and leadership moves if one of them led.
    pub(crate) fn cancel_reassignment(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<CommandResult, CommandError> {
        let brokers = self.brokers.clone();
        let p = self.partition_mut(topic, partition)?;
        if p.target_replicas.is_empty() {
            return Err(CommandError::NoReassignmentInProgress {
                topic: topic.to_string(),
                partition,
            });
        }
        p.replicas = p.original_replicas();
        let replicas = &p.replicas;
        p.isr.retain(|r| replicas.contains(r));
        p.target_replicas.clear();
        p.adding_replicas.clear();
        if !p.replicas.contains(&p.leader) {
            p.elect(&brokers, p.leader);
        }
        p.partition_epoch += 1;
        Ok(CommandResult::ReassignmentCancelled)
    }
}

impl Partition {
    /// Finishes a reassignment once every target replica is in sync: the removed replicas leave
    /// the replica set and the ISR. The caller elects a new leader if the leader was one of
    /// them.
    pub(crate) fn try_complete_reassignment(&mut self) {
        if self.target_replicas.is_empty()
            || !self.target_replicas.iter().all(|r| self.isr.contains(r))
        {
            return;
        }
        self.replicas = std::mem::take(&mut self.target_replicas);
        self.adding_replicas.clear();
        let replicas = &self.replicas;
        self.isr.retain(|r| replicas.contains(r));
    }

    /// The replicas before the reassignment in progress (all of them when none is).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        let adding = &self.adding_replicas;
        self.replicas
            .iter()
            .copied()
            .filter(|r| !adding.contains(r))
            .collect()
    }

    /// Replicas a reassignment in progress will remove.
    pub fn removing_replicas(&self) -> Vec<BrokerId> {
        if self.target_replicas.is_empty() {
            return Vec::new();
        }
        let target = &self.target_replicas;
        self.replicas
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect()
    }
}
