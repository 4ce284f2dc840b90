//! ElectLeaders: an operator's leader election (kafka-leader-election.sh). The preferred type
//! gives partitions back to their first replica when it is in sync; the unclean type gives a
//! partition that lost every in-sync replica a leader outside the ISR.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use samsa_metadata::{Command, CommandError, Error as MetadataError};

use super::Session;
use super::{allowed_on_cluster, str_bytes};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    if !allowed_on_cluster(broker, session, Operation::Alter) {
        return ElectLeadersResponse::default()
            .with_error_code(BrokerError::from(AuthError::ClusterDenied).code());
    }
    let election = if version >= 1 {
        request.election_type
    } else {
        PREFERRED
    };
    // Kafka refuses an unknown type for the request and for each partition named.
    let unknown_type = (election != PREFERRED && election != UNCLEAN)
        .then(|| BrokerError::InvalidRequest(format!("Unknown election type {election}")));
    // No partitions named: every partition, answering only for those an election moved.
    let everything = request.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        None => all_partitions(broker),
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut answers = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let outcome = match &unknown_type {
                Some(err) => Err(BrokerError::InvalidRequest(err.to_string())),
                None => elect(broker, &topic, partition, election).await,
            };
            if everything && matches!(outcome, Err(BrokerError::ElectionNotNeeded)) {
                continue;
            }
            let answer = PartitionResult::default().with_partition_id(partition);
            answers.push(match outcome {
                Ok(()) => answer.with_error_message(None),
                Err(err) => answer
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            });
        }
        if !answers.is_empty() || !everything {
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(answers),
            );
        }
    }
    let error = unknown_type.map_or(0, |err| err.code());
    ElectLeadersResponse::default()
        .with_error_code(error)
        .with_replica_election_results(results)
}

fn all_partitions(broker: &Broker) -> Vec<(String, Vec<i32>)> {
    broker
        .cluster
        .metadata()
        .topics
        .values()
        .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
        .collect()
}

async fn elect(
    broker: &Broker,
    topic: &str,
    partition: i32,
    election: i8,
) -> Result<(), BrokerError> {
    let no_topic = || BrokerError::NoSuchPartition(format!("No such topic as {topic}"));
    let no_partition =
        || BrokerError::NoSuchPartition(format!("No such partition as {topic}-{partition}"));
    let cluster = &broker.cluster;
    let metadata = cluster.metadata();
    let record = metadata.topics.get(topic).ok_or_else(no_topic)?;
    let index = u32::try_from(partition)
        .ok()
        .filter(|i| (*i as usize) < record.partitions.len())
        .ok_or_else(no_partition)?;
    let topic = topic.to_owned();
    let command = match election {
        PREFERRED => Command::ElectPreferredLeader {
            topic,
            partition: index,
        },
        _ => Command::ElectUncleanLeader {
            topic,
            partition: index,
        },
    };
    match cluster.propose(command).await {
        Ok(_) => Ok(()),
        Err(MetadataError::Command(CommandError::ElectionNotNeeded)) => {
            Err(BrokerError::ElectionNotNeeded)
        }
        // No replica alive to take it: Kafka's answer to an unclean election then.
        Err(MetadataError::Command(CommandError::NoAvailableReplica(_))) => {
            Err(BrokerError::EligibleLeadersNotAvailable)
        }
        Err(err) => Err(err.into()),
    }
}
