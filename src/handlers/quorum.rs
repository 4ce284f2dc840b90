//! DescribeQuorum (KIP-595, KIP-836, KIP-853): the metadata quorum's leader, epoch and high
//! watermark and each voter's progress, as `kafka-metadata-quorum describe` prints them.
//! v2 names each replica's directory id (KIP-853) and lists the observers: controllers that
//! follow the log without voting. Any broker answers: the question goes to the quorum's leader, which alone knows the
//! followers' progress, as Kafka's brokers forward it to the active controller.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use samsa_metadata::quorum::VoterProgress;

use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// The metadata log's name in Kafka, the one topic DescribeQuorum may ask about.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka names the controllers' listener so in a default configuration.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if !allowed_on_cluster(broker, session, Operation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(BrokerError::from(AuthError::ClusterDenied).code());
    }
    // Exactly the metadata log's one partition, as Kafka's raft client insists.
    let valid = matches!(request.topics.as_slice(), [topic]
        if topic.topic_name.as_str() == METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [p] if p.partition_index == 0));
    if !valid {
        return refused(&request, BrokerError::UnknownTopicOrPartition);
    }
    let described = match broker.cluster.describe_quorum().await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::debug!("cannot describe the metadata quorum: {err}");
            return refused(&request, BrokerError::NotLeaderOrFollower);
        }
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(described.leader_id as i32))
        .with_leader_epoch(described.leader_epoch as i32)
        .with_high_watermark(described.high_watermark)
        .with_current_voters(described.voters.iter().map(replica).collect())
        .with_observers(described.observers.iter().map(replica).collect());
    // A single node's controller has no listener (nothing connects to it): no endpoint.
    let nodes = described
        .addresses
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let listener = Listener::default()
                .with_name(str_bytes(CONTROLLER_LISTENER))
                .with_host(str_bytes(host))
                .with_port(port);
            Some(
                Node::default()
                    .with_node_id(BrokerId(*id as i32))
                    .with_listeners(vec![listener]),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![topic(partition)])
        .with_nodes(nodes)
}

fn topic(partition: PartitionData) -> TopicData {
    TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
        .with_partitions(vec![partition])
}

/// Kafka's answer to a request it cannot serve: every partition asked for, with the error.
fn refused(request: &DescribeQuorumRequest, err: BrokerError) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(err.code())
                        .with_error_message(Some(str_bytes(err.to_string())))
                })
                .collect();
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

fn replica(voter: &VoterProgress) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(voter.id as i32))
        .with_replica_directory_id(voter.directory_id.unwrap_or_default())
        .with_log_end_offset(voter.log_end_offset)
        .with_last_fetch_timestamp(voter.last_fetch_ms)
        .with_last_caught_up_timestamp(voter.last_caught_up_ms)
}
