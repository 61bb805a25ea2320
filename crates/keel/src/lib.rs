//! Keel as a library: [`App::build`] wires a whole server from [`Settings`]. The
//! `keel` binary (CLI, config, logs) and the test suites both start servers this way,
//! and so does `keel design`, whose API samples ([`samples`]) are recorded from it.

pub mod app;
pub mod events;
pub mod samples;

pub use app::{App, BuildError, CacheMode, Settings};
