//! Keel as a library: [`App::build`] wires a whole server from [`Settings`]. The
//! `keel` binary (CLI, config, logs) and the test suites both start servers this way.

pub mod app;

pub use app::{App, BuildError, Settings};
