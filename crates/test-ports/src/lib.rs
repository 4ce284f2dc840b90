//! Loopback ports for listeners a test configures itself and may bind more than once (a node
//! restarted on its address, a quorum whose members dial each other before all are up).

use std::sync::atomic::{AtomicU32, Ordering};

/// Where [`free_port`] looks: below Linux's default ephemeral range (32768-60999). A port
/// that `bind(0)` hands out lies in that range, where the kernel may give it to an outgoing
/// connection (a starting cluster node dialling its peers) before the process it was picked
/// for binds it.
const PICKED_PORTS: std::ops::Range<u16> = 20000..32768;

/// A loopback port free at the moment of asking. Tests of one binary run in parallel threads,
/// so the search goes on from where the last one stopped and no two callers get the same
/// port; the process id spreads test binaries apart. (compat/tests/conftest.py picks the same
/// way, from a different start.)
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PICKED_PORTS.end - PICKED_PORTS.start);
    let offset = std::process::id().wrapping_mul(631);
    (0..span)
        .map(|_| {
            PICKED_PORTS.start
                + (offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16
        })
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            assert!(PICKED_PORTS.contains(&port));
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
