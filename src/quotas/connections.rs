//! `connection_creation_rate` per client IP (KIP-612, Kafka's `ConnectionQuotas`): a
//! connection that takes its IP over the rate is not served, and is closed once the
//! throttle has passed, so a client reconnecting in a loop is slowed down rather than
//! answered at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::limits::QuotaLimits;
use super::stats::{Rate, Windows};

/// An IP whose rate has seen no connection this long is forgotten.
const EXPIRE_AFTER_MS: i64 = 3600 * 1000;

pub struct ConnectionRates {
    windows: Windows,
    limits: Arc<dyn QuotaLimits>,
    /// A leaf lock: nothing else is taken while it is held.
    per_ip: Mutex<HashMap<IpAddr, (Rate, i64)>>,
}

impl ConnectionRates {
    pub(super) fn new(windows: Windows, limits: Arc<dyn QuotaLimits>) -> ConnectionRates {
        ConnectionRates {
            windows,
            limits,
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip` at `now`; `Err` with how long to hold it before
    /// closing when it is over the IP's rate. A refused connection is not counted, and the
    /// throttle is at most one window (Kafka's `recordIpConnectionMaybeThrottle`).
    pub fn admit(&self, ip: IpAddr, now: i64) -> Result<(), Duration> {
        let Some(bound) = self.limits.ip_connection_rate(ip) else {
            return Ok(());
        };
        let windows = self.windows;
        let mut per_ip = self.per_ip.lock();
        let (rate, last) = per_ip.entry(ip).or_default();
        *last = now;
        rate.record(windows, 1.0, now);
        let throttle = rate.throttle_ms(windows, bound, now).min(windows.window_ms);
        if throttle > 0 {
            rate.record(windows, -1.0, now);
            return Err(Duration::from_millis(throttle as u64));
        }
        Ok(())
    }

    pub(super) fn expire(&self, now: i64) {
        self.per_ip
            .lock()
            .retain(|_, (_, last)| now - *last < EXPIRE_AFTER_MS);
    }
}
