//! Section 7, running it: observability (metrics, logs, traces, SLOs) and deployment
//! (CI, rollout, zero-downtime migrations, rollback).

use super::Inputs;
use crate::plan::{Database, num};
use std::fmt::Write;

pub(super) fn observability(d: &mut String, i: &Inputs<'_>) {
    let p = i.plan;
    let _ = writeln!(d, "### Observability\n");
    let _ = writeln!(
        d,
        "- **Metrics** (Prometheus): request rate, errors and latency per route and status (RED); rule denials (401/403) per collection; 409/412/422 rates (client bugs or contention); database pool wait and query time; {}; outbox lag (oldest unrelayed event); migration state.",
        if p.multi_node {
            "Redis and NATS round-trip time"
        } else {
            "SQLite writer queue time"
        }
    );
    let _ = writeln!(
        d,
        "- **Logs**: one JSON line per request (`KEEL_LOG_FORMAT=json`) with method, route, status, latency and `request_id` (echoed in every response and problem body); bodies and tokens are never logged."
    );
    let _ = writeln!(
        d,
        "- **Traces**: a span per request with child spans for rule evaluation, the database transaction and the outbox write (OpenTelemetry export), joined to logs by `request_id`."
    );
    let _ = writeln!(
        d,
        "- **SLOs**: availability 99.9% of requests without 5xx over 30 days (43 min error budget); p99 latency under 100 ms for `GET /v1/{{c}}/{{id}}` and under 250 ms for lists and writes at the planned {} requests/s; outbox lag under 5 s. Alert on the burn rate of the error budget, not on single errors.\n",
        num(p.peak_rps)
    );
}

pub(super) fn deployment(d: &mut String, i: &Inputs<'_>) {
    let p = i.plan;
    let _ = writeln!(d, "### Deployment & CI/CD\n");
    let _ = writeln!(
        d,
        "- **CI**: `keel check --format sarif` (code scanning shows findings on keel.toml; errors fail the build), the test suite, `keel migrate --plan` against a copy of production's schema (the plan is posted for review; destructive steps need `--allow-destructive` and a second approval), and `keel design` to keep this document and its artifacts in sync (fail on drift)."
    );
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "- **Rollout**: build the image (`Dockerfile`: multi-stage, non-root, health check), stop the old container, start the new one; it migrates on start and answers `/readyz` when ready (a few seconds of downtime, acceptable at this scale). Take a backup first."
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "- **Rollout**: rolling update (`maxSurge: 1`, `maxUnavailable: 0`); a node receives traffic only once `/readyz` answers; SIGTERM drains in-flight requests before exit; the PodDisruptionBudget keeps capacity during node maintenance."
            );
        }
    }
    let _ = writeln!(
        d,
        "- **Zero-downtime migrations**: expand, then contract. Add fields and tables first (safe steps, applied on start under an advisory lock, one node at a time); deploy code that uses them; remove old fields in a later release with `--allow-destructive`. `keel serve` refuses to start while a destructive step is pending, so a half-migrated schema is never served."
    );
    let _ = writeln!(
        d,
        "- **Rollback**: redeploy the previous image; because migrations only add during a release, the previous version runs on the new schema. Destructive steps are never rolled back automatically: restore from the backup taken before them.\n"
    );
}
