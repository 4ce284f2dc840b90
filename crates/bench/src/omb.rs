//! The workloads in the spirit of the OpenMessaging Benchmark (issue 21, §2), run against the
//! same fresh broker as the single-partition figures and recorded the same way: figures by
//! id in [`Results`], so rounds, medians, ratios, pinning and CPU s/GB apply to them alike.
//!
//! * `omb.1KiB`: one topic of 100 partitions, 1 KiB records, 4 producers (acks=all, as OMB's
//!   Kafka driver), read back by one consumer group of 4 members;
//! * `omb.keyed`: 16 producers, 1 KiB records keyed by 10 000 distinct keys through
//!   librdkafka's default partitioner, onto another 100-partition topic;
//! * `omb.100B`: 100-byte records, 4 producers, onto a third 100-partition topic;
//! * `txn.1KiB`: one transactional producer committing every 100 records (one partition);
//! * `tls.1KiB.acks1.none`: the 1 KiB acks=1 produce case through each broker's TLS listener;
//! * `latency_1pct`, `latency_10pct`: the end-to-end latency run (see `workload::latency`,
//!   which corrects for coordinated omission) at 1 % and 10 % of the broker's own maximum
//!   (the 50 % run is `latency`).

use std::path::Path;
use std::time::Duration;

use crate::broker::Broker;
use crate::fleet::{self, Fleet};
use crate::suite::{Plan, Results, CASES, CONSUMED_CASE, LATENCY_CASE};
use crate::workload::{self, Endpoint, Produced};

/// The multi-partition workloads: (figure id prefix, topic, producers, record size, keys).
const FLEETS: [(&str, &str, usize, usize, Option<usize>); 3] = [
    ("omb.1KiB", "omb-1KiB", 4, 1024, None),
    ("omb.keyed", "omb-keyed", 16, 1024, Some(10_000)),
    ("omb.100B", "omb-100B", 4, 100, None),
];
/// Members of the consumer group that reads `omb.1KiB` back.
const GROUP_MEMBERS: usize = 4;

/// Throughput figures of a produce run: `{id}.mb_s`, `{id}.rec_s`, `{id}.cpu_s_per_gb`,
/// `{id}.broker_busy`, `{id}.client_busy`.
fn record(r: &mut Results, broker: &Broker, id: &str, p: &Produced, cpu: f64, what: &str) {
    let mb_s = p.bytes as f64 / 1e6 / p.seconds;
    let rec_s = p.records as f64 / p.seconds;
    eprintln!(
        "[{}] {what:<28} {rec_s:>10.0} rec/s {mb_s:>8.1} MB/s  broker CPU {cpu:.2} s, busy broker {:.0} % client {:.0} %",
        broker.kind.name(),
        100.0 * p.busy.broker,
        100.0 * p.busy.client,
    );
    r.set(format!("{id}.mb_s"), mb_s);
    r.set(format!("{id}.rec_s"), rec_s);
    r.set(format!("{id}.cpu_s_per_gb"), cpu / (p.bytes as f64 / 1e9));
    p.busy.record(r, id);
}

/// `tls_ca`: the CA of the brokers' TLS listeners (`None`: no certificates were made).
pub fn run(r: &mut Results, broker: &Broker, d: &Plan, tls_ca: Option<&Path>) {
    let at = Endpoint::plain(&broker.bootstrap, Some(broker.pid));
    for (id, topic, producers, size, keys) in FLEETS {
        if let Err(e) = fleet::create_topic(&at, topic, d.omb_partitions) {
            r.fail(&format!("{id} topic"), e);
            continue;
        }
        let f = Fleet {
            producers,
            size,
            acks: "all",
            keys,
        };
        let cpu0 = broker.cpu_seconds();
        let produced = match fleet::produce(&at, topic, &f, d.omb, d.omb_records) {
            Ok(p) => p,
            Err(e) => {
                r.fail(&format!("{id} produce"), e);
                continue;
            }
        };
        let cpu = broker.cpu_seconds() - cpu0;
        let what = format!("{id} produce x{producers}");
        record(r, broker, &format!("{id}.produce"), &produced, cpu, &what);
        if id != "omb.1KiB" || produced.records == 0 {
            continue;
        }
        let cpu0 = broker.cpu_seconds();
        let read = fleet::group_consume(
            &at,
            topic,
            d.omb_partitions as usize,
            GROUP_MEMBERS,
            produced.records,
            size,
            Duration::from_secs(300),
        );
        match read {
            Ok(g) => {
                let cpu = broker.cpu_seconds() - cpu0;
                let as_produced = Produced {
                    records: g.records,
                    bytes: g.bytes,
                    seconds: g.seconds,
                    busy: g.busy,
                };
                let what = format!("{id} consume group of {GROUP_MEMBERS}");
                record(
                    r,
                    broker,
                    &format!("{id}.consume"),
                    &as_produced,
                    cpu,
                    &what,
                );
            }
            Err(e) => r.fail(&format!("{id} consume"), e),
        }
    }

    let cpu0 = broker.cpu_seconds();
    match fleet::transactional(&at, "txn-1KiB", 1024, 100, d.omb, d.omb_records) {
        Ok(p) => {
            let cpu = broker.cpu_seconds() - cpu0;
            record(r, broker, "txn.1KiB", &p, cpu, "txn 1KiB, commit every 100");
        }
        Err(e) => r.fail("txn.1KiB", e),
    }

    match (&broker.tls_bootstrap, tls_ca) {
        (Some(addr), Some(ca)) => {
            let tls = Endpoint {
                bootstrap: addr.clone(),
                tls_ca: Some(ca.to_path_buf()),
                broker_pid: Some(broker.pid),
            };
            let case = CASES[CONSUMED_CASE];
            let cpu0 = broker.cpu_seconds();
            let id = format!("tls.{}", case.id());
            match workload::produce(&tls, "bench-tls", case, d.produce, d.produce_records) {
                Ok(p) => {
                    let cpu = broker.cpu_seconds() - cpu0;
                    record(
                        r,
                        broker,
                        &id,
                        &p,
                        cpu,
                        &format!("produce {} TLS", case.id()),
                    );
                }
                Err(e) => r.fail(&id, e),
            }
        }
        _ => r.notes.push("TLS produce not run: no TLS listener".into()),
    }
}

/// The end-to-end latency runs at 1 % and 10 % of `max_rate` (records/s of the latency case).
pub fn latencies(r: &mut Results, broker: &Broker, d: &Plan, max_rate: f64) {
    for (pct, id) in [(1.0, "latency_1pct"), (10.0, "latency_10pct")] {
        let rate = (max_rate * pct / 100.0)
            .max(100.0)
            .min(d.latency_max_rate.unwrap_or(f64::INFINITY));
        eprintln!(
            "[{}] latency at {pct} % of max: {rate:.0} rec/s for {:?}",
            broker.kind.name(),
            d.latency
        );
        let topic = format!("bench-{id}");
        match workload::latency(
            &broker.bootstrap,
            &topic,
            CASES[LATENCY_CASE].size,
            rate,
            d.latency,
        ) {
            Ok(l) => {
                r.set(format!("{id}.rate_rec_s"), l.rate);
                for (q, name) in [
                    (0.5, "p50"),
                    (0.99, "p99"),
                    (0.999, "p999"),
                    (0.9999, "p9999"),
                    (1.0, "max"),
                ] {
                    r.set(format!("{id}.{name}_ms"), l.quantile_ms(q));
                }
                eprintln!(
                    "[{}] latency {pct} %: p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms p99.99 {:.2} ms ({} records)",
                    broker.kind.name(),
                    l.quantile_ms(0.5),
                    l.quantile_ms(0.99),
                    l.quantile_ms(0.999),
                    l.quantile_ms(0.9999),
                    l.sent
                );
            }
            Err(e) => r.fail(id, e),
        }
    }
}
