//! Broker sessions, kept by the active controller only: when each broker last heartbeated.
//!
//! Heartbeats are soft state and never enter the Raft log (they would fill it at one entry per
//! broker per interval). Only their consequences do: a broker's first heartbeat unfences it
//! (`UnfenceBroker`), and silence longer than the session timeout fences it (`FenceBroker`).
//! Since the times live in the leader's memory, a new leader starts every session afresh, so a
//! controller failover never fences a broker that kept heartbeating.
//!
//! That fresh start is leniency, not evidence: a broker is known *live* only once it has
//! heartbeated to this controller in its current term, within the session timeout. Preferred
//! leader elections (the auto leader rebalance's, and ElectLeaders') go only to live brokers,
//! since a broker that died stays unfenced in the metadata until its fence commits, which
//! takes a session timeout, or forever without a quorum.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::raft::rpc::ProposeRefused;
use crate::raft::server::{confirm_leadership, propose_locally};
use crate::raft::{NodeId, Raft};
use crate::state::{BrokerId, ClusterMetadata, Command, CommandError};

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

/// The sessions of the term this node leads in (see `BrokerSessions::sessions`).
#[derive(Default)]
struct Sessions {
    /// The term this node leads in, while it does; a new term means fresh sessions.
    led_term: Option<u64>,
    /// What fencing is decided on: each broker's last heartbeat, or the start of the term if
    /// that is later.
    last_heard: HashMap<BrokerId, Instant>,
    /// What liveness is decided on: the last heartbeat actually received in the term (and
    /// answered `Active`).
    heartbeats: HashMap<BrokerId, Instant>,
    /// Set by `expire`; without it nothing is fenced for silence and liveness is not judged.
    timeout: Option<Duration>,
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
        let (leader, term) = self.leader_and_term();
        if leader != Some(self.node_id) {
            return Err(ProposeRefused::NotLeader { leader });
        }
        let now = Instant::now();
        self.sessions().0.last_heard.insert(broker, now);
        let reply = self.answer_heartbeat(broker, epoch).await?;
        let (mut sessions, led_term) = self.sessions();
        if reply == HeartbeatReply::Active && led_term == Some(term) {
            sessions.heartbeats.insert(broker, now);
        }
        Ok(reply)
    }

    async fn answer_heartbeat(
        &self,
        broker: BrokerId,
        epoch: u64,
    ) -> Result<HeartbeatReply, ProposeRefused> {
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

    /// Whether this node leads and `broker` heartbeated to it in its current term within
    /// `within`. A new term's fresh sessions do not count: they keep a failover from fencing
    /// anyone, but say nothing of who is alive.
    pub fn heard_recently(&self, broker: BrokerId, within: Duration) -> bool {
        let (sessions, led_term) = self.sessions();
        led_term.is_some()
            && sessions
                .heartbeats
                .get(&broker)
                .is_some_and(|at| at.elapsed() <= within)
    }

    /// Whether this controller knows `broker` to be alive: heard from within the session
    /// timeout (`heard_recently`). Where sessions are not kept (no `expire`, as in
    /// quorum-only use) the committed metadata alone decides, as before sessions existed.
    pub fn is_live(&self, broker: BrokerId) -> bool {
        let timeout = self.lock().timeout;
        timeout.is_none_or(|timeout| self.heard_recently(broker, timeout))
    }

    /// Why this controller refuses, before logging it, a preferred leader election: its
    /// preferred replica is not known live (`is_live`). First it confirms with a quorum that
    /// it still leads and has applied everything committed, so the check is not made on a
    /// stale view; a leader cut off from the others is refused here and logs nothing (its
    /// entry would otherwise wait in its log and commit whenever the quorum came back).
    /// `Ok(None)` lets the command through, for the state machine to decide.
    pub async fn refuse_election(
        &self,
        command: &Command,
    ) -> Result<Option<CommandError>, ProposeRefused> {
        let Command::ElectPreferredLeader { topic, partition } = command else {
            return Ok(None);
        };
        confirm_leadership(&self.raft).await?;
        let target = self
            .metadata
            .borrow()
            .preferred_leader_target(topic, *partition);
        Ok(match target {
            Ok(preferred) if !self.is_live(preferred) => {
                tracing::debug!(
                    broker = preferred,
                    topic,
                    partition,
                    "no election: the preferred replica has not heartbeated to this controller"
                );
                Some(CommandError::PreferredLeaderNotAvailable(preferred))
            }
            _ => None,
        })
    }

    /// Fences, while this node leads, every unfenced broker silent for longer than `timeout`.
    /// Runs until aborted.
    ///
    /// Each fence waits for its commit on its own: one that cannot commit (no quorum) must not
    /// hold back the fences of other silent brokers, or those would reach the log after
    /// whatever was proposed meanwhile (an election of one of them) and commit after it.
    pub async fn expire(self: Arc<Self>, timeout: Duration) {
        self.lock().timeout = Some(timeout);
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
        let metadata = self.metadata.borrow().clone();
        let (mut sessions, led_term) = self.sessions();
        if led_term.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
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

    /// The sessions, and the term this node leads in (`None` when it does not lead, and then
    /// no sessions). The first look in a new term starts every registered broker's session
    /// afresh and forgets the heartbeats of earlier terms.
    fn sessions(&self) -> (std::sync::MutexGuard<'_, Sessions>, Option<u64>) {
        let (leader, term) = self.leader_and_term();
        let metadata = self.metadata.borrow().clone();
        let mut sessions = self.lock();
        if leader != Some(self.node_id) {
            sessions.led_term = None;
            sessions.last_heard.clear();
            sessions.heartbeats.clear();
            return (sessions, None);
        }
        if sessions.led_term != Some(term) {
            let now = Instant::now();
            sessions.led_term = Some(term);
            sessions.last_heard = metadata.brokers.keys().map(|&id| (id, now)).collect();
            sessions.heartbeats.clear();
        }
        (sessions, Some(term))
    }

    fn leader_and_term(&self) -> (Option<NodeId>, u64) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        (m.current_leader, m.current_term)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
