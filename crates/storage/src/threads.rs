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

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

tokio::task_local! {
    /// The time storage threads spent on the jobs a task awaited, while [`counting`].
    static SPENT: Cell<Duration>;
}

/// Runs `future`, and returns with its output the time the storage threads spent on the jobs
/// it awaited through [`StorageThreads::run`]: the disk work done for it elsewhere, which a
/// measure of the time spent polling it leaves out (the request quota counts both, as
/// Kafka's request handler thread does its own disk work).
pub async fn counting<T>(future: impl Future<Output = T>) -> (T, Duration) {
    SPENT
        .scope(Cell::new(Duration::ZERO), async {
            let output = future.await;
            (output, SPENT.with(Cell::get))
        })
        .await
}

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
            let started = Instant::now();
            let outcome = panic::catch_unwind(AssertUnwindSafe(job));
            let _ = answer.send((outcome, started.elapsed()));
        });
        match answered.await {
            Ok((outcome, took)) => {
                let _ = SPENT.try_with(|spent| spent.set(spent.get() + took));
                match outcome {
                    Ok(value) => value,
                    Err(panicked) => panic::resume_unwind(panicked),
                }
            }
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
    fn a_task_counts_the_storage_time_of_the_jobs_it_awaited() {
        let threads = StorageThreads::start(1);
        let runtime = runtime();
        let ((), spent) = runtime.block_on(counting(async {
            for _ in 0..2 {
                threads
                    .run(|| thread::sleep(Duration::from_millis(20)))
                    .await;
            }
        }));
        assert!(spent >= Duration::from_millis(40), "{spent:?}");
        // Outside `counting` nothing is counted, and nothing fails.
        runtime.block_on(threads.run(|| ()));
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
