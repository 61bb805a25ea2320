//! Unit tests of the proofs over a small scope of paths.

use super::*;
use crate::types::Type;
use crate::{Scope, check, parse};

/// `n`, `m` Int; `f` Float; `s` Text; `e` Enum(a, b); `b` Bool; `t` Datetime;
/// `u` Uuid; `j` Json; `auth.id` Uuid; `auth.roles` a list of Text.
struct Paths;

impl Scope for Paths {
    fn resolve(&self, path: &[String]) -> Result<Type, String> {
        Ok(match path.join(".").as_str() {
            "n" | "m" => Type::Int,
            "f" => Type::Float,
            "s" => Type::Text,
            "e" => Type::Enum(vec!["a".into(), "b".into()]),
            "b" => Type::Bool,
            "t" => Type::Datetime,
            "u" | "auth.id" => Type::Uuid,
            "j" => Type::Json,
            "auth.roles" => Type::List(Box::new(Type::Text)),
            other => return Err(format!("unknown `{other}`")),
        })
    }
}

fn typed(src: &str) -> Typed {
    let expr = parse(src).unwrap_or_else(|e| panic!("parse `{src}`: {e}"));
    check(&expr, &Paths).unwrap_or_else(|e| panic!("check `{src}`: {e:?}"))
}

fn nullable(_: &[String]) -> bool {
    true
}

/// Record fields are never NULL; the caller's may be.
fn required(p: &[String]) -> bool {
    p[0] == "auth"
}

/// The quoted conditions of each case.
fn quoted(src: &str, proof: &Proof) -> Vec<Vec<String>> {
    proof
        .cases
        .iter()
        .map(|c| {
            c.spans
                .iter()
                .map(|s| src[s.start..s.end].to_string())
                .collect()
        })
        .collect()
}

fn never(src: &str) -> Option<Vec<Vec<String>>> {
    typed(src).never_true(&nullable).map(|p| quoted(src, &p))
}

fn always(src: &str, nulls: &dyn Nullability) -> Option<Vec<Vec<String>>> {
    typed(src).always_true(nulls).map(|p| quoted(src, &p))
}

fn v(items: &[&str]) -> Vec<Vec<String>> {
    vec![items.iter().map(|s| (*s).to_string()).collect()]
}

#[test]
fn contradictions_name_the_comparisons() {
    assert_eq!(
        never(r#"s == "a" && n > 1 && s == "b""#),
        Some(v(&[r#"s == "a""#, r#"s == "b""#]))
    );
    assert_eq!(never("n > 5 && n < 3"), Some(v(&["n > 5", "n < 3"])));
    assert_eq!(
        never("n == null && n != null"),
        Some(v(&["n == null", "n != null"]))
    );
    assert_eq!(
        never("n == 1 && !(n == 1)"),
        Some(v(&["n == 1", "!(n == 1)"]))
    );
    assert_eq!(
        never("n == null && n > 1"),
        Some(v(&["n == null", "n > 1"]))
    );
    assert_eq!(
        never("e == \"a\" && e == \"b\""),
        Some(v(&["e == \"a\"", "e == \"b\""]))
    );
    assert_eq!(never("u != u"), Some(v(&["u != u"])));
    assert_eq!(never("n < m && m < n"), Some(v(&["n < m", "m < n"])));
    assert_eq!(
        never("n <= m && n != m && n >= m").map(|c| c[0].len()),
        Some(3)
    );
    assert_eq!(
        never(r#"has_role("a") && !has_role("a")"#),
        Some(v(&[r#"has_role("a")"#, r#"!has_role("a")"#]))
    );
    assert_eq!(never("b && b == false"), Some(v(&["b", "b == false"])));
    assert!(never(r#"lower(s) == "a" && lower(s) != "a""#).is_some());
    assert_eq!(never("1 > 2 && n == 1"), Some(v(&["1 > 2"])));
}

#[test]
fn every_branch_must_contradict() {
    assert_eq!(
        never(r#"(n > 5 && n < 3) || (s == "a" && s == "b")"#),
        Some(vec![
            vec!["n > 5".to_string(), "n < 3".to_string()],
            vec![r#"s == "a""#.to_string(), r#"s == "b""#.to_string()],
        ])
    );
    assert_eq!(never(r#"(n > 5 && n < 3) || s == "a""#), None);
    // Distributed: (n > 5 || s == "a") && n < 3 && s == "b".
    assert!(never(r#"(n > 5 || s == "a") && n < 3 && s == "b""#).is_some());
}

#[test]
fn integers_are_counted_other_orders_are_not() {
    assert!(never("n > 3 && n < 4").is_some());
    assert!(never("n >= 3 && n <= 4 && n != 3 && n != 4").is_some());
    assert!(never("n >= 3 && n <= 5 && n != 3 && n != 5").is_none());
    assert!(never("n > 9223372036854775807").is_some());
    assert!(never("f > 3 && f < 4").is_none());
    assert!(never("f >= 1.5 && f <= 1.5 && f != 1.5").is_some());
    assert!(never("f > 1.5 && f < 1.5").is_some());
    assert!(never(r#"s > "b" && s < "a""#).is_some());
    assert!(never(r#"t > "2024-01-02T00:00:00Z" && t < "2024-01-01T00:00:00Z""#).is_some());
    assert!(never(r#"s in ["a", "b"] && s == "c""#).is_some());
    assert!(never(r#"s in ["a", "b"] && s != "a""#).is_none());
    assert!(never(r#"s in ["a", "b"] && !(s in ["a", "b"])"#).is_some());
    assert_eq!(never("s in []"), Some(v(&["s in []"])));
    assert!(never("b != true && b != false").is_some());
}

#[test]
fn equal_values_written_differently_are_not_a_contradiction() {
    assert_eq!(never("n == 1 && n == 1.0"), None);
    assert_eq!(
        never(r#"t == "2024-01-01T00:00:00Z" && t == "2024-01-01T01:00:00+01:00""#),
        None
    );
    assert_eq!(
        never(
            r#"u == "67E55044-10B1-426F-9247-BB680E5FE0C8" && u == "67e55044-10b1-426f-9247-bb680e5fe0c8""#
        ),
        None
    );
}

#[test]
fn no_proof_without_one() {
    for src in [
        "n > 3 && n < 5",
        "n == m && n != 1",
        "n > 3.5 && n < 4", // no integer, but a Float bound is not counted
        "t < now() && t > now()",
        r#"s ~ "a" && !(s ~ "b")"#,
        "n == 9007199254740993 && n != 9007199254740992.0",
        "auth.id != null && u == null",
    ] {
        assert_eq!(never(src), None, "{src}");
    }
    // Past the expansion bound there is no proof, never a wrong one.
    let wide: Vec<String> = (0..9).map(|i| format!("(n == {i} || m == {i})")).collect();
    assert_eq!(
        never(&format!("{} && n > 5 && n < 3", wide.join(" && "))),
        None
    );
}

#[test]
fn tautologies_hold_for_nulls_too() {
    assert_eq!(always(r#"s == "a" || s != "a""#, &nullable), None);
    assert_eq!(always("n > 3 || n <= 3", &nullable), None);
    assert_eq!(always("b == true || b == false", &nullable), None);
    let p = typed(r#"s == "a" || s != "a""#).always_true(&required);
    assert_eq!(
        p.as_ref().map(Proof::not_null),
        Some(vec![vec!["s".to_string()]])
    );
    assert_eq!(
        always("n > 3 || n <= 3", &required),
        Some(v(&["n > 3", "n <= 3"]))
    );
    assert!(always("n > 3 || n < 5", &required).is_some());
    assert!(always("b == true || b == false", &required).is_some());
    // Classical ones need no facts.
    assert_eq!(always("b || !b", &nullable), Some(v(&["b", "!b"])));
    assert_eq!(
        always("n == null || n != null", &nullable),
        Some(v(&["n == null", "n != null"]))
    );
    assert!(always("n > 3 || !(n > 3)", &nullable).is_some());
    assert!(always("!(n > 5 && n < 3)", &nullable).is_some());
    let p = typed("b || !b").always_true(&required);
    assert_eq!(
        p.map(|p| p.not_null()),
        Some(Vec::new()),
        "no fact is needed"
    );
    // The caller may be anonymous.
    assert_eq!(always("auth.id == u || auth.id != u", &required), None);
    assert_eq!(always("n > 3 || m <= 3", &required), None);
}
