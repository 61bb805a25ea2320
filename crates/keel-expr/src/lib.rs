//! Keel's expression language: one small typed language for access rules and list
//! filters.
//!
//! An expression is [parsed](parse) once, [type-checked](check) against the data model
//! when the spec loads, and then either [evaluated](eval) in memory for a single record
//! or [compiled](to_sql) to a parameterized SQL predicate for SQLite or PostgreSQL. The
//! two paths give the same answer for every row; a property test holds them equal.
//!
//! ```
//! use keel_expr::{Scope, Type, check, parse};
//!
//! struct Posts;
//! impl Scope for Posts {
//!     fn resolve(&self, path: &[String]) -> Result<Type, String> {
//!         match path.join(".").as_str() {
//!             "author" | "auth.id" => Ok(Type::Uuid),
//!             "visibility" => Ok(Type::Enum(vec!["public".into(), "followers".into()])),
//!             other => Err(format!("unknown field `{other}`")),
//!         }
//!     }
//! }
//!
//! let expr = parse(r#"visibility == "public" || author == auth.id"#)?;
//! let typed = check(&expr, &Posts).map_err(|errors| errors[0].clone())?;
//! assert_eq!(typed.paths().len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Inside: a lexer and the [`parser`] (its module docs hold the grammar in BNF), the
//! untyped AST, types and values with their canonical storage encodings, the type
//! checker, the evaluator (which also does all constant folding), the SQL compiler, and
//! [`Typed::never_true`] / [`Typed::always_true`]: proofs that an expression's own
//! comparisons contradict or cover each other (for `keel check`).

mod ast;
mod caller;
mod check;
mod error;
mod eval;
mod lexer;
mod logic;
pub mod parser;
mod sql;
mod types;

pub use ast::{CmpOp, Expr, ExprKind, Literal};
pub use caller::{CallerEnv, decide_for_caller};
pub use check::{Scope, Typed, check};
pub use error::{ParseError, Span, TypeError};
pub use eval::{Env, eval};
pub use logic::{Case, MAX_CASES, Nullability, Proof};
pub use parser::{Limits, parse, parse_with};
pub use sql::{Dialect, PathSql, SqlScope, to_sql, value_to_sea};
pub use types::{Type, Value, format_date, format_datetime, parse_date, parse_datetime};
