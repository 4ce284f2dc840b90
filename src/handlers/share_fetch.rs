//! ShareFetch (78) and ShareAcknowledge (79), KIP-932: a share group's member fetches records
//! it acquires for a time, and acknowledges them, piggy-backed on its next fetch or on its
//! own. The checks come in the order of Kafka's KafkaApis: share groups on
//! (`share.version` 1+, else UNSUPPORTED_VERSION), a group id, READ on the group, a member id
//! of 1 to 36 characters, the share session, then each partition (unknown topic id, READ on
//! the topic, unknown partition, not the leader).

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response as ack_response;
use kafka_protocol::messages::share_fetch_response as share_fetch;
use kafka_protocol::messages::{
    BrokerId, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::share_group::share_enabled;
use super::{allowed, current_leader, share_poll, Session};
use crate::auth::{Operation, ResourceType};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::share::leader::{key, SessionContext};
use crate::share::partition::{AcquireLimits, RENEW};
use crate::share::sessions::{SessionPartition, FINAL_EPOCH};
use crate::topics::Partition;

/// ShareAcquireMode 1: never more records than MaxRecords.
const RECORD_LIMIT_MODE: i8 = 1;
const FIRST_VERSION_WITH_RENEW: i16 = 2;

/// An acknowledgement of one partition: (first offset, last offset, types).
type Acks = Vec<(i64, i64, Vec<i8>)>;

/// Kafka's `isMemberIdValid`: present, not empty, at most 36 characters (a UUID's string).
fn member_id_valid(member: Option<&str>) -> bool {
    member.is_some_and(|m| !m.is_empty() && m.chars().count() <= 36)
}

/// The request-level checks both APIs share: the group and member ids, or the error the
/// whole request is answered with.
fn admitted(
    broker: &Broker,
    session: &Session,
    group: Option<&GroupId>,
    member: Option<&StrBytes>,
) -> Result<(String, String), BrokerError> {
    if !share_enabled(broker) {
        return Err(BrokerError::UnsupportedVersion(
            "Share groups are not enabled (share.version 0)".into(),
        ));
    }
    let Some(group) = group.map(|g| g.0.to_string()) else {
        return Err(BrokerError::InvalidRequest(
            "Invalid group id in the request.".into(),
        ));
    };
    if !allowed(
        broker,
        session,
        Operation::Read,
        ResourceType::Group,
        &group,
    ) {
        return Err(crate::error::AuthError::GroupDenied.into());
    }
    let member = member.map(|m| m.to_string());
    if !member_id_valid(member.as_deref()) {
        return Err(BrokerError::InvalidRequest(
            "Invalid member id in the request.".into(),
        ));
    }
    Ok((group, member.unwrap_or_default()))
}

/// A partition as the request names it, resolved: its topic's name and log, or the error it
/// is answered with.
struct Resolved {
    topic_id: Uuid,
    index: i32,
    partition: Result<std::sync::Arc<Partition>, BrokerError>,
}

fn resolve(broker: &Broker, session: &Session, (topic_id, index): SessionPartition) -> Resolved {
    let partition = match broker.topics.get_by_id(topic_id) {
        None => Err(BrokerError::UnknownTopicId),
        Some(topic)
            if !allowed(
                broker,
                session,
                Operation::Read,
                ResourceType::Topic,
                &topic.name,
            ) =>
        {
            Err(crate::error::AuthError::TopicDenied.into())
        }
        Some(topic) => topic
            .partition(index)
            .cloned()
            .ok_or(BrokerError::UnknownTopicOrPartition),
    };
    Resolved {
        topic_id,
        index,
        partition,
    }
}

/// Kafka's `validateAcknowledgementBatches`: ordered ranges, types present, one per offset
/// when more than one, each known (renew only in a v2 request that says it renews).
fn valid_acks(acks: &Acks, renew: bool) -> bool {
    let max_type = if renew { RENEW } else { RENEW - 1 };
    let mut previous_end = -1;
    for (first, last, types) in acks {
        let ok = first <= last
            && *first >= previous_end
            && !types.is_empty()
            && (types.len() == 1 || last - first == types.len() as i64 - 1)
            && types.iter().all(|t| (0..=max_type).contains(t));
        if !ok {
            return false;
        }
        previous_end = *last;
    }
    true
}

/// Acknowledges one partition; the code to answer with.
async fn acknowledge(
    broker: &Broker,
    session: &Session,
    group: &str,
    member: &str,
    (topic_id, index): SessionPartition,
    acks: &Acks,
    renew: bool,
) -> i16 {
    // Kafka's order: an unknown topic id, then the ranges, then READ and the partition.
    if broker.topics.get_by_id(topic_id).is_none() {
        return ResponseError::UnknownTopicId.code();
    }
    if !valid_acks(acks, renew) {
        return ResponseError::InvalidRequest.code();
    }
    let partition = match resolve(broker, session, (topic_id, index)).partition {
        Ok(p) => p,
        Err(err) => return err.code(),
    };
    if acks.is_empty() {
        return 0;
    }
    if let Err(err) = partition.ensure_leader() {
        return err.code();
    }
    let result = broker
        .share_leader
        .acknowledge(
            &broker.share_state,
            &key(group, topic_id, index),
            &partition,
            member,
            acks,
            now_ms(),
        )
        .await;
    if result.is_ok() {
        for (first, last, types) in acks {
            if types.len() == 1 {
                let count = (last - first + 1) as u64;
                broker.metrics.share.record_acknowledged(types[0], count);
            } else {
                for kind in types {
                    broker.metrics.share.record_acknowledged(*kind, 1);
                }
            }
        }
    }
    result.err().map_or(0, |err| {
        tracing::debug!(group, member, %topic_id, partition = index, "share acknowledgement refused: {err}");
        err.code()
    })
}

/// What one partition answers a fetch.
#[derive(Default)]
struct Answer {
    error: i16,
    ack_error: Option<i16>,
    records: bytes::Bytes,
    acquired: Vec<share_fetch::AcquiredRecords>,
    leader: Option<share_fetch::LeaderIdAndEpoch>,
}

pub async fn fetch(
    broker: &Broker,
    session: &mut Session,
    request: ShareFetchRequest,
    version: i16,
) -> ShareFetchResponse {
    let response = serve_fetch(broker, session, request, version).await;
    broker
        .metrics
        .share
        .record_request("share_fetch", response.error_code != 0);
    response
}

async fn serve_fetch(
    broker: &Broker,
    session: &mut Session,
    request: ShareFetchRequest,
    version: i16,
) -> ShareFetchResponse {
    let (group, member) = match admitted(
        broker,
        session,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(ids) => ids,
        Err(err) => return fetch_error(err),
    };
    let renew = version >= FIRST_VERSION_WITH_RENEW && request.is_renew_ack;
    // A renewing fetch only acknowledges: it may not ask for records.
    if renew
        && (request.max_bytes != 0
            || request.min_bytes != 0
            || request.max_records != 0
            || request.max_wait_ms != 0)
    {
        return fetch_error(BrokerError::InvalidRequest(
            "Renew acknowledgement with non-zero fetch parameters".into(),
        ));
    }
    let wanted: Vec<SessionPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forgotten: Vec<SessionPartition> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
        .collect();
    let acks: Vec<(SessionPartition, Acks)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| !p.acknowledgement_batches.is_empty())
                .map(|p| {
                    let batches = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect();
                    ((t.topic_id, p.partition_index), batches)
                })
        })
        .collect();
    let context = broker.share_leader.sessions.fetch_context(
        &group,
        &member,
        request.share_session_epoch,
        &wanted,
        &forgotten,
        !acks.is_empty(),
        session.id,
    );
    let context = match context {
        Ok(context) => context,
        Err(err) => {
            // Kafka answers a full cache only after the fetch's wait, so that the client
            // does not retry at once.
            if err == crate::share::sessions::SessionError::LimitReached {
                let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
                tokio::time::sleep(wait).await;
            }
            return fetch_error(err.into());
        }
    };
    let mut answers: HashMap<SessionPartition, Answer> = HashMap::new();
    for (p, batches) in &acks {
        let code = acknowledge(broker, session, &group, &member, *p, batches, renew).await;
        answers.entry(*p).or_default().ack_error = Some(code);
    }
    let (partitions, full) = match &context {
        SessionContext::Full(ps) => (ps.clone(), true),
        SessionContext::Incremental(ps) => (ps.clone(), false),
        SessionContext::Final(ps) => {
            let ps = ps.clone();
            broker.share_leader.sessions.close(&group, &member);
            broker
                .share_leader
                .release_member(
                    &broker.share_state,
                    &group,
                    &member,
                    Some(&ps),
                    &broker.topics,
                )
                .await;
            (Vec::new(), false)
        }
    };
    if !renew && !partitions.is_empty() {
        let limits = AcquireLimits {
            max_records: i64::from(request.max_records.max(0)),
            batch_size: i64::from(request.batch_size.max(0)),
            record_limit: version >= 2 && request.share_acquire_mode == RECORD_LIMIT_MODE,
        };
        fetch_partitions(
            broker,
            session,
            &group,
            &member,
            &partitions,
            &request,
            limits,
            &mut answers,
        )
        .await;
    }
    let leaders: Vec<BrokerId> = answers
        .values()
        .filter_map(|a| a.leader.as_ref().map(|l| BrokerId(l.leader_id)))
        .collect();
    // A new session answers each of its partitions; a continued one those with news.
    let mut order: Vec<SessionPartition> = if full { partitions.clone() } else { Vec::new() };
    for p in partitions.iter().chain(acks.iter().map(|(p, _)| p)) {
        let news = answers
            .get(p)
            .is_some_and(|a| a.error != 0 || a.ack_error.is_some() || !a.acquired.is_empty());
        if news && !order.contains(p) {
            order.push(*p);
        }
    }
    let mut topics: Vec<share_fetch::ShareFetchableTopicResponse> = Vec::new();
    for (topic_id, index) in order {
        let answer = answers.remove(&(topic_id, index)).unwrap_or_default();
        let data = share_fetch::PartitionData::default()
            .with_partition_index(index)
            .with_error_code(answer.error)
            .with_acknowledge_error_code(answer.ack_error.unwrap_or(0))
            .with_current_leader(answer.leader.unwrap_or_default())
            .with_records(Some(answer.records))
            .with_acquired_records(answer.acquired);
        match topics.last_mut() {
            Some(t) if t.topic_id == topic_id => t.partitions.push(data),
            _ => topics.push(
                share_fetch::ShareFetchableTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout(broker, &group))
        .with_responses(topics)
        .with_node_endpoints(current_leader::node_endpoints(broker, leaders))
}

fn lock_timeout(broker: &Broker, group: &str) -> i32 {
    i32::try_from(broker.share_leader.record_lock_duration_ms(group)).unwrap_or(i32::MAX)
}

/// A request-level refusal: the code alone, without a message, as Kafka's
/// `getErrorResponse` answers.
fn fetch_error(err: BrokerError) -> ShareFetchResponse {
    tracing::debug!("share fetch refused: {err}");
    ShareFetchResponse::default().with_error_code(err.code())
}

/// Acquires for `member` from its session's partitions, waiting as Kafka's
/// `DelayedShareFetch` does (see [`super::share_poll`]); partitions refused before reading
/// are answered their error at once.
#[allow(clippy::too_many_arguments)]
async fn fetch_partitions(
    broker: &Broker,
    session: &Session,
    group: &str,
    member: &str,
    partitions: &[SessionPartition],
    request: &ShareFetchRequest,
    limits: AcquireLimits,
    answers: &mut HashMap<SessionPartition, Answer>,
) {
    let mut wanted = Vec::new();
    let mut at = Vec::new();
    for p in partitions {
        let r = resolve(broker, session, *p);
        let answer = answers.entry((r.topic_id, r.index)).or_default();
        match r.partition {
            Ok(partition) => {
                wanted.push(share_poll::Wanted {
                    key: key(group, r.topic_id, r.index),
                    partition,
                });
                at.push(*p);
            }
            Err(err) => answer.error = err.code(),
        }
    }
    // Kafka's round-robin rotation: the session's nth fetch starts from its partition n
    // (modulo their count), so that no partition always gets the bytes and records first.
    let epoch = request.share_session_epoch;
    if epoch >= 1 && !wanted.is_empty() {
        let k = epoch as usize % wanted.len();
        wanted.rotate_left(k);
        at.rotate_left(k);
    }
    let wait = share_poll::Wait {
        max_wait_ms: request.max_wait_ms,
        min_bytes: request.min_bytes,
        max_bytes: request.max_bytes,
    };
    let outcomes = share_poll::poll(broker, member, &wanted, wait, limits).await;
    for (i, outcome) in outcomes {
        let answer = answers.entry(at[i]).or_default();
        match outcome {
            Ok(f) => {
                answer.error = 0;
                answer.records = f.records;
                answer.acquired = f
                    .acquired
                    .into_iter()
                    .map(|a| {
                        share_fetch::AcquiredRecords::default()
                            .with_first_offset(a.first_offset)
                            .with_last_offset(a.last_offset)
                            .with_delivery_count(a.delivery_count)
                    })
                    .collect();
            }
            Err(err) => {
                answer.error = err.code();
                if matches!(
                    err,
                    BrokerError::NotLeaderOrFollower | BrokerError::FencedLeaderEpoch { .. }
                ) {
                    answer.leader = Some(current_leader::of(&wanted[i].partition));
                }
            }
        }
    }
}

pub async fn acknowledge_request(
    broker: &Broker,
    session: &mut Session,
    request: ShareAcknowledgeRequest,
    version: i16,
) -> ShareAcknowledgeResponse {
    let response = serve_acknowledge(broker, session, request, version).await;
    broker
        .metrics
        .share
        .record_request("share_acknowledge", response.error_code != 0);
    response
}

async fn serve_acknowledge(
    broker: &Broker,
    session: &mut Session,
    request: ShareAcknowledgeRequest,
    version: i16,
) -> ShareAcknowledgeResponse {
    let (group, member) = match admitted(
        broker,
        session,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(ids) => ids,
        Err(err) => return ack_error(err),
    };
    let epoch = request.share_session_epoch;
    if let Err(err) = broker
        .share_leader
        .sessions
        .acknowledge_context(&group, &member, epoch)
    {
        return ack_error(err.into());
    }
    let renew = version >= FIRST_VERSION_WITH_RENEW && request.is_renew_ack;
    let mut topics: Vec<ack_response::ShareAcknowledgeTopicResponse> = Vec::new();
    let mut leaders = Vec::new();
    for topic in &request.topics {
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let acks: Acks = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            let at = (topic.topic_id, p.partition_index);
            let code = acknowledge(broker, session, &group, &member, at, &acks, renew).await;
            let mut data = ack_response::PartitionData::default()
                .with_partition_index(p.partition_index)
                .with_error_code(code);
            let stale = code == ResponseError::NotLeaderOrFollower.code()
                || code == ResponseError::FencedLeaderEpoch.code();
            if stale {
                if let Ok(partition) = resolve(broker, session, at).partition {
                    let leader: ack_response::LeaderIdAndEpoch = current_leader::of(&partition);
                    leaders.push(BrokerId(leader.leader_id));
                    data = data.with_current_leader(leader);
                }
            }
            partitions.push(data);
        }
        topics.push(
            ack_response::ShareAcknowledgeTopicResponse::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    if epoch == FINAL_EPOCH {
        let held = broker.share_leader.sessions.close(&group, &member);
        broker
            .share_leader
            .release_member(
                &broker.share_state,
                &group,
                &member,
                held.as_deref(),
                &broker.topics,
            )
            .await;
    }
    ShareAcknowledgeResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout(broker, &group))
        .with_responses(topics)
        .with_node_endpoints(current_leader::node_endpoints(broker, leaders))
}

fn ack_error(err: BrokerError) -> ShareAcknowledgeResponse {
    tracing::debug!("share acknowledgement refused: {err}");
    ShareAcknowledgeResponse::default().with_error_code(err.code())
}

#[cfg(test)]
#[path = "share_fetch_tests.rs"]
mod tests;
