//! This node's controller in the metadata quorum (`samsa-metadata`) and its broker's
//! membership. Every broker has one: without `controller_quorum_voters` the node is the only
//! voter of a quorum of its own, and its metadata takes the same path as a cluster's.
//!
//! `config::quorum_config` reads the configuration, `membership` registers and heartbeats,
//! `security` keeps ACLs and SCRAM credentials in the metadata log, `quotas` client quotas;
//! this module starts them, answers what clients are told about the cluster, and stops them.

mod clean_shutdown;
mod group_configs;
mod isr;
mod leader_balance;
mod membership;
mod meta_properties;
mod quotas;
pub mod reconciler;
mod security;
mod topics;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use samsa_metadata::features::{self, FeatureCommand, FeatureUpdate, FinalizedFeatures};
use samsa_metadata::quorum::QuorumDescription;
use samsa_metadata::quotas::mutation::{Charged, MutationCharge, MutationCharger};
use samsa_metadata::quotas::ClientQuotas;
use samsa_metadata::state::Broker as RegisteredBroker;
use samsa_metadata::voters::VoterChange;
use samsa_metadata::{
    ClusterMetadata, Command, CommandError, CommandResult, MetadataNode, QuorumSeed,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, QuorumConfig};
use crate::error::BrokerError;
use crate::replication::follower::FetcherConfig;
use crate::topics::TopicRegistry;
use membership::Registration;
pub use reconciler::{CoordinatorHooks, LeadershipChange};
use reconciler::{LedPartitions, Reconciler};
pub use topics::{CreatedTopic, NewTopic};
// The cluster link syncs ACLs and compares them with what the metadata holds.
pub use security::binding as acl_binding;

/// Where the controller keeps its log, snapshots and vote, inside the data directory.
const METADATA_DIR: &str = "__cluster_metadata";
/// How long a stopping broker tries to fence itself before giving up on the quorum.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an operator's change is offered again while no controller takes it (an
/// election), before the client is told REQUEST_TIMED_OUT.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
const FORWARD_BACKOFF: Duration = Duration::from_millis(100);

pub struct Cluster {
    node: Arc<MetadataNode>,
    broker_id: Option<i32>,
    /// Told apart from this broker's earlier registrations by it.
    incarnation: u64,
    membership: Mutex<Option<JoinHandle<()>>>,
    /// Stops the heartbeats when the broker leaves, ahead of everything else.
    leaving: watch::Sender<bool>,
    /// The reconciler, the ISR maintenance and the ACL and credential follower, stopped
    /// after membership at shutdown.
    background: Mutex<Vec<JoinHandle<()>>>,
    /// The metadata this broker last reconciled its partitions with: what it tells clients.
    published: watch::Sender<Arc<ClusterMetadata>>,
    /// The metadata whose ACLs and SCRAM credentials this node last installed.
    security: watch::Sender<Arc<ClusterMetadata>>,
    /// The client quotas this node applied last, sent again only when they change.
    client_quotas: watch::Sender<Arc<ClientQuotas>>,
    stop: watch::Sender<bool>,
}

impl Cluster {
    /// Starts this node's controller and, for a broker, its registration and heartbeats.
    /// `config.listen` must be the bound address, since it is what the broker registers.
    /// `quorum` is `None` for a single node: the only voter of its own quorum.
    pub async fn start(config: &Config, quorum: Option<QuorumConfig>) -> anyhow::Result<Cluster> {
        let dir = config.data_dir.join(METADATA_DIR);
        let node_id = config.node_id as u64;
        let directory_id = tokio::task::block_in_place(|| {
            meta_properties::directory_id(&dir, config.cluster_id.as_deref(), config.node_id)
        })
        .with_context(|| {
            format!(
                "cannot read this controller's directory id in {}",
                dir.display()
            )
        })?;
        let started = match &quorum {
            Some(q) => {
                let seed = match q.bootstrap.is_empty() {
                    true => QuorumSeed::Voters(q.voters.clone()),
                    false => QuorumSeed::Bootstrap(q.bootstrap.clone()),
                };
                MetadataNode::start(node_id, directory_id, seed, &dir, q.listen).await
            }
            None => MetadataNode::standalone(node_id, directory_id, &dir).await,
        };
        let node = started
            .with_context(|| format!("cannot start the metadata quorum in {}", dir.display()))?;
        let previous_epoch = tokio::task::block_in_place(|| clean_shutdown::take(&config.data_dir))
            .context("cannot read the clean-shutdown marker")?;
        match node.local_addr() {
            Some(addr) => tracing::info!("controller {node_id} on {addr}"),
            None => tracing::info!("controller {node_id}, the only voter"),
        }
        node.expire_broker_sessions(Duration::from_millis(config.broker_session_timeout_ms));
        let node = Arc::new(node);
        let (stop, _) = watch::channel(false);
        let (leaving, left) = watch::channel(false);
        let client_quotas = watch::channel(node.metadata().borrow().client_quotas.clone()).0;
        let mut background = vec![
            tokio::spawn(log_controller_changes(node.clone(), stop.subscribe())),
            tokio::spawn(quotas::follow(
                node.metadata(),
                client_quotas.clone(),
                stop.subscribe(),
            )),
        ];
        if config.auto_leader_rebalance_enable {
            let every = Duration::from_secs(config.leader_imbalance_check_interval_seconds);
            let percentage = config.leader_imbalance_per_broker_percentage;
            background.push(tokio::spawn(leader_balance::rebalance(
                node.clone(),
                every,
                percentage,
                stop.subscribe(),
            )));
        }
        let mut cluster = Cluster {
            node: node.clone(),
            broker_id: None,
            incarnation: incarnation(),
            membership: Mutex::new(None),
            leaving,
            background: Mutex::new(background),
            published: watch::channel(Arc::default()).0,
            security: watch::channel(Arc::default()).0,
            client_quotas,
            stop,
        };
        if quorum.as_ref().is_none_or(|q| q.broker) {
            let (host, port) = config.advertised();
            let me = Registration {
                id: config.node_id,
                host,
                port: u16::try_from(port).context("advertised port out of range")?,
                rack: config.rack.clone(),
                incarnation: cluster.incarnation,
                previous_epoch,
                min_insync_replicas: u32::try_from(config.min_insync_replicas).unwrap_or(1),
                registry_url: config.registry_url(),
            };
            let every = Duration::from_millis(config.broker_heartbeat_interval_ms);
            let task = tokio::spawn(membership::run(node, me, every, left));
            cluster.membership = Mutex::new(Some(task));
            cluster.broker_id = Some(config.node_id);
        }
        Ok(cluster)
    }

    /// For a broker: starts taking the roles the metadata gives this broker's partitions
    /// (see [`reconciler`]) and, as a leader, keeping their ISRs.
    pub fn start_replication(
        &self,
        config: &Config,
        topics: Arc<TopicRegistry>,
        hooks: Arc<dyn CoordinatorHooks>,
    ) {
        let Some(local) = self.broker_id else { return };
        let fetcher = FetcherConfig {
            local_id: local,
            fetch_wait_max_ms: i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(i32::MAX),
            fetch_max_bytes: config.replica_fetch_max_bytes,
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
        };
        let (led, led_here) = watch::channel(LedPartitions::default());
        let reconciler = Reconciler::new(
            local,
            topics.clone(),
            hooks,
            fetcher,
            self.published.clone(),
            led,
        );
        let max_lag = Duration::from_millis(config.replica_lag_time_max_ms);
        let tasks = [
            tokio::spawn(reconciler.run(
                self.node.metadata(),
                self.caught_up(),
                self.stop.subscribe(),
            )),
            tokio::spawn(isr::maintain(
                self.node.clone(),
                led_here,
                local,
                max_lag,
                self.stop.subscribe(),
            )),
        ];
        lock(&self.background).extend(tasks);
    }

    /// Whether the applied metadata holds this process's registration, and so everything
    /// committed before it started. Until then the metadata may still show a restarted
    /// broker leading what it led before it stopped, and miss changes made while it was
    /// away. A controller without a broker has no registration to wait for.
    fn caught_up(&self) -> impl Fn(&ClusterMetadata) -> bool + Send + 'static {
        let (broker, incarnation) = (self.broker_id, self.incarnation);
        move |m: &ClusterMetadata| {
            broker.is_none_or(|id| {
                m.brokers
                    .get(&id)
                    .is_some_and(|b| b.incarnation == incarnation)
            })
        }
    }

    /// Waits until the metadata applied on this node holds this process's registration (see
    /// [`Self::caught_up`]), unfenced: this broker may then be given replicas to lead. A
    /// controller without a broker has nothing to wait for.
    pub async fn unfenced(&self) {
        let unfenced = self.caught_up_and_unfenced();
        let mut applied = self.node.metadata();
        let _ = applied.wait_for(|m| unfenced(m)).await;
    }

    /// [`Self::caught_up`], with this process's registration unfenced.
    fn caught_up_and_unfenced(&self) -> impl Fn(&ClusterMetadata) -> bool + Send + 'static {
        let caught_up = self.caught_up();
        let id = self.broker_id;
        move |m: &ClusterMetadata| {
            caught_up(m) && id.is_none_or(|id| m.brokers.get(&id).is_some_and(|b| !b.fenced))
        }
    }

    /// The metadata as applied on this node, the newest it knows: what changes are checked
    /// against.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.node.metadata().borrow().clone()
    }

    /// The metadata a broker has brought its partitions in line with, which is what it tells
    /// clients: a topic is listed only once this broker can answer for it. A controller
    /// without a broker has no partitions and tells what it applied.
    pub fn published(&self) -> Arc<ClusterMetadata> {
        match self.broker_id {
            Some(_) => self.published.borrow().clone(),
            None => self.metadata(),
        }
    }

    /// The metadata [`Self::published`] returns, as it changes.
    pub fn subscribe_published(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        match self.broker_id {
            Some(_) => self.published.subscribe(),
            None => self.node.metadata(),
        }
    }

    /// Commits `command` through the active controller.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, samsa_metadata::Error> {
        self.node.propose(command).await
    }

    /// Proposes an operator's change through the active controller, again while there is
    /// none (during an election the quorum has no leader for a moment, and Kafka's broker
    /// retries its forwarding too): the one path every forwarded metadata write takes.
    pub(crate) async fn forward(&self, command: Command) -> Result<CommandResult, BrokerError> {
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        loop {
            match self.propose(command.clone()).await {
                Err(samsa_metadata::Error::NotController { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(FORWARD_BACKOFF).await
                }
                outcome => {
                    return outcome.map_err(|err| BrokerError::from(err).for_forwarded_request())
                }
            }
        }
    }

    /// Charges a client's topic mutations to its controller mutation quota (KIP-599) on the
    /// active controller, which counts it for the whole cluster as Kafka's does.
    pub async fn charge_mutation(
        &self,
        charge: MutationCharge,
    ) -> Result<Charged, samsa_metadata::Error> {
        self.node.charge_mutation(charge).await
    }

    /// Installs what decides the charges while this node is the active controller.
    pub fn install_mutation_charger(&self, charger: Arc<dyn MutationCharger>) {
        self.node.install_mutation_charger(charger);
    }

    /// The next block of producer ids for this broker, from the controller.
    pub async fn reserve_producer_ids(&self) -> Result<(i64, u32), samsa_metadata::Error> {
        let broker = self.broker_id.unwrap_or(-1);
        let command = Command::AllocateProducerIds {
            broker,
            count: crate::txn::PRODUCER_ID_BLOCK as u32,
        };
        match self.propose(command).await? {
            CommandResult::ProducerIdsAllocated { first, count } => Ok((first, count)),
            other => Err(samsa_metadata::Error::Unavailable(format!(
                "AllocateProducerIds answered {other:?}"
            ))),
        }
    }

    /// The cluster's producer id floor: no id below it may be handed out.
    pub fn producer_id_floor(&self) -> i64 {
        self.node.metadata().borrow().producer_id_floor
    }

    /// Raises the producer id floor to at least `floor`, once the quorum has it.
    pub async fn raise_producer_id_floor(&self, floor: i64) -> Result<(), BrokerError> {
        self.forward(Command::RaiseProducerIdFloor { floor })
            .await
            .map(|_| ())
    }

    /// Waits until this node publishes metadata for which `done` holds, or `timeout`
    /// passes: a command committed by the leader reaches followers a moment later, and is
    /// reconciled after that.
    pub async fn await_metadata(
        &self,
        timeout: Duration,
        done: impl Fn(&ClusterMetadata) -> bool,
    ) -> bool {
        wait_for(self.subscribe_published(), timeout, done).await
    }

    /// Registered brokers in id order, the fenced ones only when asked for: clients are shown
    /// the unfenced ones, which are those they may use.
    pub fn brokers(&self, include_fenced: bool) -> Vec<RegisteredBroker> {
        let metadata = self.node.metadata().borrow().clone();
        metadata
            .brokers
            .values()
            .filter(|b| include_fenced || !b.fenced)
            .cloned()
            .collect()
    }

    /// The metadata quorum as its leader sees it (DescribeQuorum), with where each voter's
    /// controller listens (port 0 for a single node, which has no controller listener).
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, samsa_metadata::Error> {
        self.node.describe_quorum().await
    }

    /// Adds or removes a voter of the metadata quorum (AddRaftVoter, RemoveRaftVoter) through
    /// the active controller.
    pub async fn change_voters(&self, change: VoterChange) -> Result<(), BrokerError> {
        Ok(self.node.change_voters(change).await?)
    }

    /// UnregisterController: a controller is registered while the quorum's membership
    /// holds it (as a voter or an observer). An observer's entry is removed, so the leader
    /// stops sending it the log (a controller removed with RemoveRaftVoter stays an observer
    /// until then); a voter is left as it is, as Kafka's registration is only its record.
    pub async fn unregister_controller(&self, id: i32) -> Result<(), BrokerError> {
        let not_registered = BrokerError::ControllerIdNotRegistered(id);
        let id = u64::try_from(id).map_err(|_| not_registered)?;
        Ok(self.node.unregister_controller(id).await?)
    }

    /// The cluster's finalized feature levels as this node last applied them; `None` only
    /// before the first broker has bootstrapped them.
    pub fn finalized_features(&self) -> Option<FinalizedFeatures> {
        self.node.metadata().borrow().features.clone()
    }

    /// The finalized level of one feature (0 when it is off or not yet bootstrapped): what
    /// decides whether a feature-versioned behaviour is on.
    pub fn feature_level(&self, name: &str) -> i16 {
        self.node
            .metadata()
            .borrow()
            .features
            .as_ref()
            .map_or(0, |f| f.level(name))
    }

    /// Changes finalized feature levels (UpdateFeatures) through the controller, checked
    /// against what this binary supports, which is every node's in a cluster of one version.
    pub async fn update_features(
        &self,
        updates: Vec<FeatureUpdate>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        // Kafka upgrades kraft.version only once every voter can take part in a dynamic
        // quorum; here, once each has recorded its directory id.
        let raises_kraft = updates.iter().any(|u| {
            u.name == features::KRAFT_VERSION
                && u.level > self.feature_level(features::KRAFT_VERSION)
        });
        if raises_kraft
            && self
                .node
                .voters()
                .values()
                .any(|v| v.directory_id.is_none())
        {
            let message = "Invalid upgrade of KRAFT_VERSION_0 to KRAFT_VERSION_1 because not all \
                           of the voters support it"
                .to_string();
            return Err(
                samsa_metadata::Error::Command(CommandError::InvalidFeatureUpdate { message })
                    .into(),
            );
        }
        let command = Command::Features(FeatureCommand::Update {
            updates,
            supported: features::supported_ranges(),
            controller: self.controller_id(),
            validate_only,
        });
        self.propose(command).await?;
        Ok(())
    }

    /// Removes broker `id`'s registration (UnregisterBroker) through the controller.
    pub async fn unregister_broker(&self, id: i32) -> Result<(), BrokerError> {
        match self.propose(Command::UnregisterBroker { id }).await {
            Ok(_) => Ok(()),
            Err(samsa_metadata::Error::Command(CommandError::UnknownBroker(_))) => {
                Err(BrokerError::BrokerIdNotRegistered(id))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The active controller (the quorum's leader), or -1 while there is none.
    pub fn controller_id(&self) -> i32 {
        self.node
            .leader()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(-1)
    }

    /// Waits until this broker has caught up with the metadata (see [`Self::caught_up`])
    /// and brought its partitions in line with it, and the controller has unfenced it: until
    /// then it would tell clients of an older cluster, or of one without itself, as Kafka's
    /// broker does not (it serves clients once caught up and unfenced). A controller without a
    /// broker has nothing to wait for.
    pub async fn serving(&self) {
        if self.broker_id.is_none() {
            return;
        }
        let ready = self.caught_up_and_unfenced();
        let mut published = self.published.subscribe();
        let _ = published.wait_for(|m| ready(m)).await;
    }

    /// Kafka's controlled shutdown, in its simplest form: stops heartbeating and fences this
    /// broker, so that its partitions are led elsewhere before its connections close (and
    /// the cluster need not wait for its session to expire). Later calls do nothing.
    pub async fn leave(&self) {
        let _ = self.leaving.send(true);
        let Some(membership) = lock(&self.membership).take() else {
            return;
        };
        let _ = membership.await;
        // Only this process's registration: if it never registered there is nothing to fence.
        // Nor is there when no other broker is up to take its partitions (a single node):
        // fencing would only take their leaders away while the connections wind down.
        let registered = self.broker_id.and_then(|id| {
            let metadata = self.node.metadata().borrow().clone();
            let broker = metadata.brokers.get(&id)?;
            let others_up = metadata.brokers.values().any(|b| b.id != id && !b.fenced);
            (broker.incarnation == self.incarnation && others_up).then_some((id, broker.epoch))
        });
        if let Some((id, epoch)) = registered {
            let leave = self.node.propose(Command::FenceBroker {
                id,
                epoch: Some(epoch),
            });
            match tokio::time::timeout(LEAVE_TIMEOUT, leave).await {
                Ok(Ok(_)) => tracing::info!("fenced this broker before stopping"),
                _ => tracing::warn!(
                    "could not fence this broker before stopping; its session will expire"
                ),
            }
        }
    }

    /// The epoch of this process's registration, if it registered.
    pub fn registered_epoch(&self) -> Option<u64> {
        let id = self.broker_id?;
        let metadata = self.node.metadata().borrow().clone();
        let broker = metadata.brokers.get(&id)?;
        (broker.incarnation == self.incarnation).then_some(broker.epoch)
    }

    /// Records, once every log is closed, that this process stopped cleanly at its
    /// registration `epoch` (see [`clean_shutdown`]).
    pub fn record_clean_shutdown(data_dir: &std::path::Path, epoch: u64) {
        match clean_shutdown::write(data_dir, epoch) {
            Ok(()) => tracing::info!(epoch, "recorded a clean shutdown"),
            Err(e) => tracing::warn!("cannot record the clean shutdown: {e}"),
        }
    }

    /// Leaves (if [`Self::leave`] was not called), stops reconciling and the rest of the
    /// background work, then the controller.
    pub async fn shutdown(&self) {
        self.leave().await;
        let _ = self.stop.send(true);
        let background = std::mem::take(&mut *lock(&self.background));
        for task in background {
            let _ = task.await;
        }
        if let Err(e) = self.node.shutdown().await {
            tracing::warn!("metadata quorum did not stop cleanly: {e}");
        }
    }
}

/// One line each time the quorum's leader, the active controller, changes.
async fn log_controller_changes(node: Arc<MetadataNode>, mut shutdown: watch::Receiver<bool>) {
    let mut metrics = node.raft_metrics();
    let mut known = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if leader != known {
            match leader {
                Some(leader) => tracing::info!(controller = leader, term, "active controller"),
                None => tracing::info!(term, "no active controller"),
            }
            known = leader;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Waits until `watch` shows metadata for which `done` holds, or `timeout` passes.
async fn wait_for(
    mut watch: watch::Receiver<Arc<ClusterMetadata>>,
    timeout: Duration,
    done: impl Fn(&ClusterMetadata) -> bool,
) -> bool {
    let waiting = async { watch.wait_for(|m| done(m)).await.is_ok() };
    tokio::time::timeout(timeout, waiting)
        .await
        .unwrap_or(false)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Microseconds since the Unix epoch: larger at every start unless the clock went back.
fn incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
