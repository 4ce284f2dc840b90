//! Metadata: the broker, and the topics asked for (creating unknown ones when allowed).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{str_bytes, ALL_CLUSTER_OPERATIONS, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::store::OFFSETS_TOPIC;
use crate::network::Session;
use crate::topics::{partition::LEADER_EPOCH, Topic};

/// Bit set of every topic operation (READ..ALTER_CONFIGS, DESCRIBE_CONFIGS), for clients
/// that ask what they may do; without ACLs a client may do everything.
const ALL_TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub fn handle(broker: &Broker, session: &Session, request: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list meant "all topics" until v1 gave it its own meaning.
    let wanted = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    // Before v4 the request had no flag and auto-creation was always allowed.
    let may_create = broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let operations = if request.include_topic_authorized_operations {
        ALL_TOPIC_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let topics: Vec<MetadataResponseTopic> = match wanted {
        None => broker
            .topics
            .all()
            .iter()
            .map(|topic| describe(broker, topic, operations))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            // Since v10 a topic may be named by id; a non-zero id wins over the name.
            .map(|t| match t.name {
                Some(name) if t.topic_id.is_nil() => by_name(broker, name, may_create, operations),
                _ => by_id(broker, t.topic_id, operations),
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
    // Clients are told the address of the listener they came through.
    let (host, port) = &session.listener.advertised;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id()))
            .with_host(str_bytes(host.clone()))
            .with_port(*port)])
        .with_cluster_id(Some(str_bytes(broker.topics.cluster_id())))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

fn by_name(broker: &Broker, name: TopicName, may_create: bool, operations: i32) -> MetadataResponseTopic {
    if let Some(topic) = broker.topics.get(&name) {
        return describe(broker, &topic, operations);
    }
    let failed = |err: BrokerError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(err.code())
            .with_topic_authorized_operations(operations)
    };
    if !may_create {
        return failed(BrokerError::UnknownTopicOrPartition);
    }
    let created = broker.topics.create(
        &name,
        broker.config.num_partitions,
        Default::default(),
        false,
    );
    match created {
        Ok(topic) => describe(broker, &topic, operations),
        // Another request created it between our lookup and our create.
        Err(BrokerError::TopicAlreadyExists(_)) => match broker.topics.get(&name) {
            Some(topic) => describe(broker, &topic, operations),
            None => failed(BrokerError::UnknownTopicOrPartition),
        },
        Err(err) => failed(err),
    }
}

fn by_id(broker: &Broker, id: Uuid, operations: i32) -> MetadataResponseTopic {
    match broker.topics.get_by_id(id) {
        Some(topic) => describe(broker, &topic, operations),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(BrokerError::UnknownTopicId.code())
            .with_topic_authorized_operations(operations),
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
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
