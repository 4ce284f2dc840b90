//! Share groups (KIP-932): ShareGroupHeartbeat and ShareGroupDescribe over
//! [`crate::group::GroupCoordinator`], as Kafka's `KafkaApis.handleShareGroupHeartbeat` and
//! `handleShareGroupDescribe`: both answer UNSUPPORTED_VERSION while the finalized
//! `share.version` is 0; a heartbeat needs READ on the group and DESCRIBE on every topic it
//! subscribes to, a describe DESCRIBE on the group and on every topic of its assignments.
//!
//! After the heartbeat's records are written, the share-partitions the coordinator found
//! without state are initialized with the share coordinator (`broker.share_state`) and the
//! result recorded, before the member is answered, as Kafka's `GroupCoordinatorService`
//! does; the member is assigned them from its next heartbeat on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use kafka_protocol::messages::share_group_describe_response::{
    self as describe_response, DescribedGroup,
};
use kafka_protocol::messages::share_group_heartbeat_response as heartbeat_response;
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::consumer_group::topic_image;
use super::off_event_loop;
use super::{allowed, authorized_operations, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::share::{Assignment, Heartbeat, Initialize, TopicId};
use crate::share::state::SharePartitionKey;
use samsa_metadata::features;

/// Kafka's `isShareGroupProtocolEnabled`: `share.version` 1 or more.
pub(super) fn share_enabled(broker: &Broker) -> bool {
    broker.cluster.feature_level(features::SHARE_VERSION) >= 1
}

fn unsupported() -> BrokerError {
    BrokerError::UnsupportedVersion("The version of API is not supported.".to_owned())
}

fn heartbeat_error(err: BrokerError) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(err.code())
        .with_error_message(err.message().map(str_bytes))
}

/// Kafka's `isMemberIdValid`: a member id is set by the client, and at most 36 characters.
fn member_id_valid(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= 36
}

pub async fn heartbeat(
    broker: &Broker,
    session: &Session,
    req: ShareGroupHeartbeatRequest,
    client_id: &str,
    peer: SocketAddr,
) -> ShareGroupHeartbeatResponse {
    if !share_enabled(broker) {
        return heartbeat_error(unsupported());
    }
    let group_id = req.group_id.to_string();
    if !allowed(
        broker,
        session,
        Operation::Read,
        ResourceType::Group,
        &group_id,
    ) {
        return heartbeat_error(AuthError::GroupDenied.into());
    }
    if !member_id_valid(&req.member_id) {
        // Kafka's answer carries the code alone.
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(BrokerError::InvalidRequest(String::new()).code());
    }
    if let Some(names) = &req.subscribed_topic_names {
        let may_describe =
            |n: &TopicName| allowed(broker, session, Operation::Describe, ResourceType::Topic, n);
        if !names.iter().all(may_describe) {
            // Kafka answers the code alone here.
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(BrokerError::from(AuthError::TopicDenied).code());
        }
    }
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|r| r.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        client_id: client_id.to_owned(),
        client_host: format!("/{}", peer.ip()),
    };
    let (groups, id, topics) = (
        broker.groups.clone(),
        group_id.to_string(),
        topic_image(broker),
    );
    let answer = off_event_loop(move || groups.share_heartbeat(&id, hb, &topics)).await;
    let (result, initialize) = match answer {
        Ok((result, written, initialize)) => match written.acknowledged().await {
            Ok(()) => (result, initialize),
            Err(err) => return heartbeat_error(err),
        },
        Err(err) => return heartbeat_error(err),
    };
    if let Some(init) = initialize {
        initialize_share_partitions(broker, &group_id, init).await;
    }
    let assignment = result.assignment.map(|a| {
        heartbeat_response::Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, partitions)| {
                    heartbeat_response::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect())
                })
                .collect(),
        )
    });
    ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(str_bytes(result.member_id)))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms)
        .with_assignment(assignment)
}

/// Asks the share coordinator to initialize the share-partitions, and records which were.
/// A failure leaves them to a later heartbeat (logged), as Kafka's coordinator retries.
async fn initialize_share_partitions(broker: &Broker, group_id: &str, init: Initialize) {
    let mut done: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
    let mut failed: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
    for (topic_id, (start_offset, partitions)) in &init.topics {
        for partition in partitions {
            let key = SharePartitionKey {
                group_id: group_id.to_owned(),
                topic_id: *topic_id,
                partition: *partition,
            };
            let outcome = broker
                .share_state
                .initialize(&key, init.state_epoch, *start_offset)
                .await;
            let into = match outcome {
                Ok(()) => &mut done,
                Err(err) => {
                    tracing::warn!(group = %group_id, topic = %topic_id, partition, "cannot initialize share-partition state: {err}");
                    &mut failed
                }
            };
            into.entry(*topic_id).or_default().insert(*partition);
        }
    }
    let topics = topic_image(broker);
    for (partitions, ok) in [(done, true), (failed, false)] {
        if partitions.is_empty() {
            continue;
        }
        let (groups, id, topics) = (broker.groups.clone(), group_id.to_owned(), topics.clone());
        let written =
            off_event_loop(move || groups.share_initialized(&id, &partitions, ok, &topics)).await;
        let acknowledged = match written {
            Ok(pending) => pending.acknowledged().await,
            Err(err) => Err(err),
        };
        if let Err(err) = acknowledged {
            tracing::warn!(group = %group_id, "cannot record share-partition initialization: {err}");
        }
    }
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let names: HashMap<Uuid, String> = topic_image(broker)
        .into_iter()
        .map(|(name, meta)| (meta.id, name))
        .collect();
    let groups = req
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            let failed = |err: BrokerError| {
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes))
            };
            if !share_enabled(broker) {
                return failed(unsupported());
            }
            if !allowed(broker, session, Operation::Describe, ResourceType::Group, &group_id) {
                return failed(AuthError::GroupDenied.into());
            }
            let summary = match broker.groups.share_describe(&group_id) {
                Ok(summary) => summary,
                Err(err) => return failed(err),
            };
            let described = |a: &Assignment| {
                a.keys().all(|id| {
                    names.get(id).is_none_or(|name| {
                        allowed(broker, session, Operation::Describe, ResourceType::Topic, name)
                    })
                })
            };
            if summary.members.iter().any(|m| !described(&m.assignment)) {
                return base
                    .with_error_code(BrokerError::from(AuthError::TopicDenied).code())
                    .with_error_message(Some(str_bytes(
                        "The group has described topic(s) that the client is not authorized to describe.",
                    )));
            }
            let members = summary
                .members
                .into_iter()
                .map(|m| {
                    let partitions = m
                        .assignment
                        .into_iter()
                        .map(|(id, partitions)| {
                            describe_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_topic_name(TopicName(str_bytes(
                                    names.get(&id).cloned().unwrap_or_default(),
                                )))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect();
                    describe_response::Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_rack_id(m.rack_id.map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .into_iter()
                                .map(|t| TopicName(str_bytes(t)))
                                .collect(),
                        )
                        .with_assignment(
                            describe_response::Assignment::default()
                                .with_topic_partitions(partitions),
                        )
                })
                .collect();
            base.with_group_state(str_bytes(summary.state.name()))
                .with_group_epoch(summary.group_epoch)
                .with_assignment_epoch(summary.assignment_epoch)
                .with_assignor_name(str_bytes(summary.assignor))
                .with_members(members)
                .with_authorized_operations(authorized_operations(
                    broker,
                    session,
                    req.include_authorized_operations,
                    ResourceType::Group,
                    &group_id,
                ))
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}
