use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::state::Command;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Command::FenceBroker {
            id: index as i32,
            epoch: Some(index),
        }),
    }
}

/// A store in a fresh directory holding entries 1..=n of term 1.
async fn store_with(n: u64) -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    store
        .blocking_append((1..=n).map(|i| entry(1, i)))
        .await
        .unwrap();
    (dir, store)
}

async fn indexes(store: &mut LogStore) -> Vec<u64> {
    let entries = store.try_get_log_entries(0..).await.unwrap();
    entries.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test]
async fn entries_and_vote_survive_reopen() {
    let (dir, mut store) = store_with(3).await;
    store.save_vote(&Vote::new(2, 3)).await.unwrap();
    store
        .save_committed(Some(entry(1, 2).log_id))
        .await
        .unwrap();

    let mut reopened = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened.try_get_log_entries(1..4).await.unwrap(),
        (1..=3).map(|i| entry(1, i)).collect::<Vec<_>>()
    );
    assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    assert_eq!(
        reopened.read_committed().await.unwrap(),
        Some(entry(1, 2).log_id)
    );
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (None, Some(entry(1, 3).log_id))
    );
}

#[tokio::test]
async fn truncate_and_purge_are_durable() {
    let (dir, mut store) = store_with(6).await;
    store.truncate(entry(1, 5).log_id).await.unwrap();
    assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4]);
    store.blocking_append([entry(2, 5)]).await.unwrap();
    store.purge(entry(1, 2).log_id).await.unwrap();

    let mut reopened = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut reopened).await, vec![3, 4, 5]);
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (Some(entry(1, 2).log_id), Some(entry(2, 5).log_id))
    );
}

#[tokio::test]
async fn purging_everything_keeps_the_last_log_id() {
    let (dir, mut store) = store_with(2).await;
    store.purge(entry(1, 2).log_id).await.unwrap();
    let state = LogStore::open(dir.path())
        .unwrap()
        .get_log_state()
        .await
        .unwrap();
    assert_eq!(state.last_log_id, Some(entry(1, 2).log_id));
}

#[tokio::test]
async fn files_left_by_an_interrupted_purge_are_dropped() {
    let (dir, mut store) = store_with(3).await;
    let kept = fs::read(entry_path(dir.path(), 1)).unwrap();
    store.purge(entry(1, 1).log_id).await.unwrap();
    fs::write(entry_path(dir.path(), 1), kept).unwrap();
    fs::write(dir.path().join("vote.tmp"), b"half").unwrap();

    let mut reopened = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut reopened).await, vec![2, 3]);
    assert!(!entry_path(dir.path(), 1).exists());
    assert!(!dir.path().join("vote.tmp").exists());
}

#[tokio::test]
async fn a_torn_last_entry_is_dropped_but_damage_elsewhere_refuses_to_open() {
    let (dir, _store) = store_with(3).await;
    let last = entry_path(dir.path(), 3);
    let bytes = fs::read(&last).unwrap();
    fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        indexes(&mut LogStore::open(dir.path()).unwrap()).await,
        vec![1, 2]
    );

    let first = entry_path(dir.path(), 1);
    let mut bytes = fs::read(&first).unwrap();
    let end = bytes.len() - 1;
    bytes[end] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    let err = LogStore::open(dir.path())
        .err()
        .expect("damaged entry 1 must not be skipped");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}
