//! keel.toml → [`Model`], in typed stages, each a function from the previous stage's
//! output to its own (modules in parentheses):
//! 1. parse (`parse`): TOML text → a syntax tree with spans (`Syntax`);
//! 2. read (`read`): the shape of every section, unknown keys, value types, `${VAR}`
//!    (`RawSpec`);
//! 3. resolve (`resolve`): names across the spec: refs, indexes, roles, webhooks
//!    (`Resolved`);
//! 4. type rules (`rules`): access rules parsed and type-checked against the model
//!    (`Typed`);
//! 5. derive (`derive`): defaults that follow from the rest (the [`Model`]).
//!
//! Every stage records errors in one `Diagnostics` and carries on, so one run reports
//! them all, each at file:line:column.

mod derive;
mod diag;
mod parse;
mod read;
mod resolve;
mod rules;

use crate::error::SpecErrors;
use crate::model::Model;
use std::collections::BTreeMap;

pub use read::TYPES;
pub use read::values::{parse_duration, parse_rate};

/// A byte range in the source.
type Span = std::ops::Range<usize>;

/// Names no collection may take: they are routes or expression roots.
pub const RESERVED_COLLECTIONS: &[&str] = &[
    "auth", "input", "admin", "docs", "graphql", "realtime", "openapi", "healthz", "readyz",
    "metrics",
];
/// Names no field may take: system fields and expression roots.
pub const SYSTEM_FIELDS: &[&str] = &["id", "created_at", "updated_at", "version"];

/// Where environment variables come from (tests pass a map).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Load a spec from source text. `file` is only used in error messages.
pub fn load_str(src: &str, file: &str, env: &dyn Environment) -> Result<Model, SpecErrors> {
    let mut diag = diag::Diagnostics::new(src, file);
    let Some(syntax) = parse::parse(src, &mut diag) else {
        return Err(diag.fail());
    };
    let raw = read::read(&syntax, env, &mut diag);
    let resolved = resolve::resolve(raw, &mut diag);
    let typed = rules::type_rules(resolved, &mut diag);
    diag.finish(derive::derive(typed))
}
