//! What the leader knows of each voter's progress, as Kafka's DescribeQuorum reports it
//! (KIP-595, KIP-836): each voter's log end offset, when it last fetched and when it was
//! last caught up with the leader. openraft tracks the entries each follower has matched;
//! the times are kept here: `contacts` is told of every AppendEntries (heartbeats included)
//! a follower answers, and the tracker notes when a follower's matched entry reached the
//! leader's last one.
//!
//! Offsets are Raft log indexes, exclusive at the end as Kafka's are: a log end offset or
//! high watermark of N means entries below N.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::raft::{NodeId, Raft};

/// The quorum as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: NodeId,
    /// The Raft term, which is what Kafka calls the leader epoch of the metadata log.
    pub leader_epoch: u64,
    pub high_watermark: i64,
    pub voters: Vec<VoterProgress>,
    /// Controllers that follow the log without voting (KIP-853's observers: joining
    /// controllers, and removed voters still running).
    #[serde(default)]
    pub observers: Vec<VoterProgress>,
    /// Where each voter's controller listens, `host:port`, as the membership records it.
    #[serde(default)]
    pub addresses: Vec<(NodeId, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterProgress {
    pub id: NodeId,
    /// `None` for a voter recorded before directory ids were kept, until it announces its own.
    #[serde(default)]
    pub directory_id: Option<Uuid>,
    /// -1: not known yet (Kafka's answer for a voter that has not fetched).
    pub log_end_offset: i64,
    /// Milliseconds since the epoch; -1: never.
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// When each follower last answered the leader's AppendEntries.
#[derive(Debug, Default)]
pub struct Contacts {
    answered_ms: Mutex<BTreeMap<NodeId, i64>>,
}

impl Contacts {
    pub fn answered(&self, follower: NodeId) {
        let mut answered = self.answered_ms.lock().unwrap_or_else(|e| e.into_inner());
        answered.insert(follower, now_ms());
    }

    fn last(&self, follower: NodeId) -> Option<i64> {
        let answered = self.answered_ms.lock().unwrap_or_else(|e| e.into_inner());
        answered.get(&follower).copied()
    }
}

/// Each follower's progress while this node leads.
pub struct QuorumProgress {
    contacts: Arc<Contacts>,
    caught_up_ms: Mutex<BTreeMap<NodeId, i64>>,
}

impl QuorumProgress {
    pub fn new(contacts: Arc<Contacts>) -> QuorumProgress {
        QuorumProgress {
            contacts,
            caught_up_ms: Mutex::new(BTreeMap::new()),
        }
    }

    /// Notes, at every change of the Raft metrics, the followers that have matched the
    /// leader's last entry. Runs until the Raft stops.
    pub async fn track(self: Arc<Self>, raft: Raft) {
        let mut metrics = raft.metrics();
        loop {
            {
                let m = metrics.borrow_and_update();
                if let (Some(replication), Some(last)) = (&m.replication, m.last_log_index) {
                    let now = now_ms();
                    let mut caught_up = self.caught_up_ms.lock().unwrap_or_else(|e| e.into_inner());
                    for (&id, matched) in replication.iter() {
                        if matched.is_some_and(|l| l.index >= last) {
                            caught_up.insert(id, now);
                        }
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// The quorum from `raft`'s view; `None` unless this node leads.
    pub fn describe(&self, raft: &Raft, me: NodeId) -> Option<QuorumDescription> {
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(me) {
            return None;
        }
        let replication = m.replication.as_ref()?;
        let end = |index: Option<u64>| index.map_or(-1, |i| i as i64 + 1);
        let now = now_ms();
        let leader_end = end(m.last_log_index);
        let caught_up = self.caught_up_ms.lock().unwrap_or_else(|e| e.into_inner());
        let membership = m.membership_config.membership();
        let directory = |id: NodeId| membership.get_node(&id).and_then(|n| n.directory_id);
        let mut voters = vec![];
        let mut observers = vec![];
        if membership.voter_ids().any(|v| v == me) {
            voters.push(VoterProgress {
                id: me,
                directory_id: directory(me),
                log_end_offset: leader_end,
                last_fetch_ms: now,
                last_caught_up_ms: now,
            });
        }
        let voter_ids: Vec<NodeId> = membership.voter_ids().collect();
        for (&id, _) in membership.nodes() {
            if id == me {
                continue;
            }
            let matched = replication.get(&id).and_then(|l| l.map(|l| l.index));
            let last_fetch_ms = self.contacts.last(id).unwrap_or(-1);
            // Caught up as of its last answer if it holds everything the leader has.
            let last_caught_up_ms = if end(matched) >= leader_end && leader_end >= 0 {
                last_fetch_ms
            } else {
                caught_up.get(&id).copied().unwrap_or(-1)
            };
            let progress = VoterProgress {
                id,
                directory_id: directory(id),
                log_end_offset: end(matched),
                last_fetch_ms,
                last_caught_up_ms,
            };
            if voter_ids.contains(&id) {
                voters.push(progress);
            } else {
                observers.push(progress);
            }
        }
        let addresses = voter_ids
            .iter()
            .filter_map(|id| Some((*id, membership.get_node(id)?.addr.clone())))
            .collect();
        Some(QuorumDescription {
            leader_id: me,
            leader_epoch: m.current_term,
            high_watermark: end(m.last_applied.map(|l| l.index)),
            voters,
            observers,
            addresses,
        })
    }
}
