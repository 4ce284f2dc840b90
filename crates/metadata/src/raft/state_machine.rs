//! The state machine store: `ClusterMetadata` in memory, published to watchers after each
//! applied batch, and its snapshots.
//!
//! The state itself is not written on apply: a restarted controller rebuilds it from its last
//! snapshot plus the log it still holds (openraft replays from the snapshot up to the saved
//! commit point). Only snapshots are durable, in `snapshot` under the state directory: one
//! `record` holding JSON `{meta, state}`.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    EntryPayload, OptionalSend, RaftLogId, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::to_json;
use super::record;
use super::{Applied, ControllerNode, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::state::ClusterMetadata;

const SNAPSHOT: &str = "snapshot";

type Meta = SnapshotMeta<NodeId, ControllerNode>;

/// What a snapshot captures: the metadata and where in the log it stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    last_membership: StoredMembership<NodeId, ControllerNode>,
    metadata: ClusterMetadata,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    state: AppliedState,
}

/// Cheap to clone: the snapshot builder is a clone working on the same state.
#[derive(Clone)]
pub struct StateMachineStore {
    dir: Arc<PathBuf>,
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Arc<ClusterMetadata>>>,
}

struct Inner {
    state: AppliedState,
    snapshot: Option<SnapshotFile>,
    /// Distinguishes snapshots built at the same log id.
    snapshots_built: u64,
}

impl StateMachineStore {
    /// Opens the store under `dir`, starting from its last snapshot if it has one.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<SnapshotFile> = match record::read(&dir.join(SNAPSHOT))? {
            Some(payload) => Some(serde_json::from_slice(&payload).map_err(io::Error::other)?),
            None => None,
        };
        let state = snapshot
            .as_ref()
            .map(|s| s.state.clone())
            .unwrap_or_default();
        let (published, _) = watch::channel(Arc::new(state.metadata.clone()));
        let inner = Inner {
            state,
            snapshot,
            snapshots_built: 0,
        };
        Ok(StateMachineStore {
            dir: Arc::new(dir.to_path_buf()),
            inner: Arc::new(Mutex::new(inner)),
            published: Arc::new(published),
        })
    }

    /// Follows the metadata as committed commands are applied.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.published.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("state machine lock poisoned")
    }

    async fn persist(&self, file: &SnapshotFile) -> Result<(), StorageError> {
        let signature = Some(file.meta.signature());
        let payload =
            to_json(file).map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || record::write_durably(&dir, SNAPSHOT, &payload))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        Ok(())
    }

    fn publish(&self, metadata: &ClusterMetadata) {
        self.published.send_replace(Arc::new(metadata.clone()));
    }
}

// openraft's own error type, whatever its size: its storage traits return it.
#[allow(clippy::result_large_err)]
fn snapshot_of(file: &SnapshotFile) -> Result<Snapshot<TypeConfig>, StorageError> {
    let bytes = to_json(&file.state)
        .map_err(|e| StorageIOError::read_snapshot(Some(file.meta.signature()), &e))?;
    Ok(Snapshot {
        meta: file.meta.clone(),
        snapshot: Box::new(Cursor::new(bytes)),
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let file = {
            let mut inner = self.lock();
            inner.snapshots_built += 1;
            let state = inner.state.clone();
            let at = state.last_applied.map_or("none".to_string(), |id| {
                format!("{}-{}", id.leader_id, id.index)
            });
            let meta = Meta {
                last_log_id: state.last_applied,
                last_membership: state.last_membership.clone(),
                snapshot_id: format!("{at}-{}", inner.snapshots_built),
            };
            SnapshotFile { meta, state }
        };
        self.persist(&file).await?;
        let snapshot = snapshot_of(&file)?;
        self.lock().snapshot = Some(file);
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, ControllerNode>), StorageError> {
        let inner = self.lock();
        Ok((
            inner.state.last_applied,
            inner.state.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut replies = Vec::new();
        let mut changed = false;
        for entry in entries {
            let log_id = *entry.get_log_id();
            inner.state.last_applied = Some(log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(command) => {
                    changed = true;
                    Some(inner.state.metadata.apply(&command))
                }
                EntryPayload::Membership(membership) => {
                    inner.state.last_membership = StoredMembership::new(Some(log_id), membership);
                    None
                }
            };
            replies.push(Applied(reply));
        }
        if changed {
            self.publish(&inner.state.metadata);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Replaces the state with a leader's snapshot (this controller was too far behind for the
    /// log the leader still holds) and keeps it as the current snapshot.
    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let state: AppliedState = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state,
        };
        self.persist(&file).await?;
        let mut inner = self.lock();
        inner.state = file.state.clone();
        inner.snapshot = Some(file);
        self.publish(&inner.state.metadata);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.lock().snapshot.as_ref().map(snapshot_of).transpose()
    }
}
