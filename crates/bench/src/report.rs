//! The printed table, the targets, and `results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::busy;
use crate::limits::Disk;
use crate::suite::{Results, CASES, CONSUMED_CASE};

/// The physical limits, MB/s.
pub struct Limits {
    pub disk: Disk,
    pub loopback_mb_s: f64,
}

/// Which physical limit a row is compared with.
#[derive(Clone, Copy)]
enum Limit {
    Disk,
    Loopback,
}

struct Row {
    id: String,
    label: String,
    unit: &'static str,
    limit: Option<Limit>,
}

fn row(
    id: impl Into<String>,
    label: impl Into<String>,
    unit: &'static str,
    limit: Option<Limit>,
) -> Row {
    Row {
        id: id.into(),
        label: label.into(),
        unit,
        limit,
    }
}

fn rows() -> Vec<Row> {
    let mut rows = vec![
        row("startup_s", "start-up, process start -> ready", "s", None),
        row(
            "restart_startup_s",
            "restart on its data (samsa only)",
            "s",
            None,
        ),
        row("idle_rss_mib", "idle RSS", "MiB", None),
        row("peak_rss_mib", "peak RSS (VmHWM, whole run)", "MiB", None),
    ];
    for case in CASES {
        let label = format!(
            "produce {:>5} acks={:<3} {:<4}",
            if case.size == 100 { "100B" } else { "1KiB" },
            case.acks,
            case.compression
        );
        rows.push(row(
            format!("produce.{}.mb_s", case.id()),
            label.clone(),
            "MB/s",
            Some(Limit::Disk),
        ));
        rows.push(row(
            format!("produce.{}.rec_s", case.id()),
            label.clone(),
            "rec/s",
            None,
        ));
        rows.push(row(
            format!("produce.{}.cpu_s_per_gb", case.id()),
            label,
            "CPU s/GB",
            None,
        ));
    }
    rows.extend([
        row(
            "latency.rate_rec_s",
            "e2e latency run: rate (half max)",
            "rec/s",
            None,
        ),
        row(
            "latency.p50_ms",
            "e2e latency 1KiB acks=all p50",
            "ms",
            None,
        ),
        row(
            "latency.p99_ms",
            "e2e latency 1KiB acks=all p99",
            "ms",
            None,
        ),
        row(
            "latency.p999_ms",
            "e2e latency 1KiB acks=all p99.9",
            "ms",
            None,
        ),
        row(
            "latency.p9999_ms",
            "e2e latency 1KiB acks=all p99.99",
            "ms",
            None,
        ),
        row(
            "latency.max_ms",
            "e2e latency 1KiB acks=all max",
            "ms",
            None,
        ),
        row(
            "consume.warm.mb_s",
            "consume 1KiB, page cache",
            "MB/s",
            Some(Limit::Loopback),
        ),
        row(
            "consume.warm.rec_s",
            "consume 1KiB, page cache",
            "rec/s",
            None,
        ),
        row(
            "consume.warm.cpu_s_per_gb",
            "consume 1KiB, page cache",
            "CPU s/GB",
            None,
        ),
        row(
            "consume.cold.mb_s",
            "consume 1KiB, cold",
            "MB/s",
            Some(Limit::Loopback),
        ),
        row("consume.cold.rec_s", "consume 1KiB, cold", "rec/s", None),
        row(
            "consume.cold.cpu_s_per_gb",
            "consume 1KiB, cold",
            "CPU s/GB",
            None,
        ),
    ]);
    rows.extend(omb_rows());
    rows
}

/// The OMB-style workloads' rows (see `omb`): throughput triples, then the latency runs at
/// 1 % and 10 % of the maximum.
fn omb_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, label, limit) in [
        (
            "omb.1KiB.produce",
            "100 parts 1KiB, 4 producers",
            Limit::Disk,
        ),
        (
            "omb.1KiB.consume",
            "100 parts 1KiB, group of 4",
            Limit::Loopback,
        ),
        (
            "omb.keyed.produce",
            "100 parts 1KiB keyed, 16 prod.",
            Limit::Disk,
        ),
        (
            "omb.100B.produce",
            "100 parts 100B, 4 producers",
            Limit::Disk,
        ),
        ("txn.1KiB", "transactions 1KiB, 100/commit", Limit::Disk),
        (
            "tls.1KiB.acks1.none",
            "produce  1KiB acks=1   none, TLS",
            Limit::Disk,
        ),
    ] {
        rows.push(row(format!("{id}.mb_s"), label, "MB/s", Some(limit)));
        rows.push(row(format!("{id}.rec_s"), label, "rec/s", None));
        rows.push(row(format!("{id}.cpu_s_per_gb"), label, "CPU s/GB", None));
    }
    for (id, pct) in [("latency_1pct", 1), ("latency_10pct", 10)] {
        rows.push(row(
            format!("{id}.rate_rec_s"),
            format!("e2e latency run: rate ({pct}% max)"),
            "rec/s",
            None,
        ));
        for (q, name) in [
            ("p50", "p50"),
            ("p99", "p99"),
            ("p999", "p99.9"),
            ("p9999", "p99.99"),
        ] {
            rows.push(row(
                format!("{id}.{q}_ms"),
                format!("e2e latency at {pct}% max {name}"),
                "ms",
                None,
            ));
        }
    }
    rows
}

/// Three significant-ish digits, no exponent.
fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn pct(v: Option<f64>, limit: Option<f64>) -> String {
    match (v, limit) {
        (Some(v), Some(l)) if l > 0.0 => format!("{:.0}%", 100.0 * v / l),
        _ => "".into(),
    }
}

impl Limits {
    fn of(&self, limit: Limit) -> f64 {
        match limit {
            Limit::Disk => self.disk.buffered_mb_s,
            Limit::Loopback => self.loopback_mb_s,
        }
    }
}

/// One of the targets, checked for each broker.
pub struct Target {
    pub name: &'static str,
    pub figure: String,
    pub threshold: f64,
    pub at_least: bool,
}

impl Target {
    fn check(&self, figures: &BTreeMap<String, f64>) -> Option<(f64, bool)> {
        let v = *figures.get(&self.figure)?;
        Some((
            v,
            if self.at_least {
                v >= self.threshold
            } else {
                v <= self.threshold
            },
        ))
    }
}

pub fn targets(limits: &Limits) -> Vec<Target> {
    vec![
        Target {
            name: "produce 1KiB acks=1 >= 50% of buffered disk write",
            figure: format!("produce.{}.mb_s", CASES[CONSUMED_CASE].id()),
            threshold: 0.5 * limits.disk.buffered_mb_s,
            at_least: true,
        },
        Target {
            name: "consume from page cache >= 50% of loopback TCP",
            figure: "consume.warm.mb_s".into(),
            threshold: 0.5 * limits.loopback_mb_s,
            at_least: true,
        },
        Target {
            name: "p99 end-to-end <= 5 ms at half load, acks=all",
            figure: "latency.p99_ms".into(),
            threshold: 5.0,
            at_least: false,
        },
        Target {
            name: "idle RSS <= 64 MiB",
            figure: "idle_rss_mib".into(),
            threshold: 64.0,
            at_least: false,
        },
    ]
}

/// The whole printed report.
pub fn table(limits: &Limits, samsa: &Results, kafka: Option<&Results>) -> String {
    let mut out = String::new();
    let d = &limits.disk;
    let _ = writeln!(out, "\nPhysical limits (MB = 10^6 bytes)");
    let _ = writeln!(
        out,
        "  disk, buffered write 1 MiB chunks     {:>8} MB/s",
        num(Some(d.buffered_mb_s))
    );
    let _ = writeln!(
        out,
        "  disk, buffered then one fdatasync     {:>8} MB/s",
        num(Some(d.buffered_then_sync_mb_s))
    );
    let _ = writeln!(
        out,
        "  disk, fdatasync every 1 MiB           {:>8} MB/s",
        num(Some(d.sync_each_mb_s))
    );
    let _ = writeln!(
        out,
        "  loopback TCP, one connection          {:>8} MB/s",
        num(Some(limits.loopback_mb_s))
    );
    let _ = writeln!(
        out,
        "\n{:<36} {:<8} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "figure", "unit", "samsa", "Kafka", "s/K", "s %lim", "K %lim"
    );
    let _ = writeln!(out, "{}", "-".repeat(92));
    for r in rows() {
        let s = samsa.figures.get(&r.id).copied();
        let k = kafka.and_then(|k| k.figures.get(&r.id).copied());
        let ratio = match (s, k) {
            (Some(s), Some(k)) if k != 0.0 => format!("{:.2}x", s / k),
            _ => "".into(),
        };
        let lim = r.limit.map(|l| limits.of(l));
        let _ = writeln!(
            out,
            "{:<36} {:<8} {:>9} {:>9} {:>8} {:>8} {:>8}",
            r.label,
            r.unit,
            num(s),
            num(k),
            ratio,
            pct(s, lim),
            pct(k, lim)
        );
    }
    let _ = writeln!(
        out,
        "(%lim: produce vs buffered disk write, consume vs loopback TCP)"
    );
    busy_table(&mut out, samsa, kafka);
    let _ = writeln!(out, "\nTargets (issue 6)");
    for t in targets(limits) {
        let show = |res: Option<&Results>| match res.and_then(|r| t.check(&r.figures)) {
            Some((v, pass)) => format!("{} {}", if pass { "PASS" } else { "FAIL" }, num(Some(v))),
            None => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "  {:<50} ({} {})  samsa {:<12} Kafka {}",
            t.name,
            if t.at_least { ">=" } else { "<=" },
            num(Some(t.threshold)),
            show(Some(samsa)),
            show(kafka)
        );
    }
    for (name, res) in [("samsa", Some(samsa)), ("Kafka", kafka)] {
        let Some(res) = res else { continue };
        for n in &res.notes {
            let _ = writeln!(out, "  note ({name}): {n}");
        }
        for e in &res.errors {
            let _ = writeln!(out, "  ERROR ({name}): {e}");
        }
    }
    out
}

/// For each throughput row, how busy the broker's and the load generator's CPU were over
/// the figure's interval (medians of the rounds) and which one limited it (see `busy`).
fn busy_table(out: &mut String, samsa: &Results, kafka: Option<&Results>) {
    let side = |res: Option<&Results>, id: &str| -> [String; 3] {
        let get = |which: &str| res.and_then(|r| r.figures.get(&format!("{id}.{which}_busy")));
        match (get("broker"), get("client")) {
            (Some(&b), Some(&c)) => [
                format!("{:.0} %", 100.0 * b),
                format!("{:.0} %", 100.0 * c),
                busy::limit(b, c).into(),
            ],
            _ => ["-".into(), "-".into(), "".into()],
        }
    };
    let _ = writeln!(
        out,
        "\nWhich side limited each throughput figure: CPU seconds per wall second over the \
         figure's own interval,\nbroker process and load generator (this process, librdkafka's \
         threads included); >= {:.0} % is saturated",
        100.0 * busy::SATURATED
    );
    let _ = writeln!(
        out,
        "{:<36} {:>14} {:>7} {:<8} {:>14} {:>7} {:<8}",
        "figure", "samsa broker", "client", "limit", "Kafka broker", "client", "limit"
    );
    let _ = writeln!(out, "{}", "-".repeat(100));
    for r in rows().into_iter().filter(|r| r.unit == "MB/s") {
        let id = r.id.trim_end_matches(".mb_s");
        let [sb, sc, sl] = side(Some(samsa), id);
        let [kb, kc, kl] = side(kafka, id);
        let _ = writeln!(
            out,
            "{:<36} {sb:>14} {sc:>7} {sl:<8} {kb:>14} {kc:>7} {kl:<8}",
            r.label
        );
    }
    let _ = writeln!(
        out,
        "(limit client: the load generator's core, not the broker, set the figure, for both \
         brokers alike;\n neither: no core saturated, so likely disk I/O, the network or waits \
         (acks=all, fetch.wait.max.ms))"
    );
}

pub fn json(meta: Value, limits: &Limits, samsa: &Results, kafka: Option<&Results>) -> Value {
    let broker = |r: &Results| {
        json!({
            "figures": r.figures,
            "errors": r.errors,
            "notes": r.notes,
        })
    };
    let targets: Vec<Value> = targets(limits)
        .iter()
        .map(|t| {
            let s = t.check(&samsa.figures);
            let k = kafka.and_then(|k| t.check(&k.figures));
            json!({
                "target": t.name,
                "figure": t.figure,
                "threshold": t.threshold,
                "at_least": t.at_least,
                "samsa": s.map(|x| x.0), "samsa_pass": s.map(|x| x.1),
                "kafka": k.map(|x| x.0), "kafka_pass": k.map(|x| x.1),
            })
        })
        .collect();
    json!({
        "meta": meta,
        "limits_mb_s": {
            "disk_buffered": limits.disk.buffered_mb_s,
            "disk_buffered_then_fdatasync": limits.disk.buffered_then_sync_mb_s,
            "disk_fdatasync_every_mib": limits.disk.sync_each_mb_s,
            "loopback_tcp": limits.loopback_mb_s,
        },
        "samsa": broker(samsa),
        "kafka": kafka.map(broker),
        "targets": targets,
    })
}
