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

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::check::{Node, NodeKind, Rel, Typed};
use crate::error::Span;
use crate::eval::{const_truth, const_value, order};
use crate::types::{Type, Value};

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

// ---------- the formula ----------

/// A condition, possibly negated, and where it is written.
#[derive(Debug, Clone, Copy)]
struct Lit {
    atom: usize,
    positive: bool,
    span: Span,
}

/// Negation normal form: negations only on literals.
enum Formula {
    Lit(Lit),
    All(Vec<Formula>),
    Any(Vec<Formula>),
}

/// An operand the procedure reasons about: a path, or `len`/`lower`/`upper` of one.
struct Term {
    key: String,
    ty: Type,
    nullable: bool,
    /// The paths it reads (for the proof's "never NULL" assumptions).
    paths: Vec<Vec<String>>,
}

/// What a literal says when it is positive.
enum Atom {
    /// Folds to this constant.
    Const(bool),
    /// The term is NULL.
    IsNull(usize),
    /// The term is not NULL and satisfies the constraint.
    Value(usize, Constraint),
    /// Both terms are not NULL and their order is in the mask (`LT | EQ | GT`).
    Pair(usize, usize, u8),
    /// Anything else; equal atoms (same index) have equal truth.
    Opaque,
}

enum Constraint {
    Rel(Rel, Value),
    /// Membership in a list of constants (NULLs removed: they never match).
    In(Vec<Value>),
}

const LT: u8 = 1;
const EQ: u8 = 2;
const GT: u8 = 4;
const ALL: u8 = LT | EQ | GT;

fn mask(rel: Rel) -> u8 {
    match rel {
        Rel::Eq => EQ,
        Rel::Ne => LT | GT,
        Rel::Lt => LT,
        Rel::Le => LT | EQ,
        Rel::Gt => GT,
        Rel::Ge => GT | EQ,
    }
}

/// `a rel b` as `b flip(rel) a`.
fn flip(rel: Rel) -> Rel {
    match rel {
        Rel::Lt => Rel::Gt,
        Rel::Le => Rel::Ge,
        Rel::Gt => Rel::Lt,
        Rel::Ge => Rel::Le,
        other => other,
    }
}

/// For two non-NULL comparable values, exactly one of `rel` and `complement(rel)` holds.
fn complement(rel: Rel) -> Rel {
    match rel {
        Rel::Eq => Rel::Ne,
        Rel::Ne => Rel::Eq,
        Rel::Lt => Rel::Ge,
        Rel::Le => Rel::Gt,
        Rel::Gt => Rel::Le,
        Rel::Ge => Rel::Lt,
    }
}

struct Builder<'a> {
    nulls: &'a dyn Nullability,
    terms: Vec<Term>,
    atoms: Vec<Atom>,
    /// Opaque atoms by structural key, so `x` and `!x` meet.
    opaque: HashMap<String, usize>,
}

impl Builder<'_> {
    /// `node` (or its negation when `!positive`) in negation normal form. `written` is
    /// the span of the `!` directly around a condition, so the proof quotes `!(a == 1)`.
    fn nnf(&mut self, node: &Node, positive: bool, written: Option<Span>) -> Formula {
        match &node.kind {
            NodeKind::Not(x) => self.nnf(x, !positive, Some(written.unwrap_or(node.span))),
            NodeKind::And(items) | NodeKind::Or(items) => {
                let is_and = matches!(node.kind, NodeKind::And(_));
                let parts = items.iter().map(|x| self.nnf(x, positive, None)).collect();
                if is_and == positive {
                    Formula::All(parts)
                } else {
                    Formula::Any(parts)
                }
            }
            _ => {
                let (atom, negated) = self.atom(node);
                Formula::Lit(Lit {
                    atom,
                    positive: positive != negated,
                    span: written.unwrap_or(node.span),
                })
            }
        }
    }

    fn push(&mut self, atom: Atom) -> usize {
        self.atoms.push(atom);
        self.atoms.len() - 1
    }

    /// The atom of a condition, and whether the condition is its negation.
    fn atom(&mut self, node: &Node) -> (usize, bool) {
        if let Some(b) = const_truth(node) {
            return (self.push(Atom::Const(b)), false);
        }
        match &node.kind {
            NodeKind::IsNull(x, negated) => {
                if let Some(t) = self.term(x) {
                    return (self.push(Atom::IsNull(t)), *negated);
                }
            }
            NodeKind::Cmp(rel, a, b) => {
                if let Some(atom) = self.comparison(*rel, a, b) {
                    return (self.push(atom), false);
                }
            }
            NodeKind::In(x, list) => {
                if let NodeKind::List(items) = &list.kind
                    && let Some(t) = self.term(x)
                    && let Some(values) = items.iter().map(const_value).collect::<Option<Vec<_>>>()
                {
                    let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
                    if values.iter().all(|v| self.exact(t, v)) {
                        return (self.push(Atom::Value(t, Constraint::In(values))), false);
                    }
                }
            }
            // A boolean field in condition position is true only when it is `true`.
            NodeKind::Path(_) if node.ty == Type::Bool => {
                if let Some(t) = self.term(node) {
                    let c = Constraint::Rel(Rel::Eq, Value::Bool(true));
                    return (self.push(Atom::Value(t, c)), false);
                }
            }
            _ => {}
        }
        match key(node) {
            Some(k) => {
                if let Some(&i) = self.opaque.get(&k) {
                    return (i, false);
                }
                let i = self.push(Atom::Opaque);
                self.opaque.insert(k, i);
                (i, false)
            }
            // Reads the clock: equal to nothing else.
            None => (self.push(Atom::Opaque), false),
        }
    }

    fn comparison(&mut self, rel: Rel, a: &Node, b: &Node) -> Option<Atom> {
        match (const_value(a), const_value(b)) {
            (None, Some(v)) => {
                let t = self.term(a)?;
                self.against(t, rel, v)
            }
            (Some(v), None) => {
                let t = self.term(b)?;
                self.against(t, flip(rel), v)
            }
            (None, None) => {
                let ta = self.term(a)?;
                let tb = self.term(b)?;
                if self.terms[ta].key <= self.terms[tb].key {
                    Some(Atom::Pair(ta, tb, mask(rel)))
                } else {
                    Some(Atom::Pair(tb, ta, mask(flip(rel))))
                }
            }
            (Some(_), Some(_)) => None,
        }
    }

    fn against(&self, t: usize, rel: Rel, v: Value) -> Option<Atom> {
        if v.is_null() {
            return Some(Atom::Const(false));
        }
        self.exact(t, &v)
            .then_some(Atom::Value(t, Constraint::Rel(rel, v)))
    }

    /// Whether comparing term `t` with `v` is exact on every engine: an Int against a
    /// Float (or the reverse) only within ±2^53, where PostgreSQL's cast to double is.
    fn exact(&self, t: usize, v: &Value) -> bool {
        const LIMIT: f64 = 9_007_199_254_740_992.0;
        match (&self.terms[t].ty, v) {
            (Type::Int, Value::Float(f)) => f.abs() < LIMIT,
            (Type::Float, Value::Int(i)) => i.unsigned_abs() < (1_u64 << 53),
            _ => true,
        }
    }

    /// The term an operand stands for, if it is one the procedure reasons about.
    fn term(&mut self, node: &Node) -> Option<usize> {
        if const_value(node).is_some() {
            return None;
        }
        let (key, nullable, paths) = match &node.kind {
            NodeKind::Path(p) => (p.join("."), self.nulls.may_be_null(p), vec![p.clone()]),
            NodeKind::Len(x) | NodeKind::Lower(x) | NodeKind::Upper(x) => {
                let inner = self.term(x)?;
                let name = match node.kind {
                    NodeKind::Len(_) => "len",
                    NodeKind::Lower(_) => "lower",
                    _ => "upper",
                };
                let t = &self.terms[inner];
                (format!("{name}({})", t.key), t.nullable, t.paths.clone())
            }
            _ => return None,
        };
        if let Some(i) = self.terms.iter().position(|t| t.key == key) {
            return Some(i);
        }
        self.terms.push(Term {
            key,
            ty: node.ty.clone(),
            nullable,
            paths,
        });
        Some(self.terms.len() - 1)
    }

    /// The terms an atom constrains.
    fn atom_terms(&self, atom: usize) -> Vec<usize> {
        match &self.atoms[atom] {
            Atom::IsNull(t) | Atom::Value(t, _) => vec![*t],
            Atom::Pair(a, b, _) => vec![*a, *b],
            Atom::Const(_) | Atom::Opaque => Vec::new(),
        }
    }

    /// A minimal refutation of the conjunction `lits`, or `None` if it cannot be refuted.
    fn case(&self, lits: &[Lit]) -> Option<Case> {
        if !self.refuted(lits, None) {
            return None;
        }
        let mut core = lits.to_vec();
        let mut i = 0;
        while i < core.len() {
            let mut trial = core.clone();
            trial.remove(i);
            if self.refuted(&trial, None) {
                core = trial;
            } else {
                i += 1;
            }
        }
        let mut not_null: Vec<Vec<String>> = Vec::new();
        let mut seen: Vec<usize> = Vec::new();
        for l in &core {
            for t in self.atom_terms(l.atom) {
                if self.terms[t].nullable || seen.contains(&t) {
                    continue;
                }
                seen.push(t);
                if !self.refuted(&core, Some(t)) {
                    for p in &self.terms[t].paths {
                        if !not_null.contains(p) {
                            not_null.push(p.clone());
                        }
                    }
                }
            }
        }
        let mut spans: Vec<Span> = core.iter().map(|l| l.span).collect();
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup();
        Some(Case { spans, not_null })
    }

    /// Whether no assignment satisfies every literal of `lits`. `relaxed` is a term
    /// to treat as nullable whatever the model says (to see which facts a proof uses).
    fn refuted(&self, lits: &[Lit], relaxed: Option<usize>) -> bool {
        for (i, l) in lits.iter().enumerate() {
            match &self.atoms[l.atom] {
                Atom::Const(b) if *b != l.positive => return true,
                Atom::Opaque
                    if lits[..i]
                        .iter()
                        .any(|m| m.atom == l.atom && m.positive != l.positive) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        // NULL or not, per term. A term that may be NULL and is not required not to
        // be is taken as NULL: every negated comparison on it then holds.
        let n = self.terms.len();
        let mut must_null = vec![false; n];
        let mut not_null: Vec<bool> = (0..n)
            .map(|t| !self.terms[t].nullable && relaxed != Some(t))
            .collect();
        for l in lits {
            let atom = &self.atoms[l.atom];
            if let Atom::IsNull(t) = atom
                && l.positive
            {
                must_null[*t] = true;
            }
            for t in self.atom_terms(l.atom) {
                if forces_not_null(atom, l.positive, t) {
                    not_null[t] = true;
                }
            }
        }
        if (0..n).any(|t| must_null[t] && not_null[t]) {
            return true;
        }
        for (t, term) in self.terms.iter().enumerate() {
            if !not_null[t] {
                continue;
            }
            let mut values = Values::new(&term.ty);
            for l in lits {
                if let Atom::Value(u, c) = &self.atoms[l.atom]
                    && *u == t
                {
                    values.restrict(c, l.positive);
                }
            }
            if values.is_empty() {
                return true;
            }
        }
        let mut pairs: Vec<(usize, usize, u8)> = Vec::new();
        for l in lits {
            let Atom::Pair(a, b, m) = &self.atoms[l.atom] else {
                continue;
            };
            if !(not_null[*a] && not_null[*b]) {
                continue;
            }
            let m = if l.positive { *m } else { ALL & !*m };
            match pairs.iter_mut().find(|p| p.0 == *a && p.1 == *b) {
                Some(p) => p.2 &= m,
                // A term compared with itself can only be equal to itself.
                None => pairs.push((*a, *b, if a == b { m & EQ } else { m })),
            }
        }
        pairs.iter().any(|p| p.2 == 0)
    }
}

/// Whether a literal requires term `t` not to be NULL.
fn forces_not_null(atom: &Atom, positive: bool, t: usize) -> bool {
    match atom {
        Atom::IsNull(u) => !positive && *u == t,
        Atom::Value(u, _) => positive && *u == t,
        Atom::Pair(a, b, _) => positive && (*a == t || *b == t),
        Atom::Const(_) | Atom::Opaque => false,
    }
}

/// Distributes `&&` over `||`: the conjunctions whose disjunction is `f`; `None` past
/// [`MAX_CASES`].
fn dnf(f: &Formula) -> Option<Vec<Vec<Lit>>> {
    match f {
        Formula::Lit(l) => Some(vec![vec![*l]]),
        Formula::Any(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(dnf(p)?);
                if out.len() > MAX_CASES {
                    return None;
                }
            }
            Some(out)
        }
        Formula::All(parts) => {
            let mut out: Vec<Vec<Lit>> = vec![Vec::new()];
            for p in parts {
                let part = dnf(p)?;
                if out.len() * part.len() > MAX_CASES {
                    return None;
                }
                out = out
                    .iter()
                    .flat_map(|a| part.iter().map(move |b| [a.as_slice(), b].concat()))
                    .collect();
            }
            Some(out)
        }
    }
}

/// A structural key: equal keys mean the same condition, read at the same time.
/// `None` when the node reads the clock.
fn key(node: &Node) -> Option<String> {
    let keys = |items: &[Node]| -> Option<String> {
        Some(items.iter().map(key).collect::<Option<Vec<_>>>()?.join(","))
    };
    Some(match &node.kind {
        NodeKind::Lit(v) => format!("{v:?}"),
        NodeKind::Path(p) => p.join("."),
        NodeKind::List(items) => format!("[{}]", keys(items)?),
        NodeKind::Not(x) => format!("!({})", key(x)?),
        NodeKind::And(items) => format!("and({})", keys(items)?),
        NodeKind::Or(items) => format!("or({})", keys(items)?),
        NodeKind::Cmp(rel, a, b) => format!("{rel:?}({},{})", key(a)?, key(b)?),
        NodeKind::IsNull(x, negated) => format!("null{negated}({})", key(x)?),
        NodeKind::Contains(a, b) => format!("contains({},{})", key(a)?, key(b)?),
        NodeKind::In(a, b) => format!("in({},{})", key(a)?, key(b)?),
        NodeKind::HasRole(role) => format!("has_role({role:?})"),
        NodeKind::Len(x) => format!("len({})", key(x)?),
        NodeKind::Lower(x) => format!("lower({})", key(x)?),
        NodeKind::Upper(x) => format!("upper({})", key(x)?),
        NodeKind::Now => return None,
    })
}

// ---------- the values a term may take ----------

/// A superset of the non-NULL values a term may still take: within the bounds, not
/// excluded, and in `only` when that is set.
struct Values {
    lo: Option<(Value, bool)>,
    hi: Option<(Value, bool)>,
    only: Option<Vec<Value>>,
    except: Vec<Value>,
    /// The term is an Int: count the integers in the bounds.
    ints: bool,
}

fn same(a: &Value, b: &Value) -> bool {
    order(a, b) == Some(Ordering::Equal)
}

impl Values {
    fn new(ty: &Type) -> Self {
        Self {
            lo: None,
            hi: None,
            only: (*ty == Type::Bool).then(|| vec![Value::Bool(false), Value::Bool(true)]),
            except: Vec::new(),
            ints: *ty == Type::Int,
        }
    }

    fn restrict(&mut self, c: &Constraint, positive: bool) {
        match c {
            Constraint::In(items) if positive => self.keep_only(items),
            Constraint::In(items) => self.except.extend(items.iter().cloned()),
            Constraint::Rel(rel, v) => {
                let rel = if positive { *rel } else { complement(*rel) };
                match rel {
                    Rel::Eq => self.keep_only(std::slice::from_ref(v)),
                    Rel::Ne => self.except.push(v.clone()),
                    Rel::Lt => self.below(v, false),
                    Rel::Le => self.below(v, true),
                    Rel::Gt => self.above(v, false),
                    Rel::Ge => self.above(v, true),
                }
            }
        }
    }

    fn keep_only(&mut self, items: &[Value]) {
        let kept = match self.only.take() {
            None => items.to_vec(),
            Some(only) => only
                .into_iter()
                .filter(|v| items.iter().any(|w| same(v, w)))
                .collect(),
        };
        self.only = Some(kept);
    }

    /// A new upper bound, kept if tighter (an incomparable one is dropped: the set
    /// only grows, so the proof stays sound).
    fn below(&mut self, v: &Value, inclusive: bool) {
        let tighter = match &self.hi {
            None => true,
            Some((h, h_inclusive)) => match order(v, h) {
                Some(Ordering::Less) => true,
                Some(Ordering::Equal) => *h_inclusive && !inclusive,
                _ => false,
            },
        };
        if tighter {
            self.hi = Some((v.clone(), inclusive));
        }
    }

    fn above(&mut self, v: &Value, inclusive: bool) {
        let tighter = match &self.lo {
            None => true,
            Some((l, l_inclusive)) => match order(v, l) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => *l_inclusive && !inclusive,
                _ => false,
            },
        };
        if tighter {
            self.lo = Some((v.clone(), inclusive));
        }
    }

    /// Whether `v` is within the bounds and not excluded.
    fn admits(&self, v: &Value) -> bool {
        let above = self.lo.as_ref().is_none_or(|(l, inc)| {
            order(v, l).is_none_or(|o| o == Ordering::Greater || (*inc && o == Ordering::Equal))
        });
        let below = self.hi.as_ref().is_none_or(|(h, inc)| {
            order(v, h).is_none_or(|o| o == Ordering::Less || (*inc && o == Ordering::Equal))
        });
        above && below && !self.except.iter().any(|e| same(e, v))
    }

    /// The integer range of the bounds, when the term is an Int and every bound is.
    fn int_range(&self) -> Option<(i128, i128)> {
        let lo = match &self.lo {
            None => i128::from(i64::MIN),
            Some((Value::Int(i), inclusive)) => i128::from(*i) + i128::from(!*inclusive),
            Some(_) => return None,
        };
        let hi = match &self.hi {
            None => i128::from(i64::MAX),
            Some((Value::Int(i), inclusive)) => i128::from(*i) - i128::from(!*inclusive),
            Some(_) => return None,
        };
        Some((lo, hi))
    }

    /// Whether no value is left, as far as can be shown.
    fn is_empty(&self) -> bool {
        if let Some(only) = &self.only {
            return !only.iter().any(|v| self.admits(v));
        }
        if self.ints
            && let Some((lo, hi)) = self.int_range()
        {
            if lo > hi {
                return true;
            }
            let mut holes: Vec<i64> = self
                .except
                .iter()
                .filter_map(|v| match v {
                    Value::Int(i) if (lo..=hi).contains(&i128::from(*i)) => Some(*i),
                    _ => None,
                })
                .collect();
            holes.sort_unstable();
            holes.dedup();
            let size = hi - lo + 1;
            return size <= i128::try_from(holes.len()).unwrap_or(i128::MAX);
        }
        match (&self.lo, &self.hi) {
            (Some((l, l_inclusive)), Some((h, h_inclusive))) => match order(l, h) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => {
                    !(*l_inclusive && *h_inclusive) || self.except.iter().any(|e| same(e, l))
                }
                _ => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
