//! Pinned mode: the broker under test on one core, the load generator on another, for both
//! brokers alike. Sharing two cores between broker and client made figures move 20-40 %
//! between runs, as the scheduler placed them differently each time; with each on its own
//! core, a figure measures the broker's use of one core.
//!
//! Affinity is inherited: a broker started with [`pin_child`] keeps its core for every
//! thread it makes (and Kafka's JVM, started by kafka_ref.py, inherits kafka_ref's), and the
//! client threads librdkafka starts inherit the main thread's, set by [`pin_current_thread`]
//! before the first client exists. `std::thread::available_parallelism` and the JVM's
//! `availableProcessors` both read the affinity mask, so each broker sizes its thread pools
//! for the one core it has.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Which core runs what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinning {
    pub broker: usize,
    pub load: usize,
}

impl Pinning {
    /// The broker on core 0 and the load on core 1, if the machine has two cores to give
    /// (a one-core machine cannot separate them, and runs unpinned).
    pub fn for_machine() -> Option<Pinning> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus >= 2).then_some(Pinning { broker: 0, load: 1 })
    }
}

fn set_affinity(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it, and
    // sched_setaffinity(0, ..) only reads it, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins the calling thread, and so every thread it starts from now on, to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    set_affinity(cpu)
}

/// Has the child started by `cmd` run on `cpu` only, from its first instruction.
pub fn pin_child(cmd: &mut Command, cpu: usize) {
    // SAFETY: the closure runs in the forked child before exec and makes one system call,
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || set_affinity(cpu));
    }
}
