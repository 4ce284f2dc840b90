//! Starting and stopping the brokers under test as child processes.
//!
//! samsa is the release binary on a fresh data directory and an ephemeral port; Kafka is the
//! reference broker of `compat/reference/kafka_ref.py`, whose temp dir we place (through
//! `TMPDIR`) beside samsa's so both write to the same disk.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{pin, procstat, tls};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Samsa,
    Kafka,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Samsa => "samsa",
            Kind::Kafka => "kafka",
        }
    }
}

/// Where the brokers' programs and scratch space are.
pub struct Paths {
    pub repo: PathBuf,
    pub samsa_bin: PathBuf,
    /// Scratch root on the data disk: samsa data dirs and Kafka's temp dir live here.
    pub work: PathBuf,
    /// Broker logs are kept here for a post-mortem.
    pub logs: PathBuf,
    /// The core the brokers run on in pinned mode (see [`crate::pin`]); `None`: unpinned.
    pub broker_cpu: Option<usize>,
    /// Certificates for each broker's TLS listener; `None`: no TLS listener (openssl failed).
    pub tls: Option<tls::Certs>,
}

/// A running broker.
pub struct Broker {
    pub kind: Kind,
    child: Child,
    /// The process whose CPU and memory we measure: samsa itself, or the Kafka JVM (not
    /// the Python wrapper that started it).
    pub pid: u32,
    pub bootstrap: String,
    /// Process start to ready, seconds. samsa: spawn to its `ready` log line. Kafka: JVM
    /// start (from /proc, 10 ms ticks) to kafka_ref's ready file, which kafka_ref writes once
    /// ApiVersions and Metadata answer (it probes every 100 ms); storage formatting, a
    /// separate JVM run before, is excluded.
    pub startup_s: f64,
    pub log_path: PathBuf,
    /// The TLS listener's address, when [`Paths::tls`] gave it certificates.
    pub tls_bootstrap: Option<String>,
}

impl Broker {
    /// Start samsa on `data_dir` (created if missing, reused if not: a restart).
    pub fn start_samsa(paths: &Paths, data_dir: &Path, log_name: &str) -> io::Result<Broker> {
        fs::create_dir_all(data_dir)?;
        let log_path = paths.logs.join(log_name);
        let mut log = File::create(&log_path)?;
        let (config, tls_bootstrap) = samsa_config(paths)?;
        let start = Instant::now();
        let mut cmd = Command::new(&paths.samsa_bin);
        if let Some(cpu) = paths.broker_cpu {
            pin::pin_child(&mut cmd, cpu);
        }
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", paths.samsa_bin.display())))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Drain stderr for the broker's whole life so it never blocks on a full pipe.
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(addr) = ready_address(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let bootstrap = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "samsa did not report ready within 60 s; log: {}\n{}",
                    log_path.display(),
                    tail(&log_path, 20)
                )));
            }
        };
        let startup_s = start.elapsed().as_secs_f64();
        let pid = child.id();
        Ok(Broker {
            kind: Kind::Samsa,
            child,
            pid,
            bootstrap,
            startup_s,
            log_path,
            tls_bootstrap,
        })
    }

    /// Start Kafka through kafka_ref.py; its data is removed when it stops.
    pub fn start_kafka(paths: &Paths) -> io::Result<Broker> {
        let ready = paths.work.join("kafka.ready");
        let _ = fs::remove_file(&ready);
        let log_path = paths.logs.join("kafka-ref.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new("python3");
        if let Some(cpu) = paths.broker_cpu {
            pin::pin_child(&mut cmd, cpu);
        }
        let mut child = cmd
            .arg(paths.repo.join("compat/reference/kafka_ref.py"))
            .arg("run")
            // Kafka as `kafka-server-start.sh` runs it: 1 GiB heap, G1 (not the tests' heap).
            .arg("--server-jvm")
            .arg("--ready-file")
            .arg(&ready)
            .args(
                paths
                    .tls
                    .iter()
                    .flat_map(|c| [Path::new("--ssl-keystore"), &c.keystore]),
            )
            .env("TMPDIR", &paths.work)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(300);
        // The ready file: the plaintext address, the SASL one (unused here), the SSL one.
        let (bootstrap, tls_bootstrap) = loop {
            if let Ok(s) = fs::read_to_string(&ready) {
                let lines: Vec<&str> = s.lines().map(str::trim).collect();
                if let Some(plain) = lines.first().filter(|l| !l.is_empty()) {
                    let tls = lines.get(2).filter(|l| !l.is_empty());
                    break (plain.to_string(), tls.map(|l| l.to_string()));
                }
            }
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "kafka_ref exited with {status} before ready\n{}",
                    tail(&log_path, 30)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other("Kafka not ready within 300 s"));
            }
            thread::sleep(Duration::from_millis(10));
        };
        let ready_at = procstat::uptime()?;
        let jvm = procstat::children_matching(child.id(), "kafka.Kafka");
        let pid = *jvm
            .first()
            .ok_or_else(|| io::Error::other("Kafka JVM process not found"))?;
        let startup_s = ready_at - procstat::start_time_since_boot(pid)?;
        Ok(Broker {
            kind: Kind::Kafka,
            child,
            pid,
            bootstrap,
            startup_s,
            log_path,
            tls_bootstrap,
        })
    }

    /// `Some(reason)` if the broker process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited: {status}", self.kind.name())),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.kind.name())),
        }
    }

    pub fn cpu_seconds(&self) -> f64 {
        procstat::cpu_seconds(self.pid).unwrap_or(f64::NAN)
    }

    /// SIGTERM (samsa flushes and exits; kafka_ref stops Kafka and removes its dir), then
    /// SIGKILL after 60 s.
    pub fn stop(mut self) -> io::Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() || self.kind == Kind::Kafka {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "samsa exited {status} on SIGTERM"
                    )))
                };
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Err(io::Error::other(format!(
            "{} ignored SIGTERM for 60 s; killed",
            self.kind.name()
        )))
    }
}

/// The configuration samsa runs with: `etc/samsa.toml`, plus a TLS listener on a free
/// port when there are certificates; and that listener's address.
fn samsa_config(paths: &Paths) -> io::Result<(PathBuf, Option<String>)> {
    let base = paths.repo.join("etc/samsa.toml");
    let Some(certs) = &paths.tls else {
        return Ok((base, None));
    };
    let addr = format!("127.0.0.1:{}", samsa_test_ports::free_port());
    // Every table in etc/samsa.toml is commented out, so these land at the top level.
    let text = fs::read_to_string(&base)?
        + &format!(
            "\n[[listener]]\nname = \"bench-tls\"\naddress = \"{addr}\"\nprotocol = \"SSL\"\n\n\
             [tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            certs.cert.display().to_string(),
            certs.key.display().to_string()
        );
    let path = paths.work.join("samsa-bench.toml");
    fs::write(&path, text)?;
    Ok((path, Some(addr)))
}

/// The address in samsa's `samsa ready, listening on ADDR` line, if this is that line.
fn ready_address(line: &str) -> Option<String> {
    let clean = strip_ansi(line);
    let rest = clean.split("samsa ready, listening on ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte(@..~)
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ready_address_through_colour_codes() {
        let line = "\x1b[2m2025-01-01T00:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2msamsa::broker\x1b[0m\x1b[2m:\x1b[0m samsa ready, listening on 127.0.0.1:40123";
        assert_eq!(ready_address(line).as_deref(), Some("127.0.0.1:40123"));
        assert_eq!(ready_address("INFO something else"), None);
    }
}
