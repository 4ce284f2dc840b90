//! The Raft plumbing under the metadata quorum: openraft's type configuration, the durable log
//! and vote store, the state machine store with its snapshots, and the TCP transport between
//! controllers.

pub mod log_store;
pub mod network;
mod record;
pub mod rpc;
pub mod server;
pub mod state_machine;

use std::io::Cursor;

use openraft::TokioRuntime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{Command, CommandError, CommandResult};

/// Controller node id (Kafka's node.id of a controller).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's types for the metadata log: entries carry a `Command`.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = ControllerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// A controller as the Raft membership records it: where its peers reach it, and its
/// directory id (KIP-853's replica key is the node id and this), which tells this copy of its
/// metadata log from an earlier one the node lost with its disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    pub addr: String,
    /// Absent from memberships written before samsa kept directory ids, until the voter
    /// announces its own (see `node::announce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
}

/// What applying one log entry produced: the command's outcome, or nothing for the entries
/// openraft writes itself (blank entries of a new leader, membership changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Option<Result<CommandResult, CommandError>>);

pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;
