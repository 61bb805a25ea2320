//! Deciding a rule from the caller alone, before any record is read: a rule such as
//! `auth.id != null && author == auth.id` is false for an anonymous caller whatever
//! the record holds. The core uses it to refuse early, so what a write would reveal
//! (a ref to a record, a conflict) is never computed for a caller who may not write.

use crate::check::Typed;
use crate::eval::{Source, truth};
use crate::types::{Type, Value, normalize};
use time::OffsetDateTime;

/// What is known of the caller: `auth.*` paths and roles.
pub trait CallerEnv {
    /// The value of `auth.<path>` (e.g. `["auth", "id"]`).
    fn auth(&self, path: &[String]) -> Value;
    fn has_role(&self, role: &str) -> bool;
}

struct CallerSource<'a>(&'a dyn CallerEnv, OffsetDateTime);

impl Source for CallerSource<'_> {
    fn path(&self, path: &[String], ty: &Type) -> Option<Value> {
        (path.first().map(String::as_str) == Some("auth")).then(|| normalize(self.0.auth(path), ty))
    }
    fn has_role(&self, role: &str) -> Option<bool> {
        Some(self.0.has_role(role))
    }
    fn now(&self) -> Option<OffsetDateTime> {
        Some(self.1)
    }
}

/// `Some(verdict)` when the caller alone decides the expression, `None` when it
/// depends on the record or the input.
pub fn decide_for_caller(expr: &Typed, caller: &dyn CallerEnv) -> Option<bool> {
    truth(&expr.root, &CallerSource(caller, OffsetDateTime::now_utc()))
}
