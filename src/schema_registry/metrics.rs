//! The registry's series on `/metrics`: requests by method, route and status, and how many
//! schema versions it holds.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

#[derive(Default)]
pub struct RequestCounts {
    /// A leaf lock: nothing is taken while it is held.
    counts: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl RequestCounts {
    pub fn add(&self, method: &str, endpoint: &str, status: u16) {
        *self
            .counts
            .lock()
            .entry((method.to_owned(), endpoint.to_owned(), status))
            .or_default() += 1;
    }

    /// The Prometheus text of these series.
    pub fn render(&self, schemas: usize, subjects: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP samsa_schema_registry_requests_total Schema registry HTTP requests by method, route and status.\n");
        out.push_str("# TYPE samsa_schema_registry_requests_total counter\n");
        for ((method, endpoint, status), count) in self.counts.lock().iter() {
            let _ = writeln!(
                out,
                "samsa_schema_registry_requests_total{{method=\"{method}\",endpoint=\"{}\",status=\"{status}\"}} {count}",
                endpoint.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        out.push_str("# HELP samsa_schema_registry_schemas Schema versions the registry holds, soft-deleted ones included.\n");
        out.push_str("# TYPE samsa_schema_registry_schemas gauge\n");
        let _ = writeln!(out, "samsa_schema_registry_schemas {schemas}");
        out.push_str("# HELP samsa_schema_registry_subjects Subjects with a live version.\n");
        out.push_str("# TYPE samsa_schema_registry_subjects gauge\n");
        let _ = writeln!(out, "samsa_schema_registry_subjects {subjects}");
        out
    }
}
