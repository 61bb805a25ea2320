#![recursion_limit = "256"]
//! keel.toml → a validated, resolved [`Model`]. Pure: no I/O beyond what the caller
//! hands in (source text and an environment for `${VAR}`).
//!
//! Stages (see [`load`]): parse → read → resolve names → type rules → derive.

pub mod builtin;
pub mod error;
pub mod example;
pub mod load;
pub mod model;
pub mod schema;
pub mod scope;
pub mod validate;

pub use error::{SpecError, SpecErrors};
pub use load::{Environment, ProcessEnv, load_str};
pub use model::*;
pub use scope::{CollectionScope, ScopeKind};

/// Read and load a spec file.
pub fn load_file(path: &std::path::Path, env: &dyn Environment) -> Result<Model, SpecErrors> {
    match std::fs::read_to_string(path) {
        Ok(src) => load_str(&src, &path.display().to_string(), env),
        Err(e) => Err(SpecErrors(vec![SpecError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            offset: 0,
            message: format!("cannot read the spec: {e}"),
            hint: Some("run `keel init` to write a starter keel.toml".into()),
        }])),
    }
}
