//! ElectLeaders on one broker: every partition already has its preferred (only) replica as
//! leader, so each election is not needed; unknown partitions and topics are named as such.

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::differential::Differential;

use crate::{ends, UNKNOWN};

fn elect(election_type: i8, topics: Option<Vec<(&str, Vec<i32>)>>) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(30_000)
        .with_topic_partitions(topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect()
        }))
}

#[test]
fn elect_leaders() {
    let mut d = Differential::start("elections");
    let topic = d.topic("elected");
    d.create_topic(&topic, 2, &[]);
    for v in ends(ApiKey::ElectLeaders) {
        let t = topic.as_str();
        d.compare("preferred", v, |_| elect(0, Some(vec![(t, vec![0, 1])])));
        d.compare("unknown-partition", v, |_| {
            elect(0, Some(vec![(t, vec![7])]))
        });
        d.compare("unknown-topic", v, |_| {
            elect(0, Some(vec![(&UNKNOWN.name, vec![0])]))
        });
        if v >= 1 {
            d.compare("unclean", v, |_| elect(1, Some(vec![(t, vec![0])])));
            d.compare("unknown-type", v, |_| elect(5, Some(vec![(t, vec![0])])));
        }
    }
    d.finish();
}
