//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups and DeleteGroups, over [`crate::group::GroupCoordinator`].
//! Fields a version lacks are left at their defaults, or the encoder refuses the response.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::cluster::seen_from;
use super::consumer_group::topic_image;
use super::off_event_loop;
use super::Session;
use super::{
    allowed, allowed_on_cluster, authorized_operations, str_bytes, AUTHORIZED_OPERATIONS_OMITTED,
};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::config::Config;
use crate::error::BrokerError;
use crate::group::state::JoinError;
use crate::group::store::OFFSETS_TOPIC;
use crate::group::{JoinOutcome, JoinRequest};
use crate::share::coordinator::SHARE_STATE_TOPIC;
use crate::topics::internal::partition_for;
use crate::txn::log::TRANSACTION_STATE_TOPIC;
use samsa_metadata::state::Topic as TopicRecord;

pub(super) const GROUP_KEY: i8 = 0;
pub(super) const TRANSACTION_KEY: i8 = 1;
/// A share-partition's coordinator (KIP-932), keyed `group:topicId:partition`.
pub(super) const SHARE_KEY: i8 = 2;

/// Whether the session may perform `op` on the group (Kafka's GROUP resource).
fn may(broker: &Broker, session: &Session, op: Operation, group: &str) -> bool {
    allowed(broker, session, op, ResourceType::Group, group)
}

fn group_denied() -> BrokerError {
    AuthError::GroupDenied.into()
}

pub async fn find_coordinator(
    broker: &Broker,
    session: &Session,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        req.key_type
    } else {
        GROUP_KEY
    };
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let found = locate(broker, session, key_type, &key, version).await;
            let base = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok((id, host, port)) => base
                    .with_node_id(BrokerId(id))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err(err) => base
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    // v0 has no error message; its default (an empty string) must stay untouched there.
    let response = match locate(broker, session, key_type, &req.key, version).await {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(host))
            .with_port(port),
        Err(err) => {
            let response = FindCoordinatorResponse::default()
                .with_error_code(err.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if version >= 1 {
                return response.with_error_message(err.message().map(str_bytes));
            }
            response
        }
    };
    // v1-3 carry Kafka's name of the error even on success (`Errors.NONE.message()`).
    if version >= 1 {
        response.with_error_message(Some(str_bytes("NONE")))
    } else {
        response
    }
}

/// The coordinator of a group or transactional id: (node id, host, port). Finding one needs
/// DESCRIBE on the key, as in Kafka. It is the leader of the key's partition of the internal
/// topic, which the controller creates on first use; this broker is named at the listener
/// the client came through, as in Metadata.
async fn locate(
    broker: &Broker,
    session: &Session,
    key_type: i8,
    key: &str,
    version: i16,
) -> Result<(i32, String, i32), BrokerError> {
    match key_type {
        GROUP_KEY if !may(broker, session, Operation::Describe, key) => return Err(group_denied()),
        GROUP_KEY => {}
        TRANSACTION_KEY
            if !allowed(
                broker,
                session,
                Operation::Describe,
                ResourceType::TransactionalId,
                key,
            ) =>
        {
            return Err(AuthError::TransactionalIdDenied.into())
        }
        TRANSACTION_KEY => {}
        // Kafka answers the share key type only from v6, and to brokers only.
        SHARE_KEY if version < 6 => return Err(invalid_share_key()),
        // Kafka throws here, and the whole answer carries the exception's message.
        SHARE_KEY if !allowed_on_cluster(broker, session, Operation::ClusterAction) => {
            return Err(BrokerError::ShareState {
                error: ResponseError::ClusterAuthorizationFailed,
                message: crate::share::kafka_words(ResponseError::ClusterAuthorizationFailed)
                    .to_owned(),
            });
        }
        SHARE_KEY => {
            if let Err(err) = parse_share_key(key) {
                tracing::error!("invalid share coordinator key {key:?}: {err}");
                return Err(invalid_share_key());
            }
        }
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "unknown coordinator key type {other}"
            )))
        }
    }
    let record = internal_topic(broker, key_type).await?;
    let partition = partition_for(key, record.partitions.len());
    let leader = record.partitions[partition].leader;
    let metadata = broker.cluster.published();
    match metadata.brokers.get(&leader) {
        Some(b) if !b.fenced => {
            let endpoint = seen_from(broker, session, b.clone());
            Ok((leader, endpoint.host, endpoint.port))
        }
        _ => Err(BrokerError::CoordinatorNotAvailable),
    }
}

/// The internal topic of a coordinator (`GROUP_KEY`: the offsets topic, `TRANSACTION_KEY`:
/// the transaction state), which the controller creates on first use and which is known
/// here once this broker has reconciled it, and so has loaded the partitions it leads.
pub(super) async fn internal_topic(
    broker: &Broker,
    key_type: i8,
) -> Result<TopicRecord, BrokerError> {
    let (topic, partitions, replication) = internal_topic_of(&broker.config, key_type);
    let configs = if key_type == SHARE_KEY {
        broker.share_state.coordinator().topic_configs()
    } else {
        broker.topics.internal_configs()
    };
    broker
        .cluster
        .internal_topic(topic, partitions, replication, configs)
        .await
}

/// Whether [`internal_topic`] has nothing to create or wait for: this broker knows the topic.
pub(super) fn internal_topic_known(broker: &Broker, key_type: i8) -> bool {
    let (topic, _, _) = internal_topic_of(&broker.config, key_type);
    broker.cluster.published().topics.contains_key(topic)
}

/// The name, partition count and replication factor of a key type's internal topic.
fn internal_topic_of(config: &Config, key_type: i8) -> (&'static str, i32, i16) {
    match key_type {
        GROUP_KEY => (
            OFFSETS_TOPIC,
            config.offsets_topic_num_partitions,
            config.offsets_topic_replication_factor,
        ),
        SHARE_KEY => (
            SHARE_STATE_TOPIC,
            config.share_coordinator_state_topic_num_partitions,
            config.share_coordinator_state_topic_replication_factor,
        ),
        _ => (
            TRANSACTION_STATE_TOPIC,
            config.transaction_state_num_partitions,
            config.transaction_state_replication_factor,
        ),
    }
}

/// INVALID_REQUEST without a message, as Kafka answers a share key it cannot take.
fn invalid_share_key() -> BrokerError {
    BrokerError::ShareState {
        error: ResponseError::InvalidRequest,
        message: String::new(),
    }
}

/// Kafka's `SharePartitionKey.getInstance(String)`: `group:topicId:partition`, the group
/// being everything before the last two colons (not blank), the topic id in Kafka's base64
/// form. Only the check matters here: the key itself is hashed as it came.
fn parse_share_key(key: &str) -> Result<(), String> {
    use base64::Engine;
    // Java's split drops trailing empty parts.
    let mut parts: Vec<&str> = key.split(':').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() < 3 {
        return Err("expected group:topicId:partition".into());
    }
    let n = parts.len();
    if parts[..n - 2].join(":").trim().is_empty() {
        return Err("GroupId must not be empty".into());
    }
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[n - 2])
        .map_err(|e| format!("invalid topic id: {e}"))?;
    if id.len() != 16 {
        return Err("invalid topic id".into());
    }
    parts[n - 1]
        .parse::<i32>()
        .map(|_| ())
        .map_err(|e| format!("invalid partition: {e}"))
}

pub async fn join(
    broker: &Broker,
    session: &Session,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> JoinGroupResponse {
    if !may(broker, session, Operation::Read, &req.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(group_denied().code())
            .with_generation_id(-1)
            .with_protocol_name(if version >= 7 {
                None
            } else {
                Some(StrBytes::default())
            })
            .with_member_id(req.member_id);
    }
    let session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    // v0 had no rebalance timeout: the session timeout bounded the rebalance too.
    let rebalance_timeout = if version == 0 {
        session_timeout
    } else {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_owned(),
        client_host: format!("/{}", peer.ip()),
        session_timeout,
        rebalance_timeout,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let (tx, rx) = oneshot::channel();
    let (groups, group_id, topics) = (
        broker.groups.clone(),
        req.group_id.to_string(),
        topic_image(broker),
    );
    let joined = off_event_loop(move || groups.join(&group_id, join, &topics, tx)).await;
    let outcome: JoinOutcome = match joined {
        Ok(()) => rx.await.unwrap_or_else(|_| {
            Err(JoinError {
                error: BrokerError::UnknownMemberId,
                member_id: req.member_id.to_string(),
            })
        }),
        Err(error) => Err(JoinError {
            error,
            member_id: req.member_id.to_string(),
        }),
    };
    match outcome {
        Ok(result) => JoinGroupResponse::default()
            .with_generation_id(result.generation)
            .with_protocol_type((version >= 7).then(|| str_bytes(result.protocol_type)))
            .with_protocol_name(Some(str_bytes(result.protocol)))
            .with_leader(str_bytes(result.leader))
            .with_skip_assignment(version >= 9 && result.skip_assignment)
            .with_member_id(str_bytes(result.member_id))
            .with_members(
                result
                    .members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_group_instance_id(if version >= 5 {
                                m.instance_id.map(str_bytes)
                            } else {
                                None
                            })
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(err) => JoinGroupResponse::default()
            .with_error_code(err.error.code())
            .with_generation_id(-1)
            .with_protocol_name(if version >= 7 {
                None
            } else {
                Some(StrBytes::default())
            })
            .with_member_id(str_bytes(err.member_id)),
    }
}

pub async fn sync(
    broker: &Broker,
    session: &Session,
    req: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    if !may(broker, session, Operation::Read, &req.group_id) {
        return SyncGroupResponse::default().with_error_code(group_denied().code());
    }
    let (tx, rx) = oneshot::channel();
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let (groups, topics) = (broker.groups.clone(), topic_image(broker));
    let started = off_event_loop(move || {
        groups.sync(
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            req.protocol_type.as_deref(),
            req.protocol_name.as_deref(),
            assignments,
            &topics,
            tx,
        )
    })
    .await;
    let outcome = match started {
        Ok(()) => rx.await.unwrap_or(Err(BrokerError::UnknownMemberId)),
        Err(err) => Err(err),
    };
    match outcome {
        Ok(result) => {
            let response = SyncGroupResponse::default().with_assignment(result.assignment);
            if version >= 5 {
                response
                    .with_protocol_type(Some(str_bytes(result.protocol_type)))
                    .with_protocol_name(Some(str_bytes(result.protocol)))
            } else {
                response
            }
        }
        Err(err) => SyncGroupResponse::default().with_error_code(err.code()),
    }
}

pub fn heartbeat(broker: &Broker, session: &Session, req: HeartbeatRequest) -> HeartbeatResponse {
    if !may(broker, session, Operation::Read, &req.group_id) {
        return HeartbeatResponse::default().with_error_code(group_denied().code());
    }
    let result = broker.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}

pub async fn leave(
    broker: &Broker,
    session: &Session,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if !may(broker, session, Operation::Read, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(group_denied().code());
    }
    // v3 batched the leaving members (KIP-345); before it one member left by its id.
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (groups, group_id, leaving) = (
        broker.groups.clone(),
        req.group_id.to_string(),
        members.clone(),
    );
    let results = match off_event_loop(move || groups.leave(&group_id, &leaving)).await {
        Ok(results) => results,
        // An unknown group knows none of the members.
        Err(BrokerError::UnknownMemberId) => members
            .iter()
            .map(|_| Err(BrokerError::UnknownMemberId))
            .collect(),
        Err(err) => return LeaveGroupResponse::default().with_error_code(err.code()),
    };
    if version < 3 {
        let code = results
            .into_iter()
            .next()
            .and_then(|r| r.err())
            .map_or(0, |e| e.code());
        return LeaveGroupResponse::default().with_error_code(code);
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(results)
            .map(|((member_id, instance_id), result)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(member_id))
                    .with_group_instance_id(instance_id.map(str_bytes))
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect(),
    )
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let want_operations = version >= 3 && req.include_authorized_operations;
    let groups = req
        .groups
        .into_iter()
        .map(|group_id| {
            let operations = authorized_operations(
                broker,
                session,
                want_operations,
                ResourceType::Group,
                &group_id,
            );
            let base = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(operations);
            // An empty group id names no group: Kafka describes it as a missing one.
            let summary = if !may(broker, session, Operation::Describe, &group_id) {
                Err(group_denied())
            } else if group_id.is_empty() {
                Ok(None)
            } else {
                broker.groups.describe(&group_id)
            };
            match summary {
                Ok(Some(group)) => base
                    .with_group_state(str_bytes(group.state.name()))
                    .with_protocol_type(str_bytes(group.protocol_type))
                    .with_protocol_data(str_bytes(group.protocol))
                    .with_members(
                        group
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.instance_id.map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                // v6 reports a missing group, or a consumer group (KIP-848), as an error
                // (KIP-1043); before, as a Dead group.
                Ok(None) if version >= 6 => base
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(BrokerError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Group {} not found.",
                        group_id.as_str()
                    )))),
                Err(BrokerError::NoSuchGroup(message)) if version >= 6 => base
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(BrokerError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(message))),
                Ok(None) | Err(BrokerError::NoSuchGroup(_)) => {
                    base.with_group_state(str_bytes("Dead"))
                }
                Err(err) => base
                    .with_error_code(err.code())
                    .with_error_message(if version >= 6 {
                        err.message().map(str_bytes)
                    } else {
                        None
                    }),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn list(
    broker: &Broker,
    session: &Session,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    // DESCRIBE on the cluster lists every group; otherwise those the client may describe.
    let sees_all = allowed_on_cluster(broker, session, Operation::Describe);
    // While a partition loads, Kafka lists the groups it has and says the rest are loading.
    let listing = broker.groups.list();
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let listed = listing
        .groups
        .into_iter()
        .filter(|g| sees_all || may(broker, session, Operation::Describe, &g.id))
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let group = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            let group = if version >= 4 {
                group.with_group_state(str_bytes(g.state))
            } else {
                group
            };
            if version >= 5 {
                group.with_group_type(str_bytes(g.group_type))
            } else {
                group
            }
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(listing.error.map_or(0, |e| e.code()))
        .with_groups(listed)
}

pub async fn delete(
    broker: &Broker,
    session: &Session,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in req.groups_names {
        let result = if !may(broker, session, Operation::Delete, &group_id) {
            Err(group_denied())
        } else if group_id.is_empty() {
            Err(BrokerError::InvalidGroupId)
        } else {
            match delete_share_state(broker, &group_id).await {
                Ok(()) => {
                    let (groups, id) = (broker.groups.clone(), group_id.to_string());
                    off_event_loop(move || groups.delete(&id)).await
                }
                Err(err) => Err(err),
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(result.err().map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// A share group's share-partition state goes before the group does, as Kafka deletes it
/// with the share coordinator first; nothing to do for other groups.
async fn delete_share_state(broker: &Broker, group_id: &str) -> Result<(), BrokerError> {
    let Some(partitions) = broker.groups.share_partitions_to_delete(group_id)? else {
        return Ok(());
    };
    for (topic_id, partitions) in partitions {
        for partition in partitions {
            let key = crate::share::state::SharePartitionKey {
                group_id: group_id.to_owned(),
                topic_id,
                partition,
            };
            broker.share_state.delete(&key).await?;
        }
    }
    // This broker's share-partition leader lets the group's cached state go; a leader on
    // another broker finds its state epoch fenced at its next write and reloads, as in Kafka.
    broker.share_leader.forget(|k| k.group_id == group_id);
    Ok(())
}
