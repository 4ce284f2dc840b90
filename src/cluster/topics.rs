//! Topic changes in a cluster: checked against the cluster metadata, placed over the
//! unfenced brokers and committed through the active controller, as a KRaft broker forwards
//! them. A change is answered once this node has applied it, so that a client's next request
//! to it finds what it just made.

use std::collections::BTreeMap;
use std::time::Duration;

use samsa_metadata::placement::{place, PlacementError};
use samsa_metadata::state::{BrokerId, Topic as TopicRecord};
use samsa_metadata::{ClusterMetadata, Command, CommandError, Error as MetadataError};
use uuid::Uuid;

use super::Cluster;
use crate::error::{BrokerError, Result};
use crate::topics::{validate_topic_name, TopicConfig};

/// How long a change may take to reach this node after it was committed.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A topic to create. `None`s take the broker's defaults.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    /// Replicas of each partition, in partition order, instead of a count and a factor.
    pub assignment: Option<Vec<Vec<BrokerId>>>,
    pub configs: BTreeMap<String, String>,
}

/// What a created (or validated) topic is.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: TopicConfig,
}

impl Cluster {
    /// CreateTopics (and auto-creation): placed by rack-aware round robin from a random
    /// start, as Kafka spreads leaders over the brokers.
    pub async fn create_topic(
        &self,
        spec: NewTopic,
        default_partitions: i32,
        default_replication: i16,
        validate_only: bool,
    ) -> Result<CreatedTopic> {
        validate_topic_name(&spec.name)?;
        let configs = TopicConfig::validated(spec.configs)?;
        let metadata = self.metadata();
        if metadata.topics.contains_key(&spec.name) {
            return Err(BrokerError::TopicAlreadyExists(format!(
                "Topic '{}' already exists.",
                spec.name
            )));
        }
        let assignment = match spec.assignment {
            Some(assignment) => {
                check_assignment(&metadata, &assignment)?;
                assignment
            }
            None => {
                let partitions = spec.partitions.unwrap_or(default_partitions);
                if partitions < 1 {
                    return Err(BrokerError::InvalidPartitions(
                        "Number of partitions must be larger than 0.".into(),
                    ));
                }
                let factor = spec.replication_factor.unwrap_or(default_replication);
                if factor < 1 {
                    return Err(BrokerError::InvalidReplicationFactor(
                        "Replication factor must be larger than 0, or -1 to use the default value."
                            .into(),
                    ));
                }
                placed(&metadata, partitions as u32, factor as usize, factor)?
            }
        };
        let created = CreatedTopic {
            id: Uuid::new_v4(),
            partitions: assignment.len() as i32,
            replication_factor: assignment.first().map_or(0, |r| r.len() as i16),
            configs: configs.clone(),
        };
        if validate_only {
            return Ok(created);
        }
        let command = Command::CreateTopic {
            name: spec.name.clone(),
            id: *created.id.as_bytes(),
            configs: configs.0,
            assignment,
        };
        match self.propose(command).await {
            Ok(_) => {}
            Err(MetadataError::Command(CommandError::TopicExists(name))) => {
                return Err(BrokerError::TopicAlreadyExists(format!(
                    "Topic '{name}' already exists."
                )))
            }
            Err(err) => return Err(err.into()),
        }
        let id = *created.id.as_bytes();
        let name = spec.name;
        self.await_metadata(APPLY_TIMEOUT, |m| {
            m.topics.get(&name).is_some_and(|t| t.id == id)
        })
        .await;
        Ok(created)
    }

    /// An internal topic of a coordinator, created on first use with up to `replication`
    /// replicas (fewer while fewer brokers are up, as Kafka does for the offsets topic).
    pub async fn internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicRecord> {
        if let Some(topic) = self.published().topics.get(name) {
            return Ok(TopicRecord::clone(topic));
        }
        let applied = self.metadata();
        if !applied.topics.contains_key(name) {
            let live = applied.brokers.values().filter(|b| !b.fenced).count() as i16;
            let spec = NewTopic {
                name: name.to_owned(),
                partitions: Some(partitions),
                replication_factor: Some(replication.min(live).max(1)),
                assignment: None,
                configs,
            };
            match self
                .create_topic(spec, partitions, replication, false)
                .await
            {
                Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        // Known here once reconciled: the coordinator has then loaded what this broker leads.
        self.await_metadata(APPLY_TIMEOUT, |m| m.topics.contains_key(name))
            .await;
        self.published()
            .topics
            .get(name)
            .map(|t| TopicRecord::clone(t))
            .ok_or(BrokerError::CoordinatorNotAvailable)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        if !self.metadata().topics.contains_key(name) {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        self.propose(Command::DeleteTopic {
            name: name.to_owned(),
        })
        .await?;
        self.await_metadata(APPLY_TIMEOUT, |m| !m.topics.contains_key(name))
            .await;
        Ok(())
    }

    /// CreatePartitions: grows `name` to `count` partitions, placed like a new topic's with
    /// the topic's replication factor unless `assignment` gives the new ones' replicas.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<()> {
        let metadata = self.metadata();
        let topic = metadata
            .topics
            .get(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        if count == current {
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic already has {current} partitions."
            )));
        }
        let added = (count - current) as u32;
        let assignment = match assignment {
            Some(assignment) => {
                if assignment.len() as u32 != added {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "Increasing the number of partitions by {added} but {} assignments provided.",
                        assignment.len()
                    )));
                }
                check_assignment(&metadata, &assignment)?;
                assignment
            }
            None => {
                let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
                placed(&metadata, added, factor, factor as i16)?
            }
        };
        if validate_only {
            return Ok(());
        }
        let command = Command::CreatePartitions {
            topic: name.to_owned(),
            assignment,
        };
        self.propose(command).await?;
        self.await_metadata(APPLY_TIMEOUT, |m| {
            m.topics
                .get(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
        })
        .await;
        Ok(())
    }

    /// Replaces a topic's config overrides, once they are known to be valid.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let configs = TopicConfig::validated(configs)?;
        let metadata = self.metadata();
        let topic = metadata
            .topics
            .get(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        if validate_only || topic.configs == configs.0 {
            return Ok(());
        }
        let command = Command::AlterTopicConfigs {
            topic: name.to_owned(),
            configs: configs.0.clone(),
        };
        self.propose(command).await?;
        self.await_metadata(APPLY_TIMEOUT, |m| {
            m.topics.get(name).is_some_and(|t| t.configs == configs.0)
        })
        .await;
        Ok(())
    }
}

/// `partitions` new partitions of `factor` replicas over the unfenced brokers.
fn placed(
    metadata: &ClusterMetadata,
    partitions: u32,
    factor: usize,
    asked: i16,
) -> Result<Vec<Vec<BrokerId>>> {
    let start = Uuid::new_v4().as_u128() as usize;
    place(metadata, partitions, factor, start).map_err(|err| match err {
        PlacementError::NotEnoughBrokers { available, .. } => BrokerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {asked} time(s): The target replication factor of {asked} cannot be reached because only {available} broker(s) are registered."
        )),
        PlacementError::InvalidCount => BrokerError::InvalidPartitions("Number of partitions must be larger than 0.".into()),
    })
}

/// Explicit replicas: each list non-empty, without repeats, of registered brokers, all lists
/// of one length (Kafka refuses a topic whose partitions differ in replication factor).
fn check_assignment(metadata: &ClusterMetadata, assignment: &[Vec<BrokerId>]) -> Result<()> {
    let invalid = |why: String| Err(BrokerError::InvalidReplicaAssignment(why));
    if assignment.is_empty() {
        return invalid("No partition assignment given.".into());
    }
    let factor = assignment[0].len();
    for (index, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!("Empty replica assignment for partition {index}."));
        }
        if replicas.len() != factor {
            return invalid("All partitions should have the same number of replicas".into());
        }
        for (i, replica) in replicas.iter().enumerate() {
            if replicas[..i].contains(replica) {
                return invalid(format!("Duplicate brokers not allowed in replica assignment: {replicas:?} for partition {index}."));
            }
            if !metadata.brokers.contains_key(replica) {
                return invalid(format!(
                    "Broker {replica} in the assignment of partition {index} is not registered."
                ));
            }
        }
    }
    Ok(())
}

impl Cluster {
    /// AlterPartitionReassignments for one partition, checked by the caller: `Some(target)`
    /// moves it there (a reassignment already running takes the new target), `None`
    /// cancels the one running.
    pub async fn reassign(
        &self,
        topic: &str,
        partition: u32,
        target: Option<Vec<BrokerId>>,
    ) -> Result<()> {
        let topic = topic.to_owned();
        let command = match target {
            None => Command::CancelReassignment { topic, partition },
            Some(target) => Command::ReassignPartition {
                topic,
                partition,
                target,
            },
        };
        self.propose(command).await?;
        Ok(())
    }
}
