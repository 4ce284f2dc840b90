//! Broker sessions, kept by the active controller only: when each broker last heartbeated.
//!
//! Heartbeats are soft state and never enter the Raft log (they would fill it at one entry per
//! broker per interval). Only their consequences do: a broker's first heartbeat unfences it
//! (`UnfenceBroker`), and silence longer than the session timeout fences it (`FenceBroker`).
//! Since the times live in the leader's memory, a new leader starts every session afresh, so a
//! controller failover never fences a broker that kept heartbeating.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::raft::rpc::ProposeRefused;
use crate::raft::server::propose_locally;
use crate::raft::{NodeId, Raft};
use crate::state::{BrokerId, ClusterMetadata, Command};

/// The controller's answer to a broker heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    /// The broker is registered with this epoch and unfenced.
    Active,
    /// The controller knows no registration with this epoch (lost, or superseded): the broker
    /// must register again before its heartbeats count.
    Reregister,
}

pub struct BrokerSessions {
    node_id: NodeId,
    raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    last_heard: HashMap<BrokerId, Instant>,
    /// The term this node leads in, while it does; a new term means fresh sessions.
    led_term: Option<u64>,
}

impl BrokerSessions {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
    ) -> Self {
        BrokerSessions {
            node_id,
            raft,
            metadata,
            inner: Mutex::new(Sessions::default()),
        }
    }

    /// Records a heartbeat of `broker` at registration `epoch`, unfencing it if it is fenced.
    /// Refused with `NotLeader` unless this node leads the quorum.
    pub async fn heartbeat(
        &self,
        broker: BrokerId,
        epoch: u64,
    ) -> Result<HeartbeatReply, ProposeRefused> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader != Some(self.node_id) {
            return Err(ProposeRefused::NotLeader { leader });
        }
        self.lock().last_heard.insert(broker, Instant::now());
        let registered = self.metadata.borrow().brokers.get(&broker).cloned();
        match registered {
            Some(b) if b.epoch == epoch && !b.fenced => Ok(HeartbeatReply::Active),
            Some(b) if b.epoch == epoch => {
                match propose_locally(&self.raft, Command::UnfenceBroker { id: broker, epoch })
                    .await?
                    .0
                {
                    Some(Ok(_)) => {
                        tracing::info!(broker, epoch, "broker unfenced on its heartbeat");
                        Ok(HeartbeatReply::Active)
                    }
                    // Re-registered meanwhile: the heartbeat quoted a superseded epoch.
                    _ => Ok(HeartbeatReply::Reregister),
                }
            }
            _ => Ok(HeartbeatReply::Reregister),
        }
    }

    /// Fences, while this node leads, every unfenced broker silent for longer than `timeout`.
    /// Runs until aborted.
    ///
    /// Each fence waits for its commit on its own: one that cannot commit (no quorum) must not
    /// hold back the fences of other silent brokers, or those would reach the log after
    /// whatever was proposed meanwhile (an election of one of them) and commit after it.
    pub async fn expire(self: Arc<Self>, timeout: Duration) {
        let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(20)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Dropped with this task, which aborts the fences still waiting.
        let mut fences = JoinSet::new();
        let mut fencing = HashSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(done) = fences.join_next(), if !fences.is_empty() => {
                    if let Ok(id) = done {
                        fencing.remove(&id);
                    }
                    continue;
                }
            }
            for (id, epoch) in self.expired(timeout) {
                // Proposed already: it commits, or openraft refuses it, in its own time.
                if !fencing.insert(id) {
                    continue;
                }
                let raft = self.raft.clone();
                fences.spawn(async move {
                    let fence = Command::FenceBroker {
                        id,
                        epoch: Some(epoch),
                    };
                    match propose_locally(&raft, fence).await {
                        Ok(_) => tracing::warn!(
                            broker = id,
                            "broker fenced: no heartbeat within {timeout:?}"
                        ),
                        Err(e) => tracing::warn!(broker = id, "cannot fence silent broker: {e:?}"),
                    }
                    id
                });
            }
        }
    }

    /// The silent brokers, with the registration epoch they were silent in.
    fn expired(&self, timeout: Duration) -> Vec<(BrokerId, u64)> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        let metadata = self.metadata.borrow().clone();
        let mut sessions = self.lock();
        if leader != Some(self.node_id) {
            *sessions = Sessions::default();
            return Vec::new();
        }
        let now = Instant::now();
        if sessions.led_term != Some(term) {
            sessions.led_term = Some(term);
            sessions.last_heard = metadata.brokers.keys().map(|&id| (id, now)).collect();
        }
        metadata
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let heard = *sessions.last_heard.entry(b.id).or_insert(now);
                now.duration_since(heard) > timeout
            })
            .map(|b| (b.id, b.epoch))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
