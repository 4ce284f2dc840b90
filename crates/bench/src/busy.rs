//! How busy the broker's core and the load generator's were while a throughput figure was
//! measured, and so which of them limited it (issue 21: "the README says which resource was
//! the limit").
//!
//! Pinned, each side has one core: a figure taken while the load generator's core was
//! ~100 % busy and the broker's was not measures librdkafka on one core, for both brokers
//! alike, and a samsa/Kafka ratio of 1.0 there says nothing about the broker.
//!
//! Busy = CPU seconds / wall seconds over the interval the figure's own clock runs on: a
//! [`Mark`] is taken where the workload starts its clock and another where it stops it.
//! The broker's CPU is read from `/proc` (the Kafka JVM, as for CPU s/GB); the client's is
//! `getrusage(RUSAGE_SELF)`, every thread of this process, which is every client: the
//! workloads run librdkafka in-process (its own threads and ours), no child processes.
//! Unpinned, either can exceed 1.0 (several cores).

use std::time::Instant;

use crate::procstat;
use crate::suite::Results;

/// At or above this fraction of a core, a side counts as saturated.
pub const SATURATED: f64 = 0.9;

/// CPU seconds (user + system) used so far by every thread of this process.
pub fn client_cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid out-parameter; getrusage only writes it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// One instant, with both sides' CPU seconds at it.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub at: Instant,
    client_s: f64,
    broker_s: f64,
}

impl Mark {
    /// Now. `broker_pid`: the process whose CPU is the broker's (`None`: not measured).
    pub fn now(broker_pid: Option<u32>) -> Mark {
        let broker_s = broker_pid
            .and_then(|pid| procstat::cpu_seconds(pid).ok())
            .unwrap_or(f64::NAN);
        Mark {
            at: Instant::now(),
            client_s: client_cpu_seconds(),
            broker_s,
        }
    }

    /// How busy each side was from this mark to `end`.
    pub fn until(&self, end: &Mark) -> Busy {
        let wall = end.at.duration_since(self.at).as_secs_f64();
        let of = |cpu: f64| match wall > 0.0 {
            true => cpu / wall,
            false => f64::NAN,
        };
        Busy {
            broker: of(end.broker_s - self.broker_s),
            client: of(end.client_s - self.client_s),
        }
    }
}

/// CPU seconds per wall second of each side over one measured interval (NaN: unknown).
#[derive(Clone, Copy, Debug)]
pub struct Busy {
    pub broker: f64,
    pub client: f64,
}

impl Busy {
    /// `{id}.broker_busy` and `{id}.client_busy`, those that are known.
    pub fn record(&self, r: &mut Results, id: &str) {
        for (side, v) in [("broker", self.broker), ("client", self.client)] {
            if v.is_finite() {
                r.set(format!("{id}.{side}_busy"), v);
            }
        }
    }
}

/// Which side limited a figure, from the two busy fractions.
pub fn limit(broker: f64, client: f64) -> &'static str {
    match (broker >= SATURATED, client >= SATURATED) {
        (true, false) => "broker",
        (false, true) => "client",
        (true, true) => "both",
        (false, false) => "neither",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saturated_side_is_the_limit() {
        assert_eq!(limit(0.64, 0.99), "client");
        assert_eq!(limit(0.97, 0.40), "broker");
        assert_eq!(limit(0.95, 0.92), "both");
        assert_eq!(limit(0.30, 0.50), "neither");
        assert_eq!(limit(0.9, 0.2), "broker");
    }

    #[test]
    fn a_spinning_thread_shows_as_client_cpu() {
        let start = Mark::now(Some(std::process::id()));
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 200 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = start.until(&Mark::now(Some(std::process::id())));
        // This process is both "broker" and client here; a busy loop is close to one core
        // unless the machine is oversubscribed, so only a loose floor is asserted.
        assert!(b.client > 0.3, "client busy {}", b.client);
        assert!(b.broker > 0.3, "broker busy {}", b.broker);
    }
}
