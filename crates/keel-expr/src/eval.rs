//! In-memory evaluation, and the value-level semantics the SQL compiler folds with.
//!
//! The evaluator is written once as a *partial* evaluator over a [`Source`] that may not
//! know every input: [`eval`] runs it with everything known, [`Typed::is_constant`] with
//! nothing known, and the SQL compiler with the values it binds (`auth.*`, `input.*`,
//! roles, the clock) known and the columns unknown. Constant folding therefore cannot
//! change a result: it *is* the evaluator.
//!
//! Semantics, shared with the SQL compiler:
//! - two-valued logic: a comparison with a NULL operand is false, except `x == null` /
//!   `x != null`, which test for NULL;
//! - Int and Float compare numerically and exactly (as SQLite does);
//! - text compares by bytes; instants and dates chronologically;
//! - `a ~ b` is an ASCII-case-insensitive substring test;
//! - `x in list` is membership; NULL never matches; see [`crate::types`] for JSON lists.

use std::cmp::Ordering;

use time::OffsetDateTime;

use crate::check::{Node, NodeKind, Rel, Typed};
use crate::types::{Type, Value, json_candidates, normalize, to_utc_micros};

/// Everything an expression can read when it is evaluated in memory.
pub trait Env {
    /// The value at `path` (`["title"]`, `["author","name"]`, `["auth","id"]`); `Null`
    /// when absent.
    fn lookup(&self, path: &[String]) -> Value;
    /// Whether the caller has `role`.
    fn has_role(&self, role: &str) -> bool;
    /// The current time, read once per evaluation of `now()`.
    fn now(&self) -> OffsetDateTime;
}

/// Evaluates a checked expression against one record and caller.
pub fn eval(expr: &Typed, env: &dyn Env) -> bool {
    truth(&expr.root, &EnvSource(env)).unwrap_or(false)
}

/// What the partial evaluator knows; `None` means "unknown until run time".
pub(crate) trait Source {
    fn path(&self, path: &[String], ty: &Type) -> Option<Value>;
    fn has_role(&self, role: &str) -> Option<bool>;
    fn now(&self) -> Option<OffsetDateTime>;
}

struct EnvSource<'a>(&'a dyn Env);

impl Source for EnvSource<'_> {
    fn path(&self, path: &[String], ty: &Type) -> Option<Value> {
        Some(normalize(self.0.lookup(path), ty))
    }
    fn has_role(&self, role: &str) -> Option<bool> {
        Some(self.0.has_role(role))
    }
    fn now(&self) -> Option<OffsetDateTime> {
        Some(self.0.now())
    }
}

/// Knows nothing: only literals fold.
struct Nothing;

impl Source for Nothing {
    fn path(&self, _: &[String], _: &Type) -> Option<Value> {
        None
    }
    fn has_role(&self, _: &str) -> Option<bool> {
        None
    }
    fn now(&self) -> Option<OffsetDateTime> {
        None
    }
}

/// The result of a boolean tree when it depends on nothing but literals.
pub(crate) fn const_truth(node: &Node) -> Option<bool> {
    truth(node, &Nothing)
}

/// The value of a node when it depends on nothing but literals.
pub(crate) fn const_value(node: &Node) -> Option<Value> {
    value(node, &Nothing)
}

/// The value of `node`, or `None` if it depends on something `src` does not know.
pub(crate) fn value(node: &Node, src: &dyn Source) -> Option<Value> {
    match &node.kind {
        NodeKind::Lit(v) => Some(v.clone()),
        NodeKind::Path(p) => src.path(p, &node.ty),
        NodeKind::List(items) => items
            .iter()
            .map(|item| value(item, src))
            .collect::<Option<Vec<_>>>()
            .map(Value::List),
        // A list literal's length does not depend on its items.
        NodeKind::Len(x) => match &x.kind {
            NodeKind::List(items) => Some(Value::Int(len_i64(items.len()))),
            _ => value(x, src).map(|v| len_of(&v)),
        },
        NodeKind::Lower(x) => value(x, src).map(|v| map_text(v, |s| s.to_ascii_lowercase())),
        NodeKind::Upper(x) => value(x, src).map(|v| map_text(v, |s| s.to_ascii_uppercase())),
        NodeKind::Now => src.now().map(|t| Value::Datetime(to_utc_micros(t))),
        NodeKind::Not(_)
        | NodeKind::And(_)
        | NodeKind::Or(_)
        | NodeKind::Cmp(..)
        | NodeKind::IsNull(..)
        | NodeKind::Contains(..)
        | NodeKind::In(..)
        | NodeKind::HasRole(_) => truth(node, src).map(Value::Bool),
    }
}

/// The truth of a boolean node, or `None` if it depends on something unknown.
pub(crate) fn truth(node: &Node, src: &dyn Source) -> Option<bool> {
    match &node.kind {
        NodeKind::Not(x) => truth(x, src).map(|b| !b),
        NodeKind::And(items) => fold_logic(items, src, false),
        NodeKind::Or(items) => fold_logic(items, src, true),
        NodeKind::Cmp(rel, a, b) => {
            let (a, b) = null_short_circuit(value(a, src), value(b, src))?;
            Some(rel_holds(*rel, &a, &b))
        }
        NodeKind::IsNull(x, negated) => {
            if matches!(x.kind, NodeKind::List(_)) {
                // A list literal is never null, whatever its items.
                return Some(*negated);
            }
            value(x, src).map(|v| v.is_null() != *negated)
        }
        NodeKind::Contains(a, b) => {
            let (a, b) = null_short_circuit(value(a, src), value(b, src))?;
            Some(contains_ci(&a, &b))
        }
        NodeKind::In(x, list) => membership(x, list, src),
        NodeKind::HasRole(role) => src.has_role(role),
        _ => value(node, src).map(|v| truthy(&v)),
    }
}

/// `&&` (`stop_at = false`) or `||` (`stop_at = true`) over partially known operands.
fn fold_logic(items: &[Node], src: &dyn Source, stop_at: bool) -> Option<bool> {
    let mut unknown = false;
    for item in items {
        match truth(item, src) {
            Some(b) if b == stop_at => return Some(stop_at),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown { None } else { Some(!stop_at) }
}

/// A comparison is false as soon as one side is known to be NULL.
fn null_short_circuit(a: Option<Value>, b: Option<Value>) -> Option<(Value, Value)> {
    match (a, b) {
        (Some(Value::Null), _) | (_, Some(Value::Null)) => Some((Value::Null, Value::Null)),
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    }
}

fn membership(x: &Node, list: &Node, src: &dyn Source) -> Option<bool> {
    let needle = value(x, src);
    if matches!(needle, Some(Value::Null)) {
        return Some(false);
    }
    if let NodeKind::List(items) = &list.kind {
        // Any known match decides; otherwise unknown items leave it open.
        let needle = needle?;
        let mut unknown = false;
        for item in items {
            match value(item, src) {
                Some(v) if equal(&needle, &v) => return Some(true),
                Some(_) => {}
                None => unknown = true,
            }
        }
        return if unknown { None } else { Some(false) };
    }
    let (needle, haystack) = (needle?, value(list, src)?);
    Some(is_member(&needle, &x.ty, &haystack))
}

/// Whether `needle` (of static type `ty`) is in a List value or a JSON array.
pub(crate) fn is_member(needle: &Value, ty: &Type, haystack: &Value) -> bool {
    match haystack {
        Value::List(items) => items.iter().any(|item| equal(needle, item)),
        Value::Json(serde_json::Value::Array(items)) => json_candidates(items, ty)
            .iter()
            .any(|item| equal(needle, item)),
        _ => false,
    }
}

/// Truth of a value in boolean position: only `true` is true (NULL is false).
pub(crate) fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn equal(a: &Value, b: &Value) -> bool {
    order(a, b) == Some(Ordering::Equal)
}

/// Whether `a rel b` holds; false when either is NULL or they are not comparable.
pub(crate) fn rel_holds(rel: Rel, a: &Value, b: &Value) -> bool {
    let Some(ord) = order(a, b) else {
        return false;
    };
    match rel {
        Rel::Eq => ord == Ordering::Equal,
        Rel::Ne => ord != Ordering::Equal,
        Rel::Lt => ord == Ordering::Less,
        Rel::Le => ord != Ordering::Greater,
        Rel::Gt => ord == Ordering::Greater,
        Rel::Ge => ord != Ordering::Less,
    }
}

/// The order of two non-null values of comparable types.
pub(crate) fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => cmp_int_float(*x, *y),
        (Value::Float(x), Value::Int(y)) => cmp_int_float(*y, *x).map(Ordering::reverse),
        (Value::Text(x), Value::Text(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Datetime(x), Value::Datetime(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Uuid(x), Value::Uuid(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Exact comparison of an integer with a float (no rounding of the integer), the way
/// SQLite compares INTEGER with REAL.
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    /// 2^63, exactly representable.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range and integral, so the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    let whole_i = whole as i64;
    match i.cmp(&whole_i) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// `a ~ b`: ASCII-case-insensitive substring test of `b` in `a`.
pub(crate) fn contains_ci(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(a), Value::Text(b)) => {
            a.to_ascii_lowercase().contains(&b.to_ascii_lowercase())
        }
        _ => false,
    }
}

/// `len(x)`: characters of text, items of a list or JSON array (0 for other JSON).
fn len_of(v: &Value) -> Value {
    match v {
        Value::Text(s) => Value::Int(len_i64(s.chars().count())),
        Value::List(items) => Value::Int(len_i64(items.len())),
        Value::Json(serde_json::Value::Array(items)) => Value::Int(len_i64(items.len())),
        Value::Json(_) => Value::Int(0),
        _ => Value::Null,
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn map_text(v: Value, f: impl FnOnce(&str) -> String) -> Value {
    match v {
        Value::Text(s) => Value::Text(f(&s)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_float_comparison_is_exact() {
        assert_eq!(cmp_int_float(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_float(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_float(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_float(2, 1.5), Some(Ordering::Greater));
        // 2^53 + 1 is not representable as f64; a lossy comparison would call it equal.
        let big = (1_i64 << 53) + 1;
        assert_eq!(
            cmp_int_float(big, (1_i64 << 53) as f64),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp_int_float(i64::MAX, 9.3e18), Some(Ordering::Less));
        assert_eq!(cmp_int_float(i64::MIN, -9.3e18), Some(Ordering::Greater));
        assert_eq!(
            cmp_int_float(i64::MIN, -9_223_372_036_854_775_808.0),
            Some(Ordering::Equal)
        );
        assert_eq!(cmp_int_float(0, f64::NAN), None);
        assert_eq!(cmp_int_float(0, -0.0), Some(Ordering::Equal));
    }

    #[test]
    fn contains_folds_ascii_only() {
        let t = |s: &str| Value::Text(s.into());
        assert!(contains_ci(&t("Hello World"), &t("o w")));
        assert!(contains_ci(&t("abc"), &t("")));
        assert!(!contains_ci(&t("ÉCOLE"), &t("école")));
        assert!(!contains_ci(&Value::Null, &t("")));
    }

    #[test]
    fn len_counts_characters_and_array_items() {
        assert_eq!(len_of(&Value::Text("héllo".into())), Value::Int(5));
        assert_eq!(
            len_of(&Value::Json(serde_json::json!([1, [2, 3]]))),
            Value::Int(2)
        );
        assert_eq!(
            len_of(&Value::Json(serde_json::json!({"a": 1}))),
            Value::Int(0)
        );
        assert_eq!(len_of(&Value::Null), Value::Null);
    }
}
