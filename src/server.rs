//! Start-up and shutdown, apart from the state they wire: binds the listeners, starts this
//! node's part in the metadata quorum (a single node is its only voter), opens the
//! [`Broker`], moves the metadata of a data directory from before the quorum into the log
//! (see [`convert`]), starts the background work (flushes, retention, log cleaning, group and
//! transaction timers) and serves clients until SIGTERM or SIGINT; then leaves the cluster,
//! winds down the connections and closes the logs.

mod convert;
mod topic_deletion;

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::cluster::{Cluster, CoordinatorHooks, LeadershipChange};
use crate::config::{self, Config};
use crate::error::BrokerError;
use crate::event_loop;
use crate::group;
use crate::group::store::OFFSETS_TOPIC;
use crate::link::stats::LinkStats;
use crate::link::LinkHost;
use crate::metrics;
use crate::network;
use crate::schema_registry::SchemaRegistry;
use crate::share::coordinator::SHARE_STATE_TOPIC;
use crate::share::leader::GroupSettings;
use crate::share::state::{ClusterView, CreateTopic};
use crate::share::Remote;
use crate::topics::on_storage_thread;
use crate::txn::log::TRANSACTION_STATE_TOPIC;
use crate::txn::{ClusterAdds, ClusterMarkers};
use samsa_metadata::features::TRANSACTION_VERSION;

/// Runs the broker until SIGTERM or SIGINT, then shuts down cleanly.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut config = config;
    let listeners = network::bind(&config).await?;
    let bound = listeners[0].local_addr;
    // With port 0 the OS picks the port; config entries must show the one actually bound.
    config.listen = bound;
    for extra in &listeners[1..] {
        tracing::info!(
            listener = %extra.info.name,
            protocol = extra.info.protocol.as_str(),
            "listener on {}",
            extra.local_addr
        );
    }
    let quorum = config::quorum_config(&config)?;
    // A controller joining through bootstrap servers is given the cluster id (checked above).
    if let (Some(quorum), None) = (&quorum, &config.cluster_id) {
        // Every node must report the same cluster id, so none may generate its own.
        config.cluster_id = Some(config::derived_cluster_id(&quorum.voters));
    }
    samsa_storage::configure_storage_threads(config.storage_threads);
    if samsa_storage::storage_threads().size() != config.storage_threads {
        tracing::warn!(
            "storage threads already running; storage_threads = {} not applied",
            config.storage_threads
        );
    }
    let earlier = tokio::task::block_in_place(|| convert::Earlier::read(&config.data_dir))?;
    let cluster = Cluster::start(&config, quorum).await?;
    let broker = Arc::new(tokio::task::block_in_place(|| {
        Broker::open(config, cluster)
    })?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    start(&broker, &shutdown_rx);
    if let Some(earlier) = earlier {
        convert::into_the_log(&broker, earlier).await?;
    }
    let schema_registry = if broker.config.schema_registry.enabled {
        let addr = broker.config.schema_registry.listen;
        let (registry, task) = SchemaRegistry::start(broker.clone(), shutdown_rx.clone())
            .await
            .with_context(|| format!("cannot listen for the schema registry on {addr}"))?;
        tracing::info!("schema registry on http://{}", registry.local_addr);
        Some((Arc::new(registry), task))
    } else {
        None
    };
    let registry_metrics = schema_registry.as_ref().map(|(r, _)| r.clone());
    let link_stats = Arc::new(LinkStats::default());
    let links = crate::link::start(broker.clone(), link_stats.clone(), &shutdown_rx);
    let link_metrics = link_stats.clone();
    let metrics_server = match broker.config.metrics_listen {
        Some(addr) => {
            let listener = metrics::http::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
            let state = broker.clone();
            let render: metrics::http::Render = Arc::new(move || {
                let shares = state.share_leader.snapshot();
                let sessions = state.share_leader.sessions.len();
                state.metrics.share.update(&state.topics, &shares, sessions);
                let mut text = state.metrics.render(
                    &state.topics,
                    &state.groups.stats(),
                    state.fetch_sessions.stats(),
                    &state.quotas.stats(),
                );
                if let Some(registry) = &registry_metrics {
                    text.push_str(&registry.render_metrics());
                }
                text.push_str(&link_metrics.render());
                text
            });
            Some(tokio::spawn(metrics::http::serve(
                listener,
                render,
                shutdown_rx.clone(),
            )))
        }
        None => None,
    };
    let background = tokio::spawn(background_work(broker.clone(), shutdown_rx.clone()));
    let cleaner = tokio::spawn(log_cleaner(broker.clone(), shutdown_rx.clone()));
    let group_timers = tokio::spawn(group_timers(broker.clone(), shutdown_rx.clone()));
    let txn_timers = tokio::spawn(txn_timers(broker.clone(), shutdown_rx.clone()));
    tokio::spawn(share_state_pruning(broker.clone(), shutdown_rx.clone()));
    let server = tokio::spawn(serve_once_caught_up(listeners, broker.clone(), shutdown_rx));
    tracing::info!(
        cluster_id = broker.topics.cluster_id(),
        data_dir = %broker.config.data_dir.display(),
        "samsa ready, listening on {bound}"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    // Leadership moves away first, as in Kafka's controlled shutdown: the clients of this
    // broker's partitions go to their new leaders while the connections here wind down.
    broker.cluster.leave().await;
    let registered_epoch = broker.cluster.registered_epoch();
    let _ = shutdown_tx.send(true);
    // Parked JoinGroup/SyncGroup requests would otherwise hold their connections open.
    broker.groups.shutdown();
    // Connections finish the requests already read; a stuck client cannot hold shutdown forever.
    if tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing anyway");
    }
    broker.cluster.shutdown().await;
    // The links' fetchers write to partitions: done before the logs close.
    for link in links {
        let _ = link.await;
    }
    let _ = background.await;
    let _ = cleaner.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    if let Some((_, task)) = schema_registry {
        let _ = task.await;
    }
    tokio::task::block_in_place(|| {
        if broker.close() {
            if let Some(epoch) = registered_epoch {
                Cluster::record_clean_shutdown(&broker.config.data_dir, epoch);
            }
        }
    });
    tracing::info!("samsa stopped");
    Ok(())
}

/// Wires the broker to its metadata: markers go to each partition's leader, the coordinators
/// load what this broker comes to lead, the partitions take the roles the metadata gives them,
/// and the ACLs and credentials follow the log. The in-process test brokers start the same way.
pub(crate) fn start(broker: &Arc<Broker>, shutdown: &watch::Receiver<bool>) {
    let cluster = &broker.cluster;
    let markers = ClusterMarkers::new(
        broker.node_id(),
        broker.topics.clone(),
        cluster.subscribe_published(),
        Duration::from_millis(broker.config.request_timeout_ms),
        shutdown.clone(),
    );
    broker.txns.set_markers(Arc::new(markers));
    let adds = ClusterAdds::new(
        broker.node_id(),
        cluster.subscribe_published(),
        Duration::from_millis(broker.config.request_timeout_ms),
    );
    broker.txns.set_adds(Arc::new(adds));
    // The coordinator ends transactions it aborts itself as the finalized
    // transaction.version says (Kafka's `transactionVersionLevel`).
    let weak = Arc::downgrade(broker);
    broker.txns.set_transaction_version_level(Arc::new(move || {
        weak.upgrade()
            .map_or(0, |b| b.cluster.feature_level(TRANSACTION_VERSION))
    }));
    let weak = Arc::downgrade(broker);
    broker.txns.set_producer_id_floor(Arc::new(move || {
        weak.upgrade().map_or(0, |b| b.cluster.producer_id_floor())
    }));
    broker.share_state.set_cluster(share_cluster(broker));
    tokio::spawn(topic_deletion::share_cleanup(
        Arc::downgrade(broker),
        cluster.subscribe_published(),
        shutdown.clone(),
    ));
    cluster.start_security(broker.authorizer.clone(), broker.credentials.clone());
    let hooks = Arc::new(CoordinatorLeadership(Arc::downgrade(broker)));
    cluster.start_replication(&broker.config, broker.topics.clone(), hooks);
    follow_group_configs(broker, shutdown.clone());
}

/// Groups' configs follow the metadata, as Kafka's metadata publisher updates its
/// `GroupConfigManager`: the group coordinator reads them at each heartbeat, and the
/// share-partition leader takes a changed group's `share.*` configs for its share-partitions
/// (the lock duration and limits from their next operation, the offset reset when one is
/// next initialized).
fn follow_group_configs(broker: &Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let weak = Arc::downgrade(broker);
    let mut metadata = broker.cluster.subscribe_published();
    tokio::spawn(async move {
        let mut applied = Arc::new(GroupConfigs::new());
        loop {
            {
                let Some(broker) = weak.upgrade() else { return };
                let changed = {
                    let m = metadata.borrow_and_update();
                    (m.group_configs != *applied).then(|| Arc::new(m.group_configs.clone()))
                };
                if let Some(current) = changed {
                    let groups = current.keys().chain(applied.keys());
                    for group in groups.filter(|g| current.get(*g) != applied.get(*g)) {
                        let settings = share_group_settings(current.get(group));
                        broker.share_leader.set_group_settings(group, settings);
                    }
                    broker.groups.overrides.set(current.clone());
                    applied = current;
                }
            }
            tokio::select! {
                changed = metadata.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    });
}

type GroupConfigs = std::collections::BTreeMap<String, group::config::Overrides>;

/// The share-partition leader's view of a group's configs (validated when they were set).
fn share_group_settings(overrides: Option<&group::config::Overrides>) -> GroupSettings {
    let get = |name: &str| overrides.and_then(|o| o.get(name)).map(|v| v.trim());
    GroupSettings {
        record_lock_duration_ms: get("share.record.lock.duration.ms").and_then(|v| v.parse().ok()),
        delivery_count_limit: get("share.delivery.count.limit").and_then(|v| v.parse().ok()),
        partition_max_record_locks: get("share.partition.max.record.locks")
            .and_then(|v| v.parse().ok()),
        auto_offset_reset: get("share.auto.offset.reset").map(str::to_owned),
        read_committed: get("share.isolation.level") == Some("read_committed"),
    }
}

/// The share persister's view of the cluster: where each state partition's leader is, and
/// how to create `__share_group_state` on first use, as FindCoordinator creates it.
fn share_cluster(broker: &Arc<Broker>) -> ClusterView {
    let weak = Arc::downgrade(broker);
    let create_topic: CreateTopic = Arc::new(move || {
        let weak = weak.clone();
        Box::pin(async move {
            let broker = weak.upgrade().ok_or(BrokerError::ShuttingDown)?;
            let c = &broker.config;
            let configs = broker.share_state.coordinator().topic_configs();
            broker
                .cluster
                .internal_topic(
                    SHARE_STATE_TOPIC,
                    c.share_coordinator_state_topic_num_partitions,
                    c.share_coordinator_state_topic_replication_factor,
                    configs,
                )
                .await
                .map(|_| ())
        })
    });
    ClusterView {
        local: broker.node_id(),
        metadata: broker.cluster.subscribe_published(),
        create_topic,
        remote: Remote::new(
            broker.node_id(),
            Duration::from_millis(broker.config.request_timeout_ms),
        ),
    }
}

/// Serves clients once this broker has caught up with the metadata. The listeners are bound
/// already, so clients that connect meanwhile wait in the backlog rather than being told of
/// topics and leaders the cluster has moved on from (a restarted broker would otherwise
/// answer Metadata without the topics it has not reconciled yet).
async fn serve_once_caught_up(
    listeners: Vec<network::BoundListener>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        () = broker.cluster.serving() => tracing::debug!("caught up with the metadata; serving clients"),
        _ = shutdown.changed() => return,
    }
    network::serve(listeners, broker, shutdown).await;
}

/// Hands the coordinators the partitions of their topics this broker comes to lead or
/// stops leading.
struct CoordinatorLeadership(Weak<Broker>);

impl CoordinatorHooks for CoordinatorLeadership {
    fn topics(&self) -> &[&str] {
        &[OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, SHARE_STATE_TOPIC]
    }

    /// Blocking: a load replays the partition's log.
    fn leadership_changed(&self, change: &LeadershipChange) {
        let Some(broker) = self.0.upgrade() else {
            return;
        };
        let (topic, partition) = (change.topic.as_str(), change.partition);
        let loaded = match (topic, change.leading) {
            (OFFSETS_TOPIC, true) => broker.groups.load_partition(partition),
            (OFFSETS_TOPIC, false) => {
                broker.groups.unload_partition(partition);
                Ok(())
            }
            (TRANSACTION_STATE_TOPIC, true) => broker
                .txns
                .load_partition(partition)
                .map(|()| finish_half_ended(broker.clone())),
            (TRANSACTION_STATE_TOPIC, false) => {
                broker.txns.unload_partition(partition);
                Ok(())
            }
            (SHARE_STATE_TOPIC, true) => broker.share_state.coordinator().load_partition(partition),
            (SHARE_STATE_TOPIC, false) => {
                broker.share_state.coordinator().unload_partition(partition);
                Ok(())
            }
            _ => Ok(()),
        };
        match loaded {
            Ok(()) => tracing::info!(
                topic,
                partition,
                coordinating = change.leading,
                "coordinator partition moved"
            ),
            Err(err) => tracing::error!(
                topic,
                partition,
                "cannot load the coordinator's partition: {err}"
            ),
        }
    }
}

/// Finishes, in a task of its own, the transactions the loads found half-ended: their markers
/// may wait for other brokers, and loads are made on the reconciler's behalf, which must go on
/// meanwhile. Called on the runtime's blocking pool, where loads run.
fn finish_half_ended(broker: Arc<Broker>) {
    tokio::runtime::Handle::current()
        .spawn(async move { broker.txns.finish_half_ended(&broker.groups).await });
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Periodic flushing (when `flush_ms` is set), recovery-point checkpoints and retention.
/// Each pass runs on a storage thread (its fsyncs and deletions are disk work), one at a
/// time: a pass that outlasts its interval delays the next instead of piling up.
async fn background_work(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let flush_every = Duration::from_millis(broker.config.flush_ms.unwrap_or(1000).max(1));
    let retention_every = Duration::from_millis(broker.config.retention_check_interval_ms.max(1));
    let mut flush = tokio::time::interval(flush_every);
    let mut retention = tokio::time::interval(retention_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let broker = broker.clone();
        tokio::select! {
            _ = flush.tick() => on_storage_thread(move || flush_pass(&broker)).await,
            _ = retention.tick() => on_storage_thread(move || retention_pass(&broker)).await,
            _ = shutdown.changed() => return,
        }
    }
}

fn flush_pass(broker: &Broker) {
    let now = now_ms();
    for partition in broker.topics.partitions() {
        if let Err(err) = partition.flush_if_due(now) {
            tracing::error!(topic = %partition.topic, partition = partition.index, "flush failed: {err}");
        }
    }
}

fn retention_pass(broker: &Broker) {
    let now = now_ms();
    for partition in broker.topics.partitions() {
        match partition.apply_retention(now) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(topic = %partition.topic, partition = partition.index, "retention deleted {n} segment(s)")
            }
            Err(err) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, "retention failed: {err}")
            }
        }
    }
}

/// The log cleaner: every `log_cleaner_interval_ms`, compacts the partitions that are due
/// (`cleanup.policy` compact, see `samsa_storage`). Cleaning is blocking file I/O, so a round
/// runs on the blocking pool, one partition at a time; shutdown waits for the round.
async fn log_cleaner(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(broker.config.log_cleaner_interval_ms.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let round = broker.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || clean_due_partitions(&round)).await {
            tracing::error!("log cleaner round failed: {err}");
        }
    }
}

fn clean_due_partitions(broker: &Broker) {
    for partition in broker.topics.partitions() {
        match partition.clean(now_ms()) {
            Ok(None) => {}
            Ok(Some(stats)) => tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                "compacted {} segment(s) into {}: {} -> {} bytes, {} record(s) removed",
                stats.segments_before,
                stats.segments_after,
                stats.bytes_before,
                stats.bytes_after,
                stats.records_removed
            ),
            Err(err) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, "compaction failed: {err}")
            }
        }
    }
}

/// Session expiry and rebalance deadlines of every group, and offset retention. Both write
/// to `__consumer_offsets` under the groups' locks: on the blocking pool, each round to its
/// end before the next.
async fn group_timers(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(group::TICK);
    // The first expiry comes one interval after start, as in Kafka, not while the first
    // clients are joining.
    let every = Duration::from_millis(broker.config.offsets_retention_check_interval_ms.max(1));
    let mut expiry = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        let round = tokio::select! {
            _ = tick.tick() => {
                let groups = broker.groups.clone();
                event_loop::spawn_blocking(move || groups.tick())
            }
            _ = expiry.tick() => {
                let groups = broker.groups.clone();
                event_loop::spawn_blocking(move || groups.expire_offsets())
            }
            _ = shutdown.changed() => return,
        };
        if let Err(err) = round.await {
            tracing::error!("group timer failed: {err}");
        }
    }
}

/// The share coordinator's prune job, every `share_coordinator_state_topic_prune_interval_ms`
/// from one interval after start, as Kafka's. A round runs to its end before the next.
async fn share_state_pruning(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(
        broker
            .config
            .share_coordinator_state_topic_prune_interval_ms
            .max(1),
    );
    let mut prune = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune.tick() => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = broker.share_state.coordinator().prune() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Aborts transactions open past their timeout and forgets long-unused transactional ids,
/// each round in a task of its own. The expiry only writes to logs, so it runs on the
/// blocking pool; an abort also waits for the replicas between its writes, and for its
/// markers, which are retried until written: it is not waited for, so that one stuck behind
/// a partition without a leader or a failing disk holds up neither the expiry nor the next
/// abort round (which finds only the transactions still open).
async fn txn_timers(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let config = &broker.config;
    let mut abort = tokio::time::interval(Duration::from_millis(
        config
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .max(1),
    ));
    let mut expire = tokio::time::interval(Duration::from_millis(
        config
            .transaction_remove_expired_transaction_cleanup_interval_ms
            .max(1),
    ));
    abort.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let broker = broker.clone();
        let round = tokio::select! {
            _ = abort.tick() => {
                tokio::spawn(async move { broker.txns.abort_timed_out(&broker.groups).await });
                continue;
            }
            _ = expire.tick() => event_loop::spawn_blocking(move || broker.txns.expire_ids()),
            _ = shutdown.changed() => return,
        };
        // Shutdown does not wait for the expiry either.
        tokio::select! {
            done = round => if let Err(err) = done {
                tracing::error!("transaction timer failed: {err}");
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The cluster links run beside the coordinators, on the broker's state.
impl LinkHost for Broker {
    fn config(&self) -> &Config {
        &self.config
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn topics(&self) -> &Arc<crate::topics::TopicRegistry> {
        &self.topics
    }

    fn groups(&self) -> &Arc<crate::group::GroupCoordinator> {
        &self.groups
    }
}
