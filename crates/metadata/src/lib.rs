//! The cluster metadata quorum: brokers, topics, partition assignments, leaders and ISRs kept in
//! a log that a quorum of controller nodes replicates with Raft (openraft), as Kafka KRaft does.
//!
//! `state` is the deterministic state machine every controller applies the log to; `placement`
//! computes replica assignments on the proposer so that applying stays deterministic.

pub mod placement;
pub mod raft;
pub mod state;
