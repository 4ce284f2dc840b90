//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe over
//! [`crate::group::GroupCoordinator`], with Kafka's ACLs (READ on the group to heartbeat,
//! DESCRIBE on the subscribed topics; DESCRIBE on the group, and on every topic of its
//! assignments, to describe it). Both answer UNSUPPORTED_VERSION while the cluster's
//! finalized `group.version` is 0, as Kafka's `isConsumerGroupProtocolEnabled` decides.

use std::collections::HashMap;
use std::net::SocketAddr;

use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe_response, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat_response};
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::off_event_loop;
use super::{allowed, authorized_operations, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::consumer::{Assignment, Heartbeat, TopicImage, TopicMeta};
use samsa_metadata::features;

/// ConsumerGroupDescribe v1 tells whether a member uses the consumer or the classic protocol.
const CLASSIC_MEMBER_TYPE: i8 = 0;
const CONSUMER_MEMBER_TYPE: i8 = 1;
const UNKNOWN_MEMBER_TYPE: i8 = -1;

/// The topics as consumer groups see them, from the published cluster metadata.
pub(super) fn topic_image(broker: &Broker) -> TopicImage {
    broker
        .cluster
        .published()
        .topics
        .values()
        .map(|t| {
            let meta = TopicMeta {
                id: Uuid::from_bytes(t.id),
                partitions: t.partitions.len() as i32,
            };
            (t.name.clone(), meta)
        })
        .collect()
}

/// Whether the consumer protocol is on: `group.version` 1 or more.
fn enabled(broker: &Broker) -> bool {
    broker.cluster.feature_level(features::GROUP_VERSION) >= 1
}

fn heartbeat_error(err: BrokerError) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(err.code())
        .with_error_message(err.message().map(str_bytes))
}

pub async fn heartbeat(
    broker: &Broker,
    session: &Session,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    if !enabled(broker) {
        // Kafka's getErrorResponse: the code alone.
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(BrokerError::UnsupportedVersion(String::new()).code());
    }
    if !allowed(
        broker,
        session,
        Operation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        return heartbeat_error(AuthError::GroupDenied.into());
    }
    // Clients may not subscribe to (and so learn of) topics they may not describe.
    let names: Option<Vec<String>> = req
        .subscribed_topic_names
        .as_ref()
        .map(|names| names.iter().map(|n| n.to_string()).collect());
    let may_describe = |topic: &str| {
        allowed(
            broker,
            session,
            Operation::Describe,
            ResourceType::Topic,
            topic,
        )
    };
    if names
        .as_ref()
        .is_some_and(|n| !n.iter().all(|t| may_describe(t)))
    {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(BrokerError::from(AuthError::TopicDenied).code());
    }
    let owned = req.topic_partitions.as_ref().map(|owned| {
        let mut assignment = Assignment::new();
        for t in owned {
            assignment
                .entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        assignment
    });
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: (req.rebalance_timeout_ms != -1).then_some(req.rebalance_timeout_ms),
        subscribed_topic_names: names,
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: client_id.to_owned(),
        client_host: format!("/{}", peer.ip()),
    };
    let mut topics = topic_image(broker);
    // A regular expression only ever matches topics the member may describe.
    topics.retain(|name, _| may_describe(name));
    let (groups, group_id) = (broker.groups.clone(), req.group_id.to_string());
    let answer =
        off_event_loop(move || groups.consumer_heartbeat(&group_id, hb, version, &topics)).await;
    // Answered once the group's records are replicated, as Kafka's coordinator does.
    let answer = match answer {
        Ok((result, written)) => written.acknowledged().await.map(|()| result),
        Err(err) => Err(err),
    };
    match answer {
        Ok(result) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(result.member_id)))
            .with_member_epoch(result.member_epoch)
            .with_heartbeat_interval_ms(result.heartbeat_interval_ms)
            .with_assignment(result.assignment.map(|a| {
                heartbeat_response::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, partitions)| {
                            heartbeat_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(err) => heartbeat_error(err),
    }
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let names: HashMap<Uuid, String> = topic_image(broker)
        .into_iter()
        .map(|(name, meta)| (meta.id, name))
        .collect();
    let groups = req
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            if !enabled(broker) {
                let err = BrokerError::UnsupportedVersion(String::new());
                return base.with_error_code(err.code());
            }
            if !allowed(
                broker,
                session,
                Operation::Describe,
                ResourceType::Group,
                &group_id,
            ) {
                let err = BrokerError::from(AuthError::GroupDenied);
                return base.with_error_code(err.code());
            }
            let summary = match broker.groups.consumer_describe(&group_id) {
                Ok(summary) => summary,
                Err(err) => {
                    return base
                        .with_error_code(err.code())
                        .with_error_message(err.message().map(str_bytes))
                }
            };
            // Kafka answers for the whole group when any topic of its assignments may not
            // be described, so the answer does not reveal it.
            let described = |a: &Assignment| {
                a.keys().all(|id| {
                    names.get(id).is_none_or(|name| {
                        allowed(broker, session, Operation::Describe, ResourceType::Topic, name)
                    })
                })
            };
            let hidden = summary
                .members
                .iter()
                .any(|m| !described(&m.assignment) || !described(&m.target_assignment));
            if hidden {
                return base
                    .with_error_code(BrokerError::from(AuthError::TopicDenied).code())
                    .with_error_message(Some(str_bytes(
                        "The group has described topic(s) that the client is not authorized to describe.",
                    )));
            }
            let assignment = |a: Assignment| {
                describe_response::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, partitions)| {
                            describe_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_topic_name(TopicName(str_bytes(
                                    names.get(&id).cloned().unwrap_or_default(),
                                )))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            };
            let members = summary
                .members
                .into_iter()
                .map(|m| {
                    describe_response::Member::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_instance_id(m.instance_id.map(str_bytes))
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
                        // Kafka shows "no expression" as an empty one.
                        .with_subscribed_topic_regex(Some(str_bytes(
                            m.subscribed_topic_regex.unwrap_or_default(),
                        )))
                        .with_assignment(assignment(m.assignment))
                        .with_target_assignment(assignment(m.target_assignment))
                        .with_member_type(if version < 1 {
                            UNKNOWN_MEMBER_TYPE
                        } else if m.classic {
                            CLASSIC_MEMBER_TYPE
                        } else {
                            CONSUMER_MEMBER_TYPE
                        })
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
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
