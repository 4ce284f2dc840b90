//! A reference Kafka of one test's own, for a broker setting the shared one (run.sh's) does
//! not have and must not have, since every other test compares against Kafka's defaults.
//! Started through `compat/reference/kafka_ref.py run` with `--override`s; stopped (SIGTERM,
//! which kafka_ref.py turns into a clean Kafka shutdown) when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long Kafka may take to start on a machine busy with builds.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

pub struct OwnKafka {
    child: Child,
    /// The ready file and Kafka's log; removed with the Kafka.
    _dir: tempfile::TempDir,
    /// The PLAINTEXT listener, "127.0.0.1:P".
    pub bootstrap: String,
}

impl OwnKafka {
    /// A Kafka with run.sh's settings (ACLs enforced) and `overrides` of server.properties.
    pub fn start(overrides: &[(&str, &str)]) -> Result<OwnKafka> {
        let dir = tempfile::tempdir()?;
        let ready = dir.path().join("ready");
        let log = dir.path().join("kafka-ref.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/reference/kafka_ref.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .args(["run", "--authorizer", "--ready-file"])
            .arg(&ready);
        for (key, value) in overrides {
            cmd.arg("--override").arg(format!("{key}={value}"));
        }
        let out = File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd.spawn().context("starting kafka_ref.py")?;
        let mut kafka = OwnKafka {
            child,
            _dir: dir,
            bootstrap: String::new(),
        };
        kafka.bootstrap = kafka.await_ready(&ready, &log)?;
        Ok(kafka)
    }

    fn await_ready(&mut self, ready: &PathBuf, log: &PathBuf) -> Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(ready) {
                if let Some(addr) = text.lines().next().filter(|l| !l.is_empty()) {
                    return Ok(addr.to_owned());
                }
            }
            let log_text = || std::fs::read_to_string(log).unwrap_or_default();
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the reference Kafka exited ({status}) before it was ready:\n{}",
                    log_text()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the reference Kafka not ready after {READY_TIMEOUT:?}:\n{}",
                    log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for OwnKafka {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
