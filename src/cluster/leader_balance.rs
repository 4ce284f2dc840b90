//! The active controller's auto leader rebalance (Kafka's `auto.leader.rebalance.enable`):
//! after failures leadership gathers on the brokers that stayed up; once a broker is back in
//! sync, the partitions it is the preferred (first) replica of go back to it, so load spreads
//! again. A broker is rebalanced when more than `leader_imbalance_per_broker_percentage` of
//! the partitions it prefers are led elsewhere, as Kafka decides it. Each round is
//! `MetadataNode::rebalance_leaders`, which moves leadership only to brokers the controller
//! has heard from and only while a quorum confirms it leads; this is the clock.

use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::MetadataNode;
use tokio::sync::watch;

pub async fn rebalance(
    node: Arc<MetadataNode>,
    every: Duration,
    percentage: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match node.rebalance_leaders(percentage).await {
            Ok(moved) if !moved.is_empty() => {
                tracing::info!(
                    partitions = moved.len(),
                    "leadership moved back to preferred replicas"
                )
            }
            Ok(_) => {}
            // A lost quorum or leadership: the next round, wherever it runs, looks again.
            Err(err) => tracing::info!("no leader rebalance this round: {err}"),
        }
    }
}
