//! Harness for wire-level tests: starts the real `samsa` binary on a free port with a
//! fresh data directory, and talks to it with requests encoded by `kafka-protocol`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

pub mod batches;
pub mod client;
pub mod cluster;
pub mod differential;
pub mod metrics;
pub mod sasl;
pub mod telemetry;

/// How long the broker may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket timeout for tests: a hung broker fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a broker may take to close a connection it should close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Path of the broker binary: `SAMSA_BIN`, else the workspace's debug build.
pub fn samsa_bin() -> PathBuf {
    std::env::var_os("SAMSA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/samsa"))
}

/// A loopback port free at the moment of asking, for every listener a test's broker binds,
/// its Kafka listener included (see [`BrokerProcess::start_over`]).
pub use samsa_test_ports::free_port;

/// A broker process owned by a test; killed when dropped.
pub struct BrokerProcess {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: tempfile::TempDir,
    config: PathBuf,
}

impl BrokerProcess {
    /// Starts a broker with `extra_config` appended to a minimal config file.
    pub fn start(extra_config: &str) -> Result<BrokerProcess> {
        Self::start_over(extra_config, |_| Ok(()))
    }

    /// Starts a broker as [`Self::start`] does, over the data directory `prepare` makes
    /// first (at the path it is given, which does not exist yet): one an older samsa left.
    pub fn start_over(
        extra_config: &str,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<BrokerProcess> {
        let data_dir = tempfile::tempdir()?;
        prepare(&data_dir.path().join("data"))?;
        let config = data_dir.path().join("samsa.toml");
        std::fs::write(&config, extra_config)?;
        let mut broker = BrokerProcess {
            child: None,
            addr: String::new(),
            data_dir,
            config,
        };
        // Not port 0: a restarted broker binds its port again, and a port the kernel picked
        // lies in the ephemeral range, where an outgoing connection may take it meanwhile
        // (CI: a node killed and relaunched found its port in use).
        broker.launch(&format!("127.0.0.1:{}", free_port()))?;
        Ok(broker)
    }

    fn launch(&mut self, listen: &str) -> Result<()> {
        let bin = samsa_bin();
        let mut child = Command::new(&bin)
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // What it said before it was ready, to explain a broker that never gets there.
        let early = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let early_lines = early.clone();
        // Keep draining stderr for the life of the process so the broker never blocks on it.
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    ready = true;
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
                if !ready {
                    early_lines
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.clone());
                }
                if std::env::var_os("SAMSA_TEST_LOG").is_some() {
                    eprintln!("[samsa] {line}");
                }
            }
        });
        let addr = rx.recv_timeout(START_TIMEOUT).map_err(|_| {
            let said = early.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
            anyhow!("broker did not report ready within {START_TIMEOUT:?}; it said:\n{said}")
        })?;
        self.addr = addr;
        self.child = Some(child);
        Ok(())
    }

    /// Sends SIGTERM and returns the exit status code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let mut child = self.child.take().context("broker not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(child.wait()?.code())
    }

    /// Stops with SIGTERM and starts again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        let code = self.terminate()?;
        if code != Some(0) {
            bail!("broker exited with {code:?} on SIGTERM");
        }
        let addr = self.addr.clone();
        self.launch(&addr)
    }

    /// Kills with SIGKILL (a crash: no clean shutdown) and starts again on the same port
    /// and data directory.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        self.kill()?;
        self.relaunch()
    }

    /// Kills with SIGKILL (a crash) and leaves the broker stopped.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("broker not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts a stopped broker again on the same port and data directory.
    pub fn relaunch(&mut self) -> Result<()> {
        let addr = self.addr.clone();
        self.launch(&addr)
    }

    pub fn connect(&self) -> Result<Connection> {
        Connection::open(&self.addr)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client connection speaking the Kafka framing.
pub struct Connection {
    stream: TcpStream,
    next_correlation: i32,
    client_id: StrBytes,
}

impl Connection {
    pub fn open(addr: &str) -> Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            next_correlation: 1,
            client_id: StrBytes::from_static_str("protocol-tests"),
        })
    }

    /// The client id sent in each request's header from now on (`protocol-tests` unless
    /// set): what client quotas match.
    pub fn set_client_id(&mut self, client_id: &str) {
        self.client_id = StrBytes::from_string(client_id.to_owned());
    }

    /// Encodes `request` at `version` with a correct header, sends it, and decodes the response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.send_only(request, version)?;
        self.receive::<R>(version, correlation_id)
    }

    /// Sends without reading a response (for pipelining and acks=0); returns the correlation id.
    pub fn send_only<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        request.encode(&mut body, version)?;
        self.send_frame(&body)?;
        Ok(correlation_id)
    }

    /// Reads one response and checks its correlation id.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response> {
        let mut frame = self.read_frame()?;
        let api_key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown key"))?;
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id {} != expected {correlation_id}",
                header.correlation_id
            );
        }
        let response = R::Response::decode(&mut frame, version)?;
        if frame.has_remaining() {
            bail!(
                "{} bytes left after decoding the response",
                frame.remaining()
            );
        }
        Ok(response)
    }

    /// Writes raw bytes with a length prefix.
    pub fn send_frame(&mut self, body: &[u8]) -> Result<()> {
        let mut buf = BytesMut::with_capacity(body.len() + 4);
        buf.put_i32(body.len() as i32);
        buf.put_slice(body);
        self.stream.write_all(&buf)?;
        Ok(())
    }

    /// Writes raw bytes as they are, no prefix.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads one length-prefixed frame.
    pub fn read_frame(&mut self) -> Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame)?;
        Ok(Bytes::from(frame))
    }

    /// True when the broker has closed the connection: the next read ends the stream or
    /// is reset. False if the broker sends bytes instead or stays silent for [`CLOSE_TIMEOUT`].
    pub fn is_closed_by_peer(&mut self) -> bool {
        use std::io::ErrorKind;
        let mut byte = [0u8; 1];
        let _ = self.stream.set_read_timeout(Some(CLOSE_TIMEOUT));
        let read = self.stream.read(&mut byte);
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ),
        }
    }

    /// Whether response bytes arrive within `wait`, without consuming them. Lets a test
    /// check that a request is still being held by the broker (a parked long poll).
    pub fn response_arrives_within(&mut self, wait: Duration) -> Result<bool> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut byte = [0u8; 1];
        let peeked = self.stream.peek(&mut byte);
        self.stream.set_read_timeout(Some(IO_TIMEOUT))?;
        match peeked {
            Ok(0) => bail!("connection closed while waiting for a response"),
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Half-closes the connection: the broker reads end of stream, responses can still arrive.
    pub fn shutdown_write(&mut self) -> Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    }
}
