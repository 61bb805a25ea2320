//! The capacity plan and the technology choices, computed from the model and its
//! `[scale]`. Every number the document prints comes from here, with the assumption
//! it rests on, so a reader can redo the arithmetic.

use crate::analysis;
use keel_spec::{Collection, FieldType, Model, Operation};

/// Writes per second one SQLite writer is planned for. A single WAL writer commits a
/// few thousand small transactions per second on an SSD; planning at a tenth of that
/// leaves room for bursts, bigger rows and the outbox row every write adds.
pub const SQLITE_WRITE_CEILING: f64 = 200.0;
/// Requests per second one API node (2 vCPU) is planned for: well under what the
/// store serves for get-by-id, so list-heavy traffic and rule evaluation fit too.
pub const NODE_RPS: f64 = 1500.0;
/// Peak-to-average ratio of daily traffic (storage grows with the average).
pub const PEAK_TO_AVERAGE: f64 = 4.0;
/// Users above which one node is not enough: a single node cannot roll out without
/// downtime, and an outage then touches too many people.
pub const HA_USERS: u64 = 20_000;
/// Database connections per node (2 vCPU), as `keel serve` opens them: a pool of 8
/// for transactions (4 per vCPU), 2 shared by reads, the event relay's 3, and 2
/// listening for `NOTIFY` (relay, realtime) — 15, planned as 16.
pub const POOL_PER_NODE: u64 = 16;
const SECONDS_PER_YEAR: f64 = 31_536_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// Load on one collection.
#[derive(Debug, Clone)]
pub struct CollectionLoad {
    pub name: String,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub row_bytes: u64,
    pub rows_per_year: f64,
    pub bytes_per_year: f64,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub users: u64,
    pub peak_rps: f64,
    pub read_write_ratio: f64,
    /// Which numbers were not in `[scale]` and were assumed.
    pub assumed: Vec<&'static str>,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub collections: Vec<CollectionLoad>,
    pub nodes: u64,
    pub connections: u64,
    pub database: Database,
    /// Why that database (the rule that decided it).
    pub database_reason: String,
    pub multi_node: bool,
    pub bytes_per_year: f64,
}

/// Plan for the model's `[scale]`, multiplied by `factor` (1 for the plan, 10 for "what
/// changes at 10×").
pub fn plan(model: &Model, factor: f64) -> Plan {
    let s = &model.scale;
    let mut assumed = Vec::new();
    let users = s.users.unwrap_or_else(|| {
        assumed.push("users = 1,000");
        1_000
    });
    let users = (users as f64 * factor) as u64;
    let peak_rps = match s.peak_rps {
        Some(p) => p as f64 * factor,
        None => {
            assumed.push("peak_rps = users / 200");
            (users as f64 / 200.0).max(5.0)
        }
    };
    let ratio = match s.read_write_ratio {
        Some(r) => r.max(1) as f64,
        None => {
            assumed.push("read_write_ratio = 10");
            10.0
        }
    };
    let writes = peak_rps / (ratio + 1.0);
    let reads = peak_rps - writes;
    let readable: Vec<&Collection> = model
        .collections
        .iter()
        .filter(|c| analysis::audience(c, Operation::Read) != analysis::Audience::Nobody)
        .collect();
    let writable: Vec<&Collection> = model
        .collections
        .iter()
        .filter(|c| {
            [Operation::Create, Operation::Update, Operation::Delete]
                .iter()
                .any(|op| analysis::audience(c, *op) != analysis::Audience::Nobody)
        })
        .collect();
    // Write weights: staff-only collections (a role-gated create) and sign-ups change
    // far less often than what every user writes.
    let weight = |c: &Collection| -> f64 {
        if c.builtin {
            return 0.2;
        }
        match &c.access.create {
            Some(r) if r.source.contains("has_role") && !r.source.contains("auth.id") => 0.1,
            _ => 1.0,
        }
    };
    let total_weight: f64 = writable.iter().map(|c| weight(c)).sum::<f64>().max(0.1);
    let mut collections = Vec::new();
    for c in &model.collections {
        let r = if readable.iter().any(|x| x.name == c.name) {
            reads / readable.len().max(1) as f64
        } else {
            0.0
        };
        let w = if writable.iter().any(|x| x.name == c.name) {
            writes * weight(c) / total_weight
        } else {
            0.0
        };
        // Rows grow with creates: assume half the writes are creates, averaged over the day.
        let mut rows_per_year = w * 0.5 / PEAK_TO_AVERAGE * SECONDS_PER_YEAR;
        if let Some(per_user) = s.records_per_user {
            rows_per_year = rows_per_year.min((users * per_user) as f64);
        }
        if c.builtin {
            // Users grow with sign-ups, not with request rate.
            rows_per_year = users as f64;
        }
        let row_bytes = row_bytes(c);
        collections.push(CollectionLoad {
            name: c.name.clone(),
            reads_per_sec: r,
            writes_per_sec: w,
            row_bytes,
            rows_per_year,
            bytes_per_year: rows_per_year * row_bytes as f64,
        });
    }
    let by_load = (peak_rps / NODE_RPS).ceil().max(1.0) as u64;
    let declared = s.nodes.map(|n| (n as f64 * factor).ceil() as u64);
    let (database, database_reason) = if writes > SQLITE_WRITE_CEILING {
        (
            Database::Postgres,
            format!(
                "peak writes ({}/s) exceed the {}/s planned for one SQLite writer",
                num(writes),
                num(SQLITE_WRITE_CEILING)
            ),
        )
    } else if declared.is_some_and(|n| n > 1) {
        (
            Database::Postgres,
            "[scale] asks for several nodes, which must share one database over the network".into(),
        )
    } else if by_load > 1 {
        (
            Database::Postgres,
            format!(
                "{} requests/s need {by_load} API nodes (planned at {}/s each), and SQLite lives inside one",
                num(peak_rps),
                num(NODE_RPS)
            ),
        )
    } else if users > HA_USERS {
        (
            Database::Postgres,
            format!(
                "{} users cannot wait out a single node's restarts: zero-downtime rollouts need two nodes, hence a networked database",
                num(users as f64)
            ),
        )
    } else {
        (
            Database::Sqlite,
            format!(
                "{} writes/s at peak is under the {}/s planned for one SQLite writer, one node serves {} requests/s, and {} users can accept a few seconds of restart",
                num(writes),
                num(SQLITE_WRITE_CEILING),
                num(peak_rps),
                num(users as f64)
            ),
        )
    };
    let multi_node = database == Database::Postgres;
    let nodes = match database {
        Database::Sqlite => 1,
        Database::Postgres => declared.unwrap_or(0).max(by_load).max(2),
    };
    let connections = match database {
        Database::Sqlite => 1 + 4,
        Database::Postgres => nodes * POOL_PER_NODE,
    };
    let bytes_per_year = collections.iter().map(|c| c.bytes_per_year).sum();
    Plan {
        users,
        peak_rps,
        read_write_ratio: ratio,
        assumed,
        reads_per_sec: reads,
        writes_per_sec: writes,
        collections,
        nodes,
        connections,
        database,
        database_reason,
        multi_node,
        bytes_per_year,
    }
}

/// Estimated bytes per row, with its indexes: system columns, each field at a typical
/// size (text at a third of its max_length), and 40% per index.
pub fn row_bytes(c: &Collection) -> u64 {
    let data: u64 = c
        .fields
        .iter()
        .map(|f| match &f.ty {
            FieldType::Text { max_length, .. } => {
                u64::from(max_length.unwrap_or(600)).div_ceil(3).max(8)
            }
            FieldType::Int { .. } | FieldType::Float { .. } | FieldType::Datetime => 8,
            FieldType::Bool => 1,
            FieldType::Date => 4,
            FieldType::Uuid | FieldType::Ref { .. } => 16,
            FieldType::Email | FieldType::Url => 40,
            FieldType::Enum { values } => values.iter().map(|v| v.len() as u64).max().unwrap_or(8),
            FieldType::Json => 200,
        })
        .sum::<u64>()
        + 24;
    let indexes =
        (c.indexes.len() + c.uniques.len() + c.fields.iter().filter(|f| f.unique).count()) as u64;
    data + data * 4 * indexes / 10
}

/// A number for people: `1,234`, `12.5`, `0.42`.
pub fn num(x: f64) -> String {
    if x >= 100.0 || x == x.trunc() {
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Bytes for people: `12 MB`, `3.4 GB`.
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if v >= 10.0 || u == 0 {
        format!("{} {}", v.round() as u64, UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
