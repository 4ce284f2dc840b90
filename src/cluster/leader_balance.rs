//! The active controller's auto leader rebalance (Kafka's `auto.leader.rebalance.enable`):
//! after failures leadership gathers on the brokers that stayed up; once a broker is back in
//! sync, the partitions it is the preferred (first) replica of go back to it, so load spreads
//! again. A broker is rebalanced when more than `leader_imbalance_per_broker_percentage` of
//! the partitions it prefers are led elsewhere, as Kafka decides it.

use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::{Command, MetadataNode};
use tokio::sync::watch;

pub async fn rebalance(node: Arc<MetadataNode>, every: Duration, percentage: u32, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if node.leader() != Some(node.id()) {
            continue;
        }
        let metadata = node.metadata().borrow().clone();
        for (broker, preferred_of, movable) in metadata.preferred_leader_imbalance() {
            let imbalanced = movable.len() as u64 * 100 > u64::from(percentage) * preferred_of as u64;
            if movable.is_empty() || !imbalanced {
                continue;
            }
            tracing::info!(broker, partitions = movable.len(), "moving leadership back to the preferred replica");
            for (topic, partition) in movable {
                // Refused when the metadata moved on meanwhile; the next round looks again.
                if let Err(err) = node.propose(Command::ElectPreferredLeader { topic, partition }).await {
                    tracing::debug!("preferred leader election not made: {err}");
                }
            }
        }
    }
}
