//! `bench.svg`: throughput bars and latency percentiles, samsa next to Kafka.
//!
//! Written by hand: plotters renders text through font-kit and so needs fontconfig and
//! system fonts; here the viewer picks the font.

use std::fmt::Write as _;

use crate::report::Limits;
use crate::suite::{Results, CASES};

const WIDTH: f64 = 900.0;
const LABEL_W: f64 = 230.0;
const BAR_W: f64 = 560.0;
const SAMSA: &str = "#2b6cb0";
const KAFKA: &str = "#dd6b20";

struct Panel<'a> {
    title: String,
    unit: &'a str,
    rows: Vec<(String, Option<f64>, Option<f64>)>,
    /// A vertical reference line: (value, label).
    mark: Option<(f64, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw(out: &mut String, y0: f64, p: &Panel) -> f64 {
    let max = p
        .rows
        .iter()
        .flat_map(|r| [r.1, r.2])
        .flatten()
        .chain(p.mark.as_ref().map(|m| m.0))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let x = |v: f64| LABEL_W + BAR_W * v / max;
    let _ = writeln!(
        out,
        r#"<text x="10" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        y0 + 16.0,
        esc(&p.title)
    );
    let mut y = y0 + 30.0;
    for (label, s, k) in &p.rows {
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}" font-size="12">{}</text>"#,
            y + 16.0,
            esc(label)
        );
        for (i, (v, colour)) in [(s, SAMSA), (k, KAFKA)].into_iter().enumerate() {
            let by = y + 2.0 + i as f64 * 12.0;
            match v {
                Some(v) if v.is_finite() => {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{LABEL_W}" y="{by}" width="{:.1}" height="11" fill="{colour}"/><text x="{:.1}" y="{}" font-size="10">{:.2} {}</text>"#,
                        (x(*v) - LABEL_W).max(0.5),
                        x(*v) + 4.0,
                        by + 9.5,
                        v,
                        p.unit
                    );
                }
                _ => {}
            }
        }
        y += 30.0;
    }
    if let Some((v, label)) = &p.mark {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#c53030" stroke-dasharray="4 3"/><text x="{0:.1}" y="{3}" font-size="10" fill="#c53030" text-anchor="middle">{4}</text>"##,
            x(*v),
            y0 + 26.0,
            y,
            y + 12.0,
            esc(label)
        );
    }
    y + 24.0
}

pub fn render(limits: &Limits, samsa: &Results, kafka: Option<&Results>) -> String {
    let get = |r: Option<&Results>, id: &str| r.and_then(|r| r.figures.get(id).copied());
    let mut throughput: Vec<_> = CASES
        .iter()
        .map(|c| {
            let id = format!("produce.{}.mb_s", c.id());
            (
                format!("produce {}", c.id()),
                get(Some(samsa), &id),
                get(kafka, &id),
            )
        })
        .collect();
    for label in ["warm", "cold"] {
        let id = format!("consume.{label}.mb_s");
        throughput.push((
            format!("consume 1KiB, {label}"),
            get(Some(samsa), &id),
            get(kafka, &id),
        ));
    }
    let panels = [
        Panel {
            title: format!(
                "Throughput, MB/s  (disk buffered write {:.0}, loopback TCP {:.0})",
                limits.disk.buffered_mb_s, limits.loopback_mb_s
            ),
            unit: "MB/s",
            rows: throughput,
            mark: None,
        },
        Panel {
            title: "End-to-end latency, 1 KiB acks=all at half max rate, ms".into(),
            unit: "ms",
            rows: [
                ("p50", "latency.p50_ms"),
                ("p99", "latency.p99_ms"),
                ("p99.9", "latency.p999_ms"),
            ]
            .iter()
            .map(|(l, id)| (l.to_string(), get(Some(samsa), id), get(kafka, id)))
            .collect(),
            mark: Some((5.0, "target p99 5 ms".into())),
        },
    ];
    let mut body = String::new();
    let mut y = 40.0;
    for p in &panels {
        y = draw(&mut body, y, p);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<rect x="10" y="10" width="12" height="12" fill="{SAMSA}"/><text x="28" y="21" font-size="12">samsa</text><rect x="90" y="10" width="12" height="12" fill="{KAFKA}"/><text x="108" y="21" font-size="12">Apache Kafka{}</text>"#,
        if kafka.is_none() { " (skipped)" } else { "" }
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}
