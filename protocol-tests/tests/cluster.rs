//! Cluster membership across three samsa processes on loopback: each is a controller of the
//! metadata quorum and a broker. Brokers register and heartbeat; Metadata and DescribeCluster
//! on every node show the unfenced brokers, the active controller and one cluster id; a killed
//! broker is fenced once its session expires and comes back when restarted; a controller
//! failover fences no broker that is still alive.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest, MetadataResponse};
use samsa_protocol_tests::cluster::{Node, TestCluster, CONVERGE, SESSION_TIMEOUT_MS};
use samsa_protocol_tests::Connection;

/// What one node tells clients about the cluster.
#[derive(Debug, Clone, PartialEq)]
struct View {
    brokers: BTreeSet<i32>,
    controller: i32,
    cluster_id: String,
}

fn start_cluster() -> Result<Vec<Node>> {
    Ok(TestCluster::start(3, "")?.nodes)
}

fn metadata(addr: &str) -> Result<MetadataResponse> {
    let mut conn = Connection::open(addr)?;
    conn.send(
        &MetadataRequest::default().with_topics(Some(Vec::new())),
        12,
    )
}

fn view(node: &Node) -> Result<View> {
    let response = metadata(&node.process.addr)?;
    Ok(View {
        brokers: response.brokers.iter().map(|b| b.node_id.0).collect(),
        controller: response.controller_id.0,
        cluster_id: response
            .cluster_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
    })
}

/// Polls every node in `nodes` until `done` holds for all their views, checking `invariant` on
/// every view seen on the way; returns the final views.
fn await_views(
    nodes: &[&Node],
    what: &str,
    done: impl Fn(&[View]) -> bool,
    invariant: impl Fn(&View) -> Result<()>,
) -> Result<Vec<View>> {
    let deadline = Instant::now() + CONVERGE;
    let mut last = Vec::new();
    loop {
        // A node may briefly refuse connections (e.g. right after a restart): poll again.
        if let Ok(views) = nodes.iter().map(|n| view(n)).collect::<Result<Vec<View>>>() {
            for v in &views {
                invariant(v)?;
            }
            if done(&views) {
                return Ok(views);
            }
            last = views;
        }
        if Instant::now() > deadline {
            bail!("not {what} within {CONVERGE:?}; last views: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agreed(views: &[View], brokers: &BTreeSet<i32>) -> bool {
    let first = &views[0];
    first.controller > 0
        && !first.cluster_id.is_empty()
        && views.iter().all(|v| v == first && &v.brokers == brokers)
}

fn ids(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

fn everyone(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

/// Awaits every node in `nodes` listing exactly `brokers`, with one controller and cluster id.
fn await_agreed(nodes: &[&Node], what: &str, brokers: &BTreeSet<i32>) -> Result<Vec<View>> {
    await_views(nodes, what, |v| agreed(v, brokers), |_| Ok(()))
}

#[test]
fn brokers_join_leave_and_survive_controller_failover() -> Result<()> {
    let mut nodes = start_cluster()?;
    let all = ids(&[1, 2, 3]);
    let views = await_agreed(&everyone(&nodes), "three brokers listed everywhere", &all)?;
    let cluster_id = views[0].cluster_id.clone();
    assert_eq!(cluster_id.len(), 22, "Kafka-style cluster id: {cluster_id}");

    // Each broker is advertised at its own listener, with its rack; DescribeCluster agrees.
    let response = metadata(&nodes[0].process.addr)?;
    for node in &nodes {
        let b = response
            .brokers
            .iter()
            .find(|b| b.node_id.0 == node.id)
            .unwrap();
        assert_eq!(format!("{}:{}", b.host, b.port), node.process.addr);
        assert_eq!(
            b.rack.as_deref(),
            Some(format!("rack-{}", node.id).as_str())
        );
    }
    let described = Connection::open(&nodes[1].process.addr)?
        .send(&DescribeClusterRequest::default().with_endpoint_type(1), 1)?;
    assert_eq!(described.error_code, 0);
    assert_eq!(described.cluster_id.as_str(), cluster_id);
    assert_eq!(described.controller_id.0, views[0].controller);
    let described: BTreeSet<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(described, all);

    // A crashed broker that is not the controller is fenced when its session expires.
    let controller = views[0].controller;
    let victim = nodes.iter().position(|n| n.id != controller).unwrap();
    let victim_id = nodes[victim].id;
    nodes[victim].process.kill()?;
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != victim_id).collect();
    let expected: BTreeSet<i32> = survivors.iter().map(|n| n.id).collect();
    await_agreed(&survivors, "the crashed broker fenced", &expected)?;
    // DescribeCluster v2 still shows it when asked for fenced brokers, marked as such.
    let described = Connection::open(&survivors[0].process.addr)?.send(
        &DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(true),
        2,
    )?;
    let fenced: Vec<(i32, bool)> = described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect();
    let want: Vec<(i32, bool)> = (1..=3).map(|id| (id, id == victim_id)).collect();
    assert_eq!(fenced, want);

    // Restarted on its data directory, it registers again and is unfenced by its heartbeat.
    nodes[victim].process.relaunch()?;
    let views = await_agreed(&everyone(&nodes), "the restarted broker back", &all)?;
    assert_eq!(views[0].cluster_id, cluster_id);

    // A broker stopped with SIGTERM fences itself: it leaves Metadata without waiting for its
    // session to expire, and exits cleanly.
    let controller = views[0].controller;
    let stopped = nodes.iter().position(|n| n.id != controller).unwrap();
    let stopped_id = nodes[stopped].id;
    assert_eq!(nodes[stopped].process.terminate()?, Some(0));
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != stopped_id).collect();
    let expected: BTreeSet<i32> = survivors.iter().map(|n| n.id).collect();
    await_agreed(&survivors, "the stopped broker gone", &expected)?;
    nodes[stopped].process.relaunch()?;
    let views = await_agreed(&everyone(&nodes), "the stopped broker back", &all)?;

    // Killing the active controller elects another; the live brokers keep their sessions.
    let old_controller = views[0].controller;
    let killed = nodes.iter().position(|n| n.id == old_controller).unwrap();
    nodes[killed].process.kill()?;
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != old_controller).collect();
    let expected: BTreeSet<i32> = survivors.iter().map(|n| n.id).collect();
    let stay_listed = |v: &View| {
        if !expected.is_subset(&v.brokers) {
            bail!("a live broker was fenced during the failover: {v:?}");
        }
        Ok(())
    };
    let views = await_views(
        &survivors,
        "a new controller and the old one fenced",
        |v| agreed(v, &expected) && v[0].controller != old_controller,
        stay_listed,
    )?;
    assert_eq!(views[0].cluster_id, cluster_id);
    // And they stay listed for longer than a session: no late fencing either.
    let until = Instant::now() + Duration::from_millis(SESSION_TIMEOUT_MS * 2);
    while Instant::now() < until {
        for node in &survivors {
            if let Ok(v) = view(node) {
                stay_listed(&v)?;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The brokers DescribeCluster lists with the fenced ones included.
fn registered(node: &Node) -> Result<BTreeSet<i32>> {
    let described = Connection::open(&node.process.addr)?.send(
        &DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(true),
        2,
    )?;
    Ok(described.brokers.iter().map(|b| b.broker_id.0).collect())
}

/// Polls `node` until the brokers it has registered, fenced or not, are `expected`.
fn await_registered(node: &Node, expected: &BTreeSet<i32>, what: &str) -> Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let now = registered(node)?;
        if &now == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not {what} within {CONVERGE:?}: registered {now:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unregistered_broker_is_forgotten_until_it_registers_again() -> Result<()> {
    use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};

    let mut nodes = start_cluster()?;
    let all = ids(&[1, 2, 3]);
    let views = await_agreed(&everyone(&nodes), "three brokers listed everywhere", &all)?;
    let controller = views[0].controller;
    let victim = nodes.iter().position(|n| n.id != controller).unwrap();
    let victim_id = nodes[victim].id;
    nodes[victim].process.kill()?;
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != victim_id).collect();
    let expected: BTreeSet<i32> = survivors.iter().map(|n| n.id).collect();
    await_agreed(&survivors, "the killed broker fenced", &expected)?;
    assert_eq!(registered(survivors[0])?, all, "fenced, still registered");

    let unregister = |id: i32| UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
    let mut conn = Connection::open(&survivors[0].process.addr)?;
    assert_eq!(conn.send(&unregister(victim_id), 0)?.error_code, 0);
    // The other survivor applies the commit a moment later.
    await_registered(survivors[1], &expected, "unregistered: not even fenced")?;
    // Unregistered already: Kafka's BROKER_ID_NOT_REGISTERED.
    let again = conn.send(&unregister(victim_id), 0)?;
    assert_eq!(again.error_code, 102, "{again:?}");

    // Restarted, it registers again and is back everywhere.
    nodes[victim].process.relaunch()?;
    await_agreed(&everyone(&nodes), "the unregistered broker back", &all)?;
    Ok(())
}
