//! Section 6, the technology stack rationale: each choice (database, cache and limits,
//! events, tokens, API style, hosting) with why it fits this spec and the alternative.

use super::{Inputs, SECTIONS};
use crate::plan::{self, Database, num};
use std::fmt::Write;

pub(super) fn stack(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let p = i.plan;
    let _ = writeln!(d, "## {}\n", SECTIONS[5]);
    let _ = writeln!(
        d,
        "| concern | choice | why, for this spec | alternative and trade-off |\n|---|---|---|---|"
    );
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "| Database | SQLite (WAL, one writer, reader pool) | {} | PostgreSQL: survives node loss and scales out, but adds a server to run, back up and pay for, and a network hop per query; switch when writes pass {}/s, more than one node is needed, or users pass {} |",
                p.database_reason,
                num(plan::SQLITE_WRITE_CEILING),
                num(plan::HA_USERS as f64)
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "| Database | PostgreSQL (primary + replica) | {} | SQLite: zero operations and faster per query, but one writer inside one process — no rolling deploys, no second node; it would fit again below {}/s writes, one node and {} users |",
                p.database_reason,
                num(plan::SQLITE_WRITE_CEILING),
                num(plan::HA_USERS as f64)
            );
        }
    }
    if p.multi_node {
        let _ = writeln!(
            d,
            "| Cache and rate limits | Redis | {} nodes must share rate-limit counters (a per-node limit would multiply by {}) and invalidate cache entries together | per-node memory (moka): no extra service, but limits become per node and caches go stale across nodes |",
            p.nodes, p.nodes
        );
        let _ = writeln!(
            d,
            "| Events | NATS JetStream fed by the transactional outbox | durable, replayable stream that every node's relay can publish to; consumers (webhooks, search, analytics) read at their own pace | RabbitMQ: richer routing, heavier to run; Kafka: far beyond {} writes/s, heavy to operate |",
            num(p.writes_per_sec)
        );
    } else {
        let _ = writeln!(
            d,
            "| Cache and rate limits | in-process (moka, governor) | one node: a shared store adds a network hop and a service for nothing | Redis: needed the day a second node appears |"
        );
        let _ = writeln!(
            d,
            "| Events | outbox table + in-process relay | {} writes/s fit in the database itself; the outbox keeps events exactly-once with the change | NATS JetStream: durable fan-out to many consumers, one more service to run |",
            num(p.writes_per_sec)
        );
    }
    let tokens = if m.auth.password || !m.auth.oauth.is_empty() {
        format!(
            "short-lived signed access tokens ({} min) verified without a database read on any node, rotating refresh tokens ({} days) with reuse detection to revoke stolen ones",
            (m.auth.access_ttl_secs / 60).max(1),
            (m.auth.refresh_ttl_secs / 86_400).max(1)
        )
    } else {
        "the spec declares no sign-in; tokens come with the [auth] section".into()
    };
    let _ = writeln!(
        d,
        "| Token scheme | JWT access + opaque refresh tokens | {tokens} | server-side sessions: instant revocation, but a store lookup on every request{} |",
        if p.multi_node { " from every node" } else { "" }
    );
    let _ = writeln!(
        d,
        "| API style | REST + OpenAPI 3.1 | {} collections map one-to-one to resources; HTTP caching, idempotency keys and problem+json work with every client and tool | GraphQL: fewer round trips for nested screens, but per-field cost control and caching are harder |",
        m.collections.len()
    );
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "| Hosting | one container with a persistent volume (or a small VM) | one node serves {} requests/s with room to spare | Kubernetes with several replicas: the manifests in `k8s/` are ready, pinned to one replica until the database changes |",
                num(p.peak_rps)
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "| Hosting | Kubernetes: {} replicas, HPA up to {}, PodDisruptionBudget | stateless nodes scale on CPU; rolling deploys keep capacity | a PaaS (Fly.io, Render, Cloud Run): less to operate, less control over networking and cost at this size |",
                p.nodes,
                p.nodes * 3
            );
        }
    }
    d.push('\n');
}
