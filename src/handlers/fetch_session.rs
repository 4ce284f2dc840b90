//! Fetch sessions (KIP-227) on the wire: which partitions a fetch reads, given its session
//! id and epoch, and which of them its answer carries. Kafka's `FetchManager.newContext` and
//! its `FetchContext`s; the sessions themselves are [`crate::fetch_sessions`]'.

use std::sync::Arc;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::FetchSessionError;
use crate::fetch_sessions::{Continued, FetchParams, Outcome, PartitionKey, TopicKey, NO_SESSION};

/// Sessions from Fetch v7; older fetches are always full and sessionless.
const FIRST_VERSION_WITH_SESSIONS: i16 = 7;
/// A session's topics are named by id from v13.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;
/// The epoch of a full fetch that opens a session.
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full fetch that wants no session.
const FINAL_EPOCH: i32 = -1;

/// What a fetch is, as far as sessions go (Kafka's `FetchContext`s).
pub(super) enum Context {
    /// A full fetch answered without a session (session id 0).
    Sessionless,
    /// A full fetch that opens a session if the cache has room.
    Full,
    /// A fetch of session `id`, now at `epoch`, answered with what changed.
    Incremental { id: i32, epoch: i32 },
    /// The session cannot go on: this error, no partitions.
    Failed(FetchSessionError),
}

/// A fetch's context and the partitions it reads: the request's own, or for an
/// incremental fetch every partition of its session, in the session's order.
pub(super) fn plan(
    broker: &Broker,
    request: &mut FetchRequest,
    version: i16,
) -> (Context, Vec<FetchTopic>) {
    let topics = std::mem::take(&mut request.topics);
    if version < FIRST_VERSION_WITH_SESSIONS {
        return (Context::Sessionless, topics);
    }
    let (id, epoch) = (request.session_id, request.session_epoch);
    if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
        // A full fetch closes the session it names.
        if id != NO_SESSION && broker.fetch_sessions.remove(id) {
            tracing::debug!(id, "fetch session closed by a full fetch");
        }
        let context = if epoch == FINAL_EPOCH {
            Context::Sessionless
        } else {
            Context::Full
        };
        return (context, topics);
    }
    let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
    let changed = topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, &t.topic, t.topic_id);
            t.partitions
                .iter()
                .map(move |p| (key(&topic, p.partition), params_of(p)))
        })
        .collect();
    let forgotten: Vec<PartitionKey> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, &t.topic, t.topic_id);
            t.partitions.iter().map(move |&p| key(&topic, p))
        })
        .collect();
    match broker
        .fetch_sessions
        .update(now_ms(), id, epoch, by_id, changed, &forgotten)
    {
        Err(err) => {
            tracing::debug!(id, epoch, "fetch session error: {err}");
            (Context::Failed(err), Vec::new())
        }
        // The session emptied or outgrew the budget: the request's own partitions, no
        // session, and the fetcher starts over.
        Ok(Continued::Closed) => (Context::Sessionless, topics),
        Ok(Continued::Incremental { epoch, partitions }) => {
            (Context::Incremental { id, epoch }, to_topics(partitions))
        }
    }
}

/// One partition of an answer, before it is grouped by topic.
pub(super) struct Answered {
    pub name: TopicName,
    pub id: Uuid,
    pub params: FetchParams,
    pub data: PartitionData,
}

/// Finishes an answer: opens the session of a full fetch, or leaves out of an incremental
/// answer what has not changed; then groups the partitions by topic as Kafka's
/// `FetchResponse.of` does, a new topic entry whenever the topic changes. The session id
/// to answer with, or the error that ends the session.
pub(super) fn finish(
    broker: &Broker,
    context: &Context,
    version: i16,
    follower: bool,
    answered: Vec<Answered>,
) -> Result<(i32, Vec<FetchableTopicResponse>), (FetchSessionError, i32)> {
    let by_id = version >= FIRST_VERSION_WITH_TOPIC_IDS;
    let keyed = |answered: &[Answered]| -> Vec<(PartitionKey, Outcome)> {
        let mut topic = None;
        answered
            .iter()
            .map(|a| {
                let same = matches!(&topic, Some((n, i, _)) if *n == a.name && *i == a.id);
                if !same {
                    topic = Some((a.name.clone(), a.id, topic_key(by_id, &a.name, a.id)));
                }
                let t = &topic.as_ref().expect("set above").2;
                (key(t, a.data.partition_index), outcome_of(&a.data))
            })
            .collect()
    };
    let (session_id, answered) = match *context {
        Context::Sessionless => (NO_SESSION, answered),
        Context::Failed(err) => return Err((err, NO_SESSION)),
        Context::Full => {
            let partitions = keyed(&answered)
                .into_iter()
                .zip(&answered)
                .map(|((key, outcome), a)| (key, a.params, outcome))
                .collect();
            let id = broker
                .fetch_sessions
                .create(now_ms(), follower, by_id, partitions);
            (id, answered)
        }
        Context::Incremental { id, epoch } => {
            let selected = broker
                .fetch_sessions
                .select(id, epoch, &keyed(&answered))
                .map_err(|err| (err, id))?;
            broker.metrics.record_incremental_fetch();
            let kept = answered
                .into_iter()
                .zip(selected)
                .filter_map(|(a, keep)| keep.then_some(a))
                .collect();
            (id, kept)
        }
    };
    Ok((session_id, group_by_topic(answered)))
}

fn group_by_topic(answered: Vec<Answered>) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for a in answered {
        match topics.last_mut() {
            Some(last) if last.topic == a.name && last.topic_id == a.id => {
                last.partitions.push(a.data)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(a.name)
                    .with_topic_id(a.id)
                    .with_partitions(vec![a.data]),
            ),
        }
    }
    topics
}

/// What a session compares between answers.
fn outcome_of(data: &PartitionData) -> Outcome {
    Outcome {
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        has_error: data.error_code != 0,
        has_preferred_replica: data.preferred_read_replica.0 >= 0,
        has_diverging_epoch: data.diverging_epoch.epoch >= 0,
    }
}

pub(super) fn params_of(p: &FetchPartition) -> FetchParams {
    FetchParams {
        fetch_offset: p.fetch_offset,
        max_bytes: p.partition_max_bytes,
        current_leader_epoch: p.current_leader_epoch,
        log_start_offset: p.log_start_offset,
        last_fetched_epoch: p.last_fetched_epoch,
    }
}

fn topic_key(by_id: bool, name: &TopicName, id: Uuid) -> TopicKey {
    if by_id {
        TopicKey::Id(id)
    } else {
        // A copy: a slice of the request would keep its whole frame alive in the cache.
        TopicKey::Name(Arc::from(name.as_str()))
    }
}

fn key(topic: &TopicKey, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: topic.clone(),
        partition,
    }
}

/// A session's partitions as the request topics a full fetch of them would carry.
fn to_topics(partitions: Vec<(PartitionKey, FetchParams)>) -> Vec<FetchTopic> {
    let mut topics: Vec<(TopicKey, FetchTopic)> = Vec::new();
    for (key, params) in partitions {
        let partition = FetchPartition::default()
            .with_partition(key.partition)
            .with_fetch_offset(params.fetch_offset)
            .with_partition_max_bytes(params.max_bytes)
            .with_current_leader_epoch(params.current_leader_epoch)
            .with_log_start_offset(params.log_start_offset)
            .with_last_fetched_epoch(params.last_fetched_epoch);
        match topics.last_mut() {
            Some((topic, wanted)) if *topic == key.topic => wanted.partitions.push(partition),
            _ => {
                let wanted = match &key.topic {
                    TopicKey::Id(id) => FetchTopic::default().with_topic_id(*id),
                    TopicKey::Name(name) => FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_string()))),
                };
                topics.push((key.topic, wanted.with_partitions(vec![partition])));
            }
        }
    }
    topics.into_iter().map(|(_, t)| t).collect()
}
