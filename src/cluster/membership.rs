//! The broker's side of membership: register with the quorum, then heartbeat to the active
//! controller for as long as the process runs, registering again when the controller asks.

use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::features::{self, FeatureCommand};
use samsa_metadata::{Command, CommandResult, Error, HeartbeatReply, MetadataNode};
use tokio::sync::watch;

/// What this broker announces about itself.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Larger on every process start, so the quorum tells a restart from a retried request.
    pub incarnation: u64,
    /// The registration epoch the previous process stopped cleanly at, if it did.
    pub previous_epoch: Option<u64>,
    /// This broker's configured `min.insync.replicas`, recorded as the cluster's.
    pub min_insync_replicas: u32,
    /// The URL of this broker's schema registry listener, when it runs one.
    pub registry_url: Option<String>,
}

impl Registration {
    fn command(&self) -> Command {
        Command::RegisterBroker {
            id: self.id,
            host: self.host.clone(),
            port: self.port,
            rack: self.rack.clone(),
            incarnation: self.incarnation,
            previous_epoch: self.previous_epoch,
            registry_url: self.registry_url.clone(),
        }
    }
}

/// Registers and heartbeats every `interval` until `shutdown` turns true.
pub async fn run(
    node: Arc<MetadataNode>,
    me: Registration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut epoch = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if epoch.is_none() {
            // Until a quorum exists this fails; the next tick tries again (it is idempotent).
            epoch = register(&node, &me).await;
        }
        // The first heartbeat follows the registration at once: it is what unfences this
        // broker, and a single node would otherwise serve nothing for a whole interval.
        let Some(registered) = epoch else { continue };
        // Bounded by the interval: a heartbeat stuck on an unreachable old leader must not
        // delay the ones the new leader needs to keep this broker's session.
        let beat = tokio::time::timeout(interval, node.heartbeat(me.id, registered)).await;
        match beat {
            Ok(Ok(HeartbeatReply::Active)) => {}
            Ok(Ok(HeartbeatReply::Reregister)) => {
                tracing::info!(
                    epoch = registered,
                    "the controller asks this broker to register again"
                );
                epoch = None;
            }
            Ok(Err(e)) => tracing::debug!("heartbeat not delivered: {e}"),
            Err(_) => tracing::debug!("heartbeat unanswered within {interval:?}"),
        }
    }
}

async fn register(node: &MetadataNode, me: &Registration) -> Option<u64> {
    // A new cluster takes this binary's feature levels before its first broker registers,
    // so no broker serves clients before the levels are known. Only the first proposal
    // counts; a cluster that has levels keeps them.
    if node.metadata().borrow().features.is_none() {
        let levels = features::bootstrap_levels();
        let command = Command::Features(FeatureCommand::Bootstrap { levels });
        if let Err(e) = node.propose(command).await {
            tracing::debug!("feature levels not committed yet: {e}");
            return None;
        }
    }
    match node.propose(me.command()).await {
        Ok(CommandResult::BrokerRegistered { epoch }) => {
            tracing::info!(broker = me.id, epoch, "registered with the metadata quorum");
            record_min_insync_replicas(node, me.min_insync_replicas).await;
            Some(epoch)
        }
        Ok(other) => {
            tracing::error!("registration answered {other:?}");
            None
        }
        // Refused by the state machine (e.g. an older incarnation: the clock went back).
        Err(e @ Error::Command(_)) => {
            tracing::error!("registration refused: {e}");
            None
        }
        Err(e) => {
            tracing::debug!("registration not committed yet: {e}");
            None
        }
    }
}

/// Records this broker's `min.insync.replicas` as the cluster's, which the controller judges
/// eligible leader replicas against, when the metadata holds another (as Kafka writes its
/// controllers' static value as a cluster config when ELR is enabled). Every node should be
/// configured alike; the last to register wins.
async fn record_min_insync_replicas(node: &MetadataNode, value: u32) {
    if node.metadata().borrow().default_min_insync_replicas == Some(value) {
        return;
    }
    match node
        .propose(Command::SetDefaultMinInsyncReplicas { value })
        .await
    {
        Ok(_) => tracing::info!(value, "recorded the cluster's min.insync.replicas"),
        Err(e) => tracing::warn!("cannot record the cluster's min.insync.replicas: {e}"),
    }
}
