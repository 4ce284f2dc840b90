//! Cluster links: this cluster mirrors topics of a source cluster (Apache Kafka or samsa),
//! keeping their offsets, timestamps, headers and batches, as Confluent's Cluster Linking
//! does. A coordinator beside the group coordinator: it reads the source with a small Kafka
//! client of its own (`source`), creates and follows the mirror topics through the cluster
//! metadata, runs a fetcher for every mirror partition this broker leads (`mirror`), and
//! copies the linked consumer groups' committed offsets into the group coordinator.
//!
//! A mirror topic is marked with the topic config `samsa.link.name`, so the mark replicates
//! with the metadata log and survives restarts; deleting it promotes the topic.

pub mod acls;
pub mod cli;
pub mod mirror;
pub mod secure;
pub mod source;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::cluster::NewTopic;
use crate::config::link::{self, LinkConfig};
use crate::config::Config;
use crate::error::BrokerError;
use crate::event_loop::off_event_loop;
use crate::group::state::CommittedOffset;
use crate::group::GroupCoordinator;
use crate::peer::PeerConnection;
use crate::topics::config::MIRROR_LINK_KEY;
use crate::topics::TopicRegistry;
use mirror::PartitionMirror;
use secure::Connector;
use source::SourceError;
use stats::LinkStats;

/// How often a broker looks for mirror partitions it has come to lead.
const LEADERSHIP_CHECK: Duration = Duration::from_millis(250);
/// OffsetCommit version the copied offsets are stored as (a simple commit: no member).
const COMMIT_VERSION: i16 = 9;

/// What the links need of the broker, which owns them all.
pub trait LinkHost: Send + Sync + 'static {
    fn config(&self) -> &Config;
    fn cluster(&self) -> &Cluster;
    fn topics(&self) -> &Arc<TopicRegistry>;
    fn groups(&self) -> &Arc<GroupCoordinator>;
}

/// Starts every configured link; they run until `shutdown` turns true.
pub fn start<H: LinkHost>(
    host: Arc<H>,
    stats: Arc<LinkStats>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for config in &host.config().links {
        let config = Arc::new(config.clone());
        let connector = match Connector::new(&config) {
            Ok(connector) => Arc::new(connector),
            Err(err) => {
                tracing::error!(link = %config.name, "cluster link not started: {err}");
                continue;
            }
        };
        tracing::info!(link = %config.name, bootstrap = %config.bootstrap, protocol = ?config.security_protocol, "cluster link starting");
        tasks.push(tokio::spawn(sync_source(
            host.clone(),
            config.clone(),
            connector.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(run_mirrors(
            host.clone(),
            config,
            connector,
            stats.clone(),
            shutdown.clone(),
        )));
    }
    tasks
}

/// Starts a fetcher for every partition of this link's mirror topics that this broker leads
/// and has none for its leader epoch; a fetcher ends by itself when that leadership does.
async fn run_mirrors<H: LinkHost>(
    host: Arc<H>,
    link: Arc<LinkConfig>,
    connector: Arc<Connector>,
    stats: Arc<LinkStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running: HashMap<(String, i32), (i32, JoinHandle<()>)> = HashMap::new();
    let mut tick = tokio::time::interval(LEADERSHIP_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        running.retain(|_, (_, task)| !task.is_finished());
        for topic in host.topics().all() {
            if topic.configs.mirror_link() != Some(link.name.as_str()) {
                continue;
            }
            for partition in &topic.partitions {
                let epoch = partition.leader_epoch();
                if !partition.leads_at(epoch) {
                    continue;
                }
                let key = (topic.name.clone(), partition.index);
                if running.get(&key).is_some_and(|(e, _)| *e == epoch) {
                    continue;
                }
                let mirror = PartitionMirror {
                    host: host.clone(),
                    link: link.clone(),
                    connector: connector.clone(),
                    topics: host.topics().clone(),
                    stats: stats.clone(),
                    partition: partition.clone(),
                    epoch,
                };
                let task = tokio::spawn(mirror.run(shutdown.clone()));
                running.insert(key, (epoch, task));
            }
        }
    }
    for (_, (_, task)) in running {
        let _ = task.await;
    }
}

/// Every `sync_interval_ms`: the source's topics become mirror topics here (created with the
/// source's partition count and configs, grown with it, their configs kept in step), and the
/// linked groups' committed offsets are copied.
async fn sync_source<H: LinkHost>(
    host: Arc<H>,
    link: Arc<LinkConfig>,
    connector: Arc<Connector>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Topics are placed on registered brokers: none before this one is.
    tokio::select! {
        _ = host.cluster().unfenced() => {}
        _ = shutdown.changed() => return,
    }
    let mut tick = tokio::time::interval(Duration::from_millis(link.sync_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let round = async {
            let source = Source {
                link: &link,
                connector: &connector,
            };
            sync_topics(&*host, &source).await?;
            sync_groups(&*host, &source).await?;
            if link.acls {
                sync_acls(&*host, &source).await?;
            }
            Ok::<(), SyncError>(())
        };
        let outcome = tokio::select! {
            outcome = round => outcome,
            _ = shutdown.changed() => return,
        };
        match outcome {
            Ok(()) if failing => {
                tracing::info!(link = %link.name, "cluster link: the source answers again");
                failing = false;
            }
            Ok(()) => {}
            Err(err) if failing => tracing::debug!(link = %link.name, "cluster link sync: {err}"),
            Err(err) => {
                tracing::warn!(link = %link.name, "cluster link sync: {err}; trying again in {} ms", link.sync_interval_ms);
                failing = true;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Local(#[from] BrokerError),
}

fn timeout() -> Duration {
    Duration::from_secs(10)
}

/// A link and how it reaches its source.
struct Source<'a> {
    link: &'a LinkConfig,
    connector: &'a Connector,
}

impl Source<'_> {
    async fn connect(&self, addr: &str) -> Result<PeerConnection, SourceError> {
        self.connector.connect(self.link, addr, timeout()).await
    }
}

async fn sync_topics<H: LinkHost>(host: &H, source_link: &Source<'_>) -> Result<(), SyncError> {
    let link = source_link.link;
    let mut conn = source_link.connect(&link.bootstrap).await?;
    let source = source::metadata(&mut conn, timeout()).await?;
    let cluster = host.cluster();
    let config = host.config();
    for (name, leaders) in &source.topics {
        if name.starts_with("__") || !link::matches(&link.topics, name) || leaders.is_empty() {
            continue;
        }
        let local = cluster.metadata();
        let existing = local.topics.get(name);
        let ours = existing.is_some_and(|t| {
            t.configs.get(MIRROR_LINK_KEY).map(String::as_str) == Some(link.name.as_str())
        });
        if existing.is_some() && !ours {
            // A topic of this cluster's own, or one promoted: never written by the link.
            continue;
        }
        let mut configs = source::topic_configs(&mut conn, name, timeout()).await?;
        configs.insert(MIRROR_LINK_KEY.to_string(), link.name.clone());
        let count = leaders.len() as i32;
        let Some(topic) = existing else {
            let spec = NewTopic {
                name: name.clone(),
                partitions: Some(count),
                configs,
                ..NewTopic::default()
            };
            match cluster
                .create_topic(
                    spec,
                    config.num_partitions,
                    config.default_replication_factor,
                    false,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(link = %link.name, topic = %name, partitions = count, "mirror topic created")
                }
                Err(BrokerError::TopicAlreadyExists(_)) => {}
                Err(err) => return Err(err.into()),
            }
            continue;
        };
        if (topic.partitions.len() as i32) < count {
            tracing::info!(link = %link.name, topic = %name, from = topic.partitions.len(), to = count, "mirror topic follows the source's new partitions");
            match cluster.create_partitions(name, count, None, false).await {
                Ok(()) | Err(BrokerError::InvalidPartitions(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if topic.configs != configs {
            cluster.alter_topic_configs(name, configs, false).await?;
        }
    }
    Ok(())
}

/// The source's ACLs on the mirror topics and linked groups, made this cluster's.
async fn sync_acls<H: LinkHost>(host: &H, source_link: &Source<'_>) -> Result<(), SyncError> {
    let link = source_link.link;
    let mut conn = source_link.connect(&link.bootstrap).await?;
    let wanted = acls::wanted(link, source::describe_acls(&mut conn, timeout()).await?);
    Ok(acls::apply(host.cluster(), link, wanted).await?)
}

/// Copies the committed offsets of the linked groups on mirror topics from the source, for
/// the groups this broker coordinates here and that have no members here: a group that
/// failed over and consumes here already owns its offsets.
async fn sync_groups<H: LinkHost>(host: &H, source_link: &Source<'_>) -> Result<(), SyncError> {
    let link = source_link.link;
    if link.groups.is_empty() {
        return Ok(());
    }
    let mut conn = source_link.connect(&link.bootstrap).await?;
    let source = source::metadata(&mut conn, timeout()).await?;
    let mut groups = Vec::new();
    for addr in source.brokers.values() {
        let mut broker = source_link.connect(addr).await?;
        groups.extend(source::list_groups(&mut broker, timeout()).await?);
    }
    groups.retain(|g| link::matches(&link.groups, g));
    groups.sort();
    groups.dedup();
    let mirrors: BTreeMap<String, ()> = host
        .topics()
        .all()
        .into_iter()
        .filter(|t| t.configs.mirror_link() == Some(link.name.as_str()))
        .map(|t| (t.name.clone(), ()))
        .collect();
    for group in groups {
        let coordinator = source::group_coordinator(&mut conn, &group, timeout()).await?;
        let mut at = source_link.connect(&coordinator).await?;
        let offsets: Vec<_> = source::committed_offsets(&mut at, &group, timeout())
            .await?
            .into_iter()
            .filter(|(topic, ..)| mirrors.contains_key(topic))
            .collect();
        copy_offsets(host.groups(), link, &group, offsets).await;
    }
    Ok(())
}

/// Commits `offsets` for `group` here where they differ from what it holds.
async fn copy_offsets(
    groups: &Arc<GroupCoordinator>,
    link: &LinkConfig,
    group: &str,
    offsets: Vec<source::SourceOffset>,
) {
    let wanted: Vec<(String, Vec<i32>)> = offsets
        .iter()
        .map(|(t, p, ..)| (t.clone(), vec![*p]))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let held = match groups.fetch(group, Some(wanted), false, None) {
        Ok(held) => held,
        // Coordinated by another broker here, which copies it.
        Err(_) => return,
    };
    let now = crate::clock::now_ms();
    let changed: Vec<(String, i32, CommittedOffset)> = offsets
        .into_iter()
        .filter(|(topic, partition, offset, ..)| {
            !held.iter().any(|h| {
                &h.topic == topic
                    && h.partition == *partition
                    && h.offset.as_ref().is_some_and(|o| o.offset == *offset)
            })
        })
        .map(|(topic, partition, offset, leader_epoch, metadata)| {
            let committed = CommittedOffset {
                offset,
                leader_epoch,
                metadata: Some(metadata.unwrap_or_default()),
                commit_timestamp: now,
                expire_timestamp: None,
                record_offset: -1,
            };
            (topic, partition, committed)
        })
        .collect();
    if changed.is_empty() {
        return;
    }
    let count = changed.len();
    let (coordinator, id) = (groups.clone(), group.to_owned());
    let committed =
        off_event_loop(move || coordinator.commit(&id, "", None, -1, changed, COMMIT_VERSION));
    match committed.await {
        Ok(pending) => match pending.acknowledged().await {
            Ok(()) => {
                tracing::debug!(link = %link.name, group, offsets = count, "copied committed offsets from the source")
            }
            Err(err) => tracing::debug!(link = %link.name, group, "copying offsets: {err}"),
        },
        // Members here (the group failed over), or not coordinated here.
        Err(err) => tracing::debug!(link = %link.name, group, "offsets not copied: {err}"),
    }
}
