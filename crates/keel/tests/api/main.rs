//! One integration-test binary: the real server over real SQLite and PostgreSQL.

mod helpers;

mod errors;
mod migrations;
mod openapi;
mod records;
