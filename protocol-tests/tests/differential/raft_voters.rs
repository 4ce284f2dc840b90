//! KIP-853's quorum membership APIs against a standalone reference (one voter, kraft.version
//! 1): the refusals of AddRaftVoter, RemoveRaftVoter and UnregisterController, which leave
//! both quorums as they are. Growing and shrinking a quorum is tested on a samsa cluster with
//! Kafka's own tool.

use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, UnregisterControllerRequest,
};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;
use uuid::Uuid;

use crate::ends;

/// A directory id neither side's voter has.
const STRANGER: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

fn listener(name: &str) -> Listener {
    Listener::default()
        .with_name(str_bytes(name))
        .with_host(str_bytes("127.0.0.1"))
        .with_port(1)
}

fn add(cluster: Option<&str>, id: i32, dir: Uuid, listeners: Vec<Listener>) -> AddRaftVoterRequest {
    AddRaftVoterRequest::default()
        .with_cluster_id(cluster.map(str_bytes))
        .with_timeout_ms(5_000)
        .with_voter_id(id)
        .with_voter_directory_id(dir)
        .with_listeners(listeners)
}

fn remove(cluster: Option<&str>, id: i32, dir: Uuid) -> RemoveRaftVoterRequest {
    RemoveRaftVoterRequest::default()
        .with_cluster_id(cluster.map(str_bytes))
        .with_voter_id(id)
        .with_voter_directory_id(dir)
}

/// The voter sets Kafka's messages list hold each side's own directory ids: cut them off.
fn cut_voter_set(message: &mut Option<kafka_protocol::protocol::StrBytes>) {
    if let Some(m) = message {
        if let Some(at) = m.find(" the set of voters") {
            *m = str_bytes(&m[..at]);
        }
    }
}

#[test]
fn add_raft_voter() {
    let mut d = Differential::start("add_raft_voter");
    let shape = |r: &mut AddRaftVoterResponse| cut_voter_set(&mut r.error_message);
    for v in ends(ApiKey::AddRaftVoter) {
        d.compare_part(
            "unreachable-new-voter",
            v,
            |_| add(None, 99, STRANGER, vec![listener("CONTROLLER")]),
            shape,
        );
        d.compare_part(
            "no-directory-id",
            v,
            |_| add(None, 99, Uuid::nil(), vec![listener("CONTROLLER")]),
            shape,
        );
        // The voter id alone makes a duplicate, whatever the directory id.
        d.compare_part(
            "duplicate-voter",
            v,
            |s| add(None, s.node_id, STRANGER, vec![listener("CONTROLLER")]),
            shape,
        );
        d.compare_part(
            "no-controller-listener",
            v,
            |_| add(None, 99, STRANGER, vec![listener("OTHER")]),
            shape,
        );
        d.compare_part(
            "wrong-cluster-id",
            v,
            |_| {
                add(
                    Some("not-this-cluster"),
                    99,
                    STRANGER,
                    vec![listener("CONTROLLER")],
                )
            },
            shape,
        );
    }
    d.finish();
}

#[test]
fn remove_raft_voter() {
    let mut d = Differential::start("remove_raft_voter");
    let shape = |r: &mut RemoveRaftVoterResponse| cut_voter_set(&mut r.error_message);
    for v in ends(ApiKey::RemoveRaftVoter) {
        d.compare_part("unknown-voter", v, |_| remove(None, 99, STRANGER), shape);
        d.compare_part(
            "mismatched-directory-id",
            v,
            |s| remove(None, s.node_id, STRANGER),
            shape,
        );
        d.compare_part(
            "no-directory-id",
            v,
            |_| remove(None, 99, Uuid::nil()),
            shape,
        );
        d.compare_part(
            "wrong-cluster-id",
            v,
            |_| remove(Some("not-this-cluster"), 99, STRANGER),
            shape,
        );
    }
    d.finish();
}

#[test]
fn unregister_controller() {
    let mut d = Differential::start("unregister_controller");
    d.compare("unknown-controller", 0, |_| {
        UnregisterControllerRequest::default().with_controller_id(99)
    });
    d.finish();
}
