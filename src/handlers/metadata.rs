//! Metadata: the broker, and the topics asked for (creating unknown ones when allowed).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::cluster::{controller_id, visible_brokers};
use super::{allowed, authorized_operations, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::store::OFFSETS_TOPIC;
use crate::network::Session;
use crate::topics::Topic;

/// What the request lets this handler do, and who asks.
struct Context<'a> {
    broker: &'a Broker,
    session: &'a Session,
    may_create: bool,
    want_operations: bool,
}

impl Context<'_> {
    fn may(&self, op: Operation, topic: &str) -> bool {
        allowed(self.broker, self.session, op, ResourceType::Topic, topic)
    }

    fn operations(&self, topic: &str) -> i32 {
        authorized_operations(self.broker, self.session, self.want_operations, ResourceType::Topic, topic)
    }

    fn describe(&self, topic: &Topic) -> MetadataResponseTopic {
        describe(self.broker, topic, self.operations(&topic.name))
    }
}

pub fn handle(broker: &Broker, session: &Session, request: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list meant "all topics" until v1 gave it its own meaning.
    let wanted = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let cx = Context {
        broker,
        session,
        // Before v4 the request had no flag and auto-creation was always allowed.
        may_create: broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation),
        want_operations: request.include_topic_authorized_operations,
    };
    let topics: Vec<MetadataResponseTopic> = match wanted {
        // Listing all topics shows only those the client may describe.
        None => broker
            .topics
            .all()
            .iter()
            .filter(|topic| cx.may(Operation::Describe, &topic.name))
            .map(|topic| cx.describe(topic))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            // Since v10 a topic may be named by id; a non-zero id wins over the name.
            .map(|t| match t.name {
                Some(name) if t.topic_id.is_nil() => by_name(&cx, name),
                _ => by_id(&cx, t.topic_id),
            })
            .collect(),
    };
    // Clients skip internal topics when they subscribe by pattern; v0 has no such flag.
    let topics: Vec<MetadataResponseTopic> = topics
        .into_iter()
        .map(|t| {
            let internal = version >= 1 && t.name.as_ref().is_some_and(|n| n.as_str() == OFFSETS_TOPIC);
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

fn by_name(cx: &Context<'_>, name: TopicName) -> MetadataResponseTopic {
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
    if let Some(topic) = broker.topics.get(&name) {
        return cx.describe(&topic);
    }
    if !cx.may_create {
        return failed(BrokerError::UnknownTopicOrPartition);
    }
    let may_create = allowed(broker, cx.session, Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
        || cx.may(Operation::Create, &name);
    if !may_create {
        return failed(AuthError::TopicDenied.into());
    }
    let created = broker.topics.create(
        &name,
        broker.config.num_partitions,
        Default::default(),
        false,
    );
    match created {
        Ok(topic) => cx.describe(&topic),
        // Another request created it between our lookup and our create.
        Err(BrokerError::TopicAlreadyExists(_)) => match broker.topics.get(&name) {
            Some(topic) => cx.describe(&topic),
            None => failed(BrokerError::UnknownTopicOrPartition),
        },
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
    match cx.broker.topics.get_by_id(id) {
        Some(topic) if cx.may(Operation::Describe, &topic.name) => cx.describe(&topic),
        Some(topic) => failed(AuthError::TopicDenied.into(), &topic.name),
        None => failed(BrokerError::UnknownTopicId, ""),
    }
}

fn describe(broker: &Broker, topic: &Topic, operations: i32) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_topic_authorized_operations(operations)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(p.leader_epoch())
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
