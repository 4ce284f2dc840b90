//! The broker's shared state, which every handler sees: the topics and their partitions,
//! the coordinators, the security stores, the metrics, and this node's part in a cluster.
//! Starting it, its background work and its shutdown are the [`crate::server`]'s.

use std::sync::Arc;

use anyhow::Context;

use crate::auth::{Authorizer, CredentialStore};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::group::GroupCoordinator;
use crate::metrics::Metrics;
use crate::topics::internal::Coordination;
use crate::topics::TopicRegistry;
use crate::txn::TransactionCoordinator;

/// State every handler sees.
pub struct Broker {
    pub config: Arc<Config>,
    /// Shared with the coordinators, which create their internal topics when first needed.
    pub topics: Arc<TopicRegistry>,
    pub groups: GroupCoordinator,
    /// Producer ids and transactions; loads `__transaction_state` after the groups.
    pub txns: Arc<TransactionCoordinator>,
    pub metrics: Metrics,
    /// SCRAM credentials of SASL users (also what PLAIN passwords are checked against).
    /// Shared with the cluster, whose metadata log keeps them there.
    pub credentials: Arc<CredentialStore>,
    pub authorizer: Arc<Authorizer>,
    /// This node's part in a cluster; `None` for the single-node broker.
    pub cluster: Option<Cluster>,
}

impl Broker {
    /// Opens the data directory, recovering every partition.
    pub fn open(config: Config) -> anyhow::Result<Broker> {
        let config = Arc::new(config);
        let topics = TopicRegistry::open(config.clone())
            .map(Arc::new)
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
        let seeds = config
            .sasl
            .as_ref()
            .map(|s| s.scram_users.as_slice())
            .unwrap_or_default();
        // A cluster's credentials come from its metadata log, over the configured users.
        let credentials = match config.controller_quorum_voters {
            Some(_) => CredentialStore::replicated(seeds),
            None => CredentialStore::open(&config.data_dir, seeds)?,
        };
        let authorizer = Authorizer::open(&config)?;
        // One node coordinates every group and transactional id; in a cluster a broker
        // coordinates those of the internal partitions it leads (see `CoordinatorLeadership`).
        let coordination = match config.controller_quorum_voters {
            Some(_) => Coordination::Cluster,
            None => Coordination::SingleNode,
        };
        let txns = Arc::new(TransactionCoordinator::open(
            config.clone(),
            topics.clone(),
            coordination,
        )?);
        let groups = GroupCoordinator::new(config.clone(), topics.clone(), coordination);
        // TxnOffsetCommit asks the transaction coordinator whether the producer may commit.
        groups.set_transaction_check(txns.clone());
        Ok(Broker {
            txns,
            groups,
            config,
            topics,
            metrics: Metrics::new(),
            credentials: Arc::new(credentials),
            authorizer: Arc::new(authorizer),
            cluster: None,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Flushes and closes every partition log, leaving clean-shutdown markers.
    pub fn close(&self) {
        for partition in self.topics.partitions() {
            if let Err(err) = partition.close() {
                tracing::error!(topic = %partition.topic, partition = partition.index, "close failed: {err}");
            }
        }
    }
}
