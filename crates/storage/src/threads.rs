//! The storage threads: a fixed, small set of OS threads that own the broker's disk work.
//!
//! Appends (`pwritev`), reads (`pread`), fsyncs, segment rolls and deletions are blocking
//! system calls; run on the async runtime's workers they stall every connection that worker
//! serves for as long as the disk takes. The broker hands them here instead and awaits the
//! answer ([`StorageThreads::run`]), and a roll queues its segment's sync here rather than
//! starting a thread of its own.
//!
//! Why a pool of our own and not tokio's `spawn_blocking`: that pool grows to 512 threads
//! under a slow disk (every waiting produce parks one), while a fixed set bounds the threads
//! and the memory, and keeps the disk's queue depth what the operator configured
//! (`storage_threads`). Jobs are short: an fsync another append is already running is
//! waited for asynchronously by the caller, never on a storage thread, so no job waits on
//! another and the pool cannot deadlock.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How many storage threads run when the broker does not say (see [`configure`]).
pub const DEFAULT_STORAGE_THREADS: usize = 4;

static THREADS: OnceLock<StorageThreads> = OnceLock::new();

/// Sets the number of storage threads; only the first call, before any disk work, counts.
/// Returns whether this call set it.
pub fn configure(threads: usize) -> bool {
    let mut set = false;
    THREADS.get_or_init(|| {
        set = true;
        StorageThreads::start(threads)
    });
    set
}

/// The process's storage threads, started with the default size if none was configured.
pub fn storage_threads() -> &'static StorageThreads {
    THREADS.get_or_init(|| StorageThreads::start(DEFAULT_STORAGE_THREADS))
}

pub struct StorageThreads {
    queue: mpsc::Sender<Job>,
    size: usize,
}

impl StorageThreads {
    fn start(size: usize) -> StorageThreads {
        let size = size.max(1);
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..size {
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(format!("storage-{i}"))
                .spawn(move || loop {
                    // The lock is held only to take the next job, never while running one.
                    let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .expect("cannot start a storage thread");
        }
        StorageThreads { queue, size }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `job` on a storage thread. A job that panics takes nothing down with it; a
    /// caller awaiting it through [`StorageThreads::run`] sees the panic.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(move || {
            let _ = panic::catch_unwind(AssertUnwindSafe(job));
        });
        // The receiving threads live as long as the process: sending cannot fail.
        let _ = self.queue.send(job);
    }

    /// Runs `job` on a storage thread and waits for its answer without blocking the caller's
    /// thread. The job runs to its end even if the caller stops waiting, so a write is
    /// never half done because a client went away. A panic in `job` resumes in the caller,
    /// as if it had run there.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> T {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.spawn(move || {
            let _ = answer.send(panic::catch_unwind(AssertUnwindSafe(job)));
        });
        match answered.await {
            Ok(Ok(value)) => value,
            Ok(Err(panicked)) => panic::resume_unwind(panicked),
            Err(_) => unreachable!("a storage job always answers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn jobs_run_on_a_bounded_set_of_named_threads() {
        let threads = StorageThreads::start(2);
        let runtime = runtime();
        let names: Vec<String> = runtime.block_on(async {
            let mut names = Vec::new();
            for _ in 0..8 {
                names.push(
                    threads
                        .run(|| thread::current().name().unwrap_or("").to_owned())
                        .await,
                );
            }
            names
        });
        assert!(names.iter().all(|n| n == "storage-0" || n == "storage-1"));
    }

    #[test]
    fn a_panicking_job_leaves_the_threads_serving() {
        let threads = StorageThreads::start(1);
        let runtime = runtime();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(threads.run(|| -> () { panic!("boom") }))
        }));
        assert!(caught.is_err());
        assert_eq!(runtime.block_on(threads.run(|| 7)), 7);
    }
}
