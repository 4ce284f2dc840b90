//! The broker's shared state, which every handler sees: the topics and their partitions,
//! the coordinators, the security stores, the metrics, and this node's part in the metadata
//! quorum.
//! Starting it, its background work and its shutdown are the [`crate::server`]'s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::auth::{Authorizer, CredentialStore};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::fetch_sessions::FetchSessionCache;
use crate::group::GroupCoordinator;
use crate::metrics::Metrics;
use crate::quotas::{ClientQuotas, Windows};
use crate::schema_validation::RegistrySlot;
use crate::share::coordinator::ShareCoordinator;
use crate::share::leader::ShareLeader;
use crate::share::state::Persister;
use crate::telemetry::ClientTelemetry;
use crate::topics::TopicRegistry;
use crate::txn::TransactionCoordinator;

/// Threads closing partition logs at shutdown.
const CLOSING_THREADS: usize = 8;

/// State every handler sees.
pub struct Broker {
    pub config: Arc<Config>,
    /// Shared with the coordinators, which create their internal topics when first needed.
    pub topics: Arc<TopicRegistry>,
    /// Shared so that its writes can run off the event loop (see `handlers::off_event_loop`).
    pub groups: Arc<GroupCoordinator>,
    /// Producer ids and transactions; loads `__transaction_state` after the groups.
    pub txns: Arc<TransactionCoordinator>,
    pub metrics: Metrics,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessionCache,
    /// SCRAM credentials of SASL users (also what PLAIN passwords are checked against),
    /// installed from the metadata log over the configured users.
    pub credentials: Arc<CredentialStore>,
    pub authorizer: Arc<Authorizer>,
    /// This node's part in the metadata quorum, of which a single node is the only voter.
    pub cluster: Cluster,
    /// The client quotas' sensors: what each client used, and its throttles.
    pub quotas: ClientQuotas,
    /// Client telemetry subscriptions and instances (KIP-714).
    pub telemetry: ClientTelemetry,
    /// The share-partition state (KIP-932), as the share coordinator keeps it.
    pub share_state: Arc<Persister>,
    /// The share-partitions this broker leads, and the share sessions (KIP-932).
    pub share_leader: ShareLeader,
    /// The schema registry's answers to Produce's schema id validation, once it has started
    /// (never, on a broker without one).
    pub schema_ids: RegistrySlot,
}

impl Broker {
    /// Opens the data directory. The partitions open as the metadata assigns them to this
    /// broker (see [`Cluster::start_replication`]).
    pub fn open(config: Config, cluster: Cluster) -> anyhow::Result<Broker> {
        let config = Arc::new(config);
        let topics = TopicRegistry::open(config.clone())
            .map(Arc::new)
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
        let seeds = config
            .sasl
            .as_ref()
            .map(|s| s.scram_users.as_slice())
            .unwrap_or_default();
        let credentials = CredentialStore::replicated(seeds);
        let authorizer = Authorizer::new(&config);
        // A broker coordinates the groups and transactional ids of the internal partitions
        // it leads (see `CoordinatorLeadership`); a single node leads them all.
        let txns = Arc::new(TransactionCoordinator::new(config.clone(), topics.clone()));
        let groups = Arc::new(GroupCoordinator::new(config.clone(), topics.clone()));
        // TxnOffsetCommit asks the transaction coordinator whether the producer may commit.
        groups.set_transaction_check(txns.clone());
        let fetch_sessions = FetchSessionCache::new(
            config.max_incremental_fetch_session_cache_slots,
            i64::try_from(config.min_incremental_fetch_session_eviction_ms).unwrap_or(i64::MAX),
            config.max_incremental_fetch_session_cache_partitions,
        );
        let windows = Windows {
            samples: config.quota_window_num,
            window_ms: i64::from(config.quota_window_size_seconds) * 1000,
        };
        let quotas = ClientQuotas::new(windows, crate::quotas::limits_of(&cluster));
        cluster.install_mutation_charger(quotas.mutation_charger());
        let metrics = Metrics::new();
        let telemetry = ClientTelemetry::new(&config.telemetry, metrics.client_series.clone());
        let share_leader = ShareLeader::new(&config);
        Ok(Broker {
            share_leader,
            share_state: Arc::new(Persister::new(Arc::new(ShareCoordinator::new(
                config.clone(),
                topics.clone(),
                metrics.share_coordinator.clone(),
            )))),
            quotas,
            telemetry,
            txns,
            fetch_sessions,
            groups,
            config,
            topics,
            metrics,
            credentials: Arc::new(credentials),
            authorizer: Arc::new(authorizer),
            cluster,
            schema_ids: RegistrySlot::new(),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Flushes and closes every partition log; returns whether all of them closed cleanly.
    /// Several at a time: closing syncs each log, and one after another a few hundred
    /// partitions' fsyncs kept a SIGTERM waiting for seconds under load, where concurrent
    /// ones share the file system's journal commits.
    pub fn close(&self) -> bool {
        let partitions = self.topics.partitions();
        let next = AtomicUsize::new(0);
        let clean = AtomicBool::new(true);
        std::thread::scope(|scope| {
            for _ in 0..partitions.len().clamp(1, CLOSING_THREADS) {
                scope.spawn(|| {
                    while let Some(partition) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(err) = partition.close() {
                            tracing::error!(topic = %partition.topic, partition = partition.index, "close failed: {err}");
                            clean.store(false, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        clean.into_inner()
    }
}
