//! The durable Raft log and vote of one controller.
//!
//! Layout under the log directory, every file a `record` holding JSON:
//! - `entry-<index, 20 digits>`: one log entry per file, so truncating and purging are file
//!   removals and never rewrite data;
//! - `vote`: the last vote; `committed`: the last committed log id known;
//! - `purged`: the last purged log id, written before the purged files are removed so that
//!   files left behind by a crash mid-purge are recognised and dropped on open.
//!
//! The metadata log is small (it is compacted by snapshots), so all live entries are also kept
//! in memory and reads never touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record;
use super::{Entry, LogId, NodeId, StorageError, TypeConfig};

const ENTRY_PREFIX: &str = "entry-";
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";

/// Cheap to clone: clones share the log (openraft reads through a clone while appending).
#[derive(Clone)]
pub struct LogStore {
    dir: Arc<PathBuf>,
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Default)]
struct LogInner {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
}

impl LogStore {
    /// Opens (creating if needed) the log under `dir`, recovering what a crash left behind:
    /// temporary files, entries already purged, and a torn last entry (never acknowledged,
    /// since acknowledging waits for its fsync).
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut inner = LogInner {
            vote: read_json(&dir.join(VOTE))?,
            committed: read_json(&dir.join(COMMITTED))?,
            last_purged: read_json(&dir.join(PURGED))?,
            ..LogInner::default()
        };
        let mut indexes = Vec::new();
        for dirent in fs::read_dir(dir)? {
            let name = dirent?.file_name().to_string_lossy().into_owned();
            if name.ends_with(record::TMP_SUFFIX) {
                fs::remove_file(dir.join(&name))?;
            } else if let Some(index) = name.strip_prefix(ENTRY_PREFIX) {
                let index: u64 = index
                    .parse()
                    .map_err(|_| invalid(format!("bad log file name {name}")))?;
                indexes.push(index);
            }
        }
        indexes.sort_unstable();
        let purged_upto = inner.last_purged.map(|id| id.index);
        for (i, &index) in indexes.iter().enumerate() {
            let path = entry_path(dir, index);
            if purged_upto.is_some_and(|p| index <= p) {
                fs::remove_file(&path)?;
                continue;
            }
            match read_json::<Entry>(&path) {
                Ok(Some(entry)) => {
                    inner.entries.insert(index, entry);
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData && i + 1 == indexes.len() => {
                    tracing::warn!(index, error = %e, "dropping a torn last metadata log entry");
                    fs::remove_file(&path)?;
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        check_contiguous(&inner)?;
        Ok(LogStore {
            dir: Arc::new(dir.to_path_buf()),
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().expect("log store lock poisoned")
    }

    /// Runs blocking file I/O off the async workers; openraft serialises calls into the store,
    /// so awaiting it here keeps writes in order.
    async fn blocking<T: Send + 'static>(
        &self,
        io: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || io(&dir))
            .await
            .map_err(io::Error::other)?
    }
}

fn entry_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{ENTRY_PREFIX}{index:020}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match record::read(path)? {
        Some(payload) => serde_json::from_slice(&payload)
            .map(Some)
            .map_err(|e| invalid(e.to_string())),
        None => Ok(None),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// Raft cannot work from a log with holes: refuse to start on one rather than guess.
fn check_contiguous(inner: &LogInner) -> io::Result<()> {
    let mut expected = inner.last_purged.map(|id| id.index + 1);
    for &index in inner.entries.keys() {
        if expected.is_some_and(|e| e != index) {
            return Err(invalid(format!(
                "metadata log has a hole before entry {index}"
            )));
        }
        expected = Some(index + 1);
    }
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let payload = to_json(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.blocking(move |dir| record::write_durably(dir, VOTE, &payload))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().vote)
    }

    /// Kept so that a restarted controller replays its log up to the commit point at once,
    /// rather than serving older metadata until a leader tells it the commit index.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let payload = to_json(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.blocking(move |dir| record::write_durably(dir, COMMITTED, &payload))
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    /// Writes and fsyncs every entry before reporting them flushed: openraft counts a
    /// follower's acknowledgement toward the commit quorum.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut files = Vec::with_capacity(entries.len());
        for entry in &entries {
            let log_id = *entry.get_log_id();
            let payload =
                to_json(entry).map_err(|e| StorageIOError::write_log_entry(log_id, &e))?;
            files.push((log_id.index, payload));
        }
        let written = self
            .blocking(move |dir| {
                for (index, payload) in &files {
                    record::write_synced(&entry_path(dir, *index), payload)?;
                }
                record::sync_dir(dir)
            })
            .await;
        if let Err(e) = &written {
            callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(StorageIOError::write_logs(e).into());
        }
        {
            let mut inner = self.lock();
            for entry in entries {
                inner.entries.insert(entry.get_log_id().index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    /// Removes entries from `log_id` on, newest first so a crash midway leaves no hole.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let doomed: Vec<u64> = self
            .lock()
            .entries
            .range(log_id.index..)
            .map(|(&i, _)| i)
            .rev()
            .collect();
        self.blocking(move |dir| {
            for index in doomed {
                fs::remove_file(entry_path(dir, index))?;
            }
            record::sync_dir(dir)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        self.lock().entries.retain(|&i, _| i < log_id.index);
        Ok(())
    }

    /// Records the purge point durably first, then removes the files (see the module doc).
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let payload = to_json(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let doomed: Vec<u64> = self
            .lock()
            .entries
            .range(..=log_id.index)
            .map(|(&i, _)| i)
            .collect();
        self.blocking(move |dir| {
            record::write_durably(dir, PURGED, &payload)?;
            for index in doomed {
                fs::remove_file(entry_path(dir, index))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        let mut inner = self.lock();
        inner.entries.retain(|&i, _| i > log_id.index);
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
