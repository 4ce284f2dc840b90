//! Helpers for tests that need a real broker: one started in the test's own process, serving
//! on an OS-chosen loopback port, over a data directory the test owns.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use crate::broker::Broker;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::network;
use crate::topics::TopicRegistry;
use crate::txn::log::TRANSACTION_STATE_TOPIC;
use crate::txn::TransactionCoordinator;

pub struct InProcessBroker {
    pub addr: String,
    pub broker: Arc<Broker>,
    /// Dropping it stops the listeners.
    _shutdown: watch::Sender<bool>,
}

/// Starts a broker on `dir` with `config` (its listen address and data directory replaced),
/// the only voter of its own metadata quorum unless `config` names voters, wired as the
/// server wires one. Needs a multi-threaded runtime: opening the broker blocks.
pub async fn start_broker(dir: &Path, config: Config) -> InProcessBroker {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..config
    };
    let listeners = network::bind(&config).await.unwrap();
    config.listen = listeners[0].local_addr;
    let addr = config.listen.to_string();
    let quorum = crate::config::quorum_config(&config).unwrap();
    let cluster = Cluster::start(&config, quorum).await.unwrap();
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(config, cluster)).unwrap());
    let (shutdown, stop) = watch::channel(false);
    crate::server::start(&broker, &stop);
    broker.cluster.serving().await;
    tokio::spawn(network::serve(listeners, broker.clone(), stop));
    InProcessBroker {
        addr,
        broker,
        _shutdown: shutdown,
    }
}

/// Makes `topics` hold the coordinators' internal topics, led here, and has `groups` and
/// `txns` coordinate every partition of them, as a single node's reconciler makes it; `txns`
/// gets a block of producer ids, as from the controller.
pub fn coordinate_everything(
    topics: &TopicRegistry,
    groups: &GroupCoordinator,
    txns: Option<&TransactionCoordinator>,
) {
    let config = topics.broker_config();
    let offsets = config.offsets_topic_num_partitions;
    topics
        .create_led_here(OFFSETS_TOPIC, offsets, topics.internal_configs())
        .unwrap();
    for partition in 0..offsets {
        groups.load_partition(partition).unwrap();
    }
    let Some(txns) = txns else { return };
    let states = config.transaction_state_num_partitions;
    topics
        .create_led_here(TRANSACTION_STATE_TOPIC, states, topics.internal_configs())
        .unwrap();
    for partition in 0..states {
        txns.load_partition(partition).unwrap();
    }
    txns.add_producer_ids(0, 1000);
}
