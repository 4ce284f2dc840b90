//! The measures quotas are checked against, as Kafka's metrics library computes them:
//! a rate over sampled windows (`org.apache.kafka.common.metrics.stats.Rate` over
//! `SampledStat`) and a token bucket (`TokenBucket`). Times are milliseconds handed in by
//! the caller, so each is a pure function of its inputs and tested as such.

/// `quota.window.num` samples of `quota.window.size.seconds` each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    pub samples: u32,
    pub window_ms: i64,
}

impl Windows {
    /// The longest span a rate is measured over: `samples` whole windows.
    fn expire_age(self) -> i64 {
        i64::from(self.samples) * self.window_ms
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    start_ms: i64,
    last_event_ms: i64,
}

impl Sample {
    fn new(now: i64) -> Sample {
        Sample {
            value: 0.0,
            start_ms: now,
            last_event_ms: now,
        }
    }
}

/// A sum per window over `samples + 1` windows, measured per second (Kafka 4.4's `Rate`
/// with its `WindowedSum`, which keeps one window more than `quota.window.num` so that a
/// full set of whole windows is always there beside the current one).
#[derive(Debug, Clone, Default)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn record(&mut self, windows: Windows, value: f64, now: i64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
        }
        if now - self.samples[self.current].start_ms >= windows.window_ms {
            self.current = (self.current + 1) % (windows.samples as usize + 1);
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.last_event_ms = now;
    }

    /// Units per second at `now`.
    pub fn measure(&mut self, windows: Windows, now: i64) -> f64 {
        self.purge(windows, now);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_size(windows, now) as f64 / 1000.0)
    }

    /// Milliseconds the rate divides by. A young sensor counts as `samples - 1` whole windows
    /// plus what has passed of the current one, so a first burst is not measured over a few
    /// milliseconds (Kafka's `Rate.windowSize`).
    pub fn window_size(&mut self, windows: Windows, now: i64) -> i64 {
        self.purge(windows, now);
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now - oldest;
        let full_windows = elapsed / windows.window_ms;
        let min_full_windows = i64::from(windows.samples) - 1;
        if full_windows < min_full_windows {
            elapsed += (min_full_windows - full_windows) * windows.window_ms;
        }
        elapsed.max(1)
    }

    /// Samples with no event for `samples` windows start again from zero at `now`.
    fn purge(&mut self, windows: Windows, now: i64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
        }
        for sample in &mut self.samples {
            if now - sample.last_event_ms >= windows.expire_age() {
                *sample = Sample::new(now);
            }
        }
    }

    /// The throttle that brings the rate back to `bound`: the excess over the bound, as a
    /// fraction of it, times the window the rate was measured over (Kafka's
    /// `QuotaUtils.throttleTime`). Zero while the rate is within the bound.
    pub fn throttle_ms(&mut self, windows: Windows, bound: f64, now: i64) -> i64 {
        let value = self.measure(windows, now);
        if value <= bound {
            return 0;
        }
        let window = self.window_size(windows, now) as f64;
        ((value - bound) / bound * window).round() as i64
    }
}

/// Kafka's `TokenBucket`: `rate` tokens a second up to a burst of `samples` windows' worth;
/// a record may take the bucket below zero, and a negative bucket is a violation lasting
/// until it refills to zero.
#[derive(Debug, Clone, Default)]
pub struct TokenBucket {
    tokens: f64,
    last_update_ms: i64,
}

impl TokenBucket {
    fn burst(windows: Windows, rate: f64) -> f64 {
        f64::from(windows.samples) * (windows.window_ms as f64 / 1000.0) * rate
    }

    fn refill(&mut self, windows: Windows, rate: f64, now: i64) {
        let burst = Self::burst(windows, rate);
        // A new bucket (last update 0, as Kafka's) starts full.
        let elapsed = (now - self.last_update_ms) as f64 / 1000.0;
        self.tokens = burst.min(self.tokens + rate * elapsed);
        self.last_update_ms = now;
    }

    pub fn tokens(&mut self, windows: Windows, rate: f64, now: i64) -> f64 {
        self.refill(windows, rate, now);
        self.tokens
    }

    pub fn record(&mut self, windows: Windows, rate: f64, permits: f64, now: i64) {
        self.refill(windows, rate, now);
        self.tokens = Self::burst(windows, rate).min(self.tokens - permits);
    }

    /// How long until a negative bucket is back at zero (Kafka's
    /// `ControllerMutationQuotaManager.throttleTime`); zero when it is not negative.
    pub fn throttle_ms(&mut self, windows: Windows, rate: f64, now: i64) -> i64 {
        let tokens = self.tokens(windows, rate, now);
        if tokens >= 0.0 {
            return 0;
        }
        (-tokens / rate * 1000.0).round() as i64
    }
}

/// A token bucket that holds a byte rate to its quota over any span, beside Kafka's [`Rate`]
/// (see [`crate::quotas::sensors::Sensors::record_paced`] for why). `rate` tokens a second
/// up to `samples` windows' worth, as Kafka's young sensor lets a new client send; a record
/// may take it below zero. What it refills while the client serves a throttle only pays
/// back a debt (never above zero), so time a client spends held back by Kafka's rate is not
/// saved up for a burst; time after the throttle refills it up to the full burst, so an
/// idle client bursts as far as Kafka lets it.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    tokens: f64,
    last_ms: Option<i64>,
    throttled_until_ms: i64,
}

impl Pace {
    fn refill(&mut self, windows: Windows, rate: f64, now: i64) {
        let burst = TokenBucket::burst(windows, rate);
        let Some(last) = self.last_ms else {
            self.tokens = burst;
            self.last_ms = Some(now);
            return;
        };
        let held_until = self.throttled_until_ms.clamp(last, now.max(last));
        if self.tokens < 0.0 {
            let during = (held_until - last) as f64 / 1000.0;
            self.tokens = (self.tokens + rate * during).min(0.0);
        }
        let after = (now - held_until).max(0) as f64 / 1000.0;
        self.tokens = burst.min(self.tokens + rate * after);
        self.last_ms = Some(now.max(last));
    }

    /// Takes `value` and returns how long until the bucket is back at zero (0 when it is
    /// not negative).
    pub fn record(&mut self, windows: Windows, rate: f64, value: f64, now: i64) -> i64 {
        self.refill(windows, rate, now);
        self.tokens -= value;
        if self.tokens >= 0.0 {
            return 0;
        }
        (-self.tokens / rate * 1000.0).round() as i64
    }

    /// The client is held back until `until` (the throttle it was given, whichever measure
    /// asked for it).
    pub fn hold(&mut self, until: i64) {
        self.throttled_until_ms = self.throttled_until_ms.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: Windows = Windows {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_young_rate_counts_ten_whole_windows() {
        let mut rate = Rate::default();
        rate.record(KAFKA, 1000.0, 0);
        // 10 windows plus 500 ms of the current one.
        assert_eq!(rate.window_size(KAFKA, 500), 10_500);
        let measured = rate.measure(KAFKA, 500);
        assert!((measured - 1000.0 / 10.5).abs() < 1e-9, "{measured}");
    }

    #[test]
    fn the_rate_settles_to_what_is_recorded() {
        let mut rate = Rate::default();
        // 100 units every 100 ms for 30 s: 1000 a second.
        for step in 0..300 {
            rate.record(KAFKA, 100.0, step * 100);
        }
        let measured = rate.measure(KAFKA, 29_950);
        assert!((measured - 1000.0).abs() < 50.0, "{measured}");
    }

    #[test]
    fn throttle_follows_kafkas_formula() {
        let mut rate = Rate::default();
        // 21 000 bytes at once against 1000/s, measured over 10.5 s: 2000/s, one bound
        // over, so one measured window of throttle.
        rate.record(KAFKA, 21_000.0, 0);
        assert_eq!(rate.throttle_ms(KAFKA, 1000.0, 500), 10_500);
        assert_eq!(rate.throttle_ms(KAFKA, 4000.0, 500), 0);
    }

    #[test]
    fn idle_samples_are_forgotten() {
        let mut rate = Rate::default();
        rate.record(KAFKA, 50_000.0, 0);
        assert!(rate.measure(KAFKA, 1_000) > 0.0);
        assert_eq!(rate.measure(KAFKA, 11_000), 0.0);
    }

    #[test]
    fn a_token_bucket_starts_full_and_goes_negative() {
        let mut bucket = TokenBucket::default();
        let now = 1_700_000_000_000;
        // Burst: 11 windows of 1 s at 2 a second.
        assert_eq!(bucket.tokens(KAFKA, 2.0, now), 22.0);
        bucket.record(KAFKA, 2.0, 30.0, now);
        assert_eq!(bucket.tokens(KAFKA, 2.0, now), -8.0);
        assert_eq!(bucket.throttle_ms(KAFKA, 2.0, now), 4000);
        assert_eq!(bucket.throttle_ms(KAFKA, 2.0, now + 1000), 3000);
        assert_eq!(bucket.throttle_ms(KAFKA, 2.0, now + 5000), 0);
    }
}
