//! Tests for keel-expr, one binary: parser, type checker, evaluator and SQL compiler.

mod check;
mod common;
mod equivalence;
mod eval;
mod parse;
mod sql;
