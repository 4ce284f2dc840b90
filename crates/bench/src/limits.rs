//! The machine's physical limits that a broker's figures are compared with: how fast the
//! data directory's disk takes sequential writes, and how fast loopback TCP carries bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;

/// Sequential write bandwidths of one disk, MB/s (10^6 bytes).
pub struct Disk {
    /// `write(2)` of 1 MiB chunks into the page cache, no sync: what a broker that leaves
    /// flushing to the OS (both samsa and Kafka by default) can at best sustain in a burst.
    pub buffered_mb_s: f64,
    /// The same writes followed by one `fdatasync`, timed to its end: the device's rate.
    pub buffered_then_sync_mb_s: f64,
    /// `fdatasync` after every 1 MiB: a broker that syncs each write.
    pub sync_each_mb_s: f64,
}

/// Write `total` bytes to a scratch file in `dir` three ways; the file is removed after.
/// The slow way (a sync per chunk) stops after `sync_each_for`.
pub fn disk(dir: &Path, total: usize, sync_each_for: Duration) -> io::Result<Disk> {
    let path = dir.join("disk-probe.bin");
    let chunk: Vec<u8> = (0..CHUNK)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mb = |bytes: usize, t: Duration| bytes as f64 / 1e6 / t.as_secs_f64();

    let mut f = File::create(&path)?;
    let start = Instant::now();
    for _ in 0..total / CHUNK {
        f.write_all(&chunk)?;
    }
    let buffered = start.elapsed();
    f.sync_data()?;
    let then_sync = start.elapsed();
    drop(f);
    fs::remove_file(&path)?;

    // Bounded by time as well: a slow device must not stall the whole bench.
    let mut f = File::create(&path)?;
    let start = Instant::now();
    let mut written = 0;
    while written < total && start.elapsed() < sync_each_for {
        f.write_all(&chunk)?;
        f.sync_data()?;
        written += CHUNK;
    }
    let sync_each = start.elapsed();
    drop(f);
    fs::remove_file(&path)?;

    Ok(Disk {
        buffered_mb_s: mb(total, buffered),
        buffered_then_sync_mb_s: mb(total, then_sync),
        sync_each_mb_s: mb(written, sync_each),
    })
}

/// One sender and one receiver thread over 127.0.0.1, 1 MiB writes and reads, for about
/// `duration`; returns MB/s received.
pub fn loopback(duration: Duration) -> io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = thread::spawn(move || -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let buf = vec![0x5au8; CHUNK];
        let start = Instant::now();
        while start.elapsed() < duration {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let (mut conn, _) = listener.accept()?;
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0usize;
    let start = Instant::now();
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received += n;
    }
    let elapsed = start.elapsed();
    sender.join().expect("loopback sender panicked")?;
    Ok(received as f64 / 1e6 / elapsed.as_secs_f64())
}
