//! `differential-allowlist.toml`: the differences from Kafka that are known and not fixed,
//! each with its reason. Anything else fails; an entry that no longer matches fails too,
//! so the list only shrinks.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::tree::Difference;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `test.case@vN`; `*` matches any run of characters.
    pub case: String,
    /// Field path as reported; `*` matches any run of characters.
    pub path: String,
    /// Normalised values as reported; `*` matches any run of characters.
    pub samsa: String,
    pub kafka: String,
    /// Why the difference is acceptable, or `bug: ...` and what will fix it.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    difference: Vec<Entry>,
}

pub struct Allowlist {
    pub entries: Vec<Entry>,
}

impl Allowlist {
    pub fn load(path: &Path) -> Result<Allowlist> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: File =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Allowlist {
            entries: file.difference,
        })
    }

    /// The index of the entry allowing `diff` in `case`, if any.
    pub fn allows(&self, case: &str, diff: &Difference) -> Option<usize> {
        self.entries.iter().position(|e| {
            glob(&e.case, case)
                && glob(&e.path, &diff.path)
                && glob(&e.samsa, &diff.samsa)
                && glob(&e.kafka, &diff.kafka)
        })
    }

    /// Whether entry `i` concerns `case` (so its absence there means it is stale).
    pub fn covers(&self, i: usize, case: &str) -> bool {
        glob(&self.entries[i].case, case)
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// An allow-list entry for `diff`, ready to paste once the reason is filled in.
pub fn entry_text(case: &str, diff: &Difference) -> String {
    format!(
        "[[difference]]\ncase = {}\npath = {}\nsamsa = {}\nkafka = {}\nreason = \"TODO\"\n",
        toml_str(case),
        toml_str(&diff.path),
        toml_str(&diff.samsa),
        toml_str(&diff.kafka)
    )
}

fn toml_str(s: &str) -> String {
    // TOML literal strings take everything but `'` verbatim, which keeps Debug text readable.
    if s.contains('\'') || s.contains('\n') {
        format!("{s:?}")
    } else {
        format!("'{s}'")
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("a*c", "abbc"));
        assert!(glob("*", ""));
        assert!(glob("produce.*@v3", "produce.x@v3"));
        assert!(!glob("produce.*@v3", "produce.x@v13"));
        assert!(glob("abc", "abc"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*a", "a"));
    }
}
