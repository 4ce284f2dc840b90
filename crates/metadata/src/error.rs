//! The metadata quorum's error type; the broker maps it to Kafka error codes in its own
//! `error.rs` (e.g. NotController to NOT_CONTROLLER, Command errors to their codes).

use std::io;
use std::time::Duration;

use crate::raft::NodeId;
use crate::state::CommandError;
use crate::voters::VoterChangeRefused;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither this node nor the leader it knows of could take the command. `leader` is the
    /// leader this node last heard of, if any.
    #[error("not the active controller (leader: {leader:?})")]
    NotController { leader: Option<NodeId> },
    /// The command was committed and applied, and the state machine rejected it; or the
    /// active controller refused it before logging it (a preferred leader election of a broker
    /// it has not heard from), with the answer the state machine gives when it cannot elect.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// No commit within the time allowed: no quorum was reachable. The command may still
    /// commit later, so a caller retrying it must not rely on it having failed.
    /// The leader refused a voter change (AddRaftVoter, RemoveRaftVoter) with Kafka's error.
    #[error(transparent)]
    VoterChange(#[from] VoterChangeRefused),
    #[error("no commit within {0:?}")]
    Timeout(Duration),
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    #[error("metadata quorum I/O: {0}")]
    Io(#[from] io::Error),
}
