//! What the links report: per mirror partition its lag behind the source and its state, per
//! link the bytes and records fetched. Rendered on `/metrics` and read by `samsa link status`
//! through the metrics endpoint.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

/// A mirror partition's state, as `samsa_link_partition_state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorState {
    /// Fetching from the source (or about to, after a failed exchange).
    Mirroring = 1,
    /// Stopped: the source's log diverged from the mirror's; an operator must look.
    Failed = 2,
}

#[derive(Debug, Clone, Copy, Default)]
struct PartitionStats {
    lag: i64,
    state: Option<MirrorState>,
}

#[derive(Debug, Clone, Copy, Default)]
struct LinkTotals {
    bytes: u64,
    records: u64,
}

/// A per-link counter's name, help and value.
type Counter = (&'static str, &'static str, fn(&LinkTotals) -> u64);

#[derive(Default)]
pub struct LinkStats {
    partitions: Mutex<BTreeMap<(String, String, i32), PartitionStats>>,
    links: Mutex<BTreeMap<String, LinkTotals>>,
}

impl LinkStats {
    pub fn set_state(&self, link: &str, topic: &str, partition: i32, state: MirrorState) {
        let key = (link.to_string(), topic.to_string(), partition);
        self.partitions.lock().entry(key).or_default().state = Some(state);
    }

    pub fn state(&self, link: &str, topic: &str, partition: i32) -> Option<MirrorState> {
        let key = (link.to_string(), topic.to_string(), partition);
        self.partitions.lock().get(&key).and_then(|p| p.state)
    }

    /// After a fetch: the source's high watermark less the mirror's log end, and what came.
    pub fn fetched(
        &self,
        link: &str,
        topic: &str,
        partition: i32,
        lag: i64,
        bytes: usize,
        records: u64,
    ) {
        let key = (link.to_string(), topic.to_string(), partition);
        self.partitions.lock().entry(key).or_default().lag = lag.max(0);
        let mut links = self.links.lock();
        let totals = links.entry(link.to_string()).or_default();
        totals.bytes += bytes as u64;
        totals.records += records;
    }

    /// The partition is no longer mirrored here (promoted, deleted, or led elsewhere).
    pub fn forget(&self, link: &str, topic: &str, partition: i32) {
        let key = (link.to_string(), topic.to_string(), partition);
        self.partitions.lock().remove(&key);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let partitions = self.partitions.lock().clone();
        let links = self.links.lock().clone();
        if partitions.is_empty() && links.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "# HELP samsa_link_partition_lag Source high watermark less the mirror's log end offset.\n# TYPE samsa_link_partition_lag gauge"
        );
        for ((link, topic, partition), stats) in &partitions {
            let _ = writeln!(
                out,
                "samsa_link_partition_lag{{link=\"{link}\",topic=\"{topic}\",partition=\"{partition}\"}} {}",
                stats.lag
            );
        }
        let _ = writeln!(
            out,
            "# HELP samsa_link_partition_state 1 mirroring, 2 failed (the source's log diverged).\n# TYPE samsa_link_partition_state gauge"
        );
        for ((link, topic, partition), stats) in &partitions {
            let state = stats.state.map_or(0, |s| s as i32);
            let _ = writeln!(
                out,
                "samsa_link_partition_state{{link=\"{link}\",topic=\"{topic}\",partition=\"{partition}\"}} {state}"
            );
        }
        let counters: [Counter; 2] = [
            (
                "samsa_link_fetched_bytes_total",
                "Record batch bytes fetched from the source.",
                |t| t.bytes,
            ),
            (
                "samsa_link_fetched_records_total",
                "Records fetched from the source.",
                |t| t.records,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (link, totals) in &links {
                let _ = writeln!(out, "{name}{{link=\"{link}\"}} {}", value(totals));
            }
        }
        out
    }
}
