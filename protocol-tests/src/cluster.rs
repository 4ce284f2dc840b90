//! Several samsa processes forming one cluster on loopback: each node a controller of the
//! metadata quorum and a broker, with short heartbeats and sessions so that failures are
//! noticed in seconds. Tests kill, stop and restart nodes through their [`BrokerProcess`].

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse};

use crate::client::{topic_configs, topic_name, TopicRef};
use crate::{free_port, BrokerProcess, Connection};

pub const HEARTBEAT_MS: u64 = 200;
pub const SESSION_TIMEOUT_MS: u64 = 1500;
/// Elections, sessions and catch-up take seconds; a loaded 2-core machine needs slack.
pub const CONVERGE: Duration = Duration::from_secs(30);

pub struct Node {
    pub id: i32,
    pub process: BrokerProcess,
    /// Where its Prometheus metrics are served.
    pub metrics_port: u16,
}

pub struct TestCluster {
    pub nodes: Vec<Node>,
}

impl TestCluster {
    /// `n` nodes with ids 1..=n, rack `rack-<id>`, and `extra` appended to every config.
    pub fn start(n: i32, extra: &str) -> Result<TestCluster> {
        Self::start_with(n, |_| extra.to_owned())
    }

    /// As [`TestCluster::start`], with `extra(id)` appended to node `id`'s config: for what
    /// differs between nodes, such as the address of a listener of their own.
    pub fn start_with(n: i32, extra: impl Fn(i32) -> String) -> Result<TestCluster> {
        Self::launch(n, n, extra)
    }

    /// `brokers` nodes with ids 1..=brokers as [`TestCluster::start`] makes them, and
    /// `controllers` more after them that are only voters of the quorum: a quorum that
    /// outlives the loss of every broker.
    pub fn start_with_controllers(
        brokers: i32,
        controllers: i32,
        extra: &str,
    ) -> Result<TestCluster> {
        Self::launch(brokers + controllers, brokers, |id| {
            if id > brokers {
                format!("process_roles = [\"controller\"]\n{extra}")
            } else {
                extra.to_owned()
            }
        })
    }

    fn launch(n: i32, brokers: i32, extra: impl Fn(i32) -> String) -> Result<TestCluster> {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect();
        let voters = voters.join(",");
        let nodes = (1..=n)
            .map(|id| {
                let metrics_port = free_port();
                let config = format!(
                    "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                     controller_listen = \"127.0.0.1:{}\"\nrack = \"rack-{id}\"\n\
                     broker_heartbeat_interval_ms = {HEARTBEAT_MS}\n\
                     broker_session_timeout_ms = {SESSION_TIMEOUT_MS}\n\
                     replica_fetch_backoff_ms = 100\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n{}",
                    ports[id as usize - 1],
                    extra(id)
                );
                Ok(Node {
                    id,
                    process: BrokerProcess::start(&config)?,
                    metrics_port,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let cluster = TestCluster { nodes };
        let all: Vec<i32> = (1..=brokers).collect();
        cluster.await_metadata(&all, "every broker registered", |m| self::brokers(m) == all)?;
        Ok(cluster)
    }

    pub fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a node of the cluster")
    }

    pub fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("a node of the cluster")
    }

    /// The value of one series (`name{labels}` exactly as exposed) in node `id`'s metrics.
    pub fn metric(&self, id: i32, series: &str) -> Result<Option<f64>> {
        crate::metrics::scrape(self.node(id).metrics_port, series)
    }

    pub fn connect(&self, id: i32) -> Result<Connection> {
        self.node(id).process.connect()
    }

    /// Metadata v12 of `topics` (all when empty) as node `id` sees it.
    pub fn metadata(&self, id: i32, topics: &[&str]) -> Result<MetadataResponse> {
        let wanted = (!topics.is_empty()).then(|| {
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        });
        let request = MetadataRequest::default()
            .with_topics(wanted)
            .with_allow_auto_topic_creation(false);
        self.connect(id)?.send(&request, 12)
    }

    /// Polls Metadata on every node in `on` until `done` holds for each answer.
    pub fn await_metadata(
        &self,
        on: &[i32],
        what: &str,
        done: impl Fn(&MetadataResponse) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + CONVERGE;
        let mut last = None;
        loop {
            let answers: Result<Vec<MetadataResponse>> =
                on.iter().map(|id| self.metadata(*id, &[])).collect();
            match answers {
                Ok(answers) if answers.iter().all(&done) => return Ok(()),
                Ok(answers) => last = answers.into_iter().next(),
                // A node may refuse connections for a moment after a restart.
                Err(_) => {}
            }
            if Instant::now() > deadline {
                bail!("not {what} within {CONVERGE:?}; last metadata: {last:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a topic through node `via` and waits until every live node in `on` shows a
    /// leader for each of its partitions.
    pub fn create_topic(
        &self,
        via: i32,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: &[(&str, &str)],
        on: &[i32],
    ) -> Result<TopicRef> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
            .with_configs(topic_configs(configs));
        let response = self.connect(via)?.send(
            &CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![topic]),
            7,
        )?;
        let result = response
            .topics
            .first()
            .context("CreateTopics answered no topic")?;
        if result.error_code != 0 {
            bail!(
                "creating {name}: error {} {:?}",
                result.error_code,
                result.error_message
            );
        }
        self.await_metadata(on, "the new topic led everywhere", |m| {
            topic_partitions(m, name).is_some_and(|ps| {
                ps.len() == partitions as usize && ps.iter().all(|p| p.leader_id.0 >= 0)
            })
        })?;
        Ok(TopicRef {
            name: name.to_owned(),
            id: result.topic_id,
        })
    }
}

/// The unfenced brokers an answer lists, in id order.
pub fn brokers(m: &MetadataResponse) -> Vec<i32> {
    let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    ids
}

/// The partitions of `topic` in an answer, by index, if it lists the topic without error.
pub fn topic_partitions<'a>(
    m: &'a MetadataResponse,
    topic: &str,
) -> Option<Vec<&'a MetadataResponsePartition>> {
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some(topic) && t.error_code == 0)?;
    let mut partitions: Vec<&MetadataResponsePartition> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    Some(partitions)
}

/// One partition of `topic` in an answer.
pub fn partition<'a>(
    m: &'a MetadataResponse,
    topic: &str,
    index: i32,
) -> Option<&'a MetadataResponsePartition> {
    topic_partitions(m, topic)?
        .into_iter()
        .find(|p| p.partition_index == index)
}

/// Broker ids of a replica or ISR list, sorted.
pub fn sorted(ids: &[kafka_protocol::messages::BrokerId]) -> Vec<i32> {
    let mut ids: Vec<i32> = ids.iter().map(|b| b.0).collect();
    ids.sort();
    ids
}
