//! DescribeLogDirs on one broker: which replicas of which topics a directory lists. Paths,
//! sizes and disk space are each broker's own, so they are blanked before comparing; the
//! directory list is narrowed to this test's topic, since the Kafka is shared, and sorted.

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use samsa_protocol_tests::batches::{batch, messages};
use samsa_protocol_tests::client::{produce_request, str_bytes, topic_name};
use samsa_protocol_tests::differential::Differential;

use crate::{ends, topic_ref, T0, UNKNOWN};

fn describe(topics: Option<Vec<(&str, Vec<i32>)>>) -> DescribeLogDirsRequest {
    DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
        ts.into_iter()
            .map(|(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(t))
                    .with_partitions(ps)
            })
            .collect()
    }))
}

/// Only `topic`'s entries, with what differs by broker blanked.
fn only(topic: &str) -> impl Fn(&mut DescribeLogDirsResponse) + '_ {
    move |response| {
        for dir in &mut response.results {
            dir.log_dir = str_bytes("<dir>");
            dir.total_bytes = 0;
            dir.usable_bytes = 0;
            dir.topics.retain(|t| t.name.as_str() == topic);
            // Kafka lists partitions in its hash map's order; the order means nothing.
            for t in &mut dir.topics {
                t.partitions.sort_by_key(|p| p.partition_index);
            }
            for partition in dir.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                partition.partition_size = 0;
            }
        }
    }
}

#[test]
fn describe_log_dirs() {
    let mut d = Differential::start("log_dirs");
    let topic = d.topic("dirs");
    d.create_topic(&topic, 2, &[]);
    let records = batch(&messages("in-a-dir", 3, *T0));
    d.compare("setup-produce", 9, |s| {
        produce_request(&topic_ref(s, &topic), 0, records.clone(), -1, 9)
    });
    for v in ends(ApiKey::DescribeLogDirs) {
        let t = topic.as_str();
        d.compare_part("every-topic", v, |_| describe(None), only(t));
        d.compare_part(
            "one-partition-and-an-unknown-one",
            v,
            |_| describe(Some(vec![(t, vec![1, 9])])),
            only(t),
        );
        d.compare_part(
            "unknown-topic",
            v,
            |_| describe(Some(vec![(&UNKNOWN.name, vec![0])])),
            only(&UNKNOWN.name),
        );
    }
    d.finish();
}

/// AlterReplicaLogDirs on a broker with one log directory: a move into the directory the
/// replica is in, into a directory the broker lacks, of an unknown topic or partition.
#[test]
fn alter_replica_log_dirs() {
    use std::collections::HashMap;

    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

    let mut d = Differential::start("alter_log_dirs");
    let topic = d.topic("moved");
    d.create_topic(&topic, 2, &[]);
    // Each broker's own directory, as DescribeLogDirs names it.
    let mut dirs = HashMap::new();
    for side in [&mut d.samsa, &mut d.kafka] {
        let described = side.conn.send(&describe(Some(Vec::new())), 4).unwrap();
        dirs.insert(side.name, described.results[0].log_dir.to_string());
    }
    let alter = |dir: &str, moves: &[(&str, &[i32])]| {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(str_bytes(dir))
            .with_topics(
                moves
                    .iter()
                    .map(|(t, ps)| {
                        AlterReplicaLogDirTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps.to_vec())
                    })
                    .collect(),
            )])
    };
    let t = topic.as_str();
    // Kafka answers the partitions in its hash map's order; the order means nothing.
    let sorted = |r: &mut AlterReplicaLogDirsResponse| {
        for topic in &mut r.results {
            topic.partitions.sort_by_key(|p| p.partition_index);
        }
    };
    for v in ends(ApiKey::AlterReplicaLogDirs) {
        d.compare_part(
            "into-its-own-dir",
            v,
            |s| alter(&dirs[s.name], &[(t, &[0, 1])]),
            sorted,
        );
        d.compare("into-a-missing-dir", v, |_| {
            alter("/no/such/dir", &[(t, &[0])])
        });
        d.compare("unknown-partition", v, |s| {
            alter(&dirs[s.name], &[(t, &[7])])
        });
        d.compare("unknown-topic", v, |s| {
            alter(&dirs[s.name], &[(&UNKNOWN.name, &[0])])
        });
    }
    d.finish();
}
