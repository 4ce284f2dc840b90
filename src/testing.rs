//! Helpers for tests that need a real broker: one started in the test's own process, serving
//! on an OS-chosen loopback port, over a data directory the test owns.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::Config;
use crate::network;

pub struct InProcessBroker {
    pub addr: String,
    pub broker: Arc<Broker>,
    /// Dropping it stops the listeners.
    _shutdown: watch::Sender<bool>,
}

/// Starts a broker on `dir` with `config` (its listen address and data directory replaced).
/// Needs a multi-threaded runtime: opening the broker blocks.
pub async fn start_broker(dir: &Path, config: Config) -> InProcessBroker {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..config
    };
    let listeners = network::bind(&config).await.unwrap();
    config.listen = listeners[0].local_addr;
    let addr = config.listen.to_string();
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(config)).unwrap());
    let (shutdown, stop) = watch::channel(false);
    tokio::spawn(network::serve(listeners, broker.clone(), stop));
    InProcessBroker {
        addr,
        broker,
        _shutdown: shutdown,
    }
}
