//! Streams groups (KIP-1071): StreamsGroupHeartbeat's validation, topology statuses
//! (missing source and internal topics), the first assignment after the initial rebalance
//! delay, StreamsGroupDescribe, and how ListGroups, DescribeGroups, OffsetCommit and
//! DeleteGroups see a streams group. Both brokers run with Kafka's defaults (the initial
//! rebalance delay of 3 s included); members choose their own ids, the same on both sides.

use kafka_protocol::messages::streams_group_heartbeat_request::{
    KeyValue, Subtopology, TaskIds, TopicInfo, Topology,
};

use super::*;

const REBALANCE_MS: i32 = 30_000;
/// Kafka's default `group.streams.initial.rebalance.delay.ms`, and a little more.
const INITIAL_DELAY: std::time::Duration = std::time::Duration::from_millis(3_500);

pub(super) fn beat(group: &str, member: &str, epoch: i32) -> StreamsGroupHeartbeatRequest {
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
}

fn tasks(list: &[(&str, &[i32])]) -> Option<Vec<TaskIds>> {
    Some(
        list.iter()
            .map(|(s, ps)| {
                TaskIds::default()
                    .with_subtopology_id(str_bytes(s))
                    .with_partitions(ps.to_vec())
            })
            .collect(),
    )
}

/// One subtopology reading `source`; with `changelog`, a stateful one.
pub(super) fn topology(source: &str, changelog: Option<&str>) -> Topology {
    let changelogs = changelog
        .map(|c| {
            vec![TopicInfo::default()
                .with_name(topic_name(c))
                .with_replication_factor(-1)
                .with_topic_configs(vec![KeyValue::default()
                    .with_key(str_bytes("cleanup.policy"))
                    .with_value(str_bytes("compact"))])]
        })
        .unwrap_or_default();
    Topology::default()
        .with_epoch(0)
        .with_subtopologies(vec![Subtopology::default()
            .with_subtopology_id(str_bytes("0"))
            .with_source_topics(vec![topic_name(source)])
            .with_state_changelog_topics(changelogs)])
}

pub(super) fn join(group: &str, member: &str, topology: Topology) -> StreamsGroupHeartbeatRequest {
    beat(group, member, 0)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_topology(Some(topology))
        .with_active_tasks(tasks(&[]))
        .with_standby_tasks(tasks(&[]))
        .with_warmup_tasks(tasks(&[]))
        .with_process_id(Some(str_bytes("process-1")))
}

pub(super) fn describe_streams(groups: &[&str]) -> StreamsGroupDescribeRequest {
    StreamsGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| group_id(g)).collect())
        .with_include_authorized_operations(true)
}

#[test]
fn streams_group_heartbeat_validation() {
    let mut d = Differential::start("streams_group_heartbeat_validation");
    let (group, never, t) = (d.topic("g"), d.topic("never"), d.topic("t"));
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&never).unwrap();
    let g = group.as_str();
    for v in [0, 1] {
        let ok = || topology(&t, None);
        d.compare("empty-member-id", v, |_| join(g, "", ok()));
        d.compare("empty-group-id", v, |_| join("", "m", ok()));
        d.compare("no-rebalance-timeout", v, |_| {
            join(g, "m", ok()).with_rebalance_timeout_ms(-1)
        });
        d.compare("owned-when-joining", v, |_| {
            join(g, "m", ok()).with_active_tasks(tasks(&[("0", &[0])]))
        });
        d.compare("no-topology", v, |_| join(g, "m", ok()).with_topology(None));
        d.compare("topology-when-not-joining", v, |_| {
            beat(g, "m", 3).with_topology(Some(ok()))
        });
        d.compare("empty-instance-id", v, |_| {
            join(g, "m", ok()).with_instance_id(Some(str_bytes(" ")))
        });
        d.compare("static-leave-without-instance", v, |_| beat(g, "m", -2));
        d.compare("epoch-below-minus-two", v, |_| beat(g, "m", -3));
        d.compare("one-task-type-only", v, |_| {
            beat(g, "m", 3).with_active_tasks(tasks(&[]))
        });
        d.compare("changelog-with-partitions", v, |_| {
            let mut t = topology(&t, Some("x-changelog"));
            t.subtopologies[0].state_changelog_topics[0].partitions = 3;
            join(g, "m", t)
        });
        d.compare("internal-topic-in-topology", v, |_| {
            join(g, "m", topology(OFFSETS_TOPIC, None))
        });
        d.compare("invalid-topic-name", v, |_| {
            join(g, "m", topology("no/such topic", None))
        });
        d.compare("source-regex", v, |_| {
            let mut t = topology(&t, None);
            t.subtopologies[0].source_topic_regex = vec![str_bytes("t.*")];
            join(g, "m", t)
        });
        d.compare("unknown-group", v, |_| beat(&never, "m", 3));
        d.compare("unknown-group-leave", v, |_| beat(&never, "m", -1));
    }
    d.finish();
}

#[test]
fn streams_group_heartbeat() {
    let mut d = Differential::start("streams_group_heartbeat");
    let (source, missing) = (d.topic("t"), d.topic("missing"));
    d.create_topic(&source, 3, &[]);
    let (g1, g2, g3) = (d.topic("g1"), d.topic("g2"), d.topic("g3"));
    for g in [&g1, &g2, &g3] {
        d.await_group_coordinator(g).unwrap();
    }
    let changelog = format!("{g2}-store-changelog");
    let v = 1;
    // Status codes: a missing source topic; a missing changelog (which both create).
    d.compare("join-missing-source", v, |_| {
        join(&g1, "m1", topology(&missing, None))
    });
    d.compare("describe-not-ready", v, |_| describe_streams(&[&g1]));
    d.compare("join-missing-changelog", v, |_| {
        join(&g2, "m1", topology(&source, Some(&changelog)))
    });
    d.await_leaders(&changelog, 3).unwrap();

    // A good topology: the first assignment waits for the initial rebalance delay.
    let g = g3.as_str();
    d.compare("join", v, |_| join(g, "m1", topology(&source, None)));
    std::thread::sleep(INITIAL_DELAY);
    d.compare("assigned", v, |_| beat(g, "m1", 1));
    d.compare("heartbeat", v, |_| {
        beat(g, "m1", 2)
            .with_active_tasks(tasks(&[("0", &[0, 1, 2])]))
            .with_standby_tasks(tasks(&[]))
            .with_warmup_tasks(tasks(&[]))
    });
    d.compare("epoch-ahead", v, |_| beat(g, "m1", 5));
    d.compare("unknown-member", v, |_| beat(g, "m9", 2));
    d.compare("bad-task", v, |_| {
        beat(g, "m1", 2)
            .with_active_tasks(tasks(&[("0", &[7])]))
            .with_standby_tasks(tasks(&[]))
            .with_warmup_tasks(tasks(&[]))
    });
    d.compare("describe", 0, |_| describe_streams(&[g]));
    d.compare("describe", 1, |_| describe_streams(&[g]));
    d.compare("describe-unknown", 1, |_| {
        describe_streams(&["no-such-group"])
    });
    // samsa restarts on its data, Kafka does not: both still have the groups as they were,
    // and the member heartbeats on at its epoch.
    d.restart_samsa();
    for group in [&g1, &g3] {
        d.await_group_coordinator(group).unwrap();
    }
    // One group a request: Kafka answers several in its shards' order.
    d.compare("describe-restarted", 1, |_| describe_streams(&[g]));
    d.compare("describe-not-ready-restarted", 1, |_| {
        describe_streams(&[g1.as_str()])
    });
    d.compare("heartbeat-restarted", v, |_| {
        beat(g, "m1", 2)
            .with_active_tasks(tasks(&[("0", &[0, 1, 2])]))
            .with_standby_tasks(tasks(&[]))
            .with_warmup_tasks(tasks(&[]))
    });
    // The classic APIs on a streams group.
    d.compare("describe-groups", 6, |_| describe(&[g], 6));
    d.compare_part(
        "list-groups",
        5,
        |_| ListGroupsRequest::default().with_types_filter(vec![str_bytes("streams")]),
        |r| r.groups.retain(|l| l.group_id.as_str() == g),
    );
    let commit = |epoch: i32, member: &'static str, version: i16| {
        let t = source.clone();
        move |_: &Side| {
            let _ = version;
            OffsetCommitRequest::default()
                .with_group_id(group_id(g))
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(str_bytes(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name(&t))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0)])])
        }
    };
    d.compare("commit", 9, commit(2, "m1", 9));
    d.compare("commit-newer-epoch", 9, commit(7, "m1", 9));
    d.compare("commit-unknown-member", 9, commit(2, "m9", 9));
    d.compare("commit-v8", 8, commit(2, "m1", 8));
    d.compare("delete-non-empty", 2, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)])
    });
    d.compare("leave", v, |_| beat(g, "m1", -1));
    d.compare("describe-empty", 1, |_| describe_streams(&[g]));
    d.compare("delete-empty", 2, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)])
    });
    d.finish();
}
