//! The real controller quorum of the scale benchmark: three samsa processes, each a voter and
//! (samsa has no controller-only role) a broker whose data path stays idle, since every
//! partition the benchmark creates is placed on simulated brokers only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use samsa_metadata::NodeId;
use samsa_test_ports::free_port;

use crate::procstat;

pub struct Voter {
    pub id: NodeId,
    child: Child,
    pub pid: u32,
    /// The Kafka listener, for CreateTopics.
    pub kafka: String,
    /// The controller listener, where brokers register and heartbeat.
    pub controller: String,
    pub log: PathBuf,
}

pub struct Quorum {
    pub voters: Vec<Voter>,
}

/// Session timing the voters are started with (and the simulated brokers heartbeat at).
#[derive(Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub session: Duration,
}

impl Quorum {
    /// Starts three voters on fresh data directories under `work`, logs in `logs`, and waits
    /// until each reports ready.
    pub fn start(bin: &Path, work: &Path, logs: &Path, timing: Timing) -> io::Result<Quorum> {
        let ids: [NodeId; 3] = [1, 2, 3];
        let controllers: Vec<String> = ids
            .iter()
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let voters_list = ids
            .iter()
            .zip(&controllers)
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut voters = Vec::new();
        for (id, controller) in ids.iter().zip(&controllers) {
            let kafka = format!("127.0.0.1:{}", free_port());
            let data = work.join(format!("node{id}"));
            let _ = fs::remove_dir_all(&data);
            fs::create_dir_all(&data)?;
            let config = work.join(format!("node{id}.toml"));
            fs::write(
                &config,
                format!(
                    "listen = \"{kafka}\"\ndata_dir = \"{}\"\nnode_id = {id}\n\
                     controller_quorum_voters = \"{voters_list}\"\n\
                     controller_listen = \"{controller}\"\n\
                     process_roles = [\"broker\", \"controller\"]\n\
                     broker_heartbeat_interval_ms = {}\nbroker_session_timeout_ms = {}\n",
                    data.display(),
                    timing.heartbeat.as_millis(),
                    timing.session.as_millis(),
                ),
            )?;
            let log = logs.join(format!("scale-node{id}.log"));
            let child = Command::new(bin)
                .arg("--config")
                .arg(&config)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log)?)
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
            let pid = child.id();
            voters.push(Voter {
                id: *id,
                child,
                pid,
                kafka,
                controller: controller.clone(),
                log,
            });
        }
        let quorum = Quorum { voters };
        let deadline = Instant::now() + Duration::from_secs(60);
        for v in &quorum.voters {
            while !fs::read_to_string(&v.log)?.contains("samsa ready") {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "voter {} not ready within 60 s; see {}",
                        v.id,
                        v.log.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(quorum)
    }

    pub fn controllers(&self) -> Vec<(NodeId, String)> {
        self.voters
            .iter()
            .map(|v| (v.id, v.controller.clone()))
            .collect()
    }

    pub fn bootstrap(&self) -> String {
        let kafka: Vec<&str> = self.voters.iter().map(|v| v.kafka.as_str()).collect();
        kafka.join(",")
    }

    pub fn voter(&self, id: NodeId) -> Option<&Voter> {
        self.voters.iter().find(|v| v.id == id)
    }

    /// Resident memory of voter `id`, MiB.
    pub fn rss_mib(&self, id: NodeId) -> Option<f64> {
        procstat::vm_mib(self.voter(id)?.pid, "VmRSS").ok()
    }

    /// SIGKILLs voter `id`.
    pub fn kill(&mut self, id: NodeId) -> io::Result<()> {
        let v = self.voters.iter_mut().find(|v| v.id == id);
        let v = v.ok_or_else(|| io::Error::other(format!("no voter {id}")))?;
        v.child.kill()?;
        v.child.wait().map(|_| ())
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        for v in &mut self.voters {
            let _ = v.child.kill();
            let _ = v.child.wait();
        }
    }
}
