//! From the typed tree to literals: negation normal form over atoms (constants, null
//! tests, comparisons of a term with constants or with another term, opaque
//! conditions), and the expansion into conjunctions.

use std::collections::HashMap;

use super::{MAX_CASES, Nullability};
use crate::check::{Node, NodeKind, Rel};
use crate::error::Span;
use crate::eval::{const_truth, const_value};
use crate::types::{Type, Value};

/// A condition, possibly negated, and where it is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lit {
    pub(super) atom: usize,
    pub(super) positive: bool,
    pub(super) span: Span,
}

/// Negation normal form: negations only on literals.
pub(super) enum Formula {
    Lit(Lit),
    All(Vec<Formula>),
    Any(Vec<Formula>),
}

/// An operand the procedure reasons about: a path, or `len`/`lower`/`upper` of one.
pub(super) struct Term {
    pub(super) key: String,
    pub(super) ty: Type,
    pub(super) nullable: bool,
    /// The paths it reads (for the proof's "never NULL" assumptions).
    pub(super) paths: Vec<Vec<String>>,
}

/// What a literal says when it is positive.
pub(super) enum Atom {
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

pub(super) enum Constraint {
    Rel(Rel, Value),
    /// Membership in a list of constants (NULLs removed: they never match).
    In(Vec<Value>),
}

pub(super) const LT: u8 = 1;
pub(super) const EQ: u8 = 2;
pub(super) const GT: u8 = 4;
pub(super) const ALL: u8 = LT | EQ | GT;

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

pub(super) struct Builder<'a> {
    pub(super) nulls: &'a dyn Nullability,
    pub(super) terms: Vec<Term>,
    pub(super) atoms: Vec<Atom>,
    /// Opaque atoms by structural key, so `x` and `!x` meet.
    pub(super) opaque: HashMap<String, usize>,
}

impl Builder<'_> {
    /// `node` (or its negation when `!positive`) in negation normal form. `written` is
    /// the span of the `!` directly around a condition, so the proof quotes `!(a == 1)`.
    pub(super) fn nnf(&mut self, node: &Node, positive: bool, written: Option<Span>) -> Formula {
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
}

/// Distributes `&&` over `||`: the conjunctions whose disjunction is `f`; `None` past
/// [`MAX_CASES`].
pub(super) fn dnf(f: &Formula) -> Option<Vec<Vec<Lit>>> {
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
