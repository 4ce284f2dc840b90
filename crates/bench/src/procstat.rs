//! What the kernel knows about a broker process: CPU time, memory, start time.
//!
//! Read from `/proc` so the same numbers come out for samsa and for the Kafka JVM, without
//! either broker's cooperation.

use std::fs;
use std::io;
use std::sync::OnceLock;

/// Clock ticks per second, the unit of the times in `/proc/PID/stat`.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    })
}

/// The fields of `/proc/PID/stat` after the command name, which may itself hold spaces
/// and parentheses; index 0 is field 3 (`state`) of proc(5).
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

fn field(fields: &[String], number: usize) -> io::Result<f64> {
    fields
        .get(number - 3)
        .and_then(|f| f.parse::<f64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short /proc stat"))
}

/// User plus system CPU seconds the process has used so far (all its threads).
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let f = stat_fields(pid)?;
    Ok((field(&f, 14)? + field(&f, 15)?) / clock_ticks())
}

/// The parent's pid.
pub fn parent_pid(pid: u32) -> io::Result<u32> {
    Ok(field(&stat_fields(pid)?, 4)? as u32)
}

/// When the process started, in seconds since boot (10 ms resolution).
pub fn start_time_since_boot(pid: u32) -> io::Result<f64> {
    Ok(field(&stat_fields(pid)?, 22)? / clock_ticks())
}

/// Seconds since boot now, on the same clock as [`start_time_since_boot`].
pub fn uptime() -> io::Result<f64> {
    let s = fs::read_to_string("/proc/uptime")?;
    s.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/uptime"))
}

/// A `Vm*` line of `/proc/PID/status` in MiB: `VmRSS` is resident now, `VmHWM` the peak.
pub fn vm_mib(pid: u32, key: &str) -> io::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {key} for pid {pid}")))
}

/// The pids whose parent is `parent` and whose command line contains `needle`.
pub fn children_matching(parent: u32, needle: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_pid(pid).ok() == Some(parent))
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Drop clean page-cache pages (needs root); `Err` says why it could not.
pub fn drop_page_cache() -> io::Result<()> {
    // SAFETY: sync has no preconditions; dirty pages must reach disk to be droppable.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "1")
}

/// The 1-minute load average, to tell the reader how busy the machine was.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
