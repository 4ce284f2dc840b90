//! The wall clock, at the bottom of the layers: every module that stamps or compares Kafka
//! timestamps reads it here, so none has to reach into the broker for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch, the unit of Kafka timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds of an ISO-8601 duration as `share.auto.offset.reset=by_duration:` takes it
/// (`PnDTnHnMnS`, days and time parts).
pub fn iso_duration_ms(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P')?;
    // As Java's Duration.parse, a duration names at least one part.
    if rest.is_empty() || rest.ends_with('T') {
        return None;
    }
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut ms = 0i64;
    if !days.is_empty() {
        ms += days.strip_suffix('D')?.parse::<i64>().ok()? * 86_400_000;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let unit = match c {
                    'H' => 3_600_000.0,
                    'M' => 60_000.0,
                    _ => 1_000.0,
                };
                ms += (number.parse::<f64>().ok()? * unit) as i64;
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(ms)
}
