//! `samsa-bench`: what `make bench` runs. Measures the machine's physical limits, then the
//! same produce, latency, consume and resource figures against a fresh samsa and a fresh
//! Apache Kafka (compat/reference), prints one table with the targets checked, and
//! writes `results.json` and `bench.svg`.
//!
//! `samsa-bench scale ...` is the metadata path at cluster scale, by simulation (see `scale`).
//!
//! Usage: samsa-bench [--quick | --smoke] [--skip-kafka] [--unpinned] [--rounds N] [--samsa-bin PATH] [--out DIR]
//!
//! `--smoke` is what `make test` runs: samsa alone (the debug binary unless told), tiny
//! counts and sub-second limit probes, so every part of the tool runs in seconds; its
//! figures mean nothing and nothing is asserted about them.

mod broker;
mod busy;
mod fleet;
mod limits;
mod omb;
mod pin;
mod procstat;
mod report;
mod rounds;
mod scale;
mod suite;
mod svg;
mod tls;
mod workload;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use broker::{Kind, Paths};

struct Args {
    quick: bool,
    smoke: bool,
    skip_kafka: bool,
    unpinned: bool,
    rounds: Option<usize>,
    samsa_bin: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        smoke: false,
        skip_kafka: false,
        unpinned: false,
        rounds: None,
        samsa_bin: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--smoke" => a.smoke = true,
            "--skip-kafka" => a.skip_kafka = true,
            "--unpinned" => a.unpinned = true,
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                match n.parse() {
                    Ok(n) if n >= 1 => a.rounds = Some(n),
                    _ => return Err(format!("--rounds needs a number from 1, got {n}")),
                }
            }
            "--samsa-bin" => {
                a.samsa_bin = Some(it.next().ok_or("--samsa-bin needs a path")?.into())
            }
            "--out" => a.out = Some(it.next().ok_or("--out needs a directory")?.into()),
            "-h" | "--help" => {
                println!("usage: samsa-bench [--quick | --smoke] [--skip-kafka] [--unpinned] [--rounds N] [--samsa-bin PATH] [--out DIR]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.smoke && a.quick {
        return Err("--smoke and --quick exclude each other".into());
    }
    a.skip_kafka |= a.smoke;
    Ok(a)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("scale") {
        let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let repo = repo.canonicalize().unwrap_or(repo);
        return scale::main(std::env::args().skip(2), &repo);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("samsa-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let repo = repo.canonicalize().unwrap_or(repo);
    // The smoke run writes beside, not over, the last real results.
    let (default_out, default_bin) = if args.smoke {
        ("target/bench-smoke", "target/debug/samsa")
    } else {
        ("target/bench", "target/release/samsa")
    };
    let out = args.out.unwrap_or_else(|| repo.join(default_out));
    let pinning = (!args.unpinned).then(pin::Pinning::for_machine).flatten();
    let mut paths = Paths {
        broker_cpu: pinning.map(|p| p.broker),
        samsa_bin: args.samsa_bin.unwrap_or_else(|| repo.join(default_bin)),
        work: out.join("tmp"),
        logs: out.join("logs"),
        repo,
        tls: None,
    };
    // Scratch space on the repo's disk, shared by both brokers and the disk probe.
    let _ = fs::remove_dir_all(&paths.work);
    for dir in [&out, &paths.work, &paths.logs] {
        if let Err(e) = fs::create_dir_all(dir) {
            eprintln!("samsa-bench: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    // One CA and broker certificate for both brokers' TLS listeners (the TLS produce figure).
    paths.tls = match tls::make(&paths.work.join("tls")) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("samsa-bench: no TLS listeners, the TLS figure is not measured: {e}");
            None
        }
    };
    let plan = if args.smoke {
        suite::Plan::smoke()
    } else if args.quick {
        suite::Plan::quick()
    } else {
        suite::Plan::full()
    };
    let load_before = procstat::load_average();
    // Read now: others may commit while the bench runs. It names the tree the binary was
    // built from only if `make bench` just built it.
    let commit = git_head(&paths);

    eprintln!(
        "[limits] disk and loopback bandwidth in {}",
        paths.work.display()
    );
    let (disk_bytes, sync_each_for, loopback_for) = if args.smoke {
        (
            16 << 20,
            Duration::from_millis(500),
            Duration::from_millis(300),
        )
    } else if args.quick {
        (256 << 20, Duration::from_secs(8), Duration::from_secs(1))
    } else {
        (1 << 30, Duration::from_secs(8), Duration::from_secs(3))
    };
    let disk = match limits::disk(&paths.work, disk_bytes, sync_each_for) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("samsa-bench: disk probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loopback_mb_s = match limits::loopback(loopback_for) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("samsa-bench: loopback probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limits = report::Limits {
        disk,
        loopback_mb_s,
    };

    // After the machine's limits, which are measured on all cores; before the first client.
    if let Some(p) = pinning {
        eprintln!(
            "[pinned] brokers on core {}, load generator on core {}",
            p.broker, p.load
        );
        if let Err(e) = pin::pin_current_thread(p.load) {
            eprintln!("samsa-bench: cannot pin the load generator: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Three rounds for the table's figures, one for a quick look or a smoke run.
    let rounds = args
        .rounds
        .unwrap_or(if args.quick || args.smoke { 1 } else { 3 });
    let (mut samsa_runs, mut kafka_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for kind in rounds::order(round, !args.skip_kafka) {
            eprintln!("[round {} of {rounds}] {}", round + 1, kind.name());
            let results = suite::run(kind, &paths, &plan);
            match kind {
                Kind::Samsa => samsa_runs.push(results),
                Kind::Kafka => kafka_runs.push(results),
            }
        }
    }
    let samsa = rounds::median_results(&samsa_runs);
    let kafka = (!args.skip_kafka).then(|| rounds::median_results(&kafka_runs));
    let spreads = rounds::spreads(&samsa_runs, &kafka_runs);

    let table = report::table(&limits, &samsa, kafka.as_ref());
    println!("{table}");
    if !spreads.is_empty() {
        println!("{}", rounds::spread_table(&spreads));
    }
    if args.smoke {
        println!("smoke run: tiny counts against {}; these figures and PASS/FAIL say nothing about speed (run `make bench`)", paths.samsa_bin.display());
    }

    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    let meta = json!({
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "quick": args.quick,
        "rounds": rounds,
        "smoke": args.smoke,
        "produce_seconds_per_case": plan.produce.as_secs_f64(),
        "produce_records_max": plan.produce_records,
        "latency_seconds": plan.latency.as_secs_f64(),
        "omb_seconds_per_workload": plan.omb.as_secs_f64(),
        "omb_records_max": plan.omb_records,
        "client": format!("librdkafka {librdkafka} (rdkafka crate)"),
        "kafka": if args.skip_kafka { "skipped".to_owned() } else { kafka_version(&paths) },
        "pinned": pinning.map(|p| json!({ "broker_core": p.broker, "load_core": p.load })),
        "kafka_jvm": "kafka-server-start.sh's: -Xmx1G -Xms1G, G1 (MaxGCPauseMillis=20, IHOP 35)",
        "samsa_commit": commit,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_1m": { "before": load_before, "after": procstat::load_average() },
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    });
    let mut json = report::json(meta, &limits, &samsa, kafka.as_ref());
    json["ratio_spread"] = rounds::spread_json(&spreads);
    // Every round's own figures, beside the medians the table shows.
    let figures =
        |runs: &[suite::Results]| runs.iter().map(|r| json!(r.figures)).collect::<Vec<_>>();
    json["round_figures"] = json!({ "samsa": figures(&samsa_runs), "kafka": figures(&kafka_runs) });
    let json_path = out.join("results.json");
    let svg_path = out.join("bench.svg");
    let written = fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
    )
    .and_then(|()| fs::write(&svg_path, svg::render(&limits, &samsa, kafka.as_ref())));
    if let Err(e) = written {
        eprintln!("samsa-bench: writing results: {e}");
        return ExitCode::FAILURE;
    }
    let _ = fs::remove_dir_all(&paths.work);
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    // A figure that could not be measured fails the run; a missed target does not.
    let failed = !samsa.errors.is_empty() || kafka.as_ref().is_some_and(|k| !k.errors.is_empty());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn kafka_version(paths: &Paths) -> String {
    Command::new("python3")
        .arg(paths.repo.join("compat/reference/kafka_ref.py"))
        .arg("version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn git_head(paths: &Paths) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&paths.repo)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = run(&["rev-parse", "--short", "HEAD"]);
    let dirty = !run(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "crates/storage",
    ])
    .is_empty();
    if dirty {
        format!("{head}+dirty")
    } else {
        head
    }
}
