//! KIP-853's dynamic quorum, on the leader: controllers joining as observers, and voters
//! added (AddRaftVoter) and removed (RemoveRaftVoter) with the checks, order and words of
//! Kafka's `AddVoterHandler` and `RemoveVoterHandler`.
//!
//! openraft keeps the voter set in its log (membership entries), as Kafka keeps it in
//! VotersRecords; a change is one joint-consensus round. An observer is an openraft learner:
//! the leader only replicates to nodes in the membership, so a controller that starts with
//! `controller_quorum_bootstrap_servers` asks the leader to add it as one (`join`), where a
//! Kafka observer simply fetches. A removed voter stays a learner, as a removed Kafka voter
//! goes on fetching as an observer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::features::{FinalizedFeatures, KRAFT_VERSION};
use crate::raft::network::PeerClient;
use crate::raft::rpc::{ProposeRefused, Request, Response};
use crate::raft::{ControllerNode, NodeId, Raft};

/// How often a controller checks that the membership records it as it is (its address and
/// directory id), asking the leader to when it does not.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(500);

/// How long the leader waits for a new voter's controller listener to accept a connection
/// (Kafka sends it an ApiVersions first).
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// A voter change asked of the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    Add {
        id: NodeId,
        directory_id: Uuid,
        /// The new voter's controller listener, `host:port`.
        addr: String,
    },
    Remove {
        id: NodeId,
        directory_id: Uuid,
    },
    /// UnregisterController: an observer leaves the membership (the leader stops sending it
    /// the log); a voter stays.
    Unregister {
        id: NodeId,
    },
}

/// Why the leader did not make a voter change: Kafka's error and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct VoterChangeRefused {
    pub reason: VoterChangeReason,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChangeReason {
    RequestTimedOut,
    UnsupportedVersion,
    DuplicateVoter,
    VoterNotFound,
    InvalidRequest,
    /// UnregisterController of a controller the membership does not hold.
    NotRegistered,
}

fn refused(reason: VoterChangeReason, message: impl Into<String>) -> VoterChangeRefused {
    VoterChangeRefused {
        reason,
        message: message.into(),
    }
}

/// Kafka's `ReplicaKey` as its messages print it.
pub struct ReplicaKey(pub NodeId, pub Option<Uuid>);

impl fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.1.map_or("<undefined>".to_string(), kafka_uuid);
        write!(f, "ReplicaKey(id={}, directoryId={dir})", self.0)
    }
}

/// A Kafka `Uuid` as Kafka prints it: URL-safe base64 of its 16 bytes, unpadded.
pub fn kafka_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn voter_keys(voters: &BTreeMap<NodeId, ControllerNode>) -> String {
    let keys: Vec<String> = voters
        .iter()
        .map(|(&id, node)| ReplicaKey(id, node.directory_id).to_string())
        .collect();
    format!("[{}]", keys.join(", "))
}

/// The leader's side of voter changes: one at a time, as Kafka's leader allows.
#[derive(Default)]
pub struct Reconfiguration {
    pending: Mutex<()>,
}

impl Reconfiguration {
    /// Makes `change` if this node leads and Kafka's checks let it through. `Err(Ok(_))` is a
    /// refusal to answer the client with; `Err(Err(_))` means this node cannot decide.
    pub async fn change(
        &self,
        raft: &Raft,
        features: Option<&FinalizedFeatures>,
        change: VoterChange,
    ) -> Result<(), Result<VoterChangeRefused, ProposeRefused>> {
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            return Err(Err(ProposeRefused::NotLeader {
                leader: m.current_leader,
            }));
        }
        let Ok(_pending) = self.pending.try_lock() else {
            return Err(Ok(refused(
                VoterChangeReason::RequestTimedOut,
                "Request timed out waiting for leader to handle previous voter change request",
            )));
        };
        if let VoterChange::Unregister { id } = change {
            let membership = m.membership_config.membership();
            if membership.get_node(&id).is_none() {
                return Err(Ok(refused(
                    VoterChangeReason::NotRegistered,
                    format!("Controller ID {id} is not currently registered."),
                )));
            }
            if membership.voter_ids().any(|v| v == id) {
                return Ok(());
            }
            return commit(raft, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await;
        }
        // Kafka's high watermark is known once the leader committed an entry of its own epoch.
        let applied = m.last_applied;
        let Some(hwm) = applied
            .filter(|l| l.leader_id.term == m.current_term)
            .map(|l| l.index + 1)
        else {
            return Err(Ok(refused(
                VoterChangeReason::RequestTimedOut,
                "Request timed out waiting for leader to establish HWM and fence previous voter \
                 changes",
            )));
        };
        let level = features.map_or(0, |f| f.level(KRAFT_VERSION));
        if level < 1 {
            let verb = match change {
                VoterChange::Add { .. } => "adding",
                _ => "removing",
            };
            return Err(Ok(refused(
                VoterChangeReason::UnsupportedVersion,
                format!(
                    "Cluster doesn't support {verb} voter because the {KRAFT_VERSION} feature \
                     is {level}"
                ),
            )));
        }
        let membership = m.membership_config.clone();
        let uncommitted = membership.log_id().map(|l| l.index) > applied.map(|l| l.index);
        if uncommitted || membership.membership().get_joint_config().len() > 1 {
            return Err(Ok(refused(
                VoterChangeReason::RequestTimedOut,
                format!(
                    "Request timed out waiting for voters to commit the latest voter change at \
                     Optional[{}] with HWM {hwm}",
                    membership.log_id().map_or(0, |l| l.index)
                ),
            )));
        }
        let nodes: BTreeMap<NodeId, ControllerNode> = membership
            .nodes()
            .map(|(&id, node)| (id, node.clone()))
            .collect();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let voters: BTreeMap<NodeId, ControllerNode> = nodes
            .iter()
            .filter(|(id, _)| voter_ids.contains(id))
            .map(|(&id, n)| (id, n.clone()))
            .collect();
        match change {
            VoterChange::Add {
                id,
                directory_id,
                addr,
            } => {
                let key = ReplicaKey(id, Some(directory_id));
                if voters.contains_key(&id) {
                    return Err(Ok(refused(
                        VoterChangeReason::DuplicateVoter,
                        format!(
                            "The voter id for {key} is already part of the set of voters {}.",
                            voter_keys(&voters)
                        ),
                    )));
                }
                let reachable = tokio::time::timeout(REACH_TIMEOUT, TcpStream::connect(&addr))
                    .await
                    .is_ok_and(|c| c.is_ok());
                if !reachable {
                    // Kafka's words when its ApiVersions finds nobody listening.
                    return Err(Ok(refused(
                        VoterChangeReason::RequestTimedOut,
                        "Aborted add voter operation for since API_VERSIONS returned an error \
                         BROKER_NOT_AVAILABLE",
                    )));
                }
                // Peers keep reaching it where it joined from (its `controller_listen`), which
                // may be spelled otherwise in the request (a name, another interface).
                let observer = nodes
                    .get(&id)
                    .filter(|n| n.directory_id == Some(directory_id));
                let last = m.last_log_index;
                let caught_up = observer.is_some()
                    && m.replication.as_ref().is_some_and(|r| {
                        r.get(&id)
                            .is_some_and(|matched| matched.map(|l| l.index) >= last)
                    });
                if !caught_up {
                    return Err(Ok(refused(
                        VoterChangeReason::RequestTimedOut,
                        format!("Aborted add voter operation for {key} since it is lagging behind"),
                    )));
                }
                commit(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await
            }
            VoterChange::Remove { id, directory_id } => {
                let key = ReplicaKey(id, Some(directory_id));
                let found = voters
                    .get(&id)
                    .is_some_and(|n| n.directory_id == Some(directory_id));
                if !found || voters.len() == 1 {
                    return Err(Ok(refused(
                        VoterChangeReason::VoterNotFound,
                        format!(
                            "Cannot remove voter {key} from the set of voters {}",
                            voter_keys(&voters)
                        ),
                    )));
                }
                commit(raft, ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
                if id == m.id {
                    resign(raft);
                }
                Ok(())
            }
            VoterChange::Unregister { .. } => Ok(()),
        }
    }

    /// Records controller `id` at `node` in the membership: as an observer (a learner the
    /// leader replicates to) if it is not there, or with its directory id if it is a voter
    /// recorded before directory ids were kept. A voter recorded with another directory id
    /// is another copy of that node's log: it is refused, as Kafka treats it as an observer
    /// only.
    pub async fn join(
        &self,
        raft: &Raft,
        id: NodeId,
        node: ControllerNode,
    ) -> Result<(), ProposeRefused> {
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            return Err(ProposeRefused::NotLeader {
                leader: m.current_leader,
            });
        }
        let membership = m.membership_config.membership().clone();
        let is_voter = membership.voter_ids().any(|v| v == id);
        let change = match membership.get_node(&id) {
            Some(known) if *known == node => return Ok(()),
            Some(known) if is_voter && known.directory_id.is_some() => {
                return Err(ProposeRefused::Unavailable(format!(
                    "controller {id} is a voter with directory id {}, not {}",
                    known.directory_id.map(kafka_uuid).unwrap_or_default(),
                    node.directory_id.map(kafka_uuid).unwrap_or_default()
                )));
            }
            Some(_) => ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
            None => ChangeMembers::AddNodes(BTreeMap::from([(id, node)])),
        };
        let Ok(_pending) = self.pending.try_lock() else {
            return Err(ProposeRefused::Unavailable(
                "a voter change is in progress".into(),
            ));
        };
        match raft.change_membership(change, true).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ProposeRefused::Unavailable(e.to_string())),
        }
    }
}

/// How long a leader that removed itself stays silent for the voters to elect one of them
/// before it speaks again (it is then still leading only if they could not).
const RESIGN_TIMEOUT: Duration = Duration::from_secs(30);

/// A leader that removed itself resigns, as Kafka's does. openraft 0.9 has no call for it:
/// it lets a leader lead on as a non-voter (safely: its commits need a majority of the new
/// voters) and never steps down by itself. So it stops its heartbeats, and takes no writes
/// (see `server::propose_locally`): the voters hear nothing, elect one of them, and the new
/// leader's first message makes this node a follower of the log (an observer). Heartbeats
/// come back on then, for whenever this node leads again.
pub fn resign(raft: &Raft) {
    tracing::info!("this controller left the voters: resigning the leadership");
    raft.runtime_config().heartbeat(false);
    let raft = raft.clone();
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let me = metrics.borrow().id;
        let succeeded = metrics.wait_for(|m| m.current_leader != Some(me));
        if tokio::time::timeout(RESIGN_TIMEOUT, succeeded)
            .await
            .is_err()
        {
            tracing::warn!("no other voter took the leadership; leading on");
        }
        raft.runtime_config().heartbeat(true);
    });
}

/// Whether this node leads without being a voter: it removed itself and is resigning.
pub fn resigning(raft: &Raft) -> bool {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    m.current_leader == Some(m.id)
        && !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == m.id)
}

/// Where controller `id` listens, as this node's membership records it.
pub(crate) fn address_of(raft: &Raft, id: NodeId) -> Option<String> {
    let m = raft.metrics().borrow().clone();
    let node = m.membership_config.membership().get_node(&id)?.clone();
    Some(node.addr)
}

/// Keeps this controller recorded in the membership as `me`: a joining controller asks to
/// follow the log as an observer, and a voter recorded before directory ids were kept adds its
/// own (which kraft.version 1 needs). Asks the leader, or while none is known each seed in
/// turn, which pass it on to the leader they know. Runs until aborted.
pub(crate) async fn announce(
    id: NodeId,
    me: ControllerNode,
    raft: Raft,
    reconfiguration: Arc<Reconfiguration>,
    seeds: Vec<(Option<NodeId>, SocketAddr)>,
    timeout: Duration,
) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_seed = 0;
    let mut told = false;
    loop {
        tick.tick().await;
        let (recorded, leader) = {
            let m = raft.metrics().borrow().clone();
            let node = m.membership_config.membership().get_node(&id).cloned();
            (node == Some(me.clone()), m.current_leader)
        };
        if recorded {
            if !told {
                tracing::info!(
                    controller = id,
                    "recorded in the metadata quorum's membership"
                );
                told = true;
            }
            continue;
        }
        told = false;
        let outcome = match leader {
            Some(leader) if leader == id => reconfiguration.join(&raft, id, me.clone()).await,
            _ => {
                let target = leader
                    .and_then(|l| address_of(&raft, l).map(|a| (l, a)))
                    .or_else(|| {
                        let (seed_id, addr) = seeds.get(next_seed % seeds.len().max(1))?;
                        next_seed += 1;
                        Some((seed_id.unwrap_or(0), addr.to_string()))
                    });
                let Some((target, addr)) = target else {
                    continue;
                };
                let request = Request::Join {
                    id,
                    node: me.clone(),
                };
                match PeerClient::new(target, addr).call(&request, timeout).await {
                    Ok(Response::Join(answer)) => answer,
                    Ok(_) => Err(ProposeRefused::Unavailable("a different answer".into())),
                    Err(_) => Err(ProposeRefused::Unavailable("unreachable".into())),
                }
            }
        };
        if let Err(e) = outcome {
            tracing::debug!(controller = id, "not recorded in the membership yet: {e:?}");
        }
    }
}

async fn commit(
    raft: &Raft,
    change: ChangeMembers<NodeId, ControllerNode>,
) -> Result<(), Result<VoterChangeRefused, ProposeRefused>> {
    match raft.change_membership(change, true).await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            Err(Err(ProposeRefused::NotLeader {
                leader: to.leader_id,
            }))
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        ))) => Err(Ok(refused(
            VoterChangeReason::RequestTimedOut,
            "Request timed out waiting for leader to handle previous voter change request",
        ))),
        Err(e) => Err(Err(ProposeRefused::Unavailable(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_as_kafka_prints_them() {
        assert_eq!(kafka_uuid(Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = Uuid::from_bytes([0xff; 16]);
        assert_eq!(kafka_uuid(id), "_____________________w");
        assert_eq!(
            ReplicaKey(3, Some(Uuid::nil())).to_string(),
            "ReplicaKey(id=3, directoryId=AAAAAAAAAAAAAAAAAAAAAA)"
        );
        assert_eq!(
            ReplicaKey(3, None).to_string(),
            "ReplicaKey(id=3, directoryId=<undefined>)"
        );
    }
}
