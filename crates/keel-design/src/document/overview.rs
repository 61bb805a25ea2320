//! Section 2, the architecture overview: the components for the chosen database (one
//! node on SQLite, or stateless nodes on PostgreSQL with Redis and NATS), as prose, a
//! Mermaid flowchart and a table of roles.

use super::{Inputs, SECTIONS};
use crate::plan::Database;
use std::fmt::Write;

pub(super) fn overview(d: &mut String, i: &Inputs<'_>) {
    let p = i.plan;
    let m = i.model;
    let _ = writeln!(d, "## {}\n", SECTIONS[1]);
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "Clients call one Keel process over HTTPS (TLS ends at a reverse proxy). The process validates each request, evaluates the access rules inside the database transaction, writes the change and its outbox row together, and answers. Cache, rate limiter and event bus are in-process; the database is a SQLite file on a persistent volume, backed up continuously (e.g. Litestream) to object storage.\n"
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "Clients call a load balancer, which spreads requests over {} identical, stateless Keel nodes. Each node validates the request, evaluates the access rules inside the PostgreSQL transaction, writes the change and its outbox row together, and answers. Redis holds the shared rate-limit counters and cache entries (so every node enforces the same limits); the outbox relay on every node delivers committed changes to signed webhooks and publishes them to NATS JetStream, from which other consumers read. No node keeps state of its own, so nodes are added and replaced freely.\n",
                p.nodes
            );
        }
    }
    let mut g = String::from("flowchart LR\n");
    g.push_str("  clients[\"Clients: web, mobile, scripts\"]\n");
    match p.database {
        Database::Sqlite => {
            g.push_str("  proxy[\"Reverse proxy: TLS\"]\n");
            g.push_str("  subgraph node[\"Keel node\"]\n");
            g.push_str("    rest[\"REST /v1 + OpenAPI + docs\"]\n");
            g.push_str("    core[\"Operation core: validate, rules, transaction, outbox\"]\n");
            g.push_str("    mem[\"In-process cache, rate limiter, event bus\"]\n");
            g.push_str("  end\n");
            g.push_str("  db[(\"SQLite file, WAL\")]\n");
            g.push_str("  backup[\"Object storage backups\"]\n");
            g.push_str("  clients --> proxy --> rest --> core --> db\n");
            g.push_str("  core --> mem\n");
            g.push_str("  db -. continuous backup .-> backup\n");
        }
        Database::Postgres => {
            g.push_str("  lb[\"Load balancer: TLS\"]\n");
            let _ = writeln!(g, "  subgraph nodes[\"Keel nodes x{}\"]", p.nodes);
            g.push_str("    rest[\"REST /v1 + OpenAPI + docs\"]\n");
            g.push_str("    core[\"Operation core: validate, rules, transaction, outbox\"]\n");
            g.push_str("    relay[\"Outbox relay\"]\n");
            g.push_str("  end\n");
            g.push_str("  db[(\"PostgreSQL primary\")]\n");
            g.push_str("  replica[(\"Read replica\")]\n");
            g.push_str("  redis[(\"Redis: rate limits, cache\")]\n");
            g.push_str("  nats[[\"NATS JetStream\"]]\n");
            g.push_str("  clients --> lb --> rest --> core --> db\n");
            g.push_str("  core --> redis\n");
            g.push_str("  db -. streaming replication .-> replica\n");
            g.push_str("  relay --> db\n");
            g.push_str("  relay --> nats\n");
        }
    }
    if !m.webhooks.is_empty() {
        g.push_str("  hooks[\"Webhook receivers\"]\n");
        match p.database {
            Database::Sqlite => g.push_str("  mem -- signed POST --> hooks\n"),
            Database::Postgres => g.push_str("  relay -- signed POST --> hooks\n"),
        }
    }
    let _ = writeln!(d, "```mermaid\n{g}```\n");
    let _ = writeln!(d, "| component | role |\n|---|---|");
    let _ = writeln!(
        d,
        "| Clients | call `/v1/...` with JSON; sign in for `Authorization: Bearer` tokens |"
    );
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "| Reverse proxy | TLS, HTTP/2, compression; forwards to the one node |"
            );
            let _ = writeln!(
                d,
                "| Keel node | REST, rules, validation, migrations on start, in-process cache and events |"
            );
            let _ = writeln!(
                d,
                "| SQLite | the data, one writer and a pool of readers (WAL) |"
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "| Load balancer | TLS, health-checked routing to nodes that answer `/readyz` |"
            );
            let _ = writeln!(
                d,
                "| Keel nodes | stateless API: REST, rules, validation; one migrates at a time (advisory lock) |"
            );
            let _ = writeln!(
                d,
                "| PostgreSQL | the data; the primary takes writes and a caller's reads right after them, the replica serves lists (`KEEL_DATABASE_REPLICAS`) and stands by for failover |"
            );
            let _ = writeln!(
                d,
                "| Redis | shared rate-limit counters, the record cache (written through by every change) and who wrote recently (read-your-writes) |"
            );
            let _ = writeln!(
                d,
                "| NATS JetStream | durable event stream fed by the outbox relay |"
            );
        }
    }
    if !m.webhooks.is_empty() {
        let _ = writeln!(
            d,
            "| Webhook receivers | {} endpoint(s), signed deliveries with retries |",
            m.webhooks.len()
        );
    }
    d.push('\n');
}
