//! The cluster metadata quorum: brokers, topics, partition assignments, leaders and ISRs kept in
//! a log that a quorum of controller nodes replicates with Raft (openraft), as Kafka KRaft does.
//!
//! `state` is the deterministic state machine every controller applies the log to, with its ACLs
//! and SCRAM credentials in `security`; `placement` computes replica assignments on the proposer
//! so that applying stays deterministic; `raft` is the openraft plumbing (durable log,
//! snapshots, TCP transport between controllers); a `liveness` keeps broker heartbeats on the
//! leader, outside the log; `voters` changes the voter set (KIP-853); `features` keeps the
//! finalized feature levels (KIP-584) and `quotas` the client quotas; a `MetadataNode` is one
//! controller, the handle the broker uses.

mod election;
mod elr;
mod error;
pub mod features;
mod liveness;
mod node;
pub mod placement;
pub mod quorum;
pub mod quotas;
pub mod raft;
mod reassignment;
pub mod security;
pub mod state;
pub mod voters;

pub use error::Error;
pub use liveness::HeartbeatReply;
pub use node::{MetadataNode, QuorumOptions, QuorumSeed};
pub use raft::{ControllerNode, NodeId};
pub use state::{ClusterMetadata, Command, CommandError, CommandResult};
