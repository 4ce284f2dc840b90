//! The leader's half of ISR maintenance: followers that stopped keeping up leave the ISR,
//! caught-up replicas join it, each change proposed to the controller as an AlterPartition
//! quoting the epochs it was computed under. The controller refuses a stale one (a deposed
//! leader's), and the accepted ISR comes back through the metadata like any change.

use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::{Command, CommandResult, Error, MetadataNode};
use tokio::sync::watch;

use super::reconciler::LedPartitions;
use crate::clock::now_ms;
use crate::topics::{IsrProposal, Partition};

/// How often a leader looks for followers to drop from or add to the ISR. Joining is what
/// a reassignment and a restarted broker wait for, so this is short; leaving waits for
/// `replica_lag_time_max_ms` anyway.
const CHECK_EVERY: Duration = Duration::from_millis(250);

pub async fn maintain(
    node: Arc<MetadataNode>,
    led: watch::Receiver<LedPartitions>,
    local: i32,
    max_lag: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Only the partitions led here: a broker of a large cluster leads a small share.
        let led = led.borrow().clone();
        let proposals = led.iter().filter_map(|partition| {
            let proposal = partition.isr_proposal(now_ms(), max_lag.as_millis() as i64)?;
            Some(propose(&node, partition.clone(), proposal, local))
        });
        // Concurrently: without a quorum each waits out the proposal timeout.
        futures_util::future::join_all(proposals).await;
    }
}

async fn propose(
    node: &MetadataNode,
    partition: Arc<Partition>,
    proposal: IsrProposal,
    local: i32,
) {
    let command = Command::AlterPartition {
        topic: partition.topic.clone(),
        partition: partition.index as u32,
        leader: local,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.isr.clone(),
    };
    match node.propose(command).await {
        Ok(CommandResult::PartitionAltered {
            partition_epoch, ..
        }) => tracing::info!(
            topic = %partition.topic,
            partition = partition.index,
            isr = ?proposal.isr,
            partition_epoch,
            "ISR changed"
        ),
        Ok(other) => tracing::warn!("AlterPartition answered {other:?}"),
        // Stale epochs: the metadata moved on and the next check works from it.
        Err(Error::Command(refused)) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, "ISR change refused: {refused}")
        }
        Err(err) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, "ISR change not committed: {err}")
        }
    }
}
