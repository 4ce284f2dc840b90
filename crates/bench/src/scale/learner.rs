//! The metadata side of a simulated broker: a Raft observer of the controllers' metadata log,
//! reached at the address it joined with, as samsa's own brokers follow the log (every samsa
//! broker is a controller node; one that is not a voter is an observer). It answers the
//! leader's AppendEntries and InstallSnapshot with Raft's consistency check but keeps only
//! the log ids, not the entries: what the benchmark needs to know is how far each broker has
//! received the committed log.
//!
//! One of the simulated brokers keeps more (`Learner::full`): it applies every committed
//! command to a `ClusterMetadata` of its own and notes the moments the benchmark waits for
//! (partitions created, a broker fenced and its leaderships moved). Every observer receives
//! the same log, so the index at which that one saw a moment is the index every broker must
//! reach to have it too.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteResponse,
};
use openraft::{EntryPayload, Vote};
use samsa_metadata::raft::rpc::{read_frame, write_frame, Request, Response};
use samsa_metadata::raft::{LogId, NodeId, TypeConfig};
use samsa_metadata::state::{BrokerId, NO_LEADER};
use samsa_metadata::{ClusterMetadata, Command};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};

/// What the full observer saw, at the log index it saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A topic was created; the cluster now has this many partitions.
    Partitions(usize),
    /// A broker was fenced; `still_led` partitions are led by it or by no one afterwards.
    Fenced { broker: BrokerId, still_led: usize },
}

/// The full observer's state and what it noted.
#[derive(Default)]
pub struct Full {
    pub metadata: ClusterMetadata,
    pub events: Vec<(u64, Event)>,
    /// Received but not yet known committed: applied once the leader's commit index passes.
    pending: BTreeMap<u64, Command>,
}

/// One simulated broker's copy of the log, as far as the benchmark needs it.
pub struct Learner {
    /// How many entries this broker has received and knows committed (last index + 1).
    pub committed: AtomicU64,
    state: Mutex<LogState>,
    pub full: Option<Mutex<Full>>,
}

#[derive(Default)]
struct LogState {
    vote: Vote<NodeId>,
    /// The log ids held, by index; entries at or below `base` are covered by a snapshot.
    ids: BTreeMap<u64, LogId>,
    base: Option<LogId>,
    /// The snapshot being received, in chunks.
    snapshot: Vec<u8>,
}

/// A snapshot's payload (see samsa-metadata's state machine): only the metadata is read.
#[derive(Deserialize)]
struct SnapshotState {
    metadata: ClusterMetadata,
}

impl Learner {
    pub fn new(full: bool) -> Arc<Learner> {
        Arc::new(Learner {
            committed: AtomicU64::new(0),
            state: Mutex::new(LogState::default()),
            full: full.then(|| Mutex::new(Full::default())),
        })
    }

    /// Reads the metadata the full observer applied; panics on any other broker, which
    /// keeps none.
    pub fn read_metadata<T>(&self, read: impl FnOnce(&ClusterMetadata) -> T) -> T {
        let full = self
            .full
            .as_ref()
            .expect("only the full observer keeps the metadata");
        read(&full.lock().unwrap().metadata)
    }

    /// Serves the controllers that connect (the leader of each term) until aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                // A closed or broken connection ends here; the leader reconnects.
                let _ = me.serve_connection(stream).await;
            });
        }
    }

    async fn serve_connection(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        loop {
            let response = match read_frame::<Request>(&mut stream).await? {
                Request::AppendEntries(rpc) => Response::AppendEntries(Ok(self.append(rpc))),
                Request::InstallSnapshot(rpc) => {
                    let vote = self.install_snapshot(rpc);
                    Response::InstallSnapshot(Ok(InstallSnapshotResponse { vote }))
                }
                Request::Vote(_) => {
                    // An observer never votes.
                    let state = self.lock();
                    Response::Vote(Ok(VoteResponse {
                        vote: state.vote,
                        vote_granted: false,
                        last_log_id: state.ids.values().next_back().copied().or(state.base),
                    }))
                }
                other => return Err(io::Error::other(format!("an observer was asked {other:?}"))),
            };
            write_frame(&mut stream, &response).await?;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, rpc: AppendEntriesRequest<TypeConfig>) -> AppendEntriesResponse<NodeId> {
        let mut state = self.lock();
        if rpc.vote.partial_cmp(&state.vote) == Some(std::cmp::Ordering::Less) {
            return AppendEntriesResponse::HigherVote(state.vote);
        }
        state.vote = rpc.vote;
        if let Some(prev) = rpc.prev_log_id {
            let covered = state.base.is_some_and(|b| prev.index <= b.index);
            if !covered && state.ids.get(&prev.index) != Some(&prev) {
                return AppendEntriesResponse::Conflict;
            }
        }
        let last_sent = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .or(rpc.prev_log_id.map(|p| p.index));
        let mut full = self.full.as_ref().map(|f| f.lock().unwrap());
        for entry in rpc.entries {
            let id = entry.log_id;
            if state.base.is_some_and(|b| id.index <= b.index)
                || state.ids.get(&id.index) == Some(&id)
            {
                continue;
            }
            // A different entry at this index (or none yet): what follows it is stale.
            state.ids.split_off(&id.index);
            state.ids.insert(id.index, id);
            if let Some(full) = full.as_mut() {
                full.pending.split_off(&id.index);
                if let EntryPayload::Normal(command) = entry.payload {
                    full.pending.insert(id.index, command);
                }
            }
        }
        // Raft's rule: committed up to the leader's commit index, within what this request
        // proved to match.
        if let (Some(commit), Some(last)) = (rpc.leader_commit, last_sent) {
            let through = commit.index.min(last) + 1;
            if through > self.committed.load(Ordering::Relaxed) {
                // Forget ids far behind the commit point: the log only grows.
                let kept = state.ids.split_off(&through.saturating_sub(1024));
                if let Some((_, &newest_dropped)) = state.ids.last_key_value() {
                    state.base = Some(newest_dropped);
                }
                state.ids = kept;
                if let Some(full) = full.as_mut() {
                    full.apply_through(through);
                }
                self.committed.store(through, Ordering::Release);
            }
        }
        AppendEntriesResponse::Success
    }

    fn install_snapshot(&self, rpc: InstallSnapshotRequest<TypeConfig>) -> Vote<NodeId> {
        let mut state = self.lock();
        if rpc.vote.partial_cmp(&state.vote) == Some(std::cmp::Ordering::Less) {
            return state.vote;
        }
        state.vote = rpc.vote;
        if rpc.offset == 0 {
            state.snapshot.clear();
        }
        if rpc.offset as usize == state.snapshot.len() {
            state.snapshot.extend_from_slice(&rpc.data);
        }
        if rpc.done {
            let bytes = std::mem::take(&mut state.snapshot);
            state.ids.clear();
            state.base = rpc.meta.last_log_id;
            if let Some(full) = &self.full {
                let mut full = full.lock().unwrap();
                full.pending.clear();
                if let Ok(s) = serde_json::from_slice::<SnapshotState>(&bytes) {
                    full.metadata = s.metadata;
                }
            }
            let through = rpc.meta.last_log_id.map_or(0, |l| l.index + 1);
            self.committed.fetch_max(through, Ordering::AcqRel);
        }
        state.vote
    }
}

impl Full {
    fn apply_through(&mut self, through: u64) {
        let rest = self.pending.split_off(&through);
        let ready = std::mem::replace(&mut self.pending, rest);
        for (index, command) in ready {
            let led_before = match &command {
                Command::FenceBroker { id, .. } => Some(*id),
                _ => None,
            };
            if self.metadata.apply(&command).is_err() {
                continue;
            }
            match command {
                Command::CreateTopic { .. } | Command::CreatePartitions { .. } => {
                    let n = self.metadata.topics.values().map(|t| t.partitions.len());
                    self.events.push((index, Event::Partitions(n.sum())));
                }
                _ => {}
            }
            if let Some(broker) = led_before {
                let still_led = self
                    .metadata
                    .topics
                    .values()
                    .flat_map(|t| &t.partitions)
                    .filter(|p| p.leader == broker || p.leader == NO_LEADER)
                    .count();
                self.events
                    .push((index, Event::Fenced { broker, still_led }));
            }
        }
    }
}
