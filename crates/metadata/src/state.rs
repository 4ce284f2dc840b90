//! The cluster metadata state machine: what the replicated log means.
//!
//! Every controller applies the same committed commands in the same order, so `apply` must be a
//! pure function of the current state and the command: no clocks, no randomness, no I/O. Anything
//! that needs a choice (replica placement, topic ids, broker incarnations) is decided by the
//! proposer and carried inside the command.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::elr::PartitionChange;
use crate::features::{FeatureCommand, FinalizedFeatures};
use crate::quotas::{ClientQuotas, QuotaChange};
use crate::security::{AclRecord, ScramCredentials, SecurityCommand};

/// Broker or replica id, as on the Kafka wire.
pub type BrokerId = i32;

/// The `leader` of a partition that has none.
pub const NO_LEADER: BrokerId = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    pub id: BrokerId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Chosen by the broker process at start; a larger one means the broker restarted.
    pub incarnation: u64,
    /// Assigned by the state machine at each registration; the broker quotes it to be unfenced
    /// so that a heartbeat from a previous registration cannot unfence the new one.
    pub epoch: u64,
    pub fenced: bool,
    /// Where this broker serves the schema registry (`https://host:8081`), if it does: the
    /// registry's followers forward writes to the leader of `_schemas` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// During a reassignment: the target replicas first, then those being removed.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    /// Bumped on every change of this partition's record (Kafka's partition epoch).
    pub partition_epoch: i32,
    /// A reassignment in progress: the replicas it ends with. Empty when none is.
    pub target_replicas: Vec<BrokerId>,
    /// A reassignment in progress: the target replicas the partition did not have before it,
    /// so that the replicas it started from can be told apart (to list or cancel it).
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    /// KIP-966's eligible leader replicas: replicas that left the ISR while it was below
    /// `min.insync.replicas` and so still hold every committed record (see `elr`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<BrokerId>,
    /// The leader the partition had when its ISR became empty, kept while it has none
    /// (Kafka 4.4's LastKnownElr, which holds the last known leader).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<BrokerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub id: [u8; 16],
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<Partition>,
}

/// Everything the controllers agree on. Maps are ordered so that the state (and its snapshot)
/// is the same bytes on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub brokers: BTreeMap<BrokerId, Broker>,
    /// Shared between the metadata's copies (the state machine publishes one per applied
    /// batch): a copy costs a reference per topic, not a clone of every partition, and a
    /// change copies only the topics it touches (`Arc::make_mut`).
    pub topics: BTreeMap<String, Arc<Topic>>,
    /// The epoch the next broker registration gets.
    pub next_broker_epoch: u64,
    /// The first producer id not yet handed to any broker.
    #[serde(default)]
    pub next_producer_id: i64,
    /// No broker hands out a producer id below this, even from a block it already holds:
    /// ids below it may be in use by another cluster whose batches this one mirrors (a
    /// cluster link keeps the source's producer ids in the batches it copies).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub producer_id_floor: i64,
    /// ACL bindings, in the order they were created (see `security`).
    #[serde(default)]
    pub acls: Vec<AclRecord>,
    /// Of those, the ones each cluster link created (by link name), which it removes again
    /// when its source does; a binding made by hand is never a link's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub link_acls: BTreeMap<String, Vec<AclRecord>>,
    #[serde(default)]
    pub scram_credentials: ScramCredentials,
    /// The cluster-wide `min.insync.replicas`, for topics without an override: what the
    /// ELR rules compare the ISR with (Kafka's cluster-level config record). `None` until a
    /// broker records its configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_min_insync_replicas: Option<u32>,
    /// Finalized feature levels (see `features`); `None` until the first broker bootstraps
    /// them, including in a cluster created before samsa kept them.
    #[serde(default)]
    pub features: Option<FinalizedFeatures>,
    /// Client quotas by entity (see `quotas`), shared so that the metadata's many copies
    /// (one per applied change) share it, and a reader can tell it changed by its address.
    #[serde(default)]
    pub client_quotas: Arc<ClientQuotas>,
    /// Per-group config overrides (Kafka's GROUP ConfigRecords), by group id; a group
    /// without overrides has no entry. Independent of the group's existence, as in Kafka:
    /// a group may be configured before its first member joins, and DeleteGroups keeps them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One change to the cluster metadata, as proposed to the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker announces itself; a broker always (re)starts fenced.
    RegisterBroker {
        id: BrokerId,
        host: String,
        port: u16,
        rack: Option<String>,
        incarnation: u64,
        /// The epoch of the registration this broker last shut down cleanly from (Kafka's
        /// PreviousBrokerEpoch); any other value means its log may have lost records it
        /// had acknowledged, so it leaves the ELR (KIP-966).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_epoch: Option<u64>,
        /// The broker's schema registry listener, as a URL (an extra named endpoint, like
        /// a listener of Kafka's registration); absent in entries written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registry_url: Option<String>,
    },
    /// The broker caught up with the metadata and may lead and follow again.
    UnfenceBroker {
        id: BrokerId,
        epoch: u64,
    },
    /// The broker stopped heartbeating (or shuts down): move leadership away from it.
    /// Only the registration at `epoch` is fenced: a decision taken about an earlier process
    /// (a session expiry computed before a restart, a stopping broker's fence committed late)
    /// must not fence the broker that registered since, as Kafka's FenceBrokerRecord carries
    /// the epoch too. `None` only in entries written before the epoch was recorded.
    FenceBroker {
        id: BrokerId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// An operator removes a broker's registration (UnregisterBroker, `kafka-cluster
    /// unregister`): leadership and ISR membership move away from it as when it is fenced,
    /// then it is forgotten. A broker still running registers again at its next heartbeat,
    /// as Kafka's does.
    UnregisterBroker {
        id: BrokerId,
    },
    /// `assignment[p]` are the replicas of partition `p`, preferred leader first.
    CreateTopic {
        name: String,
        id: [u8; 16],
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<BrokerId>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Appends partitions with the given replicas to an existing topic.
    CreatePartitions {
        topic: String,
        assignment: Vec<Vec<BrokerId>>,
    },
    /// An ISR change proposed by the partition leader, quoting the epochs it knows.
    AlterPartition {
        topic: String,
        partition: u32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    /// Moves a partition to `target` replicas (see `Partition::target_replicas`).
    ReassignPartition {
        topic: String,
        partition: u32,
        target: Vec<BrokerId>,
    },
    /// Stops a reassignment in progress: the partition keeps the replicas it started from.
    CancelReassignment {
        topic: String,
        partition: u32,
    },
    /// Replaces a topic's config overrides (validated by the proposer).
    AlterTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// Reserves the next `count` producer ids for `broker` (Kafka's AllocateProducerIds), so
    /// that no two brokers ever hand out the same id.
    AllocateProducerIds {
        broker: BrokerId,
        count: u32,
    },
    /// Producer ids below `floor` are never handed out from now on, by the controller or
    /// from blocks brokers hold; a lower floor than the current one changes nothing.
    RaiseProducerIdFloor {
        floor: i64,
    },
    /// The preferred (first) replica leads again (ElectLeaders, auto leader rebalance).
    ElectPreferredLeader {
        topic: String,
        partition: u32,
    },
    /// A leaderless partition takes any live replica (ElectLeaders with the unclean type).
    ElectUncleanLeader {
        topic: String,
        partition: u32,
    },
    /// ACLs and SCRAM credentials (see `security`).
    Security(SecurityCommand),
    /// The cluster-wide `min.insync.replicas` (see `ClusterMetadata`); a change clears every
    /// partition's ELR, as Kafka's ClearElrRecord does.
    SetDefaultMinInsyncReplicas {
        value: u32,
    },
    /// Finalized feature levels (see `features`).
    Features(FeatureCommand),
    /// An AlterClientQuotas' changes, validated by the proposer, applied together (see
    /// `quotas`).
    AlterClientQuotas {
        changes: Vec<QuotaChange>,
    },
    /// Replaces a group's config overrides (validated by the proposer); empty removes them.
    AlterGroupConfigs {
        group: String,
        configs: BTreeMap<String, String>,
    },
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    BrokerRegistered {
        epoch: u64,
    },
    /// Partitions that were leaderless and are now led by the unfenced broker.
    BrokerUnfenced {
        leaders_elected: usize,
    },
    /// Partitions whose leader or ISR changed.
    BrokerFenced {
        partitions_changed: usize,
    },
    /// Partitions whose leader or ISR changed as the broker was unregistered.
    BrokerUnregistered {
        partitions_changed: usize,
    },
    TopicCreated {
        id: [u8; 16],
    },
    TopicDeleted,
    PartitionsCreated {
        total: u32,
    },
    PartitionAltered {
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// `complete` when the partition already has exactly the target replicas.
    ReassignmentStarted {
        complete: bool,
    },
    ReassignmentCancelled,
    TopicConfigsAltered,
    /// Ids `first..first + count` are the broker's.
    ProducerIdsAllocated {
        first: i64,
        count: u32,
    },
    /// The floor now in force (the higher of the asked and the earlier one).
    ProducerIdFloorRaised {
        floor: i64,
    },
    LeaderElected {
        leader: BrokerId,
    },
    AclsCreated {
        added: usize,
    },
    AclsDeleted {
        removed: usize,
    },
    ScramCredentialAltered,
    DefaultMinInsyncReplicasSet,
    FeaturesUpdated,
    ClientQuotasAltered,
    GroupConfigsAltered,
}

/// Why a command changed nothing. Distinct variants because the broker maps them to distinct
/// Kafka error codes (e.g. FENCED_LEADER_EPOCH vs INVALID_UPDATE_VERSION for AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {id} registered with incarnation {current}, not older {given}")]
    StaleIncarnation {
        id: BrokerId,
        current: u64,
        given: u64,
    },
    #[error("broker {id} has epoch {current}, not {given}")]
    StaleBrokerEpoch {
        id: BrokerId,
        current: u64,
        given: u64,
    },
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic id already in use by {0}")]
    TopicIdInUse(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("no unfenced replica among {0:?}")]
    NoAvailableReplica(Vec<BrokerId>),
    #[error("leader epoch {given} is not the current {current}")]
    FencedLeaderEpoch { current: i32, given: i32 },
    #[error("partition epoch {given} is not the current {current}")]
    StalePartitionEpoch { current: i32, given: i32 },
    #[error("broker {given} is not the leader (leader is {current})")]
    NotLeader { current: BrokerId, given: BrokerId },
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("broker {0} is fenced and cannot join the ISR")]
    IneligibleReplica(BrokerId),
    #[error("no reassignment of {topic}-{partition} is in progress")]
    NoReassignmentInProgress { topic: String, partition: u32 },
    #[error("the partition already has the leader an election would give it")]
    ElectionNotNeeded,
    #[error("the preferred leader {0} is not in sync or not unfenced")]
    PreferredLeaderNotAvailable(BrokerId),
    /// Kafka's words for deleting a credential that does not exist.
    #[error("Attempt to delete a user credential that does not exist")]
    UnknownScramCredential { user: String, mechanism: i8 },
    /// An UpdateFeatures refused, in Kafka's words.
    #[error("{message}")]
    InvalidFeatureUpdate { message: String },
}

impl Partition {
    /// A partition led by the first unfenced replica, with every unfenced replica in sync.
    fn new(
        replicas: Vec<BrokerId>,
        brokers: &BTreeMap<BrokerId, Broker>,
    ) -> Result<Self, CommandError> {
        let isr: Vec<BrokerId> = replicas
            .iter()
            .copied()
            .filter(|r| is_unfenced(brokers, *r))
            .collect();
        let Some(&leader) = isr.first() else {
            return Err(CommandError::NoAvailableReplica(replicas));
        };
        Ok(Partition {
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            target_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        })
    }

    /// Elects the first ISR member other than `excluded` that is unfenced, or none.
    pub(crate) fn elect(&mut self, brokers: &BTreeMap<BrokerId, Broker>, excluded: BrokerId) {
        self.leader = self
            .isr
            .iter()
            .copied()
            .find(|&r| r != excluded && is_unfenced(brokers, r))
            .unwrap_or(NO_LEADER);
        self.leader_epoch += 1;
    }
}

pub(crate) fn is_unfenced(brokers: &BTreeMap<BrokerId, Broker>, id: BrokerId) -> bool {
    brokers.get(&id).is_some_and(|b| !b.fenced)
}

impl ClusterMetadata {
    /// Applies one committed command. On error the state is unchanged.
    pub fn apply(&mut self, command: &Command) -> Result<CommandResult, CommandError> {
        match command {
            Command::RegisterBroker {
                id,
                host,
                port,
                rack,
                incarnation,
                previous_epoch,
                registry_url,
            } => self.register_broker(
                *id,
                host,
                *port,
                rack,
                (*incarnation, *previous_epoch),
                registry_url,
            ),
            Command::UnfenceBroker { id, epoch } => self.unfence_broker(*id, *epoch),
            Command::FenceBroker { id, epoch } => self.fence_broker(*id, *epoch),
            Command::UnregisterBroker { id } => self.unregister_broker(*id),
            Command::CreateTopic {
                name,
                id,
                configs,
                assignment,
            } => self.create_topic(name, *id, configs, assignment),
            Command::DeleteTopic { name } => {
                self.topics
                    .remove(name)
                    .ok_or_else(|| CommandError::UnknownTopic(name.clone()))?;
                Ok(CommandResult::TopicDeleted)
            }
            Command::CreatePartitions { topic, assignment } => {
                self.create_partitions(topic, assignment)
            }
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => self.alter_partition(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                new_isr,
            ),
            Command::ReassignPartition {
                topic,
                partition,
                target,
            } => self.reassign_partition(topic, *partition, target),
            Command::CancelReassignment { topic, partition } => {
                self.cancel_reassignment(topic, *partition)
            }
            Command::AlterTopicConfigs { topic, configs } => {
                self.alter_topic_configs(topic, configs)
            }
            Command::ElectPreferredLeader { topic, partition } => {
                self.elect_preferred_leader(topic, *partition)
            }
            Command::ElectUncleanLeader { topic, partition } => {
                self.elect_unclean_leader(topic, *partition)
            }
            Command::AllocateProducerIds { broker, count } => {
                if !self.brokers.contains_key(broker) {
                    return Err(CommandError::UnknownBroker(*broker));
                }
                let first = self.next_producer_id;
                self.next_producer_id += i64::from(*count);
                Ok(CommandResult::ProducerIdsAllocated {
                    first,
                    count: *count,
                })
            }
            Command::RaiseProducerIdFloor { floor } => {
                self.producer_id_floor = self.producer_id_floor.max(*floor);
                self.next_producer_id = self.next_producer_id.max(self.producer_id_floor);
                Ok(CommandResult::ProducerIdFloorRaised {
                    floor: self.producer_id_floor,
                })
            }
            Command::Security(command) => self.apply_security(command),
            Command::SetDefaultMinInsyncReplicas { value } => {
                self.set_default_min_insync_replicas(*value)
            }
            Command::Features(command) => self.apply_features(command),
            Command::AlterClientQuotas { changes } => Ok(self.apply_client_quotas(changes)),
            Command::AlterGroupConfigs { group, configs } => {
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
                Ok(CommandResult::GroupConfigsAltered)
            }
        }
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&Partition> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    pub(crate) fn partition_mut(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<&mut Partition, CommandError> {
        let t = self
            .topics
            .get_mut(topic)
            .map(Arc::make_mut)
            .ok_or_else(|| CommandError::UnknownTopic(topic.to_string()))?;
        t.partitions
            .get_mut(partition as usize)
            .ok_or_else(|| CommandError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
    }

    fn register_broker(
        &mut self,
        id: BrokerId,
        host: &str,
        port: u16,
        rack: &Option<String>,
        (incarnation, previous_epoch): (u64, Option<u64>),
        registry_url: &Option<String>,
    ) -> Result<CommandResult, CommandError> {
        if let Some(existing) = self.brokers.get(&id) {
            if existing.incarnation == incarnation {
                // A retried registration of the same process: nothing new to record.
                return Ok(CommandResult::BrokerRegistered {
                    epoch: existing.epoch,
                });
            }
            if existing.incarnation > incarnation {
                return Err(CommandError::StaleIncarnation {
                    id,
                    current: existing.incarnation,
                    given: incarnation,
                });
            }
            // The broker restarted: whatever it led or followed under its old incarnation must be
            // treated as lost, exactly as if it had been fenced. One that did not shut down
            // cleanly may also have lost records it acknowledged, so it is no longer eligible
            // to lead from the ELR either (Kafka's handleBrokerShutdown).
            let clean = previous_epoch == Some(existing.epoch);
            if self.elr_enabled() && !clean {
                self.broker_shut_down_uncleanly(id);
            } else {
                self.fence_broker(id, None)?;
            }
        }
        let epoch = self.next_broker_epoch;
        self.next_broker_epoch += 1;
        let broker = Broker {
            id,
            host: host.to_string(),
            port,
            rack: rack.clone(),
            incarnation,
            epoch,
            fenced: true,
            registry_url: registry_url.clone(),
        };
        self.brokers.insert(id, broker);
        Ok(CommandResult::BrokerRegistered { epoch })
    }

    fn unfence_broker(&mut self, id: BrokerId, epoch: u64) -> Result<CommandResult, CommandError> {
        let broker = self
            .brokers
            .get_mut(&id)
            .ok_or(CommandError::UnknownBroker(id))?;
        if broker.epoch != epoch {
            return Err(CommandError::StaleBrokerEpoch {
                id,
                current: broker.epoch,
                given: epoch,
            });
        }
        broker.fenced = false;
        let leaders_elected = self.elect_leaderless();
        Ok(CommandResult::BrokerUnfenced { leaders_elected })
    }

    /// Leadership moves to another unfenced ISR member (never outside the ISR: no unclean
    /// election). The broker leaves the ISR wherever a live leader remains, so the ISR never
    /// becomes empty; a leaderless partition keeps its ISR so the broker can lead it again.
    /// With an `epoch`, only that registration is fenced.
    fn fence_broker(
        &mut self,
        id: BrokerId,
        epoch: Option<u64>,
    ) -> Result<CommandResult, CommandError> {
        let broker = self
            .brokers
            .get_mut(&id)
            .ok_or(CommandError::UnknownBroker(id))?;
        if let Some(given) = epoch.filter(|&given| given != broker.epoch) {
            return Err(CommandError::StaleBrokerEpoch {
                id,
                current: broker.epoch,
                given,
            });
        }
        broker.fenced = true;
        let partitions_changed = self.move_away_from(id, false);
        Ok(CommandResult::BrokerFenced { partitions_changed })
    }

    fn unregister_broker(&mut self, id: BrokerId) -> Result<CommandResult, CommandError> {
        let broker = self
            .brokers
            .get_mut(&id)
            .ok_or(CommandError::UnknownBroker(id))?;
        broker.fenced = true;
        let partitions_changed = self.move_away_from(id, true);
        self.brokers.remove(&id);
        Ok(CommandResult::BrokerUnregistered { partitions_changed })
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: [u8; 16],
        configs: &BTreeMap<String, String>,
        assignment: &[Vec<BrokerId>],
    ) -> Result<CommandResult, CommandError> {
        if self.topics.contains_key(name) {
            return Err(CommandError::TopicExists(name.to_string()));
        }
        if let Some(other) = self.topics.values().find(|t| t.id == id) {
            return Err(CommandError::TopicIdInUse(other.name.clone()));
        }
        if assignment.is_empty() {
            return Err(CommandError::InvalidAssignment(
                "a topic needs at least one partition".into(),
            ));
        }
        let partitions = self.new_partitions(assignment)?;
        let topic = Topic {
            name: name.to_string(),
            id,
            configs: configs.clone(),
            partitions,
        };
        self.topics.insert(name.to_string(), Arc::new(topic));
        Ok(CommandResult::TopicCreated { id })
    }

    fn create_partitions(
        &mut self,
        topic: &str,
        assignment: &[Vec<BrokerId>],
    ) -> Result<CommandResult, CommandError> {
        if !self.topics.contains_key(topic) {
            return Err(CommandError::UnknownTopic(topic.to_string()));
        }
        if assignment.is_empty() {
            return Err(CommandError::InvalidAssignment(
                "no partitions to add".into(),
            ));
        }
        let mut added = self.new_partitions(assignment)?;
        let t = Arc::make_mut(self.topics.get_mut(topic).expect("checked above"));
        t.partitions.append(&mut added);
        Ok(CommandResult::PartitionsCreated {
            total: t.partitions.len() as u32,
        })
    }

    fn new_partitions(&self, assignment: &[Vec<BrokerId>]) -> Result<Vec<Partition>, CommandError> {
        assignment
            .iter()
            .map(|replicas| {
                self.check_replicas(replicas)?;
                Partition::new(replicas.clone(), &self.brokers)
            })
            .collect()
    }

    /// A replica list must be non-empty, without repeats, and name registered brokers.
    pub(crate) fn check_replicas(&self, replicas: &[BrokerId]) -> Result<(), CommandError> {
        if replicas.is_empty() {
            return Err(CommandError::InvalidAssignment("empty replica list".into()));
        }
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].contains(r) {
                return Err(CommandError::InvalidAssignment(format!(
                    "replica {r} listed twice"
                )));
            }
            if !self.brokers.contains_key(r) {
                return Err(CommandError::UnknownBroker(*r));
            }
        }
        Ok(())
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        partition: u32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[BrokerId],
    ) -> Result<CommandResult, CommandError> {
        let brokers = self.brokers.clone();
        let elr_enabled = self.elr_enabled();
        let min_isr = self.effective_min_isr(topic);
        let p = self.partition_mut(topic, partition)?;
        if leader_epoch != p.leader_epoch {
            return Err(CommandError::FencedLeaderEpoch {
                current: p.leader_epoch,
                given: leader_epoch,
            });
        }
        if leader != p.leader {
            return Err(CommandError::NotLeader {
                current: p.leader,
                given: leader,
            });
        }
        if partition_epoch != p.partition_epoch {
            return Err(CommandError::StalePartitionEpoch {
                current: p.partition_epoch,
                given: partition_epoch,
            });
        }
        if !new_isr.contains(&leader) {
            return Err(CommandError::InvalidIsr(format!(
                "{new_isr:?} does not include the leader {leader}"
            )));
        }
        for (i, r) in new_isr.iter().enumerate() {
            if !p.replicas.contains(r) || new_isr[..i].contains(r) {
                return Err(CommandError::InvalidIsr(format!(
                    "{new_isr:?} is not a subset of {:?}",
                    p.replicas
                )));
            }
            // A fenced broker may stay in the ISR it is in, but never join one.
            if !p.isr.contains(r) && !is_unfenced(&brokers, *r) {
                return Err(CommandError::IneligibleReplica(*r));
            }
        }
        let before = p.clone();
        p.isr = new_isr.to_vec();
        p.try_complete_reassignment();
        let change = PartitionChange {
            elr_enabled,
            min_isr,
            acceptable: &|r| is_unfenced(&brokers, r),
            unclean_shutdown: None,
            unclean_election: false,
        };
        p.settle(&before, &change);
        Ok(CommandResult::PartitionAltered {
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
        })
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
