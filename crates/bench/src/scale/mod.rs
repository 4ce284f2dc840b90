//! `samsa-bench scale`: the metadata path at cluster scale, by simulation. Starts the real
//! controller quorum (three samsa voters) and many simulated brokers (`sim`: observers of the
//! metadata log that register and heartbeat, with no data path, all tasks of this process),
//! then measures, at each size:
//! 1. creating the partitions (CreateTopics to the quorum, every replica on a simulated
//!    broker) until every simulated broker has received the committed records;
//! 2. one broker falling silent: until its session expired, it was fenced, every partition
//!    it led has another leader, and every broker has received that;
//! 3. SIGKILL of the active controller: until another serves heartbeats, and until every
//!    broker has heartbeated to it;
//! 4. the active controller's resident memory before and after the partitions, per partition.

mod learner;
mod quorum;
mod sim;

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use samsa_metadata::raft::rpc::{Request, Response};
use samsa_metadata::state::BrokerId;
use samsa_metadata::NodeId;

use learner::{Event, Learner};
use quorum::{Quorum, Timing};
use sim::{ControllerClient, SimBroker};

/// Partitions per created topic.
const PER_TOPIC: usize = 1000;
const REPLICATION: usize = 3;
/// Simulated broker ids start here, clear of the voters' (1 to 3).
const FIRST_SIM: BrokerId = 1000;

/// One size of the run.
#[derive(Clone, Copy)]
pub struct Size {
    pub partitions: usize,
    pub brokers: usize,
}

/// What one size measured, seconds unless named otherwise.
pub struct Figures {
    pub size: Size,
    pub join_s: f64,
    pub create_acked_s: f64,
    pub create_all_s: f64,
    pub fence_led: usize,
    pub fence_total_s: f64,
    pub fence_after_expiry_s: f64,
    pub failover_serving_s: f64,
    pub failover_all_s: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
}

impl Figures {
    pub fn bytes_per_partition(&self) -> f64 {
        (self.rss_after_mib - self.rss_before_mib) * 1048576.0 / self.size.partitions as f64
    }
}

pub struct Options<'a> {
    pub samsa_bin: &'a Path,
    pub work: &'a Path,
    pub logs: &'a Path,
    pub timing: Timing,
    /// How long any one step may take before the run fails.
    pub step_limit: Duration,
}

pub fn run(sizes: &[Size], opts: &Options) -> Result<Vec<Figures>, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for &size in sizes {
        eprintln!(
            "[scale] {} partitions over {} simulated brokers",
            size.partitions, size.brokers
        );
        let figures = runtime.block_on(run_size(size, opts))?;
        eprintln!("{}", table(std::slice::from_ref(&figures)));
        all.push(figures);
    }
    Ok(all)
}

/// Polls `done` every few milliseconds until it holds, or fails naming `what`.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not done within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// The index (+1) of the first event `pick` accepts, as the full observer saw it.
fn event_at(full: &Learner, pick: impl Fn(&Event) -> bool) -> Option<(u64, Event)> {
    let full = full.full.as_ref()?.lock().unwrap();
    full.events
        .iter()
        .find(|(_, e)| pick(e))
        .map(|&(i, e)| (i + 1, e))
}

fn all_have(brokers: &[SimBroker], through: u64, except: Option<BrokerId>) -> bool {
    brokers
        .iter()
        .filter(|b| Some(b.id) != except)
        .all(|b| b.learner.committed.load(Ordering::Acquire) >= through)
}

async fn leader_of(voters: &[(NodeId, String)], limit: Duration) -> Result<NodeId, String> {
    let mut client = ControllerClient::new(voters.to_vec());
    match client
        .call(&Request::DescribeQuorum, Instant::now() + limit)
        .await
    {
        Some(Response::DescribeQuorum(Ok(q))) => Ok(q.leader_id),
        _ => Err("no controller answered DescribeQuorum".into()),
    }
}

async fn run_size(size: Size, opts: &Options<'_>) -> Result<Figures, String> {
    let limit = opts.step_limit;
    let work = opts.work.join(format!("scale-{}", size.partitions));
    let mut quorum = Quorum::start(opts.samsa_bin, &work, opts.logs, opts.timing)
        .map_err(|e| format!("starting the quorum: {e}"))?;
    let voters = quorum.controllers();

    // Brokers join one by one (one membership change at a time), then all register at once.
    let started = Instant::now();
    let mut brokers = Vec::with_capacity(size.brokers);
    for k in 0..size.brokers {
        let id = FIRST_SIM + k as BrokerId;
        brokers.push(SimBroker::join(id, k == 0, &voters, Instant::now() + limit).await?);
        if k == 0 {
            // The voters' own brokers register first, as in a cluster that exists before
            // brokers join it: the first of them bootstraps the feature levels, and until
            // they serve, CreateTopics has no broker to go to.
            let full = brokers[0].learner.clone();
            until("the voters' brokers registered", limit, || {
                full.read_metadata(|m| {
                    m.features.is_some()
                        && (1..=3).all(|id| m.brokers.get(&id).is_some_and(|b| !b.fenced))
                })
            })
            .await?;
        }
    }
    for b in &mut brokers {
        b.start_heartbeats(&voters, opts.timing.heartbeat);
    }
    until("simulated brokers registered and unfenced", limit, || {
        brokers
            .iter()
            .all(|b| b.beats.last_ok.lock().unwrap().is_some())
    })
    .await?;
    let join_s = started.elapsed().as_secs_f64();
    let full = brokers[0].learner.clone();

    let leader = leader_of(&voters, limit).await?;
    // Settled: what the controller holds before any partition.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_mib = quorum.rss_mib(leader).unwrap_or(0.0);

    // 1. Creation.
    let ids: Vec<BrokerId> = brokers.iter().map(|b| b.id).collect();
    let started = Instant::now();
    create_topics(&quorum.bootstrap(), size.partitions, &ids, limit).await?;
    let create_acked_s = started.elapsed().as_secs_f64();
    let mut created_at = None;
    until("every broker received the partitions", limit, || {
        created_at = created_at.or_else(|| {
            event_at(
                &full,
                |e| matches!(e, Event::Partitions(n) if *n >= size.partitions),
            )
        });
        created_at.is_some_and(|(at, _)| all_have(&brokers, at, None))
    })
    .await?;
    let create_all_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_mib = quorum.rss_mib(leader).unwrap_or(0.0);

    // 2. Fencing a silent broker (not the full observer, which must keep counting).
    let victim = &brokers[1];
    let fence_led = full.read_metadata(|m| {
        let led = m.topics.values().flat_map(|t| &t.partitions);
        led.filter(|p| p.leader == victim.id).count()
    });
    let started = Instant::now();
    victim.beats.silenced.store(true, Ordering::Release);
    // Its session runs from the last heartbeat the controller answered.
    let last_beat = victim
        .beats
        .last_ok
        .lock()
        .unwrap()
        .map_or(started, |b| b.0);
    let mut fenced_at = None;
    until("fence and leadership moves delivered", limit, || {
        fenced_at = fenced_at.or_else(|| {
            event_at(
                &full,
                |e| matches!(e, Event::Fenced { broker, .. } if *broker == victim.id),
            )
        });
        fenced_at.is_some_and(|(at, _)| all_have(&brokers, at, Some(victim.id)))
    })
    .await?;
    let done = Instant::now();
    if let Some((_, Event::Fenced { still_led, .. })) = fenced_at {
        if still_led > 0 {
            return Err(format!(
                "{still_led} partitions without another leader after the fence"
            ));
        }
    }
    let fence_total_s = (done - started).as_secs_f64();
    let expiry = last_beat + opts.timing.session;
    let fence_after_expiry_s = done.saturating_duration_since(expiry).as_secs_f64();

    // 3. Failover of the active controller.
    let leader = leader_of(&voters, limit).await?;
    let killed = Instant::now();
    quorum
        .kill(leader)
        .map_err(|e| format!("killing voter {leader}: {e}"))?;
    let answered_after = |b: &SimBroker| {
        b.beats
            .last_ok
            .lock()
            .unwrap()
            .is_some_and(|(at, by)| at > killed && by != leader)
    };
    until("a new controller answers heartbeats", limit, || {
        brokers.iter().any(answered_after)
    })
    .await?;
    let failover_serving_s = killed.elapsed().as_secs_f64();
    until(
        "every broker heartbeats to the new controller",
        limit,
        || {
            brokers
                .iter()
                .filter(|b| b.id != victim.id)
                .all(answered_after)
        },
    )
    .await?;
    let failover_all_s = killed.elapsed().as_secs_f64();

    drop(brokers);
    drop(quorum);
    let _ = fs::remove_dir_all(&work);
    Ok(Figures {
        size,
        join_s,
        create_acked_s,
        create_all_s,
        fence_led,
        fence_total_s,
        fence_after_expiry_s,
        failover_serving_s,
        failover_all_s,
        rss_before_mib,
        rss_after_mib,
    })
}

/// CreateTopics through a voter: topics of `PER_TOPIC` partitions, replicas round robin over
/// the simulated brokers, so leaderships spread evenly and no voter holds a replica.
async fn create_topics(
    bootstrap: &str,
    partitions: usize,
    brokers: &[BrokerId],
    limit: Duration,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let assignment: Vec<Vec<i32>> = (0..partitions)
        .map(|p| {
            (0..REPLICATION.min(brokers.len()))
                .map(|r| brokers[(p + r) % brokers.len()])
                .collect()
        })
        .collect();
    let chunks: Vec<Vec<&[i32]>> = assignment
        .chunks(PER_TOPIC)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let names: Vec<String> = (0..chunks.len()).map(|t| format!("scale-{t}")).collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .zip(&chunks)
        .map(|(name, c)| NewTopic::new(name, c.len() as i32, TopicReplication::Variable(c)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(limit))
        .operation_timeout(Some(limit));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| format!("CreateTopics: {e}"))?;
    for r in results {
        r.map_err(|(topic, e)| format!("CreateTopics {topic}: {e}"))?;
    }
    Ok(())
}

/// The figures as a plain-text table (the README's copy is made from it).
pub fn table(figures: &[Figures]) -> String {
    let mut out = String::from(
        "partitions  brokers  join+register  create: acked / all brokers  \
         fence (led): total / after expiry  failover: serving / all heartbeating  \
         controller RSS before → after, per partition\n",
    );
    for f in figures {
        out.push_str(&format!(
            "{:>10}  {:>7}  {:>12.2}s  {:>13.2}s / {:>6.2}s  {:>7} {:>7.2}s / {:>6.2}s  \
             {:>14.2}s / {:>6.2}s  {:>7.1} → {:>7.1} MiB, {:>6.0} B\n",
            f.size.partitions,
            f.size.brokers,
            f.join_s,
            f.create_acked_s,
            f.create_all_s,
            format!("({})", f.fence_led),
            f.fence_total_s,
            f.fence_after_expiry_s,
            f.failover_serving_s,
            f.failover_all_s,
            f.rss_before_mib,
            f.rss_after_mib,
            f.bytes_per_partition(),
        ));
    }
    out
}

/// `samsa-bench scale [--smoke] [--sizes 1,10,100] [--samsa-bin PATH] [--out DIR]`: each
/// size N is N × 1 000 partitions over min(10 N, 100) simulated brokers. `--smoke` (what
/// `make test` runs) is one tiny size against the debug binary with short sessions, failing
/// if any step does not complete.
pub fn main(args: impl Iterator<Item = String>, repo: &Path) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (mut smoke, mut sizes, mut bin, mut out) = (false, vec![1, 10, 100], None, None);
    let mut args = args;
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--smoke" => {
                smoke = true;
                Some(())
            }
            "--sizes" => args.next().and_then(|s| {
                sizes = s
                    .split(',')
                    .map(|n| n.trim().parse().ok())
                    .collect::<Option<_>>()?;
                (!sizes.is_empty() && !sizes.contains(&0)).then_some(())
            }),
            "--samsa-bin" => args.next().map(|p| bin = Some(p.into())),
            "--out" => args.next().map(|p| out = Some(std::path::PathBuf::from(p))),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("usage: samsa-bench scale [--smoke] [--sizes 1,10,100] [--samsa-bin PATH] [--out DIR]");
            return ExitCode::from(2);
        }
    }
    let (default_out, default_bin) = match smoke {
        true => ("target/bench-smoke", "target/debug/samsa"),
        false => ("target/bench", "target/release/samsa"),
    };
    let out = out.unwrap_or_else(|| repo.join(default_out));
    let bin = bin.unwrap_or_else(|| repo.join(default_bin));
    let (work, logs) = (out.join("scale-tmp"), out.join("logs"));
    for dir in [&work, &logs] {
        if let Err(e) = fs::create_dir_all(dir) {
            eprintln!("samsa-bench scale: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let sizes: Vec<Size> = match smoke {
        true => vec![Size {
            partitions: 1000,
            brokers: 10,
        }],
        false => sizes
            .iter()
            .map(|&n: &usize| Size {
                partitions: n * 1000,
                brokers: (n * 10).min(100),
            })
            .collect(),
    };
    // Kafka's defaults (broker.heartbeat.interval.ms, broker.session.timeout.ms), shortened
    // for the smoke run.
    let timing = match smoke {
        true => Timing {
            heartbeat: Duration::from_millis(500),
            session: Duration::from_millis(1500),
        },
        false => Timing {
            heartbeat: Duration::from_secs(2),
            session: Duration::from_secs(9),
        },
    };
    let opts = Options {
        samsa_bin: &bin,
        work: &work,
        logs: &logs,
        timing,
        step_limit: Duration::from_secs(if smoke { 30 } else { 240 }),
    };
    match run(&sizes, &opts) {
        Ok(figures) => {
            println!("{}", table(&figures));
            let _ = fs::remove_dir_all(&work);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("samsa-bench scale: {e} (voter logs in {})", logs.display());
            ExitCode::FAILURE
        }
    }
}
