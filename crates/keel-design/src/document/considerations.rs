//! Section 7, the key considerations: the section's order, and its first part,
//! scalability (the capacity plan per collection, nodes and connections, and what
//! changes at 10× the load).

use super::{Inputs, SECTIONS, operations, security};
use crate::plan::{self, Database, bytes, num};
use std::fmt::Write;

pub(super) fn considerations(d: &mut String, i: &Inputs<'_>) {
    let _ = writeln!(d, "## {}\n", SECTIONS[6]);
    scalability(d, i);
    security::security(d, i);
    operations::observability(d, i);
    operations::deployment(d, i);
}

fn scalability(d: &mut String, i: &Inputs<'_>) {
    let p = i.plan;
    let p10 = i.plan10;
    let _ = writeln!(d, "### Scalability\n");
    let _ = writeln!(
        d,
        "Capacity plan from `[scale]`: {} users, {} requests/s at peak, {} reads per write → **{} reads/s and {} writes/s**. Reads are spread evenly over the collections that have a read rule; writes over the writable ones, weighted (staff-only collections 0.1, `users` 0.2, the rest 1) until `keel advise` measures the real mix. Storage assumes half the writes are creates, a peak-to-average ratio of {}, and the row sizes below (indexes included).\n",
        num(p.users as f64),
        num(p.peak_rps),
        num(p.read_write_ratio),
        num(p.reads_per_sec),
        num(p.writes_per_sec),
        num(plan::PEAK_TO_AVERAGE)
    );
    let _ = writeln!(
        d,
        "| collection | reads/s (peak) | writes/s (peak) | bytes/row | rows/year | storage/year |\n|---|---|---|---|---|---|"
    );
    for c in &p.collections {
        let _ = writeln!(
            d,
            "| `{}` | {} | {} | {} | {} | {} |",
            c.name,
            num(c.reads_per_sec),
            num(c.writes_per_sec),
            num(c.row_bytes as f64),
            num(c.rows_per_year),
            bytes(c.bytes_per_year)
        );
    }
    let _ = writeln!(
        d,
        "| **total** | **{}** | **{}** | | | **{}** |\n",
        num(p.reads_per_sec),
        num(p.writes_per_sec),
        bytes(p.bytes_per_year)
    );
    let _ = writeln!(
        d,
        "- API nodes: **{}** (planned at {} requests/s per 2-vCPU node{}).",
        p.nodes,
        num(plan::NODE_RPS),
        if p.multi_node {
            ", at least two for rolling deploys"
        } else {
            ""
        }
    );
    match p.database {
        Database::Sqlite => {
            let _ = writeln!(
                d,
                "- Database connections: **{}** (one writer, four readers) inside the process.",
                p.connections
            );
        }
        Database::Postgres => {
            let _ = writeln!(
                d,
                "- Database connections: **{}** ({} nodes × {}: on 2 vCPU a node opens 8 for transactions, 2 shared by reads, 3 for the event relay and 2 listening for `NOTIFY`); PostgreSQL's default `max_connections` is 100{}.",
                p.connections,
                p.nodes,
                plan::POOL_PER_NODE,
                if p.connections > 80 {
                    ", so put PgBouncer (transaction pooling) in front"
                } else {
                    ", which leaves room for migrations and admin sessions"
                }
            );
        }
    }
    let _ = writeln!(
        d,
        "- Write headroom: one SQLite writer is planned at {}/s; this spec peaks at {}/s.\n",
        num(plan::SQLITE_WRITE_CEILING),
        num(p.writes_per_sec)
    );
    let _ = writeln!(
        d,
        "**At 10× the load** ({} users, {} requests/s):\n",
        num(p10.users as f64),
        num(p10.peak_rps)
    );
    let mut changes = Vec::new();
    if p10.database != p.database {
        changes.push(format!(
            "the database changes to {}: {}",
            p10.database.name(),
            p10.database_reason
        ));
    }
    changes.push(format!(
        "API nodes go from {} to {}; connections from {} to {}{}",
        p.nodes,
        p10.nodes,
        p.connections,
        p10.connections,
        if p10.connections > 80 && p10.database == Database::Postgres {
            " — PgBouncer becomes necessary"
        } else {
            ""
        }
    ));
    changes.push(format!(
        "storage grows by {} a year instead of {}{}",
        bytes(p10.bytes_per_year),
        bytes(p.bytes_per_year),
        if p10.bytes_per_year > 500e9 {
            "; partition the largest tables by `created_at` and archive cold rows"
        } else {
            ""
        }
    ));
    if p10.reads_per_sec > 5_000.0 {
        changes.push(format!(
            "{} reads/s: serve lists from read replicas and cache hot records in Redis",
            num(p10.reads_per_sec)
        ));
    }
    if p10.writes_per_sec > 2_000.0 {
        changes.push(format!("{} writes/s: batch outbox relays and consider sharding the busiest collection by tenant or owner", num(p10.writes_per_sec)));
    }
    for c in changes {
        let _ = writeln!(d, "- {c}");
    }
    d.push('\n');
}
