//! Metrics clients pushed (KIP-714), exposed on `/metrics` beside the broker's own: the
//! latest value of each series, labelled with who pushed it. Apache Kafka hands pushes to a
//! plugin; samsa is its own exporter.
//!
//! Bounded: an instance holds at most `max_series_per_client` series and all instances
//! together `max_series`; what does not fit is dropped and counted. An instance's series go
//! when the telemetry cache forgets the instance (it stopped pushing, or its connection
//! closed), so the label sets cannot grow without bound.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use parking_lot::Mutex;
use uuid::Uuid;

/// The labels that say who pushed a series.
#[derive(Debug, Clone)]
pub struct Pusher {
    pub client_instance_id: String,
    pub client_id: String,
    pub principal: String,
    /// What the client said about itself in its latest push (OTLP resource attributes, e.g.
    /// a consumer's `group_id` and `group_member_id`): labels of one info series per
    /// instance, not of every series, since they change over the client's life.
    pub resource: Vec<(String, String)>,
}

/// How a series is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// What a series holds: one number, or a distribution exposed as several samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Histogram(Buckets),
    Summary(Quantiles),
}

/// An explicit-bucket histogram, checked by the decoder: bounds finite and strictly
/// ascending, one count more than bounds (the last bucket is `+Inf`), or neither when only
/// count and sum are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<f64>,
    /// Observations in each bucket, not cumulative (as OTLP sends them).
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: Option<f64>,
}

/// A summary: (quantile, value) pairs with quantiles strictly ascending in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Quantiles {
    pub quantiles: Vec<(f64, f64)>,
    pub count: u64,
    pub sum: f64,
}

impl Reading {
    /// How many samples it renders, which is what counts against the series limits: a
    /// histogram one per bucket (`+Inf` included), `_count` and `_sum`; a summary one per
    /// quantile, `_count` and `_sum`.
    pub fn series(&self) -> usize {
        match self {
            Reading::Number(_) => 1,
            Reading::Histogram(h) => h.bounds.len() + 2 + usize::from(h.sum.is_some()),
            Reading::Summary(s) => s.quantiles.len() + 2,
        }
    }

    /// `self` with `new` applied: added when `adds` (a delta) and the layout is the same,
    /// else replaced, so a histogram whose buckets changed starts over with the new ones.
    fn merged(&self, new: Reading, adds: bool) -> Reading {
        match (self, new, adds) {
            (Reading::Number(old), Reading::Number(new), true) => Reading::Number(old + new),
            (Reading::Histogram(old), Reading::Histogram(new), true)
                if old.bounds == new.bounds && old.counts.len() == new.counts.len() =>
            {
                Reading::Histogram(Buckets {
                    counts: old
                        .counts
                        .iter()
                        .zip(&new.counts)
                        .map(|(a, b)| a.saturating_add(*b))
                        .collect(),
                    count: old.count.saturating_add(new.count),
                    sum: old.sum.zip(new.sum).map(|(a, b)| a + b),
                    bounds: new.bounds,
                })
            }
            (_, new, _) => new,
        }
    }
}

/// One value pushed: its Prometheus name (sanitised), the point's attributes (sanitised
/// keys), its kind, and whether it adds to the series (a delta sum) or replaces it.
#[derive(Debug, Clone)]
pub struct PushedValue {
    pub name: String,
    /// The metric's description, for HELP; may be empty.
    pub help: String,
    pub attributes: Vec<(String, String)>,
    pub kind: SeriesKind,
    pub value: Reading,
    pub adds: bool,
}

/// Caps on the series kept.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLimits {
    pub per_client: usize,
    pub total: usize,
}

type SeriesKey = (String, Vec<(String, String)>);

/// One sample to render: who pushed it, its attributes, its kind and value, its family's
/// description as its pusher gave it.
struct Sample<'a> {
    pusher: &'a Pusher,
    attributes: &'a [(String, String)],
    kind: SeriesKind,
    value: &'a Reading,
    help: Option<&'a str>,
}

struct InstanceSeries {
    pusher: Pusher,
    series: BTreeMap<SeriesKey, (SeriesKind, Reading)>,
    /// Samples of `series` ([`Reading::series`]), what the limits count.
    samples: usize,
    /// Descriptions by metric name, of names with a series kept.
    help: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    instances: HashMap<Uuid, InstanceSeries>,
    total: usize,
    dropped: u64,
}

/// The pushed series of every known client instance.
#[derive(Default)]
pub struct ClientSeries {
    state: Mutex<State>,
}

impl ClientSeries {
    /// Records a push of `instance`'s values.
    pub fn record(
        &self,
        instance: Uuid,
        pusher: Pusher,
        values: Vec<PushedValue>,
        limits: SeriesLimits,
    ) {
        let mut state = self.state.lock();
        let State {
            instances,
            total,
            dropped,
        } = &mut *state;
        let entry = instances.entry(instance).or_insert_with(|| InstanceSeries {
            pusher: pusher.clone(),
            series: BTreeMap::new(),
            samples: 0,
            help: HashMap::new(),
        });
        entry.pusher = pusher;
        for value in values {
            if !value.help.is_empty() && !entry.help.contains_key(&value.name) {
                let kept = entry.series.keys().any(|(name, _)| *name == value.name);
                let fits = entry.samples < limits.per_client && *total < limits.total;
                if kept || fits {
                    entry.help.insert(value.name.clone(), value.help);
                }
            }
            let key = (value.name, value.attributes);
            let (old, reading) = match entry.series.get(&key) {
                Some((_, current)) => (current.series(), current.merged(value.value, value.adds)),
                None => (0, value.value),
            };
            // A series that grows (new, or a histogram with more buckets) must fit the caps.
            let grows = reading.series().saturating_sub(old);
            if grows > 0
                && (entry.samples + grows > limits.per_client || *total + grows > limits.total)
            {
                *dropped += 1;
                continue;
            }
            entry.samples = entry.samples - old + reading.series();
            *total = *total - old + reading.series();
            entry.series.insert(key, (value.kind, reading));
        }
    }

    /// Forgets an instance's series.
    pub fn remove(&self, instance: Uuid) {
        let mut state = self.state.lock();
        if let Some(gone) = state.instances.remove(&instance) {
            state.total -= gone.samples;
        }
    }

    /// The series in the text exposition format, grouped by name, with the counters of
    /// what was kept and dropped.
    pub fn render(&self, out: &mut String) {
        let state = self.state.lock();
        let mut by_name: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
        for instance in state.instances.values() {
            for ((name, attributes), (kind, value)) in &instance.series {
                by_name.entry(name.as_str()).or_default().push(Sample {
                    pusher: &instance.pusher,
                    attributes,
                    kind: *kind,
                    value,
                    help: instance.help.get(name).map(String::as_str),
                });
            }
        }
        let _ = writeln!(
            out,
            "# HELP samsa_client_telemetry_series Series of pushed client metrics kept\n\
             # TYPE samsa_client_telemetry_series gauge\nsamsa_client_telemetry_series {}",
            state.total
        );
        let _ = writeln!(
            out,
            "# HELP samsa_client_telemetry_series_dropped_total Pushed series dropped by the series limits\n\
             # TYPE samsa_client_telemetry_series_dropped_total counter\n\
             samsa_client_telemetry_series_dropped_total {}",
            state.dropped
        );
        if !state.instances.is_empty() {
            let _ = writeln!(
                out,
                "# HELP samsa_client_telemetry_info A client instance that pushed metrics, labelled with what it says about itself\n\
                 # TYPE samsa_client_telemetry_info gauge"
            );
        }
        for instance in state.instances.values() {
            let _ = write!(out, "samsa_client_telemetry_info");
            write_labels(out, &instance.pusher, &instance.pusher.resource, None);
            let _ = writeln!(out, " 1");
        }
        for (name, samples) in by_name {
            // One HELP and TYPE per family: the first sample's name them.
            if let Some(help) = samples.iter().find_map(|s| s.help) {
                let help = help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let kind = match samples[0].kind {
                SeriesKind::Gauge => "gauge",
                SeriesKind::Counter => "counter",
                SeriesKind::Histogram => "histogram",
                SeriesKind::Summary => "summary",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for sample in samples {
                write_sample(out, name, &sample);
            }
        }
    }
}

/// A series' lines: one for a number; for a histogram its cumulative `_bucket`s, `_sum` and
/// `_count`; for a summary its quantiles, `_sum` and `_count`.
fn write_sample(out: &mut String, name: &str, sample: &Sample) {
    let line = |out: &mut String, suffix: &str, extra: Option<(&str, f64)>, value: f64| {
        let _ = write!(out, "{name}{suffix}");
        write_labels(out, sample.pusher, sample.attributes, extra);
        let _ = writeln!(out, " {}", number(value));
    };
    match sample.value {
        Reading::Number(value) => line(out, "", None, *value),
        Reading::Histogram(h) => {
            let mut cumulative = 0u64;
            for (bound, count) in h.bounds.iter().zip(&h.counts) {
                cumulative = cumulative.saturating_add(*count);
                line(out, "_bucket", Some(("le", *bound)), cumulative as f64);
            }
            line(out, "_bucket", Some(("le", f64::INFINITY)), h.count as f64);
            if let Some(sum) = h.sum {
                line(out, "_sum", None, sum);
            }
            line(out, "_count", None, h.count as f64);
        }
        Reading::Summary(s) => {
            for (quantile, value) in &s.quantiles {
                line(out, "", Some(("quantile", *quantile)), *value);
            }
            line(out, "_sum", None, s.sum);
            line(out, "_count", None, s.count as f64);
        }
    }
}

/// `{client_instance_id="…",client_id="…",principal="…",attribute="…",…}`, with `extra`
/// (a histogram's `le`, a summary's `quantile`) last.
fn write_labels(
    out: &mut String,
    pusher: &Pusher,
    attributes: &[(String, String)],
    extra: Option<(&str, f64)>,
) {
    let _ = write!(
        out,
        "{{client_instance_id=\"{}\",client_id=\"{}\",principal=\"{}\"",
        escape(&pusher.client_instance_id),
        escape(&pusher.client_id),
        escape(&pusher.principal)
    );
    for (key, text) in attributes {
        let _ = write!(out, ",{key}=\"{}\"", escape(text));
    }
    if let Some((key, value)) = extra {
        let _ = write!(out, ",{key}=\"{}\"", number(value));
    }
    out.push('}');
}

/// A metric or label name as Prometheus allows it: `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names
/// without the colon), every other character an underscore.
pub fn sanitize_name(name: &str, colons: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher() -> Pusher {
        Pusher {
            client_instance_id: "id".into(),
            client_id: "c\"1".into(),
            principal: "User:ANONYMOUS".into(),
            resource: vec![("group_id".into(), "g".into())],
        }
    }

    fn value(name: &str, v: f64, adds: bool) -> PushedValue {
        PushedValue {
            name: name.into(),
            help: format!("help of {name}\nsecond line"),
            attributes: vec![("topic".into(), "t".into())],
            kind: if adds {
                SeriesKind::Counter
            } else {
                SeriesKind::Gauge
            },
            value: Reading::Number(v),
            adds,
        }
    }

    #[test]
    fn deltas_add_gauges_replace_and_limits_drop() {
        let series = ClientSeries::default();
        let limits = SeriesLimits {
            per_client: 2,
            total: 10,
        };
        let id = Uuid::from_u128(1);
        series.record(
            id,
            pusher(),
            vec![value("g", 1.0, false), value("c", 2.0, true)],
            limits,
        );
        series.record(
            id,
            pusher(),
            vec![value("g", 5.0, false), value("c", 3.0, true)],
            limits,
        );
        series.record(id, pusher(), vec![value("x", 1.0, false)], limits);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains(
            "g{client_instance_id=\"id\",client_id=\"c\\\"1\",principal=\"User:ANONYMOUS\",topic=\"t\"} 5\n"
        ), "{text}");
        assert!(
            text.contains("# HELP c help of c\\nsecond line\n# TYPE c counter\nc{"),
            "{text}"
        );
        assert!(
            text.contains("samsa_client_telemetry_info{client_instance_id=\"id\",client_id=\"c\\\"1\",principal=\"User:ANONYMOUS\",group_id=\"g\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("} 5\n"), "{text}");
        assert!(
            text.contains("samsa_client_telemetry_series_dropped_total 1"),
            "{text}"
        );
        series.remove(id);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains("samsa_client_telemetry_series 0"), "{text}");
        assert!(!text.contains("topic="), "{text}");
    }

    #[test]
    fn histograms_count_each_sample_against_the_limits() {
        let series = ClientSeries::default();
        let limits = SeriesLimits {
            per_client: 5,
            total: 10,
        };
        let histogram = |bounds: &[f64]| PushedValue {
            name: "h".into(),
            help: String::new(),
            attributes: Vec::new(),
            kind: SeriesKind::Histogram,
            value: Reading::Histogram(Buckets {
                bounds: bounds.to_vec(),
                counts: vec![1; bounds.len() + 1],
                count: bounds.len() as u64 + 1,
                sum: Some(1.0),
            }),
            adds: true,
        };
        let id = Uuid::from_u128(1);
        // Buckets le=1 and +Inf, _sum, _count: 4 samples of 5.
        series.record(id, pusher(), vec![histogram(&[1.0])], limits);
        // Three bounds would be 6: dropped, the old layout kept.
        series.record(id, pusher(), vec![histogram(&[1.0, 2.0, 3.0])], limits);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains("samsa_client_telemetry_series 4\n"), "{text}");
        assert!(
            text.contains("samsa_client_telemetry_series_dropped_total 1\n"),
            "{text}"
        );
        assert!(text.contains("h_bucket{client_instance_id=\"id\",client_id=\"c\\\"1\",principal=\"User:ANONYMOUS\",le=\"1\"} 1\n"), "{text}");
        // A layout no wider replaces it.
        series.record(id, pusher(), vec![histogram(&[])], limits);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains("samsa_client_telemetry_series 3\n"), "{text}");
        assert!(!text.contains("le=\"1\""), "{text}");
        series.remove(id);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains("samsa_client_telemetry_series 0\n"), "{text}");
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_name("org.apache.kafka.producer.record.queue.time.avg", true),
            "org_apache_kafka_producer_record_queue_time_avg"
        );
        assert_eq!(sanitize_name("1a:b", false), "_1a_b");
    }
}
