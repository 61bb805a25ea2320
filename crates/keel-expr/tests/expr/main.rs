//! Tests for keel-expr, one binary: parser, type checker, evaluator and SQL compiler.
//! `postgres` needs a PostgreSQL server (`KEEL_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fails without one.

mod check;
mod common;
mod equivalence;
mod eval;
mod generate;
mod logic;
mod parse;
mod postgres;
mod sql;
