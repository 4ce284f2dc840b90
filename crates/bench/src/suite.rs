//! Every broker figure, measured against one broker started fresh for the purpose.

use std::collections::BTreeMap;
use std::fs;
use std::thread;
use std::time::Duration;

use crate::broker::{Broker, Kind, Paths};
use crate::omb;
use crate::procstat;
use crate::workload::{self, Endpoint, ProduceCase};

/// The produce cases, in table order.
pub const CASES: [ProduceCase; 8] = [
    ProduceCase {
        size: 100,
        acks: "1",
        compression: "none",
    },
    ProduceCase {
        size: 100,
        acks: "all",
        compression: "none",
    },
    ProduceCase {
        size: 100,
        acks: "1",
        compression: "lz4",
    },
    ProduceCase {
        size: 100,
        acks: "all",
        compression: "lz4",
    },
    ProduceCase {
        size: 1024,
        acks: "1",
        compression: "none",
    },
    ProduceCase {
        size: 1024,
        acks: "all",
        compression: "none",
    },
    ProduceCase {
        size: 1024,
        acks: "1",
        compression: "lz4",
    },
    ProduceCase {
        size: 1024,
        acks: "all",
        compression: "lz4",
    },
];

/// The case whose topic is read back by the consume figures.
pub const CONSUMED_CASE: usize = 4; // 1 KiB, acks=1, none
/// The case whose maximum sets the latency run's rate (half of it).
pub const LATENCY_CASE: usize = 5; // 1 KiB, acks=all, none

/// How long and how hard each part runs.
pub struct Plan {
    pub produce: Duration,
    /// Records per produce case at most (the smoke run's tiny counts).
    pub produce_records: u64,
    pub latency: Duration,
    /// Caps the latency run's rate, which is otherwise half the measured maximum.
    pub latency_max_rate: Option<f64>,
    /// How long the fresh broker idles before its idle RSS is read.
    pub settle: Duration,
    /// Drop the page cache before the cold read (the smoke run leaves the machine's cache alone).
    pub drop_cache: bool,
    /// How long each OMB-style produce workload (and the transactional one) runs (see `omb`).
    pub omb: Duration,
    /// Records per OMB-style workload at most.
    pub omb_records: u64,
    /// Partitions of the OMB-style topics (100; the smoke run's fewer, as a debug samsa
    /// takes seconds to create and, at shutdown, to sync hundreds of partitions).
    pub omb_partitions: i32,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            produce: Duration::from_secs(6),
            produce_records: 50_000_000,
            latency: Duration::from_secs(10),
            latency_max_rate: None,
            settle: Duration::from_secs(2),
            drop_cache: true,
            omb: Duration::from_secs(15),
            omb_records: 50_000_000,
            omb_partitions: 100,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            produce: Duration::from_millis(1500),
            latency: Duration::from_secs(3),
            omb: Duration::from_secs(3),
            ..Plan::full()
        }
    }

    /// Every code path of the bench, in seconds: proves the tool runs, measures nothing.
    pub fn smoke() -> Plan {
        Plan {
            produce: Duration::from_secs(1),
            produce_records: 2_000,
            latency: Duration::from_secs(1),
            latency_max_rate: Some(200.0),
            settle: Duration::from_millis(200),
            drop_cache: false,
            omb: Duration::from_secs(1),
            omb_records: 2_000,
            omb_partitions: 8,
        }
    }
}

/// Figures by id (see `report`), and what went wrong.
#[derive(Default)]
pub struct Results {
    pub figures: BTreeMap<String, f64>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

impl Results {
    pub fn set(&mut self, id: impl Into<String>, value: f64) {
        self.figures.insert(id.into(), value);
    }
    pub fn fail(&mut self, what: &str, err: impl std::fmt::Display) {
        let msg = format!("{what}: {err}");
        eprintln!("  ERROR {msg}");
        self.errors.push(msg);
    }
}

pub fn run(kind: Kind, paths: &Paths, d: &Plan) -> Results {
    let mut r = Results::default();
    let data_dir = paths.work.join("samsa-data");
    let _ = fs::remove_dir_all(&data_dir);
    eprintln!("[{}] starting", kind.name());
    let started = match kind {
        Kind::Samsa => Broker::start_samsa(paths, &data_dir, "samsa.log"),
        Kind::Kafka => Broker::start_kafka(paths),
    };
    let mut broker = match started {
        Ok(b) => b,
        Err(e) => {
            r.fail("start", e);
            return r;
        }
    };
    eprintln!(
        "[{}] ready on {} after {:.3} s (pid {})",
        kind.name(),
        broker.bootstrap,
        broker.startup_s,
        broker.pid
    );
    r.set("startup_s", broker.startup_s);
    thread::sleep(d.settle);
    if let Ok(rss) = procstat::vm_mib(broker.pid, "VmRSS") {
        r.set("idle_rss_mib", rss);
    }

    let mut produced = [0u64; CASES.len()];
    for (i, case) in CASES.iter().enumerate() {
        let topic = format!("bench-{}", case.id());
        let cpu0 = broker.cpu_seconds();
        match workload::produce(
            &Endpoint::plain(&broker.bootstrap, Some(broker.pid)),
            &topic,
            *case,
            d.produce,
            d.produce_records,
        ) {
            Ok(p) => {
                let cpu = broker.cpu_seconds() - cpu0;
                let mb_s = p.bytes as f64 / 1e6 / p.seconds;
                eprintln!(
                    "[{}] produce {:<20} {:>10.0} rec/s {:>8.1} MB/s  broker CPU {:.2} s, busy broker {:.0} % client {:.0} %",
                    kind.name(),
                    case.id(),
                    p.records as f64 / p.seconds,
                    mb_s,
                    cpu,
                    100.0 * p.busy.broker,
                    100.0 * p.busy.client,
                );
                r.set(format!("produce.{}.mb_s", case.id()), mb_s);
                r.set(
                    format!("produce.{}.rec_s", case.id()),
                    p.records as f64 / p.seconds,
                );
                r.set(
                    format!("produce.{}.cpu_s_per_gb", case.id()),
                    cpu / (p.bytes as f64 / 1e9),
                );
                p.busy.record(&mut r, &format!("produce.{}", case.id()));
                produced[i] = p.records;
            }
            Err(e) => r.fail(&format!("produce {}", case.id()), e),
        }
        if let Some(why) = broker.exited() {
            r.fail(
                "broker",
                format!(
                    "{why} during produce {}; log {}",
                    case.id(),
                    broker.log_path.display()
                ),
            );
            return r;
        }
    }

    let max_rate = r
        .figures
        .get(&format!("produce.{}.rec_s", CASES[LATENCY_CASE].id()))
        .copied();
    if let Some(max_rate) = max_rate {
        let rate = (max_rate / 2.0)
            .max(100.0)
            .min(d.latency_max_rate.unwrap_or(f64::INFINITY));
        eprintln!(
            "[{}] latency at {rate:.0} rec/s for {:?}",
            kind.name(),
            d.latency
        );
        match workload::latency(
            &broker.bootstrap,
            "bench-latency",
            CASES[LATENCY_CASE].size,
            rate,
            d.latency,
        ) {
            Ok(l) => {
                r.set("latency.rate_rec_s", l.rate);
                r.set("latency.p50_ms", l.quantile_ms(0.5));
                r.set("latency.p99_ms", l.quantile_ms(0.99));
                r.set("latency.p999_ms", l.quantile_ms(0.999));
                r.set("latency.p9999_ms", l.quantile_ms(0.9999));
                r.set("latency.max_ms", l.quantile_ms(1.0));
                eprintln!(
                    "[{}] latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms ({} records)",
                    kind.name(), l.quantile_ms(0.5), l.quantile_ms(0.99), l.quantile_ms(0.999), l.quantile_ms(1.0), l.sent
                );
            }
            Err(e) => r.fail("latency", e),
        }
        omb::latencies(&mut r, &broker, d, max_rate);
    }

    let topic = format!("bench-{}", CASES[CONSUMED_CASE].id());
    let expected = produced[CONSUMED_CASE];
    if expected > 0 {
        consume_into(&mut r, &broker, "warm", &topic, expected);
    }
    if let Ok(hwm) = procstat::vm_mib(broker.pid, "VmHWM") {
        r.set("peak_rss_mib", hwm);
    }

    // Cold read. samsa is restarted on its data; kafka_ref deletes Kafka's data on stop,
    // so Kafka stays up and only the page cache is dropped.
    let mut broker = if kind == Kind::Samsa {
        if let Err(e) = broker.stop() {
            r.fail("stop before cold read", e);
        }
        if d.drop_cache {
            drop_page_cache(&mut r);
        }
        match Broker::start_samsa(paths, &data_dir, "samsa-restart.log") {
            Ok(b) => {
                r.set("restart_startup_s", b.startup_s);
                eprintln!("[samsa] restarted on its data in {:.3} s", b.startup_s);
                b
            }
            Err(e) => {
                r.fail("restart", e);
                return r;
            }
        }
    } else {
        if d.drop_cache {
            drop_page_cache(&mut r);
        }
        broker
    };
    if expected > 0 {
        consume_into(&mut r, &broker, "cold", &topic, expected);
    }
    // After the cold read and the peak RSS, which stay the single-partition figures they were.
    omb::run(
        &mut r,
        &broker,
        d,
        paths.tls.as_ref().map(|c| c.ca.as_path()),
    );
    if let Some(why) = broker.exited() {
        r.fail("broker", why);
        return r;
    }
    if let Err(e) = broker.stop() {
        r.fail("stop", e);
    }
    let _ = fs::remove_dir_all(&data_dir);
    r
}

fn drop_page_cache(r: &mut Results) {
    match procstat::drop_page_cache() {
        Ok(()) => r
            .notes
            .push("cold read: page cache dropped (echo 1 > /proc/sys/vm/drop_caches)".into()),
        Err(e) => r.notes.push(format!(
            "cold read: page cache NOT dropped ({e}); data may still be cached"
        )),
    }
}

fn consume_into(r: &mut Results, broker: &Broker, label: &str, topic: &str, expected: u64) {
    let cpu0 = broker.cpu_seconds();
    let at = Endpoint::plain(&broker.bootstrap, Some(broker.pid));
    match workload::consume(&at, topic, expected, Duration::from_secs(300)) {
        Ok(c) => {
            let cpu = broker.cpu_seconds() - cpu0;
            let mb_s = c.bytes as f64 / 1e6 / c.seconds;
            eprintln!(
                "[{}] consume {label}: {} records {:.1} MB/s in {:.2} s, broker CPU {:.2} s, busy broker {:.0} % client {:.0} %",
                broker.kind.name(),
                c.records,
                mb_s,
                c.seconds,
                cpu,
                100.0 * c.busy.broker,
                100.0 * c.busy.client,
            );
            r.set(format!("consume.{label}.mb_s"), mb_s);
            r.set(
                format!("consume.{label}.rec_s"),
                c.records as f64 / c.seconds,
            );
            r.set(
                format!("consume.{label}.cpu_s_per_gb"),
                cpu / (c.bytes as f64 / 1e9),
            );
            c.busy.record(r, &format!("consume.{label}"));
        }
        Err(e) => r.fail(&format!("consume {label}"), e),
    }
}
