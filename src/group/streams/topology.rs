//! A streams group's topology and its configuration against the topics that exist, as
//! Kafka's `StreamsTopology` and `topics.InternalTopicManager`: the source topics must exist
//! (else MISSING_SOURCE_TOPICS), the partition counts of repartition topics follow from the
//! topics they are fed from (`RepartitionTopics`), copartitioned topics must agree
//! (`CopartitionedTopicsEnforcer`, else INCORRECTLY_PARTITIONED_TOPICS), a changelog topic
//! has as many partitions as its subtopology has tasks (`ChangelogTopics`), and the internal
//! topics that do not exist yet are what the broker creates (MISSING_INTERNAL_TOPICS until
//! they do). A subtopology has one task per partition of its widest input topic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::BrokerError;

/// The status codes of StreamsGroupHeartbeat (Kafka's `StreamsGroupHeartbeatResponse.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum StatusCode {
    StaleTopology = 0,
    MissingSourceTopics = 1,
    IncorrectlyPartitionedTopics = 2,
    MissingInternalTopics = 3,
    ShutdownApplication = 4,
    AssignmentDelayed = 5,
}

/// One status of the group a heartbeat answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: StatusCode,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicInfo {
    pub name: String,
    /// 0: decided by the coordinator.
    pub partitions: i32,
    /// 0 (or -1, as Kafka Streams sends): the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Indexes into the subtopology's source and repartition source topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub repartition_sink_topics: Vec<String>,
    pub state_changelog_topics: Vec<TopicInfo>,
    pub repartition_source_topics: Vec<TopicInfo>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

impl Subtopology {
    /// Every topic the subtopology reads: its sources and its repartition sources.
    pub fn input_topics(&self) -> impl Iterator<Item = &str> {
        let sources = self.source_topics.iter().map(String::as_str);
        sources.chain(
            self.repartition_source_topics
                .iter()
                .map(|t| t.name.as_str()),
        )
    }

    /// Whether the subtopology keeps state (its tasks get standby replicas).
    pub fn is_stateful(&self) -> bool {
        !self.state_changelog_topics.is_empty()
    }

    fn copartition_sets(&self) -> Result<Vec<BTreeSet<String>>, BrokerError> {
        let index = |list: &[String], i: i16| {
            usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .cloned()
                .ok_or_else(|| {
                    BrokerError::StreamsInvalidTopology(format!(
                        "Copartition group of subtopology {} refers to topic index {i} that does not exist.",
                        self.id
                    ))
                })
        };
        let repartition: Vec<String> = self
            .repartition_source_topics
            .iter()
            .map(|t| t.name.clone())
            .collect();
        self.copartition_groups
            .iter()
            .map(|g| {
                let sources = g
                    .source_topics
                    .iter()
                    .map(|i| index(&self.source_topics, *i));
                let internal = g
                    .repartition_source_topics
                    .iter()
                    .map(|i| index(&repartition, *i));
                sources.chain(internal).collect()
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: BTreeMap<String, Subtopology>,
}

impl Topology {
    /// Every topic the topology needs: sources, repartition topics and changelogs.
    pub fn required_topics(&self) -> BTreeSet<String> {
        let mut topics = BTreeSet::new();
        for s in self.subtopologies.values() {
            topics.extend(s.input_topics().map(str::to_owned));
            topics.extend(s.state_changelog_topics.iter().map(|t| t.name.clone()));
        }
        topics
    }

    /// Whether the topology reads `topic` (OffsetDelete refuses its offsets).
    pub fn reads(&self, topic: &str) -> bool {
        self.subtopologies
            .values()
            .any(|s| s.source_topics.iter().any(|t| t == topic))
    }
}

/// An internal topic the broker must create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    pub partitions: i32,
    /// `None`: the broker's default.
    pub replication_factor: Option<i16>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredSubtopology {
    pub tasks: i32,
    pub source_topics: Vec<String>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<InternalTopic>,
    pub state_changelog_topics: Vec<InternalTopic>,
    pub stateful: bool,
}

impl ConfiguredSubtopology {
    /// The topics whose partition `p` task `p` reads.
    pub fn input_topics(&self) -> impl Iterator<Item = &str> {
        let sources = self.source_topics.iter().map(String::as_str);
        sources.chain(
            self.repartition_source_topics
                .iter()
                .map(|t| t.name.as_str()),
        )
    }
}

/// The topology as the topics are now (Kafka's `ConfiguredTopology`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfiguredTopology {
    pub epoch: i32,
    /// `None` when the source topics are missing or the partitions do not agree.
    pub subtopologies: Option<BTreeMap<String, ConfiguredSubtopology>>,
    pub to_create: BTreeMap<String, InternalTopic>,
    /// Why the topology is not ready, if it is not.
    pub status: Option<Status>,
}

impl ConfiguredTopology {
    /// Tasks may be assigned: every topic exists as the topology needs it.
    pub fn is_ready(&self) -> bool {
        self.status.is_none()
    }
}

/// Partition counts by topic name.
pub type TopicPartitions = HashMap<String, i32>;

/// Kafka's `InternalTopicManager.configureTopics`. An error is a topology no topics can
/// satisfy (STREAMS_INVALID_TOPOLOGY).
pub fn configure(
    topology: &Topology,
    topics: &TopicPartitions,
) -> Result<ConfiguredTopology, BrokerError> {
    let not_ready = |code, detail| ConfiguredTopology {
        epoch: topology.epoch,
        subtopologies: None,
        to_create: BTreeMap::new(),
        status: Some(Status { code, detail }),
    };
    let missing: BTreeSet<&String> = topology
        .subtopologies
        .values()
        .flat_map(|s| s.source_topics.iter())
        .filter(|t| !topics.contains_key(*t))
        .collect();
    if !missing.is_empty() {
        let detail = format!(
            "Source topics {} are missing.",
            summarize(missing.into_iter())
        );
        return Ok(not_ready(StatusCode::MissingSourceTopics, detail));
    }
    let decided = match decide_partitions(topology, topics)? {
        Ok(decided) => decided,
        Err(detail) => return Ok(not_ready(StatusCode::IncorrectlyPartitionedTopics, detail)),
    };
    let count = |t: &str| topics.get(t).or_else(|| decided.get(t)).copied();
    let internal = |t: &TopicInfo| InternalTopic {
        name: t.name.clone(),
        partitions: if t.partitions == 0 {
            decided.get(&t.name).copied().unwrap_or(0)
        } else {
            t.partitions
        },
        // 0 and -1 both mean the broker's default.
        replication_factor: (t.replication_factor > 0).then_some(t.replication_factor),
        configs: t.configs.clone(),
    };
    let mut configured = BTreeMap::new();
    for s in topology.subtopologies.values() {
        let tasks = s.input_topics().filter_map(count).max().ok_or_else(|| {
            BrokerError::StreamsInvalidTopology(format!(
                "No source topics found for subtopology {}",
                s.id
            ))
        })?;
        configured.insert(
            s.id.clone(),
            ConfiguredSubtopology {
                tasks,
                source_topics: s.source_topics.clone(),
                repartition_sink_topics: s.repartition_sink_topics.clone(),
                repartition_source_topics: s
                    .repartition_source_topics
                    .iter()
                    .map(internal)
                    .collect(),
                state_changelog_topics: s.state_changelog_topics.iter().map(internal).collect(),
                stateful: s.is_stateful(),
            },
        );
    }
    let mut to_create: BTreeMap<String, InternalTopic> = configured
        .values()
        .flat_map(|s| {
            s.repartition_source_topics
                .iter()
                .chain(&s.state_changelog_topics)
        })
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    for topic in topology.required_topics() {
        let Some(found) = topics.get(&topic) else {
            continue;
        };
        let Some(expected) = to_create.remove(&topic) else {
            continue;
        };
        if *found != expected.partitions {
            let detail = format!(
                "Existing topic {topic} has different number of partitions: expected {}, found {found}",
                expected.partitions
            );
            return Ok(not_ready(StatusCode::IncorrectlyPartitionedTopics, detail));
        }
    }
    let status = (!to_create.is_empty()).then(|| Status {
        code: StatusCode::MissingInternalTopics,
        detail: format!(
            "Internal topics are missing: {}",
            summarize(to_create.keys())
        ),
    });
    Ok(ConfiguredTopology {
        epoch: topology.epoch,
        subtopologies: Some(configured),
        to_create,
        status,
    })
}

/// The partition counts of the internal topics the topology leaves open: `Ok(Err(detail))`
/// when copartitioned topics disagree, `Err` when the topology cannot be satisfied at all.
fn decide_partitions(
    topology: &Topology,
    topics: &TopicPartitions,
) -> Result<Result<HashMap<String, i32>, String>, BrokerError> {
    let invalid = |m: &str| BrokerError::StreamsInvalidTopology(m.to_owned());
    // Repartition topics: fixed counts first, then each sink takes the widest input of the
    // subtopology writing it, until nothing changes.
    let mut decided: HashMap<String, i32> = HashMap::new();
    for s in topology.subtopologies.values() {
        for t in s
            .repartition_source_topics
            .iter()
            .filter(|t| t.partitions != 0)
        {
            decided.insert(t.name.clone(), t.partitions);
        }
    }
    loop {
        let mut needed = false;
        let mut progress = false;
        for s in topology.subtopologies.values() {
            for sink in &s.repartition_sink_topics {
                if decided.contains_key(sink) {
                    continue;
                }
                let widest = s
                    .input_topics()
                    .filter_map(|t| decided.get(t).or_else(|| topics.get(t)).copied())
                    .max();
                match widest {
                    Some(n) => {
                        decided.insert(sink.clone(), n);
                        progress = true;
                    }
                    None => needed = true,
                }
            }
        }
        if !needed {
            break;
        }
        if !progress {
            return Err(invalid("Failed to compute number of partitions for all repartition topics. There may be loops in the topology that cannot be resolved."));
        }
    }
    let repartition_sources = topology
        .subtopologies
        .values()
        .flat_map(|s| s.repartition_source_topics.iter());
    if repartition_sources
        .clone()
        .any(|t| !decided.contains_key(&t.name))
    {
        return Err(invalid("Failed to compute number of partitions for all repartition topics, because a repartition source topic is never used as a sink topic."));
    }
    let fixed: BTreeSet<&str> = repartition_sources
        .clone()
        .filter(|t| t.partitions != 0)
        .map(|t| t.name.as_str())
        .collect();
    let repartition: BTreeSet<&str> = repartition_sources.map(|t| t.name.as_str()).collect();
    for s in topology.subtopologies.values() {
        for group in s.copartition_sets()? {
            let count = |t: &String| {
                decided
                    .get(t)
                    .or_else(|| topics.get(t))
                    .copied()
                    .unwrap_or(0)
            };
            let (internal, external): (Vec<&String>, Vec<&String>) =
                group.iter().partition(|t| repartition.contains(t.as_str()));
            if group.is_empty() {
                continue;
            }
            let wanted = if external.is_empty() {
                if !fixed.is_empty() {
                    let mut counts = fixed.iter().map(|t| count(&t.to_string()));
                    let first = counts.next().unwrap_or(0);
                    if counts.any(|c| c != first) {
                        let all: BTreeMap<&String, i32> =
                            internal.iter().map(|t| (*t, count(t))).collect();
                        return Ok(Err(format!(
                            "Following topics do not have the same number of partitions: [{}]",
                            java_map(&all)
                        )));
                    }
                    first
                } else {
                    let max = internal.iter().map(|t| count(t)).max().unwrap_or(0);
                    if max == 0 {
                        return Err(invalid(&format!(
                            "All topics in the copartition group had undefined partition number: {group:?}"
                        )));
                    }
                    max
                }
            } else {
                let counts: BTreeMap<&String, i32> =
                    external.iter().map(|t| (*t, count(t))).collect();
                let first = counts.values().next().copied().unwrap_or(0);
                if counts.values().any(|c| *c != first) {
                    return Ok(Err(format!(
                        "Following topics do not have the same number of partitions: [{}]",
                        java_map(&counts)
                    )));
                }
                first
            };
            let mut settled = Vec::new();
            for t in internal {
                if fixed.contains(t.as_str()) && count(t) != wanted {
                    return Ok(Err(format!(
                        "Number of partitions [{}] of repartition topic [{t}] doesn't match number of partitions [{wanted}] of the source topic.",
                        count(t)
                    )));
                }
                settled.push(t.clone());
            }
            for t in settled {
                decided.insert(t, wanted);
            }
        }
    }
    // Changelog topics: as many partitions as the subtopology has tasks.
    for s in topology.subtopologies.values() {
        let widest = s
            .input_topics()
            .filter_map(|t| topics.get(t).or_else(|| decided.get(t)).copied())
            .max();
        let Some(widest) = widest else {
            return Err(invalid(&format!(
                "No source topics found for subtopology {}",
                s.id
            )));
        };
        for t in &s.state_changelog_topics {
            decided.insert(t.name.clone(), widest);
        }
    }
    Ok(Ok(decided))
}

/// A map as Java's `TreeMap.toString` writes it, inside Kafka's brackets.
fn java_map(map: &BTreeMap<&String, i32>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// Kafka's `summarizeTopics`: the first three names and how many more.
fn summarize<'a>(topics: impl ExactSizeIterator<Item = &'a String>) -> String {
    let size = topics.len();
    if size == 0 {
        return "<none>".to_owned();
    }
    let shown: Vec<&str> = topics.take(3).map(String::as_str).collect();
    let mut out = shown.join(", ");
    if size > 3 {
        out.push_str(&format!(" and {} additional topics", size - 3));
    }
    out
}
