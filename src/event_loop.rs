//! Which thread is the event loop: the async runtime's workers, which must never wait on a
//! disk. Work that does runs on the storage threads (`topics::on_storage_thread`) or, for
//! the coordinators' writes to their internal topics, on tokio's blocking pool through
//! [`off_event_loop`]. `Partition::append_blocking` asserts (in debug builds) that it is not
//! called on a worker.

use std::cell::Cell;

use samsa_storage::StorageError;

use crate::error::BrokerError;

thread_local! {
    /// Set by the runtime's park and unpark hooks, which only its workers call (the
    /// blocking pool's threads wait on a condition variable of their own); cleared when a
    /// job of ours starts on the blocking pool, since a worker that gave its core away in
    /// `block_in_place` goes back to that pool.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the runtime's workers: for the runtime builder's
/// `on_thread_park` and `on_thread_unpark`.
pub fn mark_worker() {
    WORKER.with(|w| w.set(true));
}

/// Whether the calling thread is one of the runtime's workers (as far as the hooks of
/// [`mark_worker`] tell: a runtime built without them has none).
pub fn on_worker() -> bool {
    WORKER.with(Cell::get)
}

/// Debug builds: `what` blocks on the disk, so on one of the runtime's workers the process
/// aborts, after saying where. A panic would end only the task (a connection, whose client
/// reconnects) and no test would notice; a broker that is gone fails every test using it.
#[cfg(debug_assertions)]
pub fn assert_not_on_worker(what: &str) {
    if on_worker() {
        let backtrace = std::backtrace::Backtrace::force_capture();
        eprintln!("{what} on the event loop: run it through off_event_loop\n{backtrace}");
        std::process::abort();
    }
}

/// Runs `work` on tokio's blocking pool.
pub fn spawn_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || {
        WORKER.with(|w| w.set(false));
        work()
    })
}

/// Runs work that would hold up the connections this event-loop thread serves on tokio's
/// blocking pool: a coordinator's append to its internal topic (with its fsync under
/// `flush_messages`), a large batch's recompression or schema check. Not on a storage
/// thread, where an append may wait for a sync queued behind it.
pub async fn off_event_loop<T: Send + 'static>(
    operation: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    spawn_blocking(operation)
        .await
        .map_err(|e| BrokerError::Storage(StorageError::Io(std::io::Error::other(e))))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hooks as `main` installs them tell the workers from the blocking pool's threads.
    #[test]
    fn workers_are_told_from_the_blocking_pool() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_park(mark_worker)
            .on_thread_unpark(mark_worker)
            .build()
            .unwrap();
        let (worker, blocking, off) = runtime.block_on(async {
            tokio::spawn(async {
                // A worker idle this long has parked: the hook has run on it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let blocking = spawn_blocking(on_worker).await.unwrap();
                let off = off_event_loop(|| Ok(on_worker())).await.unwrap();
                (on_worker(), blocking, off)
            })
            .await
            .unwrap()
        });
        assert!(worker, "a task runs on a worker");
        assert!(!blocking && !off, "blocking work runs off the workers");
    }
}
