//! Client quotas in a cluster: altered through any node (forwarded to the controller when it
//! is another), described the same by every node, back after a node restarts, and
//! REQUEST_TIMED_OUT for every entry when no controller can take the change; the controller
//! mutation quota counted once for the cluster, by the active controller.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use samsa_protocol_tests::client::{create_request, str_bytes};
use samsa_protocol_tests::cluster::{TestCluster, CONVERGE};

const REQUEST_TIMED_OUT: i16 = 7;
const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

fn alter(user: &str, value: Option<f64>) -> AlterClientQuotasRequest {
    let op = OpData::default().with_key(str_bytes("producer_byte_rate"));
    let op = match value {
        Some(value) => op.with_value(value),
        None => op.with_remove(true),
    };
    AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(str_bytes("user"))
            .with_entity_name(Some(str_bytes(user)))])
        .with_ops(vec![op])])
}

/// Every quota node `id` describes, as (user, producer_byte_rate).
fn described(cluster: &TestCluster, id: i32) -> anyhow::Result<Vec<(String, f64)>> {
    let mut conn = cluster.connect(id)?;
    let answer: DescribeClientQuotasResponse =
        conn.send(&DescribeClientQuotasRequest::default(), 1)?;
    anyhow::ensure!(answer.error_code == 0, "{answer:?}");
    let mut found: Vec<(String, f64)> = answer
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let user = e.entity[0].entity_name.as_deref().unwrap_or("<default>");
            (user.to_owned(), e.values[0].value)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Polls until node `id` describes `want`; a node may refuse connections while it restarts.
fn await_described(cluster: &TestCluster, id: i32, want: &[(&str, f64)]) {
    let want: Vec<(String, f64)> = want.iter().map(|(u, v)| (u.to_string(), *v)).collect();
    let deadline = Instant::now() + CONVERGE;
    loop {
        let last = described(cluster, id);
        if last.as_ref().is_ok_and(|found| *found == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} does not describe {want:?} within {CONVERGE:?}: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quotas_set_through_any_node_hold_on_every_node() {
    let mut cluster = TestCluster::start(3, "").unwrap();
    let nodes = [1, 2, 3];
    for via in nodes {
        let mut conn = cluster.connect(via).unwrap();
        let user = format!("user-{via}");
        let answer = conn
            .send(&alter(&user, Some(f64::from(via) * 1000.0)), 1)
            .unwrap();
        assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
        // The node that took the change answers once it applied it.
        let mine = described(&cluster, via).unwrap();
        assert!(
            mine.contains(&(user.clone(), f64::from(via) * 1000.0)),
            "{mine:?}"
        );
    }
    let all = [("user-1", 1000.0), ("user-2", 2000.0), ("user-3", 3000.0)];
    for id in nodes {
        await_described(&cluster, id, &all);
    }

    // A node restarted finds them in the metadata log; a removal through it reaches all.
    cluster.node_mut(3).process.restart().unwrap();
    await_described(&cluster, 3, &all);
    let mut conn = cluster.connect(3).unwrap();
    let answer = conn.send(&alter("user-1", None), 0).unwrap();
    assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
    for id in nodes {
        await_described(&cluster, id, &[("user-2", 2000.0), ("user-3", 3000.0)]);
    }
}

#[test]
fn quota_changes_time_out_when_no_controller_can_take_them() {
    let mut cluster = TestCluster::start(3, "").unwrap();
    let mut conn = cluster.connect(1).unwrap();
    let answer = conn.send(&alter("kept", Some(10.0)), 1).unwrap();
    assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
    cluster.node_mut(2).process.kill().unwrap();
    cluster.node_mut(3).process.kill().unwrap();

    let answer = conn.send(&alter("lost", Some(20.0)), 1).unwrap();
    assert_eq!(answer.entries.len(), 1);
    assert_eq!(answer.entries[0].error_code, REQUEST_TIMED_OUT);
    assert!(answer.entries[0].error_message.is_some());
    assert_eq!(
        described(&cluster, 1).unwrap(),
        [("kept".to_owned(), 10.0)],
        "what this node applied is still described"
    );
}

#[test]
fn a_client_spreading_topic_creations_over_the_nodes_has_one_mutation_quota() {
    let cluster = TestCluster::start(3, "").unwrap();
    let rate = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(str_bytes("client-id"))
            .with_entity_name(Some(str_bytes("creator")))])
        .with_ops(vec![OpData::default()
            .with_key(str_bytes("controller_mutation_rate"))
            .with_value(1.0)])]);
    let answer = cluster.connect(1).unwrap().send(&rate, 1).unwrap();
    assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
    for id in [1, 2, 3] {
        await_described(&cluster, id, &[("creator", 1.0)]);
    }
    // The bucket holds 11 partitions (11 windows at 1 a second); through node 1 the client
    // takes 40, 29 seconds' worth below zero...
    let mut first = cluster.connect(1).unwrap();
    first.set_client_id("creator");
    let created = first.send(&create_request("wide", 40), 7).unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // ...and every other node refuses it too: the bucket is the active controller's, not
    // one per node that a client could spread its requests over.
    for id in [2, 3] {
        let mut conn = cluster.connect(id).unwrap();
        conn.set_client_id("creator");
        let refused = conn
            .send(&create_request(&format!("refused-{id}"), 1), 7)
            .unwrap();
        assert_eq!(
            refused.topics[0].error_code, THROTTLING_QUOTA_EXCEEDED,
            "node {id}: {refused:?}"
        );
        assert!(refused.throttle_time_ms > 20_000, "node {id}: {refused:?}");
    }
}
