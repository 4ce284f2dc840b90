//! WriteTxnMarkers, the request a transaction coordinator sends partition leaders: written
//! only by the leader (a follower answers NOT_LEADER_OR_FOLLOWER, a broker without a replica
//! UNKNOWN_TOPIC_OR_PARTITION), answered once replicated, a marker from an older coordinator
//! epoch fenced on the leader and on its successor, and ALTER or CLUSTER_ACTION on the
//! cluster required.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{self, messages, producer_batch, Producer};
use samsa_protocol_tests::client::{
    create_topic, fetch_request, last_stable_offset, only_fetched, only_partition, produce_request,
    str_bytes, topic_name, TopicRef, LATEST_FETCH,
};
use samsa_protocol_tests::cluster::{partition, sorted, TestCluster, CONVERGE};
use samsa_protocol_tests::sasl::{scram_user, Scram};
use samsa_protocol_tests::{free_port, BrokerProcess, Connection};

const VERSION: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const READ_COMMITTED: i8 = 1;
const PRODUCER_ID: i64 = 777_000;
/// The last Produce version of a transaction.version 1 producer (v12+ has partitions added).
const TV1_PRODUCE: i16 = 11;

/// One commit marker of `PRODUCER_ID` for `partitions`, from coordinator epoch `epoch`.
fn commit(epoch: i32, partitions: &[(&str, i32)]) -> WriteTxnMarkersRequest {
    let topics = partitions
        .iter()
        .map(|(t, p)| {
            WritableTxnMarkerTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(vec![*p])
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(PRODUCER_ID))
        .with_producer_epoch(0)
        .with_transaction_result(true)
        .with_coordinator_epoch(epoch)
        .with_topics(topics)])
}

/// The error code of every partition answered, in order.
fn codes(
    conn: &mut Connection,
    request: &WriteTxnMarkersRequest,
) -> Result<Vec<(String, i32, i16)>> {
    let response = conn.send(request, VERSION)?;
    Ok(response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect())
}

/// The data records a read_committed consumer gets: those below offset `data_end` (the
/// markers after them are control records, which consumers skip).
fn read_committed(
    conn: &mut Connection,
    topic: &TopicRef,
    data_end: i64,
) -> Result<Vec<batches::Message>> {
    let request = fetch_request(topic, 0, 0, LATEST_FETCH).with_isolation_level(READ_COMMITTED);
    let response = conn.send(&request, LATEST_FETCH)?;
    let data = only_fetched(&response)?;
    anyhow::ensure!(data.error_code == 0, "fetch: error {}", data.error_code);
    let fetched = batches::decode(data.records.as_ref().context("records")?)?;
    // read_committed is given the aborted transactions to drop; there are none here.
    anyhow::ensure!(
        data.aborted_transactions
            .as_ref()
            .is_none_or(|a| a.is_empty()),
        "{data:?}"
    );
    let data: Vec<batches::Fetched> = fetched
        .into_iter()
        .filter(|f| f.offset < data_end)
        .collect();
    Ok(batches::messages_of(&data))
}

#[test]
fn markers_are_written_by_the_leader_and_fenced_by_coordinator_epoch() -> Result<()> {
    let mut cluster = TestCluster::start(3, "replica_lag_time_max_ms = 3000\n")?;
    let topic = cluster.create_topic(
        1,
        "marked",
        1,
        2,
        &[("min.insync.replicas", "1")],
        &[1, 2, 3],
    )?;
    let m = cluster.metadata(1, &[&topic.name])?;
    let p = partition(&m, &topic.name, 0).context("partition listed")?;
    let (leader, replicas) = (p.leader_id.0, sorted(&p.replica_nodes));
    let follower = *replicas
        .iter()
        .find(|r| **r != leader)
        .context("a follower")?;
    let outsider = (1..=3)
        .find(|n| !replicas.contains(n))
        .context("a broker without a replica")?;
    cluster.await_metadata(&[leader], "the follower in the ISR", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| p.isr_nodes.len() == 2)
    })?;

    // An open transaction of a transaction.version 1 producer (Produce v11) whose
    // coordinator is not this broker (none exists yet): the leader takes the batch on its
    // own producer state, as Kafka without transaction verification does.
    let mut conn = cluster.connect(leader)?;
    let written = messages("marked", 3, batches::base_timestamp());
    let records = producer_batch(&written, Producer::transactional(PRODUCER_ID, 0, 0));
    let request = produce_request(&topic, 0, records, -1, TV1_PRODUCE)
        .with_transactional_id(Some(TransactionalId(str_bytes("marked-txn"))));
    let produced = conn.send(&request, TV1_PRODUCE)?;
    assert_eq!(only_partition(&produced)?.error_code, 0, "{produced:?}");
    assert_eq!(
        last_stable_offset(&mut conn, &topic.name, 0)?,
        0,
        "the open transaction holds read_committed back"
    );

    let name = topic.name.as_str();
    let refused = vec![(name.to_owned(), 0, NOT_LEADER_OR_FOLLOWER)];
    assert_eq!(
        codes(&mut cluster.connect(follower)?, &commit(5, &[(name, 0)]))?,
        refused
    );
    let refused = vec![(name.to_owned(), 0, UNKNOWN_TOPIC_OR_PARTITION)];
    assert_eq!(
        codes(&mut cluster.connect(outsider)?, &commit(5, &[(name, 0)]))?,
        refused
    );

    let answer = codes(&mut conn, &commit(5, &[(name, 0), ("no-such-topic", 0)]))?;
    assert_eq!(
        answer,
        vec![
            (name.to_owned(), 0, 0),
            ("no-such-topic".to_owned(), 0, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    // Answered once the in-sync replicas hold the marker: it is below the high watermark.
    assert_eq!(last_stable_offset(&mut conn, name, 0)?, 4);
    assert_eq!(read_committed(&mut conn, &topic, 3)?, written);
    let stale = vec![(name.to_owned(), 0, TRANSACTION_COORDINATOR_FENCED)];
    assert_eq!(codes(&mut conn, &commit(4, &[(name, 0)]))?, stale);

    // The follower replayed the marker: as the new leader it fences the old epoch too.
    cluster.node_mut(leader).process.kill()?;
    let survivors: Vec<i32> = (1..=3).filter(|n| *n != leader).collect();
    cluster.await_metadata(&survivors, "the follower leading", |m| {
        partition(m, name, 0).is_some_and(|p| p.leader_id.0 == follower)
    })?;
    let mut conn = cluster.connect(follower)?;
    await_codes(&mut conn, &commit(4, &[(name, 0)]), &stale)?;
    assert_eq!(
        codes(&mut conn, &commit(6, &[(name, 0)]))?,
        vec![(name.to_owned(), 0, 0)]
    );
    assert_eq!(read_committed(&mut conn, &topic, 3)?, written);
    Ok(())
}

/// Sends `request` until it is answered `want`: a new leader refuses writes until it has
/// taken its role, a moment after the metadata names it.
fn await_codes(
    conn: &mut Connection,
    request: &WriteTxnMarkersRequest,
    want: &[(String, i32, i16)],
) -> Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let got = codes(conn, request)?;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("answered {got:?}, not {want:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn acl(principal: &str, operation: i8) -> AclCreation {
    const CLUSTER: i8 = 4;
    const LITERAL: i8 = 3;
    const ALLOW: i8 = 3;
    AclCreation::default()
        .with_resource_type(CLUSTER)
        .with_resource_name(str_bytes("kafka-cluster"))
        .with_resource_pattern_type(LITERAL)
        .with_principal(str_bytes(principal))
        .with_host(str_bytes("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW)
}

#[test]
fn markers_need_alter_or_cluster_action_on_the_cluster() -> Result<()> {
    const ALTER: i8 = 7;
    const CLUSTER_ACTION: i8 = 9;
    let port = free_port();
    let mut config = format!(
        "authorizer = true\nsuper_users = [\"User:admin\"]\nauto_create_topics = false\n\
         [[listener]]\nname = \"sasl\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"SASL_PLAINTEXT\"\n\
         [sasl]\nmechanisms = [\"PLAIN\"]\n"
    );
    for user in ["admin", "alice", "bob", "carol"] {
        config.push_str(&scram_user(user, Scram::Sha256, &format!("{user}-pw")));
    }
    let broker = BrokerProcess::start(&config)?;
    let addr = format!("127.0.0.1:{port}");
    let login = |user: &str| -> Result<Connection> {
        let mut conn = Connection::open(&addr)?;
        let answer = conn.login_plain(user, &format!("{user}-pw"), 2)?;
        anyhow::ensure!(answer.error_code == 0, "{user}: {answer:?}");
        Ok(conn)
    };
    let mut admin = login("admin")?;
    create_topic(&mut admin, "guarded", 2, &[])?;
    let created = admin.send(
        &CreateAclsRequest::default().with_creations(vec![
            acl("User:alice", CLUSTER_ACTION),
            acl("User:bob", ALTER),
        ]),
        3,
    )?;
    assert!(
        created.results.iter().all(|r| r.error_code == 0),
        "{created:?}"
    );

    let request = commit(0, &[("guarded", 0), ("guarded", 1), ("no-such-topic", 0)]);
    let denied: Vec<(String, i32, i16)> = [("guarded", 0), ("guarded", 1), ("no-such-topic", 0)]
        .iter()
        .map(|(t, p)| (t.to_string(), *p, CLUSTER_AUTHORIZATION_FAILED))
        .collect();
    assert_eq!(codes(&mut login("carol")?, &request)?, denied);
    assert_eq!(
        codes(&mut broker.connect()?, &request)?,
        denied,
        "ANONYMOUS has no ACL either"
    );
    let allowed: Vec<(String, i32, i16)> = vec![
        ("guarded".into(), 0, 0),
        ("guarded".into(), 1, 0),
        ("no-such-topic".into(), 0, UNKNOWN_TOPIC_OR_PARTITION),
    ];
    assert_eq!(
        codes(&mut login("alice")?, &request)?,
        allowed,
        "CLUSTER_ACTION"
    );
    assert_eq!(codes(&mut login("bob")?, &request)?, allowed, "ALTER");
    Ok(())
}
