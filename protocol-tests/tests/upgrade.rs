//! A single node's data directory from before its metadata moved into the metadata log
//! (samsa up to 79e0b9e kept it in catalogue.json, acls.json, credentials.json and
//! producer_ids.json) is converted on its first start: clients find the same cluster, topics,
//! ids, configs, records, group offsets, transactional ids, ACLs and SCRAM users, and no
//! producer id is handed out twice. fixtures/before-quorum/make.py made the directory with
//! that samsa; expected.json says what it put there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DescribeAclsRequest, DescribeConfigsRequest, DescribeUserScramCredentialsRequest, GroupId,
    InitProducerIdRequest, MetadataRequest, OffsetFetchRequest, ProducerId, TransactionalId,
};
use samsa_protocol_tests::batches::{base_timestamp, batch, messages};
use samsa_protocol_tests::client::{
    fetch_records, produce, str_bytes, topic_name, wait_groups_loaded, TopicRef,
};
use samsa_protocol_tests::{BrokerProcess, Connection};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/before-quorum")
}

fn unpack(data_dir: &Path) -> Result<()> {
    let parent = data_dir.parent().context("data dir has a parent")?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixture().join("data.tar.gz"))
        .arg("-C")
        .arg(parent)
        .status()?;
    ensure!(status.success(), "tar failed: {status}");
    Ok(())
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Topic name to id, from the catalogue the conversion kept aside.
fn catalogue_ids(data_dir: &Path) -> BTreeMap<String, uuid::Uuid> {
    let text = std::fs::read_to_string(data_dir.join("catalogue.json.before-quorum"))
        .expect("the old catalogue is kept");
    let (_header, body) = text.split_once('\n').unwrap();
    let catalogue: Value = serde_json::from_str(body).unwrap();
    catalogue["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = uuid::Uuid::parse_str(t["id"].as_str().unwrap()).unwrap();
            (t["name"].as_str().unwrap().to_owned(), id)
        })
        .collect()
}

/// (cluster id, topic name to (id, partition count)).
fn metadata(conn: &mut Connection) -> (String, BTreeMap<String, (uuid::Uuid, usize)>) {
    let response = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .unwrap();
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().unwrap().to_string();
            (name, (t.topic_id, t.partitions.len()))
        })
        .collect();
    (response.cluster_id.unwrap().to_string(), topics)
}

fn key_values(conn: &mut Connection, topic: &TopicRef, partition: i32) -> Vec<(String, String)> {
    fetch_records(conn, topic, partition, 0)
        .unwrap()
        .into_iter()
        .map(|f| {
            let text = |b: Option<bytes::Bytes>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            (text(f.message.key), text(f.message.value))
        })
        .collect()
}

fn committed(conn: &mut Connection, group: &str, partitions: &[i32]) -> Vec<i64> {
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name("orders"))
                .with_partition_indexes(partitions.to_vec())]))]);
    let response = conn.send(&request, 8).unwrap();
    assert_eq!(response.groups[0].error_code, 0, "{response:?}");
    response.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

fn init_producer(conn: &mut Connection, transactional_id: Option<&str>) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // The coordinator may still be loading its partition a moment after start.
    for _ in 0..200 {
        let response = conn.send(&request, 5).unwrap();
        if response.error_code == 0 {
            return (response.producer_id.0, response.producer_epoch);
        }
        assert!(
            [14, 15].contains(&response.error_code),
            "InitProducerId answered {}",
            response.error_code
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("InitProducerId never succeeded");
}

/// What every start after the conversion must show again.
fn check_everything(conn: &mut Connection, data_dir: &Path, expected: &Value) {
    let ids = catalogue_ids(data_dir);
    let (cluster_id, topics) = metadata(conn);
    assert_eq!(cluster_id, expected["cluster_id"].as_str().unwrap());
    for name in [
        "orders",
        "audit",
        "__consumer_offsets",
        "__transaction_state",
    ] {
        let (id, _) = topics.get(name).unwrap_or_else(|| panic!("{name} is gone"));
        assert_eq!(Some(id), ids.get(name), "{name} keeps its id");
    }
    assert_eq!(topics["orders"].1, 3);
    let orders = TopicRef {
        name: "orders".into(),
        id: ids["orders"],
    };
    for partition in 0..3 {
        let wanted: Vec<(String, String)> =
            serde_json::from_value(expected["records"][format!("orders-{partition}")].clone())
                .unwrap();
        // What was produced since follows them.
        let found = key_values(conn, &orders, partition);
        assert_eq!(found[..wanted.len().min(found.len())], wanted[..]);
    }
    let audit = TopicRef {
        name: "audit".into(),
        id: ids["audit"],
    };
    assert_eq!(
        key_values(conn, &audit, 0).first(),
        Some(&("who".to_owned(), "what".to_owned())),
        "the committed transaction's record"
    );
    let overridden =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("orders"))
            .with_configuration_keys(Some(vec![str_bytes("max.message.bytes")]))]);
    let described = conn.send(&overridden, 4).unwrap();
    assert_eq!(
        described.results[0].configs[0].value.as_deref(),
        Some("2000000")
    );
    wait_groups_loaded(conn).unwrap();
    assert_eq!(committed(conn, "g1", &[0, 1, 2]), [3, 5, -1]);
    let acls = conn
        .send(
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1),
            3,
        )
        .unwrap();
    let bindings: Vec<(String, String, i8, i8)> = acls
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                let name = r.resource_name.to_string();
                (
                    name,
                    a.principal.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect();
    // READ is operation 3, ALLOW permission 3.
    assert_eq!(bindings, [("orders".into(), "User:alice".into(), 3, 3)]);
    let users = conn
        .send(
            &DescribeUserScramCredentialsRequest::default().with_users(None),
            0,
        )
        .unwrap();
    let described: Vec<(String, i8, i32)> = users
        .results
        .iter()
        .flat_map(|r| {
            let user = r.user.to_string();
            r.credential_infos
                .iter()
                .map(move |c| (user.clone(), c.mechanism, c.iterations))
        })
        .collect();
    // SCRAM-SHA-256 is mechanism 1.
    assert_eq!(described, [("bob".into(), 1, 8192)]);
}

/// As the fixture's broker ran (ACLs are kept only with an authorizer), and nothing may
/// expire its records, offsets and transactional id, which are as old as the fixture.
const KEEP_EVERYTHING: &str = "auto_create_topics = false
authorizer = true
super_users = [\"User:ANONYMOUS\"]
retention_ms = -1
offsets_retention_minutes = 100000000
transactional_id_expiration_ms = 9000000000000
";

#[test]
fn a_single_nodes_data_directory_from_before_the_metadata_log_is_converted_once() {
    let expected = expected();
    let mut broker = BrokerProcess::start_over(KEEP_EVERYTHING, unpack).unwrap();
    let data_dir = broker.data_dir.path().join("data");
    let mut conn = broker.connect().unwrap();
    check_everything(&mut conn, &data_dir, &expected);

    // The files are retired; the catalogue keeps only the cluster id.
    for name in ["acls.json", "credentials.json", "producer_ids.json"] {
        assert!(!data_dir.join(name).exists(), "{name} is still read");
        assert!(data_dir.join(format!("{name}.before-quorum")).exists());
    }
    let catalogue = std::fs::read_to_string(data_dir.join("catalogue.json")).unwrap();
    assert!(!catalogue.contains("orders"), "{catalogue}");

    // The transactional id is known, with the producer id it had; a new producer gets an id
    // the old directory never handed out.
    let reserved = std::fs::read_to_string(data_dir.join("producer_ids.json.before-quorum"))
        .unwrap()
        .split("\"reserved_until\":")
        .nth(1)
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches(['}', '\n', ' '])
                .parse::<i64>()
                .ok()
        })
        .expect("a reservation");
    let (txn_pid, txn_epoch) = init_producer(&mut conn, Some("tx-1"));
    assert!(txn_pid < reserved && txn_epoch > 0, "{txn_pid} {txn_epoch}");
    let (new_pid, _) = init_producer(&mut conn, None);
    assert!(
        new_pid >= reserved,
        "{new_pid} was handed out before ({reserved})"
    );

    // Producing goes on after the old records.
    let orders = TopicRef {
        name: "orders".into(),
        id: catalogue_ids(&data_dir)["orders"],
    };
    let base = produce(
        &mut conn,
        &orders,
        0,
        batch(&messages("after", 1, base_timestamp())),
    )
    .unwrap();
    assert_eq!(base, 5);
    drop(conn);

    // A restart converts nothing again and finds the same.
    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    check_everything(&mut conn, &data_dir, &expected);
    assert_eq!(
        fetch_records(&mut conn, &orders, 0, 5).unwrap().len(),
        1,
        "the record produced after the conversion"
    );
}
