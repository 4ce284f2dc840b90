//! Streams groups (KIP-1071) follow the finalized `streams.version`: served at level 1 (a new
//! cluster's level), and answered UNSUPPORTED_VERSION once an operator disables the feature,
//! as Kafka 4.4 answers (the topology description push included); enabling it again brings
//! them back.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::streams_group_heartbeat_request::{Subtopology, TaskIds, Topology};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{str_bytes, topic_name};
use samsa_protocol_tests::{BrokerProcess, Connection};

const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;
/// Topology descriptions kept in memory (Kafka's `InMemoryTopologyDescriptionPlugin`).
const MEMORY_STORE: &str = "group_streams_topology_description_store = \"memory\"\n";

fn set_streams_version(conn: &mut Connection, level: i16, upgrade_type: i8) {
    let request = UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(str_bytes("streams.version"))
            .with_max_version_level(level)
            .with_upgrade_type(upgrade_type)]);
    let response = conn.send(&request, 1).unwrap();
    assert_eq!(response.error_code, 0, "{response:?}");
    assert!(
        response.results.iter().all(|r| r.error_code == 0),
        "{response:?}"
    );
}

fn join(group: &str) -> StreamsGroupHeartbeatRequest {
    let none: Option<Vec<TaskIds>> = Some(Vec::new());
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes("member-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_active_tasks(none.clone())
        .with_standby_tasks(none.clone())
        .with_warmup_tasks(none)
        .with_process_id(Some(str_bytes("process-1")))
        .with_topology(Some(Topology::default().with_subtopologies(vec![
            Subtopology::default()
                .with_subtopology_id(str_bytes("0"))
                .with_source_topics(vec![topic_name("words")]),
        ])))
}

/// member-1's heartbeat at `epoch`.
fn beat(group: &str, epoch: i32) -> StreamsGroupHeartbeatRequest {
    StreamsGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes("member-1"))
        .with_member_epoch(epoch)
}

fn describe(group: &str) -> StreamsGroupDescribeRequest {
    StreamsGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))])
}

#[test]
fn streams_groups_follow_the_finalized_streams_version() {
    let broker = BrokerProcess::start(MEMORY_STORE).unwrap();
    let mut conn = broker.connect().unwrap();
    samsa_protocol_tests::client::wait_groups_loaded(&mut conn).unwrap();
    // Served at the level a new cluster starts with; the source topic is missing.
    let answer = conn.send(&join("app"), 1).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let statuses = answer.status.unwrap_or_default();
    assert!(statuses.iter().any(|s| s.status_code == 1), "{statuses:?}");

    set_streams_version(&mut conn, 0, SAFE_DOWNGRADE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = conn.send(&join("app"), 1).unwrap();
        if answer.error_code == E::UnsupportedVersion.code() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served: {answer:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let described = conn.send(&describe("app"), 0).unwrap();
    assert_eq!(described.groups[0].error_code, E::UnsupportedVersion.code());
    // Before the store is looked at: Kafka's default message, not the one about a plugin.
    let pushed = conn.send(&push_description("app", "member-1"), 0).unwrap();
    assert_eq!(pushed.error_code, E::UnsupportedVersion.code());
    assert_eq!(
        pushed.error_message.as_deref(),
        Some("The version of API is not supported.")
    );

    set_streams_version(&mut conn, 1, UPGRADE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let described = conn.send(&describe("app"), 0).unwrap();
        if described.groups[0].error_code == 0 {
            assert_eq!(described.groups[0].members.len(), 1, "{described:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served again: {described:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A streams group is written to `__consumer_offsets`: after a restart the coordinator
/// still knows its member, topology and tasks, and the member heartbeats on at its epoch. A
/// group it never had is GROUP_ID_NOT_FOUND, as in Kafka.
#[test]
fn a_streams_group_survives_a_restart() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    samsa_protocol_tests::client::wait_groups_loaded(&mut conn).unwrap();
    samsa_protocol_tests::client::create_topic(&mut conn, "words", 2, &[]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let joined = loop {
        let answer = conn.send(&join("app"), 1).unwrap();
        assert_eq!(answer.error_code, 0, "{answer:?}");
        if answer.active_tasks.as_ref().is_some_and(|t| !t.is_empty()) {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "no tasks: {answer:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let before = conn.send(&describe("app"), 0).unwrap().groups.remove(0);

    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    samsa_protocol_tests::client::wait_groups_loaded(&mut conn).unwrap();
    let after = conn.send(&describe("app"), 0).unwrap().groups.remove(0);
    assert_eq!(after.error_code, 0, "{after:?}");
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.topology, before.topology);
    assert_eq!(after.members, before.members);

    let beat = beat("app", joined.member_epoch);
    let answer = conn.send(&beat, 1).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(answer.member_epoch, joined.member_epoch);

    let unknown = beat.with_group_id(GroupId(str_bytes("never-joined")));
    let answer = conn.send(&unknown, 1).unwrap();
    assert_eq!(answer.error_code, E::GroupIdNotFound.code(), "{answer:?}");
}

fn push_description(group: &str, member: &str) -> StreamsGroupTopologyDescriptionUpdateRequest {
    use kafka_protocol::messages::streams_group_topology_description_update_request::{
        TopologyDescription, TopologyDescriptionNode, TopologyDescriptionSubtopology,
    };
    StreamsGroupTopologyDescriptionUpdateRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes(member))
        .with_topology_epoch(0)
        .with_topology_description(TopologyDescription::default().with_subtopologies(vec![
            TopologyDescriptionSubtopology::default()
                .with_subtopology_id(str_bytes("0"))
                .with_nodes(vec![TopologyDescriptionNode::default()
                    .with_name(str_bytes("KSTREAM-SOURCE-0000000000"))
                    .with_node_type(1)
                    .with_source_topics(vec![topic_name("words")])]),
        ]))
}

/// With the in-memory store (Kafka's `InMemoryTopologyDescriptionPlugin`) the description is
/// gone after a restart, but the group's metadata record still says which topology epoch was
/// stored, as Kafka's does: the member is not asked to push it again, and StreamsGroupDescribe
/// says NOT_STORED.
#[test]
fn the_stored_description_epoch_survives_a_restart() {
    let mut broker = BrokerProcess::start(MEMORY_STORE).unwrap();
    let mut conn = broker.connect().unwrap();
    samsa_protocol_tests::client::wait_groups_loaded(&mut conn).unwrap();
    let joined = conn.send(&join("app"), 1).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert!(joined.topology_description_required, "{joined:?}");
    let pushed = conn.send(&push_description("app", "member-1"), 0).unwrap();
    assert_eq!(pushed.error_code, 0, "{pushed:?}");
    let with_description = describe("app").with_include_topology_description(true);
    let described = conn.send(&with_description, 1).unwrap().groups.remove(0);
    assert_eq!(described.topology_description_status, 3, "{described:?}");

    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    samsa_protocol_tests::client::wait_groups_loaded(&mut conn).unwrap();
    let beat = beat("app", joined.member_epoch);
    let answer = conn.send(&beat, 1).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert!(!answer.topology_description_required, "{answer:?}");
    let described = conn.send(&with_description, 1).unwrap().groups.remove(0);
    assert_eq!(described.topology_description_status, 1, "{described:?}");
    assert!(described.topology_description.is_none());
}
