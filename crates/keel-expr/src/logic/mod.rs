//! Proofs that an expression can never be true, or is always true, because of its own
//! comparisons: `status == "a" && status == "b"`, `n > 5 && n < 3`,
//! `x == null && x != null` and `a == 1 && !(a == 1)` never hold; `done || !done`
//! always does, and so does `n > 3 || n <= 3` when `n` can never be NULL.
//!
//! # Semantics
//! The evaluator's (see [`crate::eval`]), which the SQL compiler keeps: two-valued
//! logic in which a comparison with a NULL operand is *false*, except `x == null` and
//! `x != null`, which test for NULL. So `!(n == 1)` holds for a NULL `n` while
//! `n != 1` does not, and `n > 3 || n <= 3` is false for a row whose `n` is NULL: it is
//! always true only when `n` can never be NULL, which the caller states through
//! [`Nullability`] (a required column, say). `x || !x`, on the other hand, is always
//! true whatever `x` is, since `!` negates a result that is already true or false.
//!
//! # Method
//! The expression is put in negation normal form over *literals*, each a condition
//! (a comparison, a null test, a boolean field, or an *opaque* condition such as
//! `has_role("x")` or `a ~ b`), possibly negated; then expanded into a disjunction of
//! conjunctions (at most [`MAX_CASES`]; beyond that there is no proof). It can never be
//! true when every conjunction is refuted by one of:
//! - a constant literal that is false (`1 > 2`);
//! - an opaque condition together with its negation;
//! - an operand (a path, or `len`/`lower`/`upper` of one) that must be NULL (`== null`)
//!   and must not be (`!= null`, a comparison that holds, a non-nullable path);
//! - an operand that is not NULL and whose comparisons with constants leave no value:
//!   an interval (bounds from `<`, `<=`, `>`, `>=`), minus excluded points (`!=`,
//!   negated `==`, negated `in`), or a finite set (`==`, `in`; `true`/`false` for a
//!   boolean); integers are counted exactly, other ordered types only refute an empty
//!   or single-point interval;
//! - two operands compared with each other, both not NULL, for which none of `<`,
//!   `==`, `>` remains (`a < b && a >= b`; `x != x`).
//!
//! Whatever the procedure does not understand it assumes satisfiable, so a proof is
//! sound (no row and no caller could make the expression true), never complete.
//! "Always true" is "the negation is never true". Each refuted conjunction is reduced
//! to a minimal set of literals that still refutes it, and their source spans are what
//! a proof reports. Two cases are kept out: `now()` is read afresh at each call, so two
//! calls are never assumed equal; and an Int compared with a Float beyond 2^53 is left
//! opaque, since PostgreSQL compares those through a cast to double.

mod build;
mod refute;
#[cfg(test)]
mod tests;
mod values;

use std::collections::HashMap;

use crate::check::{Node, Typed};
use crate::error::Span;
use build::{Builder, dnf};

/// Whether a path can be NULL: supplied by whoever knows the data model. A path that
/// is never NULL (a required column, the record's id) lets more be proved; when in
/// doubt, answer `true`.
pub trait Nullability {
    /// Whether some row or some caller can give `path` no value.
    fn may_be_null(&self, path: &[String]) -> bool;
}

impl<F: Fn(&[String]) -> bool> Nullability for F {
    fn may_be_null(&self, path: &[String]) -> bool {
        self(path)
    }
}

/// Why an expression is never true (or always true): one [`Case`] per way it could
/// otherwise be satisfied (per `||` branch once `&&` is distributed over `||`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The refuted cases, distinct, in the order the expression spells them.
    pub cases: Vec<Case>,
}

/// One refuted case: conditions that cannot all hold (for "never true"), or cannot all
/// fail (for "always true").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The conditions as written (`n > 5`, `!(a == 1)`, `done`), a minimal set, in
    /// source order.
    pub spans: Vec<Span>,
    /// The paths this case relies on never being NULL.
    pub not_null: Vec<Vec<String>>,
}

impl Proof {
    /// Every condition any case names, once each, in source order.
    pub fn spans(&self) -> Vec<Span> {
        let mut spans: Vec<Span> = self.cases.iter().flat_map(|c| c.spans.clone()).collect();
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup();
        spans
    }

    /// Every path any case relies on never being NULL, once each.
    pub fn not_null(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for p in self.cases.iter().flat_map(|c| &c.not_null) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }
}

/// The most conjunctions an expression may expand to before the search gives up.
pub const MAX_CASES: usize = 256;

impl Typed {
    /// A proof that no record and no caller can make the expression true, from its
    /// own comparisons; `None` when there is none (it may still never be true).
    pub fn never_true(&self, nulls: &dyn Nullability) -> Option<Proof> {
        refute(&self.root, true, nulls)
    }

    /// A proof that every record and every caller makes the expression true, from its
    /// own comparisons; `None` when there is none.
    pub fn always_true(&self, nulls: &dyn Nullability) -> Option<Proof> {
        refute(&self.root, false, nulls)
    }
}

/// Refutes `root` (`positive`) or its negation.
fn refute(root: &Node, positive: bool, nulls: &dyn Nullability) -> Option<Proof> {
    let mut b = Builder {
        nulls,
        terms: Vec::new(),
        atoms: Vec::new(),
        opaque: HashMap::new(),
    };
    let formula = b.nnf(root, positive, None);
    let mut cases: Vec<Case> = Vec::new();
    for lits in dnf(&formula)? {
        let case = b.case(&lits)?;
        if !cases.contains(&case) {
            cases.push(case);
        }
    }
    Some(Proof { cases })
}
