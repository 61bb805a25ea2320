//! KD010, KD011 and KD016: access rules that can never be true, or are always true,
//! because of their own comparisons, from keel-expr's proofs (see
//! [`keel_expr::Typed::never_true`]), and how such a proof reads in a finding.
//!
//! NULLs decide what counts as "always": a comparison with NULL is false, so
//! `n > 3 || n <= 3` admits every record only when `n` can never be NULL (a required
//! field), and the finding then says that it relies on it; `done || !done` holds
//! whatever `done` is. Only what is proved is reported: a rule the proofs do not
//! understand is left alone.

use super::{Ctx, Severity};
use crate::analysis;
use keel_expr::{Proof, Span};
use keel_spec::{Collection, Operation, Rule};

/// The never-true and always-true findings of every rule of `c`.
pub(super) fn rules(cx: &mut Ctx<'_>, c: &Collection) {
    for op in Operation::ALL {
        let Some(rule) = c.access.get(op) else {
            continue;
        };
        let at = cx.span_or_collection(&rule.span, c);
        let (what, name) = (op.as_str(), c.name.as_str());
        let constant = rule.typed.is_constant();
        if let Some(proof) = analysis::never_true_proof(c, rule) {
            let message = if constant == Some(false) {
                format!(
                    "the {what} rule of `{name}` can never be true: `{}`",
                    rule.source
                )
            } else {
                format!(
                    "the {what} rule of `{name}` can never be true: {}",
                    contradiction(rule, &proof)
                )
            };
            cx.push(
                Severity::Error,
                "KD010",
                at,
                message,
                "the operation is refused for everyone, which is almost always a mistake in the rule; if it is intended, leaving the rule out says so (default deny)",
                format!("fix the condition, or delete `access.{what}` to deny it explicitly"),
            );
            continue;
        }
        let Some(proof) = analysis::always_true_proof(c, rule) else {
            continue;
        };
        let covered = (constant != Some(true)).then(|| coverage(rule, &proof));
        if matches!(op, Operation::Update | Operation::Delete) {
            let message = match &covered {
                None => format!("the {what} rule of `{name}` is always true"),
                Some(how) => format!("the {what} rule of `{name}` is always true: {how}"),
            };
            cx.push(
                Severity::Warning,
                "KD011",
                at,
                message,
                "anyone, signed in or not, may change or delete every record, including other people's",
                "tie it to the owner, e.g. `author == auth.id || auth.has_role(\"moderator\")`".into(),
            );
        } else if let Some(how) = covered {
            cx.push(
                Severity::Warning,
                "KD016",
                at,
                format!("the {what} rule of `{name}` is always true: {how}"),
                "comparisons that cover every case filter nothing: the rule admits every caller to every record, which is rarely what they were written for",
                format!("write `access.{what} = \"true\"` if everyone is meant; otherwise correct the comparisons (a value, an operator, or `||` written for `&&`)"),
            );
        }
    }
}

/// How a never-true proof reads: "`a` and `b` contradict each other", one clause per
/// branch of the rule when it has several.
fn contradiction(rule: &Rule, proof: &Proof) -> String {
    let clauses: Vec<String> = proof
        .cases
        .iter()
        .map(|case| match case.spans.as_slice() {
            [one] => format!("{} is never true", quote(rule, *one)),
            many => format!("{} contradict each other", list(rule, many)),
        })
        .collect();
    let body = if clauses.len() == 1 {
        clauses.join("")
    } else {
        format!("no branch can be true ({})", clauses.join("; "))
    };
    body + &given(proof)
}

/// How an always-true proof reads: "`a` and `b` cover every case".
fn coverage(rule: &Rule, proof: &Proof) -> String {
    let body = match proof.spans().as_slice() {
        [one] => format!("{} always holds", quote(rule, *one)),
        many => format!("{} cover every case", list(rule, many)),
    };
    body + &given(proof)
}

/// The non-NULL facts a proof rests on, as a trailing remark.
fn given(proof: &Proof) -> String {
    let paths: Vec<String> = proof
        .not_null()
        .iter()
        .map(|p| format!("`{}`", p.join(".")))
        .collect();
    match paths.as_slice() {
        [] => String::new(),
        [one] => format!(" (given that {one} is never null)"),
        many => format!(" (given that {} are never null)", and(many)),
    }
}

fn quote(rule: &Rule, span: Span) -> String {
    format!("`{}`", rule.source.get(span.start..span.end).unwrap_or("?"))
}

fn list(rule: &Rule, spans: &[Span]) -> String {
    let quoted: Vec<String> = spans.iter().map(|s| quote(rule, *s)).collect();
    and(&quoted)
}

/// `a`, `a and b`, `a, b and c`.
fn and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
