//! The architect: from the same model `keel serve` runs, the architecture document
//! (`keel design`) and the design review (`keel check`).
//!
//! - [`review`]: lints over the model and its source → findings with stable codes (pure);
//! - [`plan`]: capacity plan and technology choices from `[scale]` (pure);
//! - [`document`], [`artifacts`], [`html`]: ARCHITECTURE.md and the files beside it (pure);
//! - [`samples`]: the API samples as plain data, recorded by `keel::samples` driving
//!   the real app in process (their request bodies come from `keel_spec::example`).
//!
//! [`render`] ties them together; the output is deterministic: the same spec and
//! samples give byte-identical files.

pub mod analysis;
pub mod artifacts;
pub mod document;
pub mod html;
pub mod plan;
pub mod review;
pub mod samples;

use keel_spec::Model;
use keel_store::Dialect;

pub use review::{Finding, LINTS, Severity, review};

/// Document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

/// The files of a design, as (relative path, contents), in a fixed order.
pub type Files = Vec<(String, String)>;

/// Render the design for `model` (loaded from `source`, named `file`) from its
/// recorded samples and the GraphQL schema the app serves (SDL; `None`: no GraphQL,
/// e.g. clashing names). Pure.
pub fn render(
    model: &Model,
    source: &str,
    file: &str,
    format: Format,
    endpoints: &[samples::Endpoint],
    graphql: Option<&str>,
) -> Files {
    let findings = review::review(model, source, file);
    let p = plan::plan(model, 1.0);
    let p10 = plan::plan(model, 10.0);
    let openapi = keel_http::openapi::document(model);
    let mut files: Files = Vec::new();
    files.push((
        "openapi.json".into(),
        serde_json::to_string_pretty(&openapi).unwrap_or_default() + "\n",
    ));
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        files.push((
            format!("schema.{}.sql", artifacts::dialect_file(d)),
            artifacts::schema_sql(model, d),
        ));
    }
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        files.push((
            format!("migrations/0001_initial.{}.sql", artifacts::dialect_file(d)),
            artifacts::initial_migration(model, d),
        ));
    }
    if let Some(sdl) = graphql {
        files.push((
            "schema.graphql".into(),
            artifacts::graphql_schema(model, sdl),
        ));
    }
    files.push(("Dockerfile".into(), artifacts::dockerfile(model, &p)));
    files.push(("docker-compose.yml".into(), artifacts::compose(model)));
    files.extend(artifacts::k8s(model, &p, source));
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let md = document::render(&document::Inputs {
        model,
        plan: &p,
        plan10: &p10,
        findings: &findings,
        endpoints,
        graphql,
        artifacts: &names,
    });
    let doc = match format {
        Format::Markdown => ("ARCHITECTURE.md".to_string(), md),
        Format::Html => (
            "ARCHITECTURE.html".to_string(),
            html::render(&format!("{} — architecture", model.app.name), &md),
        ),
    };
    files.insert(0, doc);
    files
}
