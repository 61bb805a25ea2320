//! `keel check` on access rules whose own comparisons contradict or cover each other
//! (KD010, KD011, KD016), through the public review API, with NULLs counted: a
//! comparison with NULL is false, so covering comparisons make a rule always true
//! only on fields that are never NULL.
#![allow(clippy::unwrap_used)]

use keel_design::{Finding, LINTS, Severity};
use std::collections::BTreeMap;

/// A collection `items` with nullable (`n`, `done`, `day`) and required (`status`, `r`)
/// fields, every column indexed, an anonymous limit: only the rule lints speak.
fn spec(rules: &str) -> String {
    format!(
        r#"[app]
name = "t"

[collections.items]
fields.owner  = {{ type = "ref", to = "users", default = "auth.id", immutable = true, on_delete = "cascade" }}
fields.status = {{ type = "enum", values = ["a", "b"], default = "a", required = true }}
fields.n      = {{ type = "int" }}
fields.r      = {{ type = "int", default = 0, required = true }}
fields.done   = {{ type = "bool" }}
fields.day    = {{ type = "datetime" }}
indexes = [["owner", "-created_at"], ["status"], ["n"], ["r"], ["done"], ["day"]]
{rules}

[limits]
anonymous = "30/min"

[scale]
users = 10
"#
    )
}

fn review(rules: &str) -> Vec<Finding> {
    let src = spec(rules);
    let model = keel_spec::load_str(&src, "keel.toml", &BTreeMap::<String, String>::new())
        .unwrap_or_else(|e| panic!("spec is invalid:\n{e}"));
    keel_design::review(&model, &src, "keel.toml")
        .into_iter()
        .filter(|f| matches!(f.code, "KD010" | "KD011" | "KD016"))
        .collect()
}

/// The one rule finding of `access.<op> = '<rule>'`, as (code, severity, message).
fn one(op: &str, rule: &str) -> Option<(&'static str, Severity, String)> {
    let findings = review(&format!("access.{op} = '{rule}'"));
    assert!(findings.len() <= 1, "{findings:#?}");
    findings
        .into_iter()
        .next()
        .map(|f| (f.code, f.severity, f.message))
}

fn never(op: &str, how: &str) -> Option<(&'static str, Severity, String)> {
    Some((
        "KD010",
        Severity::Error,
        format!("the {op} rule of `items` can never be true: {how}"),
    ))
}

#[test]
fn contradictions_are_errors_that_name_the_comparisons() {
    assert_eq!(
        one("read", r#"status == "a" && status == "b""#),
        never(
            "read",
            r#"`status == "a"` and `status == "b"` contradict each other"#
        )
    );
    assert_eq!(
        one("update", "owner == auth.id && n > 5 && n < 3"),
        never("update", "`n > 5` and `n < 3` contradict each other")
    );
    assert_eq!(
        one("create", "n == null && n != null"),
        never(
            "create",
            "`n == null` and `n != null` contradict each other"
        )
    );
    assert_eq!(
        one("delete", "r == 1 && !(r == 1)"),
        never("delete", "`r == 1` and `!(r == 1)` contradict each other")
    );
    assert_eq!(
        one("read", "n > 3 && n < 4"),
        never("read", "`n > 3` and `n < 4` contradict each other"),
        "no integer lies between 3 and 4"
    );
    assert_eq!(
        one("read", "r == null"),
        never(
            "read",
            "`r == null` is never true (given that `r` is never null)"
        )
    );
}

#[test]
fn every_branch_must_contradict() {
    assert_eq!(
        one(
            "read",
            r#"(n > 5 && n < 3) || (status == "a" && status == "b")"#
        ),
        never(
            "read",
            r#"no branch can be true (`n > 5` and `n < 3` contradict each other; `status == "a"` and `status == "b"` contradict each other)"#
        )
    );
    assert_eq!(one("read", r#"(n > 5 && n < 3) || status == "a""#), None);
}

#[test]
fn covering_comparisons_hold_only_where_nulls_cannot_break_them() {
    // `n` may be NULL, and then both comparisons are false.
    assert_eq!(one("read", "n > 3 || n <= 3"), None);
    assert_eq!(one("read", "done == true || done == false"), None);
    // `status` and `r` are required.
    assert_eq!(
        one("read", r#"status == "a" || status != "a""#),
        Some((
            "KD016",
            Severity::Warning,
            r#"the read rule of `items` is always true: `status == "a"` and `status != "a"` cover every case (given that `status` is never null)"#.into()
        ))
    );
    assert_eq!(
        one("create", "r > 3 || r <= 3"),
        Some((
            "KD016",
            Severity::Warning,
            "the create rule of `items` is always true: `r > 3` and `r <= 3` cover every case (given that `r` is never null)".into()
        ))
    );
    // `x || !x` holds for NULL too: `!` turns the false comparison true.
    assert_eq!(
        one("update", "done || !done"),
        Some((
            "KD011",
            Severity::Warning,
            "the update rule of `items` is always true: `done` and `!done` cover every case".into()
        ))
    );
    assert_eq!(
        one("read", "n == null || n != null").map(|f| f.0),
        Some("KD016")
    );
    assert_eq!(one("read", "!(n > 5 && n < 3)").map(|f| f.0), Some("KD016"));
    // The caller may be anonymous.
    assert_eq!(one("read", "auth.id == owner || auth.id != owner"), None);
}

#[test]
fn constants_keep_their_findings() {
    assert_eq!(one("delete", "false"), never("delete", "`false`"));
    assert_eq!(
        one("update", "true"),
        Some((
            "KD011",
            Severity::Warning,
            "the update rule of `items` is always true".into()
        ))
    );
    // A public read or an open create, written as `true`, is a decision.
    assert_eq!(one("read", "true"), None);
    assert_eq!(one("create", "true"), None);
}

#[test]
fn equal_values_written_differently_are_no_contradiction() {
    for rule in [
        "n == 1 && n == 1.0",
        r#"day == "2024-01-01T00:00:00Z" && day == "2024-01-01T01:00:00+01:00""#,
        "n > 3 && n < 5",
        "n > 3.5 && n < 4", // empty, but a Float bound on an Int is not counted: no proof
        "day < now() && day > now()",
        r#"has_role("a") || !has_role("b")"#,
    ] {
        assert_eq!(one("read", rule), None, "{rule}");
    }
}

#[test]
fn findings_point_at_the_rule_and_serialize() {
    let findings = review("access.read = 'n > 5 && n < 3'\naccess.update = 'done || !done'");
    let lines: Vec<(&str, usize)> = findings.iter().map(|f| (f.code, f.line)).collect();
    assert_eq!(lines, [("KD010", 12), ("KD011", 13)]);
    let json = serde_json::to_value(&findings).unwrap();
    assert_eq!(json[0]["severity"], "error");
    assert_eq!(json[1]["code"], "KD011");
    assert!(
        findings
            .iter()
            .all(|f| !f.why.is_empty() && !f.fix.is_empty())
    );
    let lint = LINTS.iter().find(|l| l.code == "KD016").unwrap();
    assert_eq!(lint.name, "rule-covers-every-case");
}
