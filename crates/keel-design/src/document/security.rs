//! Section 7, security: the threats this spec invites (anonymous writes, personal
//! data, enumeration) with what counters each, and the open review findings.

use super::{Inputs, audience_text, rule_text};
use crate::analysis::{self, Audience};
use crate::review::{Finding, Severity};
use keel_spec::Operation;
use std::fmt::Write;

pub(super) fn security(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let _ = writeln!(d, "### Security\n");
    let _ = writeln!(
        d,
        "Threats specific to this spec, and what counters each:\n"
    );
    let mut threats = Vec::new();
    for c in &m.collections {
        for op in [Operation::Create, Operation::Update, Operation::Delete] {
            if analysis::audience(c, op) == Audience::Anyone {
                let limits: Vec<String> = analysis::anonymous_limits(m, c, op)
                    .iter()
                    .map(|l| format!("`{}` = {}/{}s", l.key, l.requests, l.per_secs))
                    .collect();
                threats.push(format!(
                    "**Anonymous {} on `{}`** (rule {}): spam and storage exhaustion. Mitigation: {}; require sign-in once auth is rolled out, and keep field bounds (`max_length`) tight.",
                    op.as_str(),
                    c.name,
                    rule_text(c, op),
                    if limits.is_empty() { "**no rate limit applies — add one to [limits]**".to_string() } else { format!("rate limited by {}", limits.join(", ")) }
                ));
            }
        }
        let personal = analysis::personal_fields(c);
        if !personal.is_empty() {
            let who = audience_text(c, Operation::Read);
            threats.push(format!(
                "**Personal data in `{}`** ({}) readable by {} (rule {}). Mitigation: the read rule is compiled into every query (hidden rows are never returned or counted); keep it as narrow as the product allows, and never log bodies.",
                c.name,
                personal.join(", "),
                who,
                rule_text(c, Operation::Read)
            ));
        }
        let hidden: Vec<&str> = c
            .fields
            .iter()
            .filter(|f| f.hidden)
            .map(|f| f.name.as_str())
            .collect();
        if !hidden.is_empty() {
            threats.push(format!("**Hidden fields of `{}`** ({}) never leave the server and cannot be filtered on, so they cannot be probed through `?filter=`.", c.name, hidden.join(", ")));
        }
    }
    let public_read: Vec<String> = m
        .collections
        .iter()
        .filter(|c| {
            c.access
                .read
                .as_ref()
                .is_some_and(|r| analysis::always_true(c, r))
        })
        .map(|c| format!("`{}`", c.name))
        .collect();
    if !public_read.is_empty() {
        threats.push(format!(
            "**Enumeration** of {} (read rule `true`): anyone can page through every record. Mitigation: {}.",
            public_read.join(", "),
            if m.limits.iter().any(|l| l.key == "anonymous") { "the `anonymous` rate limit bounds the pace" } else { "add an `anonymous` rate limit" }
        ));
    }
    threats.push("**Injection through `?filter=` and `?sort=`**: both are parsed by Keel's own grammar and compiled to parameterized SQL; values are bound, never spliced; depth, length and list sizes are capped.".into());
    threats.push("**Lost updates and replays**: `If-Match` versions make concurrent edits fail with 412 instead of overwriting; `Idempotency-Key` makes retried creates safe.".into());
    threats.push("**Secrets**: `${VAR}` references only (`keel check` fails on plain-text secrets, code KD007); the cursor key is shared by every node, so cursors cannot be forged.".into());
    for t in threats {
        let _ = writeln!(d, "- {t}");
    }
    let open: Vec<&Finding> = i
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .collect();
    if open.is_empty() {
        let _ = writeln!(
            d,
            "\n`keel check` reports no errors or warnings for this spec.\n"
        );
    } else {
        let _ = writeln!(d, "\nOpen review findings (`keel check`):\n");
        for f in open {
            let _ = writeln!(
                d,
                "- {} {} (line {}): {} — fix: {}",
                f.severity.as_str(),
                f.code,
                f.line,
                f.message,
                f.fix
            );
        }
        d.push('\n');
    }
}
