//! Log output: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). openraft's own
//! lines are left out by default: it logs every retried RPC to a peer that is down, several
//! times a second; the metadata crate logs what an operator needs (a peer lost and back, the
//! active controller changing). `RUST_LOG=info,openraft=info` brings them back.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
