//! The design review behind `keel check`: faults a senior reviewer would catch in a
//! keel.toml that is valid but not yet good. Pure: model and source in, findings out.
//!
//! Every finding has a stable code (`KD0xx`, never reused), a severity, the keel.toml
//! location, what is wrong, why it matters and the fix.

mod events;
mod logic;

use crate::analysis::{self, Audience};
use keel_spec::error::SourceMap;
use keel_spec::{Collection, FieldType, Model, Operation, SourceSpan};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
    /// The SARIF `level`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "note",
        }
    }
}

/// One review finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub why: String,
    pub fix: String,
}

/// A lint: its code, a short name, and what it looks for (for SARIF rules and docs).
pub struct Lint {
    pub code: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
}

/// Every lint `keel check` runs. Codes are stable; a retired code is never reused.
pub const LINTS: &[Lint] = &[
    Lint {
        code: "KD001",
        name: "anonymous-write-unlimited",
        summary: "an operation that writes accepts anonymous callers and no rate limit applies",
    },
    Lint {
        code: "KD002",
        name: "rule-column-unindexed",
        summary: "a read rule filters on a column no index leads with",
    },
    Lint {
        code: "KD003",
        name: "sort-unindexed",
        summary: "the default sort has no index to walk",
    },
    Lint {
        code: "KD004",
        name: "ref-unindexed",
        summary: "a ref column has no index",
    },
    Lint {
        code: "KD005",
        name: "list-unbounded",
        summary: "anyone can page through the whole collection with no rate limit",
    },
    Lint {
        code: "KD006",
        name: "personal-data-public",
        summary: "personal fields are readable by everyone",
    },
    Lint {
        code: "KD007",
        name: "plaintext-secret",
        summary: "a secret is written in keel.toml instead of `${VAR}`",
    },
    Lint {
        code: "KD008",
        name: "ref-on-delete-implicit",
        summary: "a ref does not say what happens when its target is deleted",
    },
    Lint {
        code: "KD009",
        name: "text-unbounded",
        summary: "a text field has no max_length",
    },
    Lint {
        code: "KD010",
        name: "rule-never-true",
        summary: "an access rule can never be true",
    },
    Lint {
        code: "KD011",
        name: "rule-always-true",
        summary: "an update or delete rule is always true",
    },
    Lint {
        code: "KD012",
        name: "limit-route-unknown",
        summary: "a `[limits]` route matches no endpoint",
    },
    Lint {
        code: "KD013",
        name: "webhook-unsigned",
        summary: "a webhook has no signing secret",
    },
    Lint {
        code: "KD014",
        name: "scale-missing",
        summary: "no `[scale]`: the capacity plan runs on assumptions",
    },
    Lint {
        code: "KD015",
        name: "personal-data-members",
        summary: "personal fields are readable by every signed-in user",
    },
    Lint {
        code: "KD016",
        name: "rule-covers-every-case",
        summary: "a read or create rule is always true because its comparisons cover every case",
    },
    Lint {
        code: "KD017",
        name: "webhook-plain-http",
        summary: "a webhook sends events over plain http to a host other than this machine",
    },
    Lint {
        code: "KD018",
        name: "webhook-private-address",
        summary: "a webhook points at a private or loopback address without `allow_private = true`: the relay will refuse it",
    },
];

struct Ctx<'a> {
    file: &'a str,
    map: SourceMap<'a>,
    src: &'a str,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        offset: usize,
        message: String,
        why: &str,
        fix: String,
    ) {
        let (line, column) = self.map.line_col(offset);
        self.out.push(Finding {
            severity,
            code,
            file: self.file.to_string(),
            line,
            column,
            message,
            why: why.to_string(),
            fix,
        });
    }

    /// Where a collection is declared (its `[collections.NAME]` header or first key).
    fn collection_at(&self, c: &Collection) -> usize {
        if c.span != (0..0) {
            return c.span.start;
        }
        self.find(&format!("[collections.{}]", c.name))
            .or_else(|| self.find(&format!("collections.{}", c.name)))
            .unwrap_or(0)
    }

    fn find(&self, needle: &str) -> Option<usize> {
        self.src.find(needle)
    }

    /// Where `key` is written inside the collection's section, else the section.
    fn key_in_collection(&self, c: &Collection, key: &str) -> usize {
        let start = self.collection_at(c);
        let rest = self.src.get(start..).unwrap_or("");
        // Up to the next table header.
        let end = rest
            .match_indices("\n[")
            .map(|(i, _)| i)
            .next()
            .unwrap_or(rest.len());
        rest[..end].find(key).map(|i| start + i).unwrap_or(start)
    }

    fn span_or_collection(&self, span: &SourceSpan, c: &Collection) -> usize {
        if *span == (0..0) {
            self.collection_at(c)
        } else {
            span.start
        }
    }
}

/// Review `model` (loaded from `src`, named `file` in findings). Findings come sorted
/// by position, then code, so the output is stable.
pub fn review(model: &Model, src: &str, file: &str) -> Vec<Finding> {
    let mut cx = Ctx {
        file,
        map: SourceMap::new(src),
        src,
        out: Vec::new(),
    };
    for c in &model.collections {
        collection(&mut cx, model, c);
    }
    secrets(&mut cx);
    for l in &model.limits {
        if l.key.contains(' ') && !analysis::route_exists(model, &l.key) {
            cx.push(
                Severity::Warning,
                "KD012",
                l.span.start,
                format!("the limit `{}` matches no endpoint", l.key),
                "a limit on a route that does not exist protects nothing, and usually means a typo in the path",
                "name an endpoint of this spec, e.g. \"POST /v1/<collection>\" or \"PATCH /v1/<collection>/{id}\"".into(),
            );
        }
    }
    events::webhooks(&mut cx, model);
    let s = &model.scale;
    if s.users.is_none() && s.peak_rps.is_none() {
        cx.push(
            Severity::Info,
            "KD014",
            0,
            "no [scale] section".into(),
            "`keel design` sizes nodes, connections and storage from [scale]; without it the plan uses small defaults",
            "add [scale] with users, peak_rps and read_write_ratio".into(),
        );
    }
    let mut out = cx.out;
    out.sort_by(|a, b| (a.line, a.column, a.code).cmp(&(b.line, b.column, b.code)));
    out.dedup();
    out
}

fn collection(cx: &mut Ctx<'_>, model: &Model, c: &Collection) {
    // Writes open to anonymous callers.
    for op in [Operation::Create, Operation::Update, Operation::Delete] {
        let Some(rule) = c.access.get(op) else {
            continue;
        };
        if analysis::audience(c, op) == Audience::Anyone
            && analysis::anonymous_limits(model, c, op).is_empty()
        {
            cx.push(
                Severity::Warning,
                "KD001",
                cx.span_or_collection(&rule.span, c),
                format!(
                    "anonymous callers may {} `{}` and no rate limit applies",
                    op.as_str(),
                    c.name
                ),
                "a script can fill the table (or rewrite it) as fast as the server accepts requests: spam, storage exhaustion, write-lock contention",
                format!(
                    "require sign-in (`auth.id != null && …`) or add to [limits]: `anonymous = \"60/min\"` or \"{}\" = \"10/min\"",
                    analysis::route(c, op, false)
                ),
            );
        }
    }
    // Rules that are never true, or always true where that is dangerous.
    logic::rules(cx, c);
    let readable = analysis::audience(c, Operation::Read);
    // Read rules compiled into every list's WHERE: their columns want an index.
    if let Some(rule) = &c.access.read {
        for col in analysis::rule_columns(c, rule) {
            if !analysis::leading_indexed(c, &col) {
                cx.push(
                    Severity::Warning,
                    "KD002",
                    cx.span_or_collection(&rule.span, c),
                    format!("the read rule of `{}` filters on `{col}`, which has no index", c.name),
                    "the rule is part of every list's WHERE clause; without an index each page scans the table, and the scan grows with it",
                    format!("add `indexes = [[\"{col}\", \"-created_at\"]]` to [collections.{}]", c.name),
                );
            }
        }
        if !only_own_record(rule) {
            for k in c.default_sort.iter().take(1) {
                if !analysis::sort_indexed(c, &k.field) {
                    cx.push(
                        Severity::Warning,
                        "KD003",
                        cx.key_in_collection(c, "default_sort"),
                        format!("`{}` lists sort by `{k}` by default, and no index holds `{}`", c.name, k.field),
                        "every page of an unsorted-by-index list sorts the whole matching set; keyset cursors stay fast only when an index walks the sort order",
                        format!("add `indexes = [[\"{k}\"]]` (or put `{k}` after the filtered columns of an existing index)"),
                    );
                }
            }
        }
        if readable == Audience::Anyone
            && analysis::always_true(c, rule)
            && analysis::anonymous_limits(model, c, Operation::Read).is_empty()
        {
            cx.push(
                Severity::Warning,
                "KD005",
                cx.span_or_collection(&rule.span, c),
                format!("anyone may page through every `{}` record and no rate limit bounds it", c.name),
                "with a public rule and no limit, a scraper can copy the whole collection, and each page still costs a query",
                "add `anonymous = \"60/min\"` (or a \"GET /v1/…\" route limit) to [limits], or narrow the read rule".into(),
            );
        }
        let personal = analysis::personal_fields(c);
        if !personal.is_empty() && !only_own_record(rule) {
            let list = personal
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            match readable {
                Audience::Anyone => cx.push(
                    Severity::Warning,
                    "KD006",
                    cx.span_or_collection(&rule.span, c),
                    format!("`{}` is readable by anyone and exposes {list}", c.name),
                    "personal data readable without signing in is harvested by scrapers and is a data-protection breach (GDPR art. 5, 32)",
                    format!("narrow `access.read` (e.g. `id == auth.id` or `auth.id != null`), or mark {list} `hidden = true`, or move public fields to a profile collection"),
                ),
                Audience::SignedIn if !rule_is_per_row(rule) => cx.push(
                    Severity::Info,
                    "KD015",
                    cx.span_or_collection(&rule.span, c),
                    format!("every signed-in user can read {list} of every `{}` record", c.name),
                    "anyone who signs up can collect these fields; fine for a closed team, not for a public sign-up",
                    "tie the rule to the record (e.g. `id == auth.id || auth.has_role(\"admin\")`) if sign-up is public".into(),
                ),
                _ => {}
            }
        }
    }
    for f in c.fields.iter().filter(|f| !f.system && f.span != (0..0)) {
        match &f.ty {
            FieldType::Ref {
                to,
                on_delete_explicit,
                ..
            } => {
                if !on_delete_explicit {
                    cx.push(
                        Severity::Warning,
                        "KD008",
                        f.span.start,
                        format!("`{}.{}` does not say what happens when a `{to}` record is deleted", c.name, f.name),
                        "the default (restrict) makes deleting the target fail with 409 while this record points at it; that must be a decision, not an accident",
                        "add `on_delete = \"cascade\"`, `\"set_null\"` or `\"restrict\"`".into(),
                    );
                }
                if !analysis::leading_indexed(c, &f.name) {
                    cx.push(
                        Severity::Warning,
                        "KD004",
                        f.span.start,
                        format!("ref `{}.{}` has no index", c.name, f.name),
                        "deleting a target record checks (or cascades to) the rows pointing at it, and `?filter=` on the ref is the usual way to list children: both scan the table without an index",
                        format!("add `indexes = [[\"{}\", \"-created_at\"]]` to [collections.{}]", f.name, c.name),
                    );
                }
            }
            FieldType::Text {
                max_length: None, ..
            } if !f.readonly && !f.hidden => {
                cx.push(
                    Severity::Warning,
                    "KD009",
                    f.span.start,
                    format!("text field `{}.{}` has no max_length", c.name, f.name),
                    "an unbounded field lets one request store up to the body limit (1 MiB) in every row; lists, indexes and backups grow with it",
                    "add `max_length = …` (e.g. 200 for a title, 5000 for a body)".into(),
                );
            }
            _ => {}
        }
    }
}

/// `id == auth.id`-style rules: a caller only ever sees one record (their own).
fn only_own_record(rule: &keel_spec::Rule) -> bool {
    let s: String = rule.source.chars().filter(|c| !c.is_whitespace()).collect();
    s == "id==auth.id" || s == "auth.id==id"
}

/// A rule that depends on the record (not only on the caller).
fn rule_is_per_row(rule: &keel_spec::Rule) -> bool {
    rule.typed
        .paths()
        .iter()
        .any(|p| p.first().is_some_and(|f| f != "auth"))
}

/// Keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "client_secret",
    "password",
    "token",
    "api_key",
    "apikey",
    "private_key",
];

/// Secrets written in plain text: a secret-named key whose string is not `${VAR}`, or
/// a database URL with a password in it.
fn secrets(cx: &mut Ctx<'_>) {
    let mut offset = 0;
    let lines: Vec<&str> = cx.src.split_inclusive('\n').collect();
    for line in lines {
        let here = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let value = value.trim();
        let Some(text) = value
            .strip_prefix('"')
            .and_then(|v| v.split('"').next())
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.split('\'').next()))
        else {
            continue;
        };
        let at = here + (line.len() - trimmed.len()) + trimmed.find(text).unwrap_or(0);
        let last = key.rsplit('.').next().unwrap_or(key);
        if SECRET_KEYS.contains(&last) && !text.contains("${") && !text.is_empty() {
            cx.push(
                Severity::Error,
                "KD007",
                at,
                format!("`{key}` is written in plain text"),
                "keel.toml is committed and shared; a secret in it leaks with every clone, log and backup, and cannot be rotated per environment",
                format!("write `{key} = \"${{{}}}\"` and set that variable in the environment", env_name(key)),
            );
        } else if (last == "database" || last == "url")
            && (text.starts_with("postgres://") || text.starts_with("postgresql://"))
            && url_has_password(text)
        {
            cx.push(
                Severity::Error,
                "KD007",
                at,
                format!("`{key}` holds a database password in plain text"),
                "keel.toml is committed and shared; the password leaks with every clone",
                "write `database = \"${KEEL_DATABASE_URL}\"` or pass --database / KEEL_DATABASE_URL".into(),
            );
        }
    }
}

fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let auth = rest.split('@');
    let (Some(userinfo), Some(_)) = ({
        let mut a = auth;
        (a.next(), a.next())
    }) else {
        return false;
    };
    userinfo
        .split_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && !p.contains("${"))
}

fn env_name(key: &str) -> String {
    key.rsplit('.')
        .next()
        .unwrap_or(key)
        .to_uppercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// Does any finding make `keel check` fail?
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
