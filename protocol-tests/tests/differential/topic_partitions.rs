//! DescribeTopicPartitions: topics by name or all of them, a page of partitions at a time
//! with a cursor, and the eligible leader replicas (KIP-966).

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::differential::Differential;

use crate::UNKNOWN;

fn request(
    names: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| TopicRequest::default().with_name(topic_name(n)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }))
}

#[test]
fn describe_topic_partitions() {
    let mut d = Differential::start("topic_partitions");
    // Named so that they sort a, b, c whatever the run tag.
    let a = d.topic("a");
    let b = d.topic("b");
    let c = d.topic("c");
    d.create_topic(&a, 3, &[]);
    d.create_topic(&b, 1, &[]);
    d.create_topic(&c, 2, &[]);
    let v = 0;
    d.compare("named", v, |_| request(&[&c, &a, &b], 2000, None));
    d.compare("unknown", v, |_| request(&[&a, &UNKNOWN.name], 2000, None));
    // Pages of two partitions: a0 a1 | a2 b0 | c0 c1.
    d.compare("page-1", v, |_| request(&[&a, &b, &c], 2, None));
    d.compare("page-2", v, |_| request(&[&a, &b, &c], 2, Some((&a, 2))));
    d.compare("page-3", v, |_| request(&[&a, &b, &c], 2, Some((&c, 0))));
    // A page that ends with a topic's last partition points at the next topic.
    d.compare("page-ends-at-topic-end", v, |_| {
        request(&[&a, &b, &c], 3, None)
    });
    d.compare("limit-zero", v, |_| request(&[&a, &b], 0, None));
    d.compare("cursor-past-last-partition", v, |_| {
        request(&[&a, &b], 2000, Some((&a, 7)))
    });
    d.compare("cursor-not-asked-for", v, |_| {
        request(&[&a, &b], 2000, Some((&c, 0)))
    });
    d.compare("cursor-negative-partition", v, |_| {
        request(&[&a, &b], 2000, Some((&a, -1)))
    });
    d.compare("cursor-on-unknown-topic", v, |_| {
        request(&[&a, &UNKNOWN.name], 2000, Some((&UNKNOWN.name, 0)))
    });
    // Every topic: other tests' topics share Kafka, so only this test's are compared, from
    // a cursor on this test's first topic, with a page that ends inside them (a1 a2 b0 c0,
    // then c1) so the next cursor is the same on both.
    let own = |r: &mut DescribeTopicPartitionsResponse| {
        r.topics.retain(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| [&a, &b, &c].iter().any(|o| n.as_str() == o.as_str()))
        });
    };
    d.compare_part(
        "all-from-cursor",
        v,
        |_| request(&[], 4, Some((&a, 1))),
        own,
    );
    d.finish();
}
