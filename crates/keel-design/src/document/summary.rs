//! Section 1, the executive summary: what the backend is, the shape the capacity plan
//! chose, the review's tally and the artifacts beside the document.

use super::{Inputs, SECTIONS};
use crate::plan::{Database, bytes, num};
use crate::review::Severity;
use std::fmt::Write;

pub(super) fn summary(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let p = i.plan;
    let _ = writeln!(d, "## {}\n", SECTIONS[0]);
    let what = m
        .app
        .description
        .clone()
        .unwrap_or_else(|| format!("The {} backend.", m.app.name));
    let names: Vec<String> = m
        .collections
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect();
    let _ = writeln!(
        d,
        "**{}** — {} It manages {} collections ({}) behind one REST API (`/v1`, OpenAPI 3.1), with row-level access rules on every operation, cursor pagination, optimistic locking and idempotent creates.\n",
        m.app.name,
        what.trim_end_matches('.').to_string() + ".",
        m.collections.len(),
        names.join(", ")
    );
    let shape = match p.database {
        Database::Sqlite => format!(
            "a **single Keel node on embedded SQLite** (WAL): {}",
            p.database_reason
        ),
        Database::Postgres => format!(
            "**{} stateless Keel nodes behind a load balancer on PostgreSQL**, with Redis for shared rate limits and cache and NATS JetStream for events: {}",
            p.nodes, p.database_reason
        ),
    };
    let _ = writeln!(
        d,
        "For the declared scale — {} users, {} requests/s at peak, {} reads per write — the design is {}. Expected peak load is {} reads/s and {} writes/s; storage grows by about {} a year.\n",
        num(p.users as f64),
        num(p.peak_rps),
        num(p.read_write_ratio),
        shape,
        num(p.reads_per_sec),
        num(p.writes_per_sec),
        bytes(p.bytes_per_year)
    );
    if !p.assumed.is_empty() {
        let _ = writeln!(
            d,
            "`[scale]` does not give every input; assumed: {}.\n",
            p.assumed.join(", ")
        );
    }
    let errors = i
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = i
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let _ = writeln!(
        d,
        "Design review (`keel check`): {} error(s), {} warning(s).\n",
        errors, warnings
    );
    let _ = writeln!(d, "Artifacts beside this document:\n");
    for a in i.artifacts {
        let _ = writeln!(d, "- `{a}`");
    }
    d.push('\n');
}
