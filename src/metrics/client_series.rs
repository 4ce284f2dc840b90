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
    pub value: f64,
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
    value: f64,
    help: Option<&'a str>,
}

struct InstanceSeries {
    pusher: Pusher,
    series: BTreeMap<SeriesKey, (SeriesKind, f64)>,
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
            help: HashMap::new(),
        });
        entry.pusher = pusher;
        for value in values {
            if !value.help.is_empty() && !entry.help.contains_key(&value.name) {
                let kept = entry.series.keys().any(|(name, _)| *name == value.name);
                let fits = entry.series.len() < limits.per_client && *total < limits.total;
                if kept || fits {
                    entry.help.insert(value.name.clone(), value.help);
                }
            }
            let key = (value.name, value.attributes);
            if let Some((kind, current)) = entry.series.get_mut(&key) {
                *kind = value.kind;
                *current = if value.adds {
                    *current + value.value
                } else {
                    value.value
                };
                continue;
            }
            if entry.series.len() >= limits.per_client || *total >= limits.total {
                *dropped += 1;
                continue;
            }
            entry.series.insert(key, (value.kind, value.value));
            *total += 1;
        }
    }

    /// Forgets an instance's series.
    pub fn remove(&self, instance: Uuid) {
        let mut state = self.state.lock();
        if let Some(gone) = state.instances.remove(&instance) {
            state.total -= gone.series.len();
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
                    value: *value,
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
            write_labels(out, &instance.pusher, &instance.pusher.resource);
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
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for sample in samples {
                let _ = write!(out, "{name}");
                write_labels(out, sample.pusher, sample.attributes);
                let _ = writeln!(out, " {}", number(sample.value));
            }
        }
    }
}

/// `{client_instance_id="…",client_id="…",principal="…",attribute="…",…}`.
fn write_labels(out: &mut String, pusher: &Pusher, attributes: &[(String, String)]) {
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
            value: v,
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
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_name("org.apache.kafka.producer.record.queue.time.avg", true),
            "org_apache_kafka_producer_record_queue_time_avg"
        );
        assert_eq!(sanitize_name("1a:b", false), "_1a_b");
    }
}
