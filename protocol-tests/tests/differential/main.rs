//! Differential tests: samsa and Apache Kafka given the same requests, answers compared
//! field by field (see `samsa_protocol_tests::differential`). Run through
//! `bash protocol-tests/run.sh`, which starts the reference Kafka.
//!
//! One module per API family; each `#[test]` owns one samsa and its own topics on the
//! shared Kafka. Adding an API: a module here with cases at the lowest and highest
//! version samsa serves, on the happy path and every error path it knows.

mod admin;
mod alter_configs;
mod api_versions;
mod compression_configs;
mod configs;
mod delegation_tokens;
mod delete_records;
mod elections;
mod features;
mod fetch;
mod fetch_sessions;
mod group_configs;
mod groups;
mod leader_epochs;
mod list_offsets;
mod log_dirs;
mod metadata;
mod produce;
mod produce_records;
mod quotas;
mod raft_voters;
mod reassignments;
mod security;
mod share_fetch;
mod share_state;
mod telemetry;
mod topic_partitions;
mod transactions;
mod transactions_v2;
mod txn_markers;

use std::sync::LazyLock;

use kafka_protocol::messages::ApiKey;
use samsa_protocol_tests::batches;
use samsa_protocol_tests::client::{self, versions, TopicRef};
use samsa_protocol_tests::differential::{Differential, Side};

/// Record timestamps shared by both brokers: recent, so retention keeps them.
pub static T0: LazyLock<i64> = LazyLock::new(batches::base_timestamp);

/// The lowest and highest version samsa serves of `key`.
pub fn ends(key: ApiKey) -> Vec<i16> {
    let range = versions(key);
    let (lo, hi) = (*range.start(), *range.end());
    if lo == hi {
        vec![lo]
    } else {
        vec![lo, hi]
    }
}

/// `name` as `side` knows it (its own topic id).
pub fn topic_ref(side: &Side, name: &str) -> TopicRef {
    TopicRef {
        name: name.to_owned(),
        id: side.id(name),
    }
}

/// A topic neither broker has, the same name and id on both.
pub static UNKNOWN: LazyLock<TopicRef> = LazyLock::new(TopicRef::unknown);

/// A name Kafka refuses: a space is outside `[a-zA-Z0-9._-]`.
pub const INVALID_NAME: &str = "bad topic name!";

/// Setup, not compared: share groups on in samsa, as a new cluster has them (and Kafka 4.4
/// too), whatever another test left its level at.
pub fn share_groups_on(d: &mut Differential) {
    client::share_groups_on(&mut d.samsa.conn).unwrap();
}
