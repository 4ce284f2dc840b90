//! Several rounds of the suite, brokers alternating, reduced to a median and a spread.
//!
//! One run of each broker on this machine moves 20-40 % from run to run, so a single ratio
//! can show a win or a loss that is noise. The suite runs `rounds` times per broker, in the
//! order samsa, Kafka, Kafka, samsa, samsa, Kafka... (so neither always follows the other
//! onto a warm page cache or a cooled CPU), and each figure is reported as the median of its
//! rounds, each ratio as the median of the rounds' ratios with their range. A ratio whose
//! range crosses 1.0 says "no difference": the rounds disagree on which broker is ahead.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{json, Value};

use crate::broker::Kind;

use crate::suite::Results;

/// Which broker runs first in round `round` (0-based): they alternate.
pub fn order(round: usize, with_kafka: bool) -> Vec<Kind> {
    match (with_kafka, round % 2) {
        (false, _) => vec![Kind::Samsa],
        (true, 0) => vec![Kind::Samsa, Kind::Kafka],
        (true, _) => vec![Kind::Kafka, Kind::Samsa],
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(match values.len() % 2 {
        1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    })
}

/// Each figure's median over the rounds that measured it; every round's errors and notes.
pub fn median_results(runs: &[Results]) -> Results {
    let ids: BTreeSet<&String> = runs.iter().flat_map(|r| r.figures.keys()).collect();
    let mut figures = BTreeMap::new();
    for id in ids {
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.figures.get(id).copied())
            .collect();
        if let Some(m) = median(&mut values) {
            figures.insert(id.clone(), m);
        }
    }
    let mut merged = Results {
        figures,
        ..Results::default()
    };
    for (round, r) in runs.iter().enumerate() {
        let tag = |s: &String| match runs.len() {
            1 => s.clone(),
            _ => format!("round {}: {s}", round + 1),
        };
        merged.errors.extend(r.errors.iter().map(tag));
        merged.notes.extend(r.notes.iter().map(tag));
    }
    merged
}

/// One figure's samsa/Kafka ratio over the rounds.
pub struct Spread {
    pub id: String,
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub rounds: usize,
}

impl Spread {
    /// The rounds disagree on which broker is ahead.
    pub fn no_difference(&self) -> bool {
        self.low <= 1.0 && self.high >= 1.0
    }
}

/// The ratio of each figure both brokers measured in the same round, round by round. Not
/// of the busy fractions (see `busy`): they explain a ratio, a ratio of them says little.
pub fn spreads(samsa: &[Results], kafka: &[Results]) -> Vec<Spread> {
    let ids: BTreeSet<&String> = samsa.iter().flat_map(|r| r.figures.keys()).collect();
    ids.into_iter()
        .filter(|id| !id.ends_with("_busy"))
        .filter_map(|id| {
            let mut ratios: Vec<f64> = samsa
                .iter()
                .zip(kafka)
                .filter_map(|(s, k)| match (s.figures.get(id), k.figures.get(id)) {
                    (Some(s), Some(k)) if *k != 0.0 => Some(s / k),
                    _ => None,
                })
                .collect();
            let rounds = ratios.len();
            let median = median(&mut ratios)?;
            Some(Spread {
                id: id.clone(),
                median,
                low: ratios[0],
                high: ratios[rounds - 1],
                rounds,
            })
        })
        .collect()
}

pub fn spread_table(spreads: &[Spread]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsamsa/Kafka per round: median [range] over the rounds; a range across 1.0 is no difference"
    );
    for s in spreads {
        let verdict = match s.no_difference() {
            true => "no difference",
            false => "",
        };
        let _ = writeln!(
            out,
            "  {:<40} {:>6.2}x [{:.2}-{:.2}] ({} rounds) {verdict}",
            s.id, s.median, s.low, s.high, s.rounds
        );
    }
    out
}

pub fn spread_json(spreads: &[Spread]) -> Value {
    spreads
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                json!({ "median": s.median, "low": s.low, "high": s.high, "rounds": s.rounds,
                        "no_difference": s.no_difference() }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(pairs: &[(&str, f64)]) -> Results {
        Results {
            figures: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Results::default()
        }
    }

    #[test]
    fn medians_and_ratio_ranges() {
        let samsa = [
            results(&[("a", 10.0), ("b", 1.0)]),
            results(&[("a", 30.0), ("b", 3.0)]),
            results(&[("a", 20.0)]),
        ];
        let kafka = [
            results(&[("a", 10.0), ("b", 2.0)]),
            results(&[("a", 10.0), ("b", 2.0)]),
            results(&[("a", 10.0)]),
        ];
        let m = median_results(&samsa);
        assert_eq!(m.figures["a"], 20.0);
        assert_eq!(m.figures["b"], 2.0);
        let s = spreads(&samsa, &kafka);
        assert_eq!(
            (s[0].median, s[0].low, s[0].high, s[0].rounds),
            (2.0, 1.0, 3.0, 3)
        );
        assert!(s[0].no_difference());
        assert_eq!((s[1].median, s[1].low, s[1].high), (1.0, 0.5, 1.5));
    }

    #[test]
    fn busy_fractions_get_no_ratio() {
        let s = [results(&[("a.mb_s", 2.0), ("a.client_busy", 0.99)])];
        let k = [results(&[("a.mb_s", 1.0), ("a.client_busy", 0.98)])];
        let ids: Vec<String> = spreads(&s, &k).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["a.mb_s"]);
        assert_eq!(median_results(&s).figures["a.client_busy"], 0.99);
    }

    #[test]
    fn brokers_alternate_which_goes_first() {
        assert_eq!(order(0, true), vec![Kind::Samsa, Kind::Kafka]);
        assert_eq!(order(1, true), vec![Kind::Kafka, Kind::Samsa]);
        assert_eq!(order(1, false), vec![Kind::Samsa]);
    }
}
