//! Streams groups (KIP-1071): StreamsGroupHeartbeat over
//! [`crate::group::GroupCoordinator`], as Kafka's `KafkaApis.handleStreamsGroupHeartbeat`:
//! READ on the group, a joining member's topology may name neither internal nor invalid
//! topics and needs DESCRIBE on every topic it names; the internal topics the coordinator
//! reports missing are created here (with CREATE on the cluster or on each topic, else the
//! status says which may not be created). StreamsGroupHeartbeat (and StreamsGroupDescribe,
//! in [`super::streams_describe`]) answer UNSUPPORTED_VERSION while the finalized
//! `streams.version` is 0, as Kafka's do.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use kafka_protocol::messages::streams_group_heartbeat_request as hb_request;
use kafka_protocol::messages::streams_group_heartbeat_response as hb_response;
use kafka_protocol::messages::*;
use samsa_metadata::features;

use super::off_event_loop;
use super::{allowed, allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::cluster::NewTopic;
use crate::error::BrokerError;
use crate::group::streams::topology::{
    CopartitionGroup, InternalTopic, StatusCode, Subtopology, TopicInfo, TopicPartitions, Topology,
};
use crate::group::streams::{Endpoint, Heartbeat, TaskSet, Tasks};

/// Kafka's `Topic.isInternal`: topology may not read or write them.
const KAFKA_INTERNAL_TOPICS: [&str; 3] = [
    crate::group::store::OFFSETS_TOPIC,
    crate::txn::log::TRANSACTION_STATE_TOPIC,
    "__share_group_state",
];

/// Whether streams groups are on: Kafka serves them from the finalized `streams.version` 1
/// (its `StreamsVersion.streamsGroupSupported`), so a downgrade to 0 turns them off.
pub(super) fn streams_enabled(broker: &Broker) -> bool {
    broker.cluster.feature_level(features::STREAMS_VERSION) >= 1
}

/// What both APIs answer while streams groups are off (Kafka's default message).
pub(super) fn unsupported() -> BrokerError {
    BrokerError::UnsupportedVersion("The version of API is not supported.".to_owned())
}

/// What a member's requests (heartbeat, topology description push) check first, in
/// Kafka's order: streams groups are on, and the principal may READ the group.
pub(super) fn may_join(
    broker: &Broker,
    session: &Session,
    group_id: &str,
) -> Result<(), BrokerError> {
    if !streams_enabled(broker) {
        return Err(unsupported());
    }
    if !allowed(
        broker,
        session,
        Operation::Read,
        ResourceType::Group,
        group_id,
    ) {
        return Err(AuthError::GroupDenied.into());
    }
    Ok(())
}

fn topics(broker: &Broker) -> TopicPartitions {
    broker
        .cluster
        .published()
        .topics
        .values()
        .map(|t| (t.name.clone(), t.partitions.len() as i32))
        .collect()
}

fn heartbeat_error(err: BrokerError) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default()
        .with_error_code(err.code())
        .with_error_message(err.message().map(str_bytes))
}

fn task_set(ids: &[hb_request::TaskIds]) -> TaskSet {
    let mut set = TaskSet::new();
    for t in ids {
        set.entry(t.subtopology_id.to_string())
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    set
}

fn topic_info(t: &hb_request::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name.to_string(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs: t
            .topic_configs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}

fn topology(t: &hb_request::Topology) -> Topology {
    let subtopologies = t
        .subtopologies
        .iter()
        .map(|s| {
            let names = |v: &Vec<TopicName>| v.iter().map(|n| n.to_string()).collect();
            let sub = Subtopology {
                id: s.subtopology_id.to_string(),
                source_topics: names(&s.source_topics),
                repartition_sink_topics: names(&s.repartition_sink_topics),
                state_changelog_topics: s.state_changelog_topics.iter().map(topic_info).collect(),
                repartition_source_topics: s
                    .repartition_source_topics
                    .iter()
                    .map(topic_info)
                    .collect(),
                copartition_groups: s
                    .copartition_groups
                    .iter()
                    .map(|g| CopartitionGroup {
                        source_topics: g.source_topics.clone(),
                        repartition_source_topics: g.repartition_source_topics.clone(),
                    })
                    .collect(),
            };
            (sub.id.clone(), sub)
        })
        .collect();
    Topology {
        epoch: t.epoch,
        subtopologies,
    }
}

/// Every topic a topology names (Kafka's `requiredTopics` in `handleStreamsGroupHeartbeat`).
fn named_topics(t: &hb_request::Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &t.subtopologies {
        let names = s
            .source_topics
            .iter()
            .chain(&s.repartition_sink_topics)
            .map(|n| n.to_string())
            .chain(
                s.repartition_source_topics
                    .iter()
                    .map(|t| t.name.to_string()),
            )
            .chain(s.state_changelog_topics.iter().map(|t| t.name.to_string()));
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

pub async fn heartbeat(
    broker: &Broker,
    session: &Session,
    req: StreamsGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> StreamsGroupHeartbeatResponse {
    let group_id = req.group_id.to_string();
    if let Err(err) = may_join(broker, session, &group_id) {
        return heartbeat_error(err);
    }
    if let Some(t) = &req.topology {
        let named = named_topics(t);
        let prohibited: Vec<&str> = named
            .iter()
            .map(String::as_str)
            .filter(|n| KAFKA_INTERNAL_TOPICS.contains(n))
            .collect();
        if !prohibited.is_empty() {
            return heartbeat_error(BrokerError::StreamsInvalidTopology(format!(
                "Use of Kafka internal topics {} in a Kafka Streams topology is prohibited.",
                prohibited.join(",")
            )));
        }
        let invalid: Vec<&str> = named
            .iter()
            .map(String::as_str)
            .filter(|n| crate::topics::validate_topic_name(n).is_err())
            .collect();
        if !invalid.is_empty() {
            return heartbeat_error(BrokerError::StreamsInvalidTopology(format!(
                "Topic names {} are not valid topic names.",
                invalid.join(",")
            )));
        }
        let may_describe =
            |n: &String| allowed(broker, session, Operation::Describe, ResourceType::Topic, n);
        if !named.iter().all(may_describe) {
            return heartbeat_error(AuthError::TopicDenied.into());
        }
    }
    let owned = match (&req.active_tasks, &req.standby_tasks, &req.warmup_tasks) {
        (None, None, None) => None,
        (a, s, w) => Some(Tasks {
            active: a.as_deref().map(task_set).unwrap_or_default(),
            standby: s.as_deref().map(task_set).unwrap_or_default(),
            warmup: w.as_deref().map(task_set).unwrap_or_default(),
        }),
    };
    let all_or_none = [&req.active_tasks, &req.standby_tasks, &req.warmup_tasks]
        .iter()
        .all(|t| t.is_some())
        || owned.is_none();
    if !all_or_none {
        return heartbeat_error(BrokerError::InvalidRequest(
            "If one task-type is non-null, all must be non-null.".to_owned(),
        ));
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        endpoint_epoch: req.endpoint_information_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: (req.rebalance_timeout_ms != -1).then_some(req.rebalance_timeout_ms),
        topology: req.topology.as_ref().map(topology),
        owned,
        process_id: req.process_id.as_ref().map(|s| s.to_string()),
        user_endpoint: req.user_endpoint.as_ref().map(|e| Endpoint {
            host: e.host.to_string(),
            port: e.port,
        }),
        client_tags: req.client_tags.as_ref().map(|tags| {
            tags.iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        shutdown_application: req.shutdown_application,
        client_id: client_id.to_owned(),
        client_host: format!("/{}", peer.ip()),
        uses_regex: req.topology.as_ref().is_some_and(|t| {
            t.subtopologies
                .iter()
                .any(|s| !s.source_topic_regex.is_empty())
        }),
        changelog_partitions: req
            .topology
            .as_ref()
            .map(|t| {
                t.subtopologies
                    .iter()
                    .flat_map(|s| &s.state_changelog_topics)
                    .filter(|c| c.partitions != 0)
                    .map(|c| (c.name.to_string(), c.partitions))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let (groups, id, topics) = (broker.groups.clone(), group_id.to_string(), topics(broker));
    let answer =
        off_event_loop(move || groups.streams_heartbeat(&id, hb, &topics, version >= 1)).await;
    // Answered once the group's records are replicated, as Kafka's coordinator does.
    let answer = match answer {
        Ok((result, written)) => written.acknowledged().await.map(|()| result),
        Err(err) => Err(err),
    };
    let result = match answer {
        Ok(result) => result,
        Err(err) => return heartbeat_error(err),
    };
    let mut statuses: Vec<(i8, String)> = result
        .statuses
        .iter()
        .map(|s| (s.code as i8, s.detail.clone()))
        .collect();
    if !result.to_create.is_empty() {
        let denied = create_internal_topics(broker, session, &result.to_create).await;
        if !denied.is_empty() {
            let note = format!("Unauthorized to CREATE on topics {}.", denied.join(","));
            let missing = StatusCode::MissingInternalTopics as i8;
            match statuses.iter_mut().find(|(c, _)| *c == missing) {
                Some((_, detail)) => *detail = format!("{detail}; {note}"),
                None => statuses.push((missing, note)),
            }
        }
    }
    let task_ids = |set: TaskSet| -> Vec<hb_response::TaskIds> {
        set.into_iter()
            .map(|(sub, ps)| {
                hb_response::TaskIds::default()
                    .with_subtopology_id(str_bytes(sub))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect()
    };
    let (active, standby, warmup) = match result.assignment {
        Some(t) => (
            Some(task_ids(t.active)),
            Some(task_ids(t.standby)),
            Some(task_ids(t.warmup)),
        ),
        None => (None, None, None),
    };
    let partitions = |m: BTreeMap<String, Vec<i32>>| -> Vec<hb_response::TopicPartition> {
        m.into_iter()
            .map(|(topic, ps)| {
                hb_response::TopicPartition::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partitions(ps)
            })
            .collect()
    };
    let endpoints = result.endpoints.map(|list| {
        list.into_iter()
            .map(|e| {
                hb_response::EndpointToPartitions::default()
                    .with_user_endpoint(
                        hb_response::Endpoint::default()
                            .with_host(str_bytes(e.endpoint.host))
                            .with_port(e.endpoint.port),
                    )
                    .with_active_partitions(partitions(e.active))
                    .with_standby_partitions(partitions(e.standby))
            })
            .collect()
    });
    // Kafka 4.4 sets only the v1 field: a v0 member reads AcceptableRecoveryLagLegacy 0.
    let response = if version == 0 {
        StreamsGroupHeartbeatResponse::default()
    } else {
        StreamsGroupHeartbeatResponse::default()
            .with_acceptable_recovery_lag(result.acceptable_recovery_lag)
    };
    response
        .with_member_id(str_bytes(result.member_id))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms)
        .with_task_offset_interval_ms(result.task_offset_interval_ms)
        .with_status(Some(
            statuses
                .into_iter()
                .map(|(code, detail)| {
                    hb_response::Status::default()
                        .with_status_code(code)
                        .with_status_detail(str_bytes(detail))
                })
                .collect(),
        ))
        .with_active_tasks(active)
        .with_standby_tasks(standby)
        .with_warmup_tasks(warmup)
        .with_endpoint_information_epoch(result.endpoint_epoch)
        .with_partitions_by_user_endpoint(endpoints)
        // Only ever set for v1+, the versions that carry it.
        .with_topology_description_required(result.topology_description_required)
}

/// Creates the internal topics the coordinator found missing, as Kafka's
/// `AutoTopicCreationManager.createStreamsInternalTopics`; returns the ones the principal
/// may not create. A topic another member's heartbeat created meanwhile is no error.
async fn create_internal_topics(
    broker: &Broker,
    session: &Session,
    to_create: &[InternalTopic],
) -> Vec<String> {
    let on_cluster = allowed_on_cluster(broker, session, Operation::Create);
    let mut denied = Vec::new();
    for t in to_create {
        if !on_cluster
            && !allowed(
                broker,
                session,
                Operation::Create,
                ResourceType::Topic,
                &t.name,
            )
        {
            denied.push(t.name.clone());
            continue;
        }
        let spec = NewTopic {
            name: t.name.clone(),
            partitions: Some(t.partitions),
            replication_factor: t.replication_factor,
            assignment: None,
            configs: t.configs.clone(),
        };
        let config = &broker.config;
        let created = broker
            .cluster
            .create_topic(
                spec,
                config.num_partitions,
                config.default_replication_factor,
                false,
            )
            .await;
        match created {
            Ok(_) => {
                tracing::info!(topic = %t.name, partitions = t.partitions, "created a streams group's internal topic")
            }
            Err(BrokerError::TopicAlreadyExists(_)) => {}
            Err(err) => {
                tracing::warn!(topic = %t.name, "cannot create a streams group's internal topic: {err}")
            }
        }
    }
    denied
}
