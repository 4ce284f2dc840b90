//! One controller of the metadata quorum: its Raft, its stores and its transport, behind the
//! small API the broker uses (propose commands, watch the metadata, know the leader).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Config, RaftMetrics, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::Error;
use crate::liveness::{BrokerSessions, HeartbeatReply};
use crate::quorum::{Contacts, QuorumDescription, QuorumProgress};
use crate::quotas::mutation::{Charged, ChargerSlot, MutationCharge, MutationCharger};
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, PeerClient};
use crate::raft::rpc::{ProposeRefused, Request, Response};
use crate::raft::server::{confirm_leadership, propose_checked, serve, Services};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{Applied, ControllerNode, NodeId, Raft};
use crate::state::{BrokerId, ClusterMetadata, Command, CommandResult};
use crate::voters::{address_of, announce, Reconfiguration, VoterChange};

/// How a controller finds its quorum.
#[derive(Debug, Clone)]
pub enum QuorumSeed {
    /// A static quorum (`controller_quorum_voters`): a node whose log is empty forms the
    /// cluster with these voters (id to controller address).
    Voters(BTreeMap<NodeId, SocketAddr>),
    /// `controller_quorum_bootstrap_servers`: a node whose log is empty asks these
    /// controllers to let it follow the log as an observer, and becomes a voter only when an
    /// operator adds it (AddRaftVoter).
    Bootstrap(Vec<SocketAddr>),
}

/// Timing and compaction of the quorum. The defaults suit a LAN cluster; tests shorten them.
#[derive(Debug, Clone)]
pub struct QuorumOptions {
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// How long `propose` waits for a commit before giving up with `Error::Timeout`.
    pub propose_timeout: Duration,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot, so briefly lagging controllers catch up from the log
    /// rather than by a full snapshot transfer.
    pub logs_kept_after_snapshot: u64,
}

impl Default for QuorumOptions {
    fn default() -> Self {
        QuorumOptions {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(2000)),
            propose_timeout: Duration::from_secs(5),
            snapshot_every: 10_000,
            logs_kept_after_snapshot: 1_000,
        }
    }
}

pub struct MetadataNode {
    id: NodeId,
    /// This node as the membership should record it.
    me: ControllerNode,
    raft: Raft,
    seed: QuorumSeed,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// Taken (and awaited) by `shutdown`, so that it can be called through a shared handle.
    server: Mutex<Option<JoinHandle<()>>>,
    sessions: Arc<BrokerSessions>,
    /// Fences silent brokers while this node leads; started by `expire_broker_sessions`.
    session_expiry: Mutex<Option<JoinHandle<()>>>,
    /// `None` for a standalone node, which has no peers to listen for.
    local_addr: Option<SocketAddr>,
    options: QuorumOptions,
    /// The followers' progress, for DescribeQuorum while this node leads.
    progress: Arc<QuorumProgress>,
    /// Voter changes, made while this node leads.
    reconfiguration: Arc<Reconfiguration>,
    /// Keeps this node recorded in the membership (see `voters::announce`).
    announce: Mutex<Option<JoinHandle<()>>>,
    /// Decides controller mutation quota charges while this node leads.
    charger: Arc<ChargerSlot>,
}

impl MetadataNode {
    pub async fn start(
        node_id: NodeId,
        directory_id: Uuid,
        seed: QuorumSeed,
        dir: impl AsRef<Path>,
        listen: SocketAddr,
    ) -> Result<Self, Error> {
        let options = QuorumOptions::default();
        Self::start_with(node_id, directory_id, seed, dir, Some(listen), options).await
    }

    /// Starts the only voter of a quorum of one (KRaft's `--standalone`): a single node keeps
    /// its metadata exactly as a cluster does, through the same log and state machine, but
    /// needs no controller listener since it has no peer to hear from.
    pub async fn standalone(
        node_id: NodeId,
        directory_id: Uuid,
        dir: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        // The address is only recorded in the membership; nothing ever connects to it.
        let voters = BTreeMap::from([(node_id, SocketAddr::from(([127, 0, 0, 1], 0)))]);
        let seed = QuorumSeed::Voters(voters);
        let options = QuorumOptions::default();
        Self::start_with(node_id, directory_id, seed, dir, None, options).await
    }

    /// Starts controller `node_id`, whose metadata log directory has id `directory_id`,
    /// keeping its log and snapshots under `dir` and serving peers on `listen` (without one,
    /// the node must be the only voter).
    ///
    /// With `QuorumSeed::Voters`, a node whose log is empty initializes the cluster with all
    /// of them: openraft allows several nodes to initialize with the same membership, so the
    /// quorum forms whichever voters start first. Every voter must therefore be given the same
    /// voters. Once formed, the membership in the log is what counts (voters may have been
    /// added and removed since).
    pub async fn start_with(
        node_id: NodeId,
        directory_id: Uuid,
        seed: QuorumSeed,
        dir: impl AsRef<Path>,
        listen: Option<SocketAddr>,
        options: QuorumOptions,
    ) -> Result<Self, Error> {
        let my_addr = match &seed {
            QuorumSeed::Voters(voters) => {
                let Some(addr) = voters.get(&node_id) else {
                    return Err(Error::Config(format!(
                        "node {node_id} is not among the voters {voters:?}"
                    )));
                };
                if listen.is_none() && voters.len() > 1 {
                    return Err(Error::Config(format!(
                        "node {node_id} needs a controller listener to reach the voters {voters:?}"
                    )));
                }
                *addr
            }
            QuorumSeed::Bootstrap(servers) => match listen {
                Some(listen) if !servers.is_empty() => listen,
                _ => {
                    return Err(Error::Config(format!(
                        "node {node_id} needs a controller listener and bootstrap servers to join"
                    )))
                }
            },
        };
        let config = Config {
            cluster_name: "samsa-metadata".into(),
            heartbeat_interval: options.heartbeat_interval.as_millis() as u64,
            election_timeout_min: options.election_timeout.0.as_millis() as u64,
            election_timeout_max: options.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every),
            max_in_snapshot_log_to_keep: options.logs_kept_after_snapshot,
            ..Config::default()
        };
        let config = config
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        let dir = dir.as_ref();
        let log = LogStore::open(&dir.join("log"))?;
        let state = StateMachineStore::open(&dir.join("state"))?;
        let metadata = state.subscribe();
        let listener = match listen {
            Some(listen) => Some(TcpListener::bind(listen).await?),
            None => None,
        };
        let local_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let contacts = Arc::new(Contacts::default());
        let network = Network {
            contacts: contacts.clone(),
        };
        let raft = Raft::new(node_id, Arc::new(config), network, log, state)
            .await
            .map_err(unavailable)?;
        let sessions = Arc::new(BrokerSessions::new(node_id, raft.clone(), metadata.clone()));
        let progress = Arc::new(QuorumProgress::new(contacts));
        let reconfiguration = Arc::new(Reconfiguration::default());
        let charger = Arc::new(ChargerSlot::default());
        // Ends with the Raft, whose metrics it watches.
        tokio::spawn(progress.clone().track(raft.clone()));
        let services = Services {
            raft: raft.clone(),
            sessions: sessions.clone(),
            progress: progress.clone(),
            voters: reconfiguration.clone(),
            metadata: metadata.clone(),
            charger: charger.clone(),
        };
        let server = listener.map(|l| tokio::spawn(serve(l, services)));
        let me = ControllerNode {
            addr: my_addr.to_string(),
            directory_id: Some(directory_id),
        };
        let node = MetadataNode {
            id: node_id,
            me,
            raft,
            seed,
            metadata,
            server: Mutex::new(server),
            sessions,
            session_expiry: Mutex::new(None),
            local_addr,
            options,
            progress,
            reconfiguration,
            announce: Mutex::new(None),
            charger,
        };
        node.initialize_if_new().await?;
        node.lead_if_alone().await?;
        let task = tokio::spawn(announce(
            node.id,
            node.me.clone(),
            node.raft.clone(),
            node.reconfiguration.clone(),
            node.seed_addresses(),
            node.options.propose_timeout,
        ));
        *lock(&node.announce) = Some(task);
        Ok(node)
    }

    /// The addresses this node was started with, where it looks for the quorum when the
    /// membership does not tell it.
    fn seed_addresses(&self) -> Vec<(Option<NodeId>, SocketAddr)> {
        match &self.seed {
            QuorumSeed::Voters(voters) => voters
                .iter()
                .filter(|(&id, _)| id != self.id)
                .map(|(&id, &addr)| (Some(id), addr))
                .collect(),
            QuorumSeed::Bootstrap(servers) => servers.iter().map(|&a| (None, a)).collect(),
        }
    }

    /// The only voter of a quorum would otherwise wait out an election timeout (one to two
    /// seconds) at every restart before it could commit anything; it is its own majority, so
    /// it stands at once and start-up takes milliseconds.
    async fn lead_if_alone(&self) -> Result<(), Error> {
        let mut metrics = self.raft.metrics();
        let voters: Vec<NodeId> = {
            let m = metrics.borrow();
            m.membership_config.membership().voter_ids().collect()
        };
        if voters != [self.id] {
            return Ok(());
        }
        if metrics.borrow().current_leader != Some(self.id) {
            self.raft.trigger().elect().await.map_err(unavailable)?;
        }
        let limit = self.options.propose_timeout;
        let leading = async {
            metrics
                .wait_for(|m| m.current_leader == Some(self.id))
                .await
                .map(|_| ())
                .map_err(unavailable)
        };
        tokio::time::timeout(limit, leading)
            .await
            .map_err(|_| Error::Timeout(limit))?
    }

    async fn initialize_if_new(&self) -> Result<(), Error> {
        // Asked first in every case: the answer comes from Raft's core once it runs, whose
        // metrics (the membership `lead_if_alone` and `voters` read) are then current.
        let initialized = self.raft.is_initialized().await.map_err(unavailable)?;
        let QuorumSeed::Voters(voters) = &self.seed else {
            return Ok(());
        };
        if initialized {
            return Ok(());
        }
        // Every voter must initialize with the same membership (several may, and the first
        // entry is never replaced), and each knows only its own directory id: all are left
        // out, and each voter records its own once the quorum has formed (see `announce`).
        let members: BTreeMap<NodeId, ControllerNode> = voters
            .iter()
            .map(|(&id, addr)| {
                let node = ControllerNode {
                    addr: addr.to_string(),
                    directory_id: None,
                };
                (id, node)
            })
            .collect();
        match self.raft.initialize(members).await {
            // NotAllowed: a leader's entries reached us first; the cluster is formed already.
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address peers reach this controller on; `None` for a standalone node.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The controller this node believes leads the quorum (Kafka's active controller).
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The committed metadata, updated after each applied batch of commands.
    pub fn metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// openraft's view of this node: role, term, log, applied and snapshot positions.
    pub fn raft_metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, ControllerNode>> {
        self.raft.metrics()
    }

    /// Commits `command` and returns what applying it did. On a follower the command is
    /// forwarded to the leader; when no leader can take it, `NotController` names the leader
    /// this node knows of, if any. A preferred leader election the leader refuses before
    /// logging it (its preferred replica not known live) is `Error::Command` as well.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, Error> {
        let limit = self.options.propose_timeout;
        let attempt = async {
            match propose_checked(&self.raft, &self.sessions, command.clone()).await {
                Ok(applied) => outcome(applied),
                Err(ProposeRefused::NotLeader {
                    leader: Some(leader),
                }) if leader != self.id => self.forward(leader, command).await,
                Err(refused) => Err(refusal(refused)),
            }
        };
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| Error::Timeout(limit))?
    }

    /// One round of the auto leader rebalance (Kafka's `auto.leader.rebalance.enable`), made by
    /// the active controller and by nobody else: a broker that is the preferred (first) replica
    /// of partitions led elsewhere gets back those it is in sync for, when they are more than
    /// `percentage` % of the partitions it prefers. Only a broker this controller knows alive
    /// (`BrokerSessions::is_live`) is considered, and nothing is proposed unless a quorum
    /// confirms first that this node still leads: a controller cut off from the others would
    /// otherwise log elections that commit whenever the quorum returns, to brokers that may
    /// have died meanwhile. Returns the partitions whose leadership moved.
    pub async fn rebalance_leaders(&self, percentage: u32) -> Result<Vec<(String, u32)>, Error> {
        if self.leader() != Some(self.id) {
            return Ok(Vec::new());
        }
        let limit = self.options.propose_timeout;
        tokio::time::timeout(limit, confirm_leadership(&self.raft))
            .await
            .map_err(|_| Error::Timeout(limit))?
            .map_err(refusal)?;
        let metadata = self.metadata.borrow().clone();
        let mut moved = Vec::new();
        for (broker, preferred_of, movable) in metadata.preferred_leader_imbalance() {
            let imbalanced =
                movable.len() as u64 * 100 > u64::from(percentage) * preferred_of as u64;
            if movable.is_empty() || !imbalanced {
                continue;
            }
            if !self.sessions.is_live(broker) {
                tracing::info!(
                    broker,
                    "preferred replica not heard from by this controller: leadership stays"
                );
                continue;
            }
            tracing::info!(
                broker,
                partitions = movable.len(),
                "moving leadership back to the preferred replica"
            );
            for (topic, partition) in movable {
                let elect = Command::ElectPreferredLeader {
                    topic: topic.clone(),
                    partition,
                };
                let proposed =
                    tokio::time::timeout(limit, propose_checked(&self.raft, &self.sessions, elect));
                match proposed.await {
                    Ok(Ok(applied)) => match outcome(applied) {
                        Ok(_) => moved.push((topic, partition)),
                        // The metadata moved on meanwhile; the next round looks again.
                        Err(err) => tracing::debug!("preferred leader election not made: {err}"),
                    },
                    // Leadership or quorum lost: log nothing more this round.
                    Ok(Err(refused)) => return Err(refusal(refused)),
                    Err(_) => return Err(Error::Timeout(limit)),
                }
            }
        }
        Ok(moved)
    }

    async fn forward(&self, leader: NodeId, command: Command) -> Result<CommandResult, Error> {
        match self.call_leader(leader, Request::Propose(command)).await? {
            Response::Propose(Ok(applied)) => outcome(applied),
            Response::Propose(Err(refused)) => Err(refusal(refused)),
            _ => Err(wrong_answer(leader)),
        }
    }

    /// Installs what decides controller mutation quota charges while this node leads.
    pub fn install_mutation_charger(&self, charger: Arc<dyn MutationCharger>) {
        self.charger.install(charger);
    }

    /// Charges a client's topic mutations to its controller mutation quota on the active
    /// controller (this node's charger if it leads); `NotController` when there is none.
    pub async fn charge_mutation(&self, charge: MutationCharge) -> Result<Charged, Error> {
        let leader = self.leader().ok_or(Error::NotController { leader: None })?;
        if leader == self.id {
            return Ok(self.charger.charge(&charge));
        }
        match self
            .call_leader(leader, Request::ChargeMutation(charge))
            .await?
        {
            Response::ChargeMutation(Ok(charged)) => Ok(charged),
            Response::ChargeMutation(Err(refused)) => Err(refusal(refused)),
            _ => Err(wrong_answer(leader)),
        }
    }

    /// The quorum as its leader sees it (DescribeQuorum), asked of the leader if this node
    /// does not lead; `NotController` when there is no leader to ask.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, Error> {
        if let Some(described) = self.progress.describe(&self.raft, self.id) {
            return Ok(described);
        }
        let leader = self.leader().ok_or(Error::NotController { leader: None })?;
        match self.call_leader(leader, Request::DescribeQuorum).await? {
            Response::DescribeQuorum(Ok(described)) => Ok(described),
            Response::DescribeQuorum(Err(refused)) => Err(refusal(refused)),
            _ => Err(wrong_answer(leader)),
        }
    }

    /// This node's directory id (KIP-853).
    pub fn directory_id(&self) -> Option<Uuid> {
        self.me.directory_id
    }

    /// The voters as this node's membership records them: id, address and directory id.
    pub fn voters(&self) -> BTreeMap<NodeId, ControllerNode> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| Some((id, membership.get_node(&id)?.clone())))
            .collect()
    }

    /// Adds or removes a voter (AddRaftVoter, RemoveRaftVoter) through the leader, which
    /// refuses with Kafka's error (`Error::VoterChange`) what Kafka's leader refuses.
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), Error> {
        let features = self.metadata.borrow().features.clone();
        let local = self
            .reconfiguration
            .change(&self.raft, features.as_ref(), change.clone())
            .await;
        match local {
            Ok(()) => Ok(()),
            Err(Ok(refused)) => Err(Error::VoterChange(refused)),
            Err(Err(ProposeRefused::NotLeader {
                leader: Some(leader),
            })) if leader != self.id => {
                match self
                    .call_leader(leader, Request::ChangeVoters(change))
                    .await?
                {
                    Response::ChangeVoters(Ok(answer)) => answer.map_err(Error::VoterChange),
                    Response::ChangeVoters(Err(refused)) => Err(refusal(refused)),
                    _ => Err(wrong_answer(leader)),
                }
            }
            Err(Err(refused)) => Err(refusal(refused)),
        }
    }

    /// UnregisterController through the leader (see `VoterChange::Unregister`).
    pub async fn unregister_controller(&self, id: NodeId) -> Result<(), Error> {
        self.change_voters(VoterChange::Unregister { id }).await
    }

    /// Sends `request` to controller `leader`; an unreachable leader is `NotController`.
    async fn call_leader(&self, leader: NodeId, request: Request) -> Result<Response, Error> {
        let not_controller = Error::NotController {
            leader: Some(leader),
        };
        let addr = address_of(&self.raft, leader).or_else(|| {
            self.seed_addresses()
                .into_iter()
                .find(|(id, _)| *id == Some(leader))
                .map(|(_, addr)| addr.to_string())
        });
        let Some(addr) = addr else {
            return Err(not_controller);
        };
        let mut client = PeerClient::new(leader, addr);
        client
            .call(&request, self.options.propose_timeout)
            .await
            .map_err(|_| not_controller)
    }

    /// Tells the active controller that broker `broker`, registered at `epoch`, is alive; its
    /// first heartbeat unfences it. Sent to the leader, never written to the log.
    pub async fn heartbeat(&self, broker: BrokerId, epoch: u64) -> Result<HeartbeatReply, Error> {
        let limit = self.options.propose_timeout;
        let attempt = async {
            match self.sessions.heartbeat(broker, epoch).await {
                Ok(reply) => Ok(reply),
                Err(ProposeRefused::NotLeader {
                    leader: Some(leader),
                }) if leader != self.id => {
                    let request = Request::BrokerHeartbeat { broker, epoch };
                    match self.call_leader(leader, request).await? {
                        Response::BrokerHeartbeat(reply) => reply.map_err(refusal),
                        _ => Err(wrong_answer(leader)),
                    }
                }
                Err(refused) => Err(refusal(refused)),
            }
        };
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| Error::Timeout(limit))?
    }

    /// From now on, whenever this node leads, brokers silent for longer than `timeout` are
    /// fenced. Without it (as in quorum-only use) nothing is fenced for silence.
    pub fn expire_broker_sessions(&self, timeout: Duration) {
        let sessions = self.sessions.clone();
        let task = tokio::spawn(sessions.expire(timeout));
        if let Some(previous) = lock(&self.session_expiry).replace(task) {
            previous.abort();
        }
    }

    /// Builds a snapshot of everything applied so far and purges the log it covers (openraft
    /// delays the purge while a replication stream still reads those entries).
    pub async fn compact(&self) -> Result<(), Error> {
        let applied = self.raft.metrics().borrow().last_applied;
        self.raft.trigger().snapshot().await.map_err(unavailable)?;
        let mut metrics = self.raft.metrics();
        let snapshot = metrics
            .wait_for(|m| m.snapshot >= applied)
            .await
            .map_err(unavailable)?
            .snapshot;
        if let Some(snapshot) = snapshot {
            self.raft
                .trigger()
                .purge_log(snapshot.index)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Stops Raft and the controller listener. The directory can be reopened by `start`, and
    /// the address is free again when this returns.
    pub async fn shutdown(&self) -> Result<(), Error> {
        for task in [&self.session_expiry, &self.announce] {
            if let Some(task) = lock(task).take() {
                task.abort();
            }
        }
        let stopped = self.raft.shutdown().await.map_err(unavailable);
        let server = lock(&self.server).take();
        if let Some(server) = server {
            server.abort();
            // Abort only requests cancellation; awaiting it is what drops the listener.
            let _cancelled = server.await;
        }
        stopped
    }
}

impl Drop for MetadataNode {
    fn drop(&mut self) {
        for task in [&self.server, &self.session_expiry, &self.announce] {
            if let Some(task) = lock(task).take() {
                task.abort();
            }
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wrong_answer(leader: NodeId) -> Error {
    Error::Unavailable(format!("controller {leader} answered a different RPC"))
}

fn outcome(applied: Applied) -> Result<CommandResult, Error> {
    match applied.0 {
        Some(result) => result.map_err(Error::Command),
        None => Err(Error::Unavailable(
            "a command was applied without an outcome".into(),
        )),
    }
}

fn refusal(refused: ProposeRefused) -> Error {
    match refused {
        ProposeRefused::NotLeader { leader } => Error::NotController { leader },
        ProposeRefused::Unavailable(reason) => Error::Unavailable(reason),
    }
}
