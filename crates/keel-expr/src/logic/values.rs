//! The non-NULL values a term may still take under a conjunction of comparisons with
//! constants: bounds, excluded points, a finite set; integers counted exactly.

use std::cmp::Ordering;

use super::build::Constraint;
use crate::check::Rel;
use crate::eval::order;
use crate::types::{Type, Value};

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

/// A superset of the non-NULL values a term may still take: within the bounds, not
/// excluded, and in `only` when that is set.
pub(super) struct Values {
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
    pub(super) fn new(ty: &Type) -> Self {
        Self {
            lo: None,
            hi: None,
            only: (*ty == Type::Bool).then(|| vec![Value::Bool(false), Value::Bool(true)]),
            except: Vec::new(),
            ints: *ty == Type::Int,
        }
    }

    pub(super) fn restrict(&mut self, c: &Constraint, positive: bool) {
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
    pub(super) fn is_empty(&self) -> bool {
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
