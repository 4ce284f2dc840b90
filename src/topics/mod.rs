//! The topics this broker serves: a registry over the on-disk catalogue and the
//! partition logs, with topic creation, deletion and partition growth.

pub mod catalogue;
pub mod config;
pub mod internal;
pub mod partition;
pub mod schema;
pub mod unread;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::lock_order::{level, OrderedMutex, OrderedRwLock};
use catalogue::{CatalogueError, CatalogueFile};
pub use config::TopicConfig;
pub use partition::{
    Assignment, Isolation, IsrProposal, Offsets, Partition, ReadResult, RoleChange,
};

/// Runs blocking partition work (reads, appends, their checks) on the storage threads, the
/// one place disk work runs (see `samsa_storage::StorageThreads`), and waits for it without
/// holding the caller's thread.
pub async fn on_storage_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    samsa_storage::storage_threads().run(work).await
}

/// Kafka's limit on topic name length (the partition directory name must stay under 255).
const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic and its partitions. Immutable: a change (more partitions) replaces the `Arc<Topic>`.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: TopicConfig,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

#[derive(Default)]
struct Topics {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, String>,
}

pub struct TopicRegistry {
    config: Arc<Config>,
    cluster_id: String,
    /// The metadata log is the catalogue of topics (see [`Self::sync_topic`]); the local
    /// catalogue file only keeps the cluster id.
    topics: OrderedRwLock<level::Topics, Topics>,
    /// Serialises topic changes, so that two reconciliations never interleave.
    changes: OrderedMutex<level::TopicChanges, ()>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the catalogue: {0}")]
    Store(std::io::Error),
}

/// Checks a topic name the way Kafka does.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |why: String| Err(BrokerError::InvalidTopic(why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl TopicRegistry {
    /// Opens the data directory, keeping the cluster id in its catalogue (made on first start).
    /// Partitions open as the metadata assigns them ([`Self::sync_topic`]). The topics of a
    /// catalogue written before the metadata moved into the log are left to
    /// [`catalogue::load`] and the server's one-time conversion.
    pub fn open(config: Arc<Config>) -> std::result::Result<TopicRegistry, OpenError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let file = match catalogue::load(&data_dir)? {
            Some(file) => file,
            None => {
                let file = CatalogueFile {
                    cluster_id: config.cluster_id.clone().unwrap_or_else(new_cluster_id),
                    topics: Vec::new(),
                };
                catalogue::store(&data_dir, &file).map_err(OpenError::Store)?;
                file
            }
        };
        Ok(TopicRegistry {
            cluster_id: config.cluster_id.clone().unwrap_or(file.cluster_id),
            config,
            topics: OrderedRwLock::new(Topics::default()),
            changes: OrderedMutex::new(()),
        })
    }

    pub fn broker_config(&self) -> &Config {
        &self.config
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().by_name.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let topics = self.topics.read();
        topics
            .by_id
            .get(&id)
            .and_then(|name| topics.by_name.get(name))
            .cloned()
    }

    /// Every topic, in name order.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics.read().by_name.values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>> {
        self.get(topic)
            .and_then(|t| t.partition(index).cloned())
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }

    /// The config overrides of a coordinator's internal topic, wherever it is created.
    pub fn internal_configs(&self) -> BTreeMap<String, String> {
        let segment_bytes = self.broker_config().offsets_topic_segment_bytes.to_string();
        [
            ("cleanup.policy", "compact"),
            ("segment.bytes", segment_bytes.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Deletes a topic and its logs.
    pub fn delete(&self, name: &str) -> Result<()> {
        let _change = self.changes.lock();
        let topic = self.get(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.commit(|topics| {
            topics.by_name.remove(name);
            topics.by_id.remove(&topic.id);
        });
        for partition in &topic.partitions {
            if let Err(err) = partition.delete() {
                tracing::warn!(
                    topic = name,
                    partition = partition.index,
                    "leftover partition files: {err}"
                );
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Makes the topic what the metadata log records, with id `id`, `configs`
    /// and one partition per entry of `hosted`, whose log is open where this broker holds a
    /// replica and deleted where it no longer does. A topic of this name with another id
    /// was deleted and created again meanwhile: its logs go first.
    pub fn sync_topic(
        &self,
        name: &str,
        id: Uuid,
        configs: BTreeMap<String, String>,
        hosted: &[bool],
    ) -> Result<Arc<Topic>> {
        let configs = TopicConfig::validated(configs)?;
        let existing = match self.get(name) {
            Some(topic) if topic.id != id => {
                self.delete(name)?;
                None
            }
            other => other,
        };
        let _change = self.changes.lock();
        let log_config = configs.log_config(&self.config);
        let min_isr = configs.min_insync_replicas(&self.config);
        let reconfigured = existing.as_ref().is_some_and(|t| t.configs != configs);
        let mut grown = existing.is_none();
        let mut partitions = Vec::with_capacity(hosted.len());
        for (index, &host) in hosted.iter().enumerate() {
            let index = index as i32;
            let dir = self.partition_dir(name, index);
            let partition = match existing.as_ref().and_then(|t| t.partition(index)) {
                Some(partition) => partition.clone(),
                None => {
                    grown = true;
                    Arc::new(Partition::open_replica(
                        name,
                        index,
                        dir.clone(),
                        None,
                        self.config.node_id,
                    )?)
                }
            };
            if host && !partition.is_hosted() {
                claim_partition_dir(&dir, id)?;
                partition.host(log_config.clone())?;
            } else if !host && partition.is_hosted() {
                partition.unhost()?;
                tracing::info!(
                    topic = name,
                    partition = index,
                    "deleted the replica this broker no longer holds"
                );
            }
            if reconfigured {
                partition.set_config(log_config.clone(), min_isr);
            }
            partitions.push(partition);
        }
        let topic = match existing {
            Some(topic) if !grown && !reconfigured => return Ok(topic),
            _ => Arc::new(Topic {
                name: name.to_owned(),
                id,
                configs,
                partitions,
            }),
        };
        self.commit(|topics| {
            topics.by_id.insert(topic.id, topic.name.clone());
            topics.by_name.insert(topic.name.clone(), topic.clone());
        });
        Ok(topic)
    }

    /// Deletes the replica directories (those marked by `partition.metadata`)
    /// for which `assigned(topic, partition, topic id)` is false: replicas of topics deleted,
    /// or moved away, while this broker was down. Decided from the cluster's assignment, not
    /// from what opened here, so a replica that failed to open is never taken for a stray.
    pub fn remove_stray_replicas(&self, assigned: impl Fn(&str, i32, Uuid) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.config.data_dir) else {
            return 0;
        };
        let mut removed = 0;
        for dir in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let Some(id) = std::fs::read_to_string(dir.join(PARTITION_METADATA))
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("topic_id: ").map(str::to_owned))
                })
                .and_then(|id| Uuid::parse_str(id.trim()).ok())
            else {
                continue;
            };
            let Some((topic, index)) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once('-'))
                .and_then(|(t, i)| Some((t.to_owned(), i.parse::<i32>().ok()?)))
            else {
                continue;
            };
            if assigned(&topic, index, id) {
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removed a replica the cluster no longer assigns here");
                    removed += 1;
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), "cannot remove a stray replica: {err}")
                }
            }
        }
        removed
    }

    /// Every partition of every topic, for background flushing, retention, compaction and shutdown.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .by_name
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Applies `change` to a copy of the topics, then publishes the copy: readers never take
    /// the write lock's wait for longer than a swap.
    fn commit(&self, change: impl FnOnce(&mut Topics)) {
        let mut next = {
            let current = self.topics.read();
            Topics {
                by_name: current.by_name.clone(),
                by_id: current.by_id.clone(),
            }
        };
        change(&mut next);
        *self.topics.write() = next;
    }

    /// For tests of what runs above the registry: topic `name` with `partitions` partitions
    /// this broker hosts and leads alone at epoch 0, as the reconciler would make it. Its id
    /// follows from its name, so a test that opens the directory again finds its logs.
    #[cfg(test)]
    pub fn create_led_here(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name.as_bytes());
        let id = Uuid::from_slice(&digest[..16]).expect("16 bytes");
        let hosted = vec![true; partitions as usize];
        let topic = self.sync_topic(name, id, configs, &hosted)?;
        let me = self.config.node_id;
        for partition in &topic.partitions {
            partition.become_leader(0, &[me], &[me], 1)?;
        }
        Ok(topic)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }
}

/// Kafka's `partition.metadata` file, naming the topic id a partition directory belongs to.
const PARTITION_METADATA: &str = "partition.metadata";

/// Makes `dir` a replica directory of topic `id`. A directory left by a deleted topic of
/// the same name (deleted while this broker was down) holds another id: it is removed, so
/// that old records never reappear in the new topic.
fn claim_partition_dir(dir: &std::path::Path, id: Uuid) -> Result<()> {
    let io = |e: std::io::Error| BrokerError::Storage(samsa_storage::StorageError::from(e));
    let path = dir.join(PARTITION_METADATA);
    let wanted = format!("version: 0\ntopic_id: {}\n", id.simple());
    match std::fs::read_to_string(&path) {
        Ok(found) if found == wanted => return Ok(()),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "removing a replica of an earlier topic of the same name");
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(&path, wanted).map_err(io)
}

fn new_cluster_id() -> String {
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID; a plain UUID string
    // without dashes is as unique and every client treats the id as opaque.
    Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
