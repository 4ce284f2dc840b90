//! The wall clock, at the bottom of the layers: every module that stamps or compares Kafka
//! timestamps reads it here, so none has to reach into the broker for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch, the unit of Kafka timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
