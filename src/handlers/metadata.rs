//! Metadata: the broker, and the topics asked for (creating unknown ones when allowed).

use kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::sync::Arc;

use samsa_metadata::state::Topic as TopicRecord;
use samsa_metadata::ClusterMetadata;
use uuid::Uuid;

use super::cluster::{controller_id, visible_brokers};
use super::Session;
use super::{allowed, authorized_operations, built_from, is_internal_topic, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::cluster::NewTopic;
use crate::error::BrokerError;

/// What the request lets this handler do, and who asks.
struct Context<'a> {
    broker: &'a Broker,
    session: &'a Session,
    may_create: bool,
    want_operations: bool,
    /// The metadata as this node had published it when the request came.
    cluster: Arc<ClusterMetadata>,
}

/// A topic as Metadata (and DescribeTopicPartitions) describes it, from the cluster
/// metadata.
pub(super) struct TopicView {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionView>,
}

pub(super) struct PartitionView {
    pub index: i32,
    /// -1: none (LEADER_NOT_AVAILABLE).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are not up (fenced or unregistered).
    pub offline: Vec<i32>,
    /// KIP-966's eligible leader replicas and last known ELR (DescribeTopicPartitions only).
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
}

impl TopicView {
    pub(super) fn in_cluster(topic: &TopicRecord, metadata: &ClusterMetadata) -> TopicView {
        let up = |id: &i32| metadata.brokers.get(id).is_some_and(|b| !b.fenced);
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| PartitionView {
                index: index as i32,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                offline: p.replicas.iter().copied().filter(|r| !up(r)).collect(),
                elr: p.elr.clone(),
                last_known_elr: p.last_known_elr.clone(),
            })
            .collect();
        TopicView {
            name: topic.name.clone(),
            id: Uuid::from_bytes(topic.id),
            partitions,
        }
    }
}

impl Context<'_> {
    fn may(&self, op: Operation, topic: &str) -> bool {
        allowed(self.broker, self.session, op, ResourceType::Topic, topic)
    }

    fn operations(&self, topic: &str) -> i32 {
        authorized_operations(
            self.broker,
            self.session,
            self.want_operations,
            ResourceType::Topic,
            topic,
        )
    }

    fn describe(&self, topic: &TopicView) -> MetadataResponseTopic {
        describe(topic, self.operations(&topic.name))
    }

    fn all_topics(&self) -> Vec<TopicView> {
        let m = &self.cluster;
        m.topics
            .values()
            .map(|t| TopicView::in_cluster(t, m))
            .collect()
    }

    fn topic(&self, name: &str) -> Option<TopicView> {
        let m = &self.cluster;
        m.topics.get(name).map(|t| TopicView::in_cluster(t, m))
    }

    fn topic_by_id(&self, id: Uuid) -> Option<TopicView> {
        let m = &self.cluster;
        let wanted = *id.as_bytes();
        m.topics
            .values()
            .find(|t| t.id == wanted)
            .map(|t| TopicView::in_cluster(t, m))
    }

    /// Auto-creation with the broker's defaults; `Ok(None)`: created, not yet known here.
    async fn create(&self, name: &str) -> Result<Option<TopicView>, BrokerError> {
        let broker = self.broker;
        let cluster = &broker.cluster;
        let spec = NewTopic {
            name: name.to_owned(),
            ..NewTopic::default()
        };
        let config = &broker.config;
        match cluster
            .create_topic(
                spec,
                config.num_partitions,
                config.default_replication_factor,
                false,
            )
            .await
        {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => {}
            Err(err) => return Err(err),
        }
        let metadata = cluster.published();
        Ok(metadata
            .topics
            .get(name)
            .map(|t| TopicView::in_cluster(t, &metadata)))
    }
}

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 has no null: an empty list meant "all topics" until v1 gave it its own meaning.
    let wanted = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let cx = Context {
        cluster: broker.cluster.published(),
        broker,
        session,
        // Before v4 the request had no flag and auto-creation was always allowed.
        may_create: broker.config.auto_create_topics
            && (version < 4 || request.allow_auto_topic_creation),
        want_operations: request.include_topic_authorized_operations,
    };
    let topics: Vec<MetadataResponseTopic> = match wanted {
        // Listing all topics shows only those the client may describe.
        None => cx
            .all_topics()
            .into_iter()
            .filter(|topic| cx.may(Operation::Describe, &topic.name))
            .map(|topic| cx.describe(&topic))
            .collect(),
        Some(wanted) => {
            let mut answers = Vec::with_capacity(wanted.len());
            for t in wanted {
                // Since v10 a topic may be named by id; a non-zero id wins over the name.
                answers.push(match t.name {
                    Some(name) if t.topic_id.is_nil() => by_name(&cx, name).await,
                    _ => by_id(&cx, t.topic_id),
                });
            }
            answers
        }
    };
    // Clients skip internal topics when they subscribe by pattern; v0 has no such flag.
    let topics: Vec<MetadataResponseTopic> = topics
        .into_iter()
        .map(|t| {
            let internal = version >= 1 && t.name.as_ref().is_some_and(|n| is_internal_topic(n));
            t.with_is_internal(internal)
        })
        .collect();
    // v0 has no rack field: the encoder refuses a set value there.
    let brokers = visible_brokers(broker, session, false)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.filter(|_| version >= 1).map(str_bytes))
        })
        .collect();
    let cluster_operations = authorized_operations(
        broker,
        session,
        request.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.topics.cluster_id())))
        .with_controller_id(controller_id(broker))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_operations)
}

async fn by_name(cx: &Context<'_>, name: TopicName) -> MetadataResponseTopic {
    let failed = |err: BrokerError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(err.code())
            .with_topic_authorized_operations(cx.operations(&name))
    };
    if !cx.may(Operation::Describe, &name) {
        return failed(AuthError::TopicDenied.into());
    }
    let broker = cx.broker;
    if let Some(topic) = cx.topic(&name) {
        return cx.describe(&topic);
    }
    if !cx.may_create {
        return failed(BrokerError::UnknownTopicOrPartition);
    }
    let may_create = allowed(
        broker,
        cx.session,
        Operation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || cx.may(Operation::Create, &name);
    if !may_create {
        return failed(AuthError::TopicDenied.into());
    }
    match cx.create(&name).await {
        Ok(Some(topic)) => cx.describe(&topic),
        // Kafka answers a topic it is still creating so; the client asks again.
        Ok(None) => failed(BrokerError::LeaderNotAvailable),
        Err(err) => failed(err),
    }
}

fn by_id(cx: &Context<'_>, id: Uuid) -> MetadataResponseTopic {
    // Kafka reports the authorized operations of every topic in the answer, known or not.
    let failed = |err: BrokerError, name: &str| {
        MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(err.code())
            .with_topic_authorized_operations(cx.operations(name))
    };
    match cx.topic_by_id(id) {
        Some(topic) if cx.may(Operation::Describe, &topic.name) => cx.describe(&topic),
        Some(topic) => failed(AuthError::TopicDenied.into(), &topic.name),
        None => failed(BrokerError::UnknownTopicId, ""),
    }
}

fn describe(topic: &TopicView, operations: i32) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_topic_authorized_operations(operations)
        .with_partitions(topic.partitions.iter().map(Into::into).collect())
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&id| BrokerId(id)).collect()
}

impl PartitionView {
    fn error_code(&self) -> i16 {
        if self.leader < 0 {
            BrokerError::LeaderNotAvailable.code()
        } else {
            0
        }
    }
}

built_from! {
    &PartitionView => MetadataResponsePartition, DescribeTopicPartitionsResponsePartition;
    |p| {
        with_error_code(p.error_code()),
        with_partition_index(p.index),
        with_leader_id(BrokerId(p.leader)),
        with_leader_epoch(p.leader_epoch),
        with_replica_nodes(broker_ids(&p.replicas)),
        with_isr_nodes(broker_ids(&p.isr)),
        with_offline_replicas(broker_ids(&p.offline)),
    }
}
