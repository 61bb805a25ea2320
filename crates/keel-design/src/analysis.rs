//! Facts about a model that both the review (`keel check`) and the document need:
//! who an access rule admits, which columns are indexed, which fields are personal,
//! which rate limits apply to a route. Pure.

use keel_expr::{CmpOp, Expr, ExprKind, Literal, Proof};
use keel_spec::{Collection, Field, FieldType, Limit, Model, Operation, Rule};

/// Who a rule lets through, as far as its shape tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Nobody: there is no rule (default deny) or it can never be true.
    Nobody,
    /// Anyone, signed in or not.
    Anyone,
    /// Only signed-in callers (every path through the rule needs `auth.*`).
    SignedIn,
}

/// The untyped syntax tree of a rule (rules type-checked at load, so this parses).
pub fn ast(rule: &Rule) -> Option<Expr> {
    keel_expr::parse(&rule.source).ok()
}

/// Who may perform `op` on `c`.
pub fn audience(c: &Collection, op: Operation) -> Audience {
    let Some(rule) = c.access.get(op) else {
        return Audience::Nobody;
    };
    if never_true(c, rule) {
        return Audience::Nobody;
    }
    match ast(rule) {
        Some(e) if requires_auth(&e) => Audience::SignedIn,
        _ => Audience::Anyone,
    }
}

/// True when the rule is false for every anonymous caller: each way of satisfying it
/// compares something with the caller (`auth.id`, `auth.email`, roles), and such a
/// comparison is false when the caller is anonymous (null), except `auth.x == null`.
pub fn requires_auth(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::And(xs) => xs.iter().any(requires_auth),
        ExprKind::Or(xs) => xs.iter().all(requires_auth),
        ExprKind::Call { name, .. } => name == "has_role",
        ExprKind::Compare { op, lhs, rhs } => {
            let auth = is_auth(lhs) || is_auth(rhs);
            let null = is_null(lhs) || is_null(rhs);
            match (auth, null, op) {
                (false, _, _) => false,
                (true, true, CmpOp::Ne) => true,
                (true, true, _) => false,
                (true, false, _) => true,
            }
        }
        _ => false,
    }
}

fn is_auth(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Path(p) => p.first().is_some_and(|s| s == "auth"),
        ExprKind::Call { args, .. } => args.iter().any(is_auth),
        _ => false,
    }
}

fn is_null(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Literal(Literal::Null))
}

/// What the model says about NULLs, for keel-expr's proofs: a column of the record
/// that is `NOT NULL` (a system field, a required one) is never NULL, in every rule
/// (the create rule sees the record as stored). Everything else may be: `auth.*` (the
/// caller may be anonymous), `input.*` (a field may be left out), and paths through a
/// ref (the ref may be empty).
pub fn nullability(c: &Collection) -> impl Fn(&[String]) -> bool + '_ {
    |path: &[String]| match path {
        [field] => !c.field(field).is_some_and(Field::not_null),
        _ => true,
    }
}

/// A proof that the rule can never be true: a constant false, or comparisons that
/// contradict each other (`status == "a" && status == "b"`, `n > 5 && n < 3`).
pub fn never_true_proof(c: &Collection, rule: &Rule) -> Option<Proof> {
    rule.typed.never_true(&nullability(c))
}

/// A proof that the rule is true for every record and every caller: a constant true,
/// or comparisons that cover every case (`done || !done`; `n > 3 || n <= 3` when
/// `n` is required, and only then, since a comparison with NULL is false).
pub fn always_true_proof(c: &Collection, rule: &Rule) -> Option<Proof> {
    rule.typed.always_true(&nullability(c))
}

/// The rule can never be true (see [`never_true_proof`]).
pub fn never_true(c: &Collection, rule: &Rule) -> bool {
    never_true_proof(c, rule).is_some()
}

/// The rule is true for every record and every caller (see [`always_true_proof`]).
pub fn always_true(c: &Collection, rule: &Rule) -> bool {
    always_true_proof(c, rule).is_some()
}

/// Columns of `c` a list can seek on: `id`, unique fields, and the leading column of
/// every index and unique constraint.
pub fn leading_indexed(c: &Collection, column: &str) -> bool {
    column == "id"
        || c.field(column).is_some_and(|f| f.unique)
        || c.indexes
            .iter()
            .any(|ix| ix.keys.first().is_some_and(|k| k.field == column))
        || c.uniques
            .iter()
            .any(|u| u.fields.first().is_some_and(|f| f == column))
}

/// A sort on `column` is served by an index when some index holds it (after equality
/// columns, e.g. `["post", "-created_at"]` serves a post's comments newest first).
pub fn sort_indexed(c: &Collection, column: &str) -> bool {
    leading_indexed(c, column)
        || c.indexes
            .iter()
            .any(|ix| ix.keys.iter().any(|k| k.field == column))
}

/// Local columns a rule filters on (the first step of each record path; `auth.*`,
/// `input.*` and `id` excluded).
pub fn rule_columns(c: &Collection, rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    for p in rule.typed.paths() {
        let Some(first) = p.first() else { continue };
        if first == "auth" || first == "input" || first == "id" {
            continue;
        }
        // A path through a ref (`post.visibility`) joins on the parent's primary key;
        // only a bare column needs an index of its own.
        if p.len() == 1 && c.field(first).is_some() && !out.contains(first) {
            out.push(first.clone());
        }
    }
    out
}

/// Field names that usually hold personal data.
const PERSONAL_NAMES: &[&str] = &[
    "email",
    "phone",
    "mobile",
    "address",
    "street",
    "postcode",
    "zip",
    "birth",
    "dob",
    "ssn",
    "passport",
    "tax_id",
    "iban",
    "card",
    "salary",
    "ip",
    "location",
    "latitude",
    "longitude",
    "gender",
];

/// Visible fields of `c` that hold personal data.
pub fn personal_fields(c: &Collection) -> Vec<&str> {
    c.visible()
        .filter(|f| !f.system)
        .filter(|f| {
            f.ty == FieldType::Email
                || PERSONAL_NAMES.iter().any(|n| {
                    f.name == *n
                        || f.name.starts_with(&format!("{n}_"))
                        || f.name.ends_with(&format!("_{n}"))
                })
        })
        .map(|f| f.name.as_str())
        .collect()
}

/// The HTTP route of an operation, as `[limits]` keys name it.
pub fn route(c: &Collection, op: Operation, one: bool) -> String {
    match (op, one) {
        (Operation::Read, false) => format!("GET /v1/{}", c.name),
        (Operation::Read, true) => format!("GET /v1/{}/{{id}}", c.name),
        (Operation::Create, _) => format!("POST /v1/{}", c.name),
        (Operation::Update, _) => format!("PATCH /v1/{}/{{id}}", c.name),
        (Operation::Delete, _) => format!("DELETE /v1/{}/{{id}}", c.name),
    }
}

/// The limits that apply to an anonymous caller of `op` on `c`: the route's own and
/// the `anonymous` budget.
pub fn anonymous_limits<'a>(model: &'a Model, c: &Collection, op: Operation) -> Vec<&'a Limit> {
    let routes = [route(c, op, false), route(c, op, true)];
    model
        .limits
        .iter()
        .filter(|l| l.key == "anonymous" || routes.iter().any(|r| route_matches(&l.key, r)))
        .collect()
}

/// Does the `[limits]` key `key` (e.g. `POST /v1/posts`, `PATCH /v1/posts/{id}`,
/// `PATCH /v1/posts/*`) name `route`?
pub fn route_matches(key: &str, route: &str) -> bool {
    let (Some((km, kp)), Some((rm, rp))) = (key.split_once(' '), route.split_once(' ')) else {
        return false;
    };
    if km != rm {
        return false;
    }
    let ks: Vec<&str> = kp.trim_end_matches('/').split('/').collect();
    let rs: Vec<&str> = rp.split('/').collect();
    ks.len() == rs.len()
        && ks.iter().zip(&rs).all(|(k, r)| {
            k == r
                || *k == "*"
                || (k.starts_with('{') && r.starts_with('{'))
                || (*r == "{id}" && !k.is_empty())
        })
}

/// Does some endpoint of the model answer the `[limits]` route key?
pub fn route_exists(model: &Model, key: &str) -> bool {
    model.collections.iter().any(|c| {
        Operation::ALL.iter().any(|op| {
            route_matches(key, &route(c, *op, false)) || route_matches(key, &route(c, *op, true))
        })
    })
}
