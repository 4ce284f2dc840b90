//! Turns the applied cluster metadata into this broker's partitions: a log for every replica
//! it holds, the role each partition's record gives it (leader at an epoch, or follower of
//! a leader), one replica fetcher per leader it follows, and word to the coordinators when
//! it gains or loses leadership of a partition of their internal topics.
//!
//! Every change of the metadata is reconciled as a whole, so a missed intermediate state
//! does no harm: only the latest one counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use samsa_metadata::state::{BrokerId, Topic as TopicRecord};
use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::replication::follower::{replicate, FetcherConfig};
use crate::topics::{Assignment, Partition, RoleChange, TopicRegistry};

/// A partition of an internal topic whose leadership moved to or from this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipChange {
    pub topic: String,
    pub partition: i32,
    pub leading: bool,
}

/// Told of every [`LeadershipChange`] of the coordinators' topics, in order.
pub trait CoordinatorHooks: Send + Sync {
    fn leadership_changed(&self, change: &LeadershipChange);
    /// The topics whose leadership changes are of interest.
    fn topics(&self) -> &[&str];
}

/// The partitions followed from one leader, each at the leader epoch it follows; a change
/// of the set restarts the fetcher, which checks every replica against the leader again.
type Followed = BTreeSet<(String, i32, i32)>;

struct Fetcher {
    address: String,
    followed: Followed,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct Reconciler {
    local: BrokerId,
    topics: Arc<TopicRegistry>,
    hooks: Arc<dyn CoordinatorHooks>,
    fetcher_config: FetcherConfig,
    fetchers: BTreeMap<BrokerId, Fetcher>,
    /// Internal-topic partitions this broker leads, to report only real changes.
    coordinating: BTreeSet<(String, i32)>,
    /// Each reconciled metadata, for what the broker tells clients.
    published: watch::Sender<Arc<ClusterMetadata>>,
    /// Whether the replicas left on disk from before this start have been looked at.
    swept: bool,
    /// What each topic's record gave when last applied, while that record is unchanged.
    applied: AppliedTopics,
    /// The partitions this broker leads, for the ISR maintenance (which need not visit the
    /// others), replaced at each reconciled change.
    led: watch::Sender<LedPartitions>,
}

/// The partitions a broker leads, as its reconciler last left them.
pub type LedPartitions = Arc<Vec<Arc<Partition>>>;

impl Reconciler {
    pub fn new(
        local: BrokerId,
        topics: Arc<TopicRegistry>,
        hooks: Arc<dyn CoordinatorHooks>,
        fetcher_config: FetcherConfig,
        published: watch::Sender<Arc<ClusterMetadata>>,
        led: watch::Sender<LedPartitions>,
    ) -> Reconciler {
        Reconciler {
            local,
            topics,
            hooks,
            fetcher_config,
            fetchers: BTreeMap::new(),
            coordinating: BTreeSet::new(),
            published,
            swept: false,
            applied: AppliedTopics::new(),
            led,
        }
    }

    /// Reconciles every metadata change until `shutdown`; then stops the fetchers. Nothing
    /// is done before `ready` holds for the metadata: a restarted broker must first see its
    /// own registration, which took away the leaderships it had before it stopped.
    pub async fn run(
        mut self,
        mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
        ready: impl Fn(&ClusterMetadata) -> bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let current = metadata.borrow_and_update().clone();
            if ready(&current) {
                self.reconcile(current).await;
            }
            tokio::select! {
                changed = metadata.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
        for (_, fetcher) in std::mem::take(&mut self.fetchers) {
            fetcher.stop_and_wait().await;
        }
    }

    async fn reconcile(&mut self, metadata: Arc<ClusterMetadata>) {
        // Fetchers go before roles change, as Kafka's makeLeaders and makeFollowers remove
        // partitions from their fetchers first: a fetcher still running for a partition this
        // broker is about to lead would otherwise ask a stale leader and cut the new leader's
        // log (the partition refuses a fetcher of another epoch too; this keeps it from trying).
        self.stop_stale_fetchers(&metadata).await;
        let topics = self.topics.clone();
        let local = self.local;
        let snapshot = metadata.clone();
        let sweep = !self.swept;
        let mut earlier = std::mem::take(&mut self.applied);
        // Opening, recovering and deleting logs is blocking file work. The first time, the
        // replicas of topics deleted (or moved away) while this broker was down go too.
        let outcome = tokio::task::spawn_blocking(move || {
            let applied = apply_topics(&topics, local, &snapshot, &mut earlier);
            if sweep {
                topics.remove_stray_replicas(|topic, index, id| {
                    let record = snapshot
                        .topics
                        .get(topic)
                        .filter(|t| t.id == *id.as_bytes());
                    let partition = record.and_then(|t| t.partitions.get(index as usize));
                    partition.is_some_and(|p| p.replicas.contains(&local))
                });
            }
            (applied, earlier)
        })
        .await;
        self.swept = true;
        let applied = match outcome {
            Ok((applied, topics)) => {
                self.applied = topics;
                applied
            }
            Err(err) => {
                tracing::error!("reconciling the cluster metadata failed: {err}");
                return;
            }
        };
        self.led.send_replace(Arc::new(applied.led));
        self.report_leadership(&applied.leading).await;
        self.start_fetchers(&metadata, applied.followed).await;
        self.published.send_replace(metadata);
    }

    /// Losses first, then gains, in order, on the blocking pool: loading replays a log.
    async fn report_leadership(&mut self, leading: &BTreeSet<(String, i32)>) {
        let watched: BTreeSet<(String, i32)> = leading
            .iter()
            .filter(|(topic, _)| self.hooks.topics().contains(&topic.as_str()))
            .cloned()
            .collect();
        let change = |(topic, partition): &(String, i32), leading| LeadershipChange {
            topic: topic.clone(),
            partition: *partition,
            leading,
        };
        let mut changes: Vec<LeadershipChange> = self
            .coordinating
            .difference(&watched)
            .map(|p| change(p, false))
            .collect();
        changes.extend(
            watched
                .difference(&self.coordinating)
                .map(|p| change(p, true)),
        );
        self.coordinating = watched;
        if changes.is_empty() {
            return;
        }
        let hooks = self.hooks.clone();
        let reported = crate::event_loop::spawn_blocking(move || {
            for change in &changes {
                hooks.leadership_changed(change);
            }
        });
        if let Err(err) = reported.await {
            tracing::error!("coordinator leadership changes failed: {err}");
        }
    }

    /// Stops every fetcher whose leader's partitions, or their epochs, or the leader's address
    /// differ in `metadata`, and waits for each to end.
    async fn stop_stale_fetchers(&mut self, metadata: &ClusterMetadata) {
        let wanted = followed_in(metadata, self.local);
        let stale: Vec<BrokerId> = self
            .fetchers
            .iter()
            .filter(|(leader, fetcher)| {
                wanted.get(leader) != Some(&fetcher.followed)
                    || address_of(metadata, leader).as_ref() != Some(&fetcher.address)
            })
            .map(|(leader, _)| *leader)
            .collect();
        for leader in stale {
            if let Some(fetcher) = self.fetchers.remove(&leader) {
                fetcher.stop_and_wait().await;
            }
        }
    }

    /// Starts a fetcher for each leader followed that has none running.
    async fn start_fetchers(
        &mut self,
        metadata: &ClusterMetadata,
        wanted: BTreeMap<BrokerId, Vec<(String, Arc<Partition>, i32)>>,
    ) {
        for (leader, partitions) in wanted {
            if self.fetchers.contains_key(&leader) {
                continue;
            }
            let Some(address) = address_of(metadata, &leader) else {
                tracing::warn!(
                    leader,
                    "the leader of followed partitions is not registered"
                );
                continue;
            };
            let followed = followed_set(&partitions);
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(replicate(
                self.fetcher_config.clone(),
                address.clone(),
                partitions,
                stopped,
            ));
            tracing::debug!(leader, %address, partitions = followed.len(), "replica fetcher started");
            self.fetchers.insert(
                leader,
                Fetcher {
                    address,
                    followed,
                    stop,
                    task,
                },
            );
        }
    }
}

fn address_of(metadata: &ClusterMetadata, broker: &BrokerId) -> Option<String> {
    metadata
        .brokers
        .get(broker)
        .map(|b| format!("{}:{}", b.host, b.port))
}

/// Per leader, the partitions `local` follows in `metadata` and their leader epochs.
fn followed_in(metadata: &ClusterMetadata, local: BrokerId) -> BTreeMap<BrokerId, Followed> {
    let mut followed: BTreeMap<BrokerId, Followed> = BTreeMap::new();
    for topic in metadata.topics.values() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader >= 0 && p.leader != local && p.replicas.contains(&local) {
                followed.entry(p.leader).or_default().insert((
                    topic.name.clone(),
                    index as i32,
                    p.leader_epoch,
                ));
            }
        }
    }
    followed
}

impl Fetcher {
    async fn stop_and_wait(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn followed_set(partitions: &[(String, Arc<Partition>, i32)]) -> Followed {
    partitions
        .iter()
        .map(|(topic, partition, epoch)| (topic.clone(), partition.index, *epoch))
        .collect()
}

/// What applying the topics left to do outside the blocking pool.
#[derive(Default)]
struct Applied {
    /// Per leader, the replicas this broker follows and the leader epoch it follows at.
    followed: BTreeMap<BrokerId, Vec<(String, Arc<Partition>, i32)>>,
    /// Every partition this broker leads, by name and as the partition.
    leading: BTreeSet<(String, i32)>,
    led: Vec<Arc<Partition>>,
}

/// What one topic's record gave: the partitions this broker follows (with their leader and
/// leader epoch) and those it leads.
#[derive(Default, Clone)]
struct TopicApplied {
    followed: Vec<(BrokerId, Arc<Partition>, i32)>,
    leading: Vec<Arc<Partition>>,
}

/// By topic name, the record last applied without an error and what it gave. The metadata
/// shares an unchanged topic's record between its versions (`Arc`), so a change that
/// touches a few topics re-applies those few, not every partition of the cluster.
type AppliedTopics = BTreeMap<String, (Arc<TopicRecord>, TopicApplied)>;

/// Brings the registry in line with the metadata's topics and takes each partition's role.
/// A partition that fails is logged and left; the next change tries it again.
fn apply_topics(
    registry: &TopicRegistry,
    local: BrokerId,
    metadata: &ClusterMetadata,
    earlier: &mut AppliedTopics,
) -> Applied {
    let mut applied = Applied::default();
    earlier.retain(|name, _| metadata.topics.contains_key(name));
    for record in metadata.topics.values() {
        let name = &record.name;
        let topic = match earlier.get(name) {
            Some((seen, topic)) if Arc::ptr_eq(seen, record) => topic.clone(),
            _ => {
                earlier.remove(name);
                let mut topic = TopicApplied::default();
                match apply_topic(registry, local, record, &mut topic) {
                    Ok(true) => {
                        earlier.insert(name.clone(), (record.clone(), topic.clone()));
                    }
                    Ok(false) => {} // A partition failed: applied again at the next change.
                    Err(err) => {
                        tracing::error!(topic = %name, "cannot take the topic's assignment: {err}");
                    }
                }
                topic
            }
        };
        for (leader, partition, epoch) in topic.followed {
            let followed = applied.followed.entry(leader).or_default();
            followed.push((name.clone(), partition, epoch));
        }
        for partition in topic.leading {
            applied.leading.insert((name.clone(), partition.index));
            applied.led.push(partition);
        }
    }
    for topic in registry.all() {
        if !metadata.topics.contains_key(&topic.name) {
            match registry.delete(&topic.name) {
                Ok(()) => {
                    tracing::info!(topic = %topic.name, "deleted the replicas of a deleted topic")
                }
                Err(err) => {
                    tracing::error!(topic = %topic.name, "cannot delete the replicas of a deleted topic: {err}")
                }
            }
        }
    }
    applied
}

/// Applies one topic's record; `Ok(false)` if a partition could not take its role.
fn apply_topic(
    registry: &TopicRegistry,
    local: BrokerId,
    record: &TopicRecord,
    applied: &mut TopicApplied,
) -> crate::error::Result<bool> {
    let hosted: Vec<bool> = record
        .partitions
        .iter()
        .map(|p| p.replicas.contains(&local))
        .collect();
    let topic = registry.sync_topic(
        &record.name,
        Uuid::from_bytes(record.id),
        record.configs.clone(),
        &hosted,
    )?;
    let min_isr = topic.configs.min_insync_replicas(registry.broker_config());
    let mut whole = true;
    for (p, partition) in record.partitions.iter().zip(&topic.partitions) {
        let assignment = Assignment {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: &p.replicas,
            isr: &p.isr,
        };
        if !partition.is_hosted() {
            // Not a replica here: remember the leader, to point clients at it.
            partition.take_assignment(assignment, min_isr)?;
            continue;
        }
        match partition.take_assignment(assignment, min_isr) {
            Ok(RoleChange::BecameLeader) => {
                tracing::info!(topic = %record.name, partition = partition.index, epoch = p.leader_epoch, "leading")
            }
            Ok(RoleChange::BecameFollower) => tracing::info!(
                topic = %record.name,
                partition = partition.index,
                leader = p.leader,
                epoch = p.leader_epoch,
                "following"
            ),
            Ok(RoleChange::Unchanged) => {}
            Err(err) => {
                tracing::error!(topic = %record.name, partition = partition.index, "cannot take the partition's role: {err}");
                whole = false;
                continue;
            }
        }
        if p.leader == local {
            applied.leading.push(partition.clone());
        } else if p.leader >= 0 {
            applied
                .followed
                .push((p.leader, partition.clone(), p.leader_epoch));
        }
    }
    Ok(whole)
}
