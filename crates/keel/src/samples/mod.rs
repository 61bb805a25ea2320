//! The API samples of `keel design`, recorded from the real app: a scratch server is
//! built by [`App::build`] exactly as `keel serve` builds it (over an in-memory SQLite
//! database), driven in process through its router, and every status, header and
//! body it answers is kept as the sample. Only ids, timestamps, tokens and cursors
//! are then replaced by placeholders ([`redact`]), so the document is reproducible.
//!
//! - [`exchange`]: sending one request and recording the answer;
//! - [`auth`]: the identity flows, which leave the sample user signed in;
//! - [`collection`]: each collection's create, list, get, update and delete;
//! - [`bodies`]: the request bodies those send.

mod auth;
mod bodies;
mod collection;
mod exchange;
mod redact;

use crate::{App, Settings};
use keel_core::ratelimit::{Decision, LimitStore, Quota, RateLimiter};
use keel_design::samples::Endpoint;
use keel_design::{Files, Format};
use keel_spec::Model;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The whole design of `model` (loaded from `source`, named `file`): record the
/// samples on a scratch app, then render the document and its artifacts.
pub async fn design(
    model: &Model,
    source: &str,
    file: &str,
    format: Format,
) -> Result<Files, String> {
    let recorded = record_all(model).await?;
    Ok(keel_design::render(
        model,
        source,
        file,
        format,
        &recorded.endpoints,
        recorded.graphql.as_deref(),
    ))
}

/// What the scratch app showed: its endpoints with their samples, and its GraphQL
/// schema in SDL (`None` when the model's GraphQL names clash).
pub struct Recorded {
    pub endpoints: Vec<Endpoint>,
    pub graphql: Option<String>,
}

/// The samples and the GraphQL schema of one scratch app.
pub async fn record_all(model: &Model) -> Result<Recorded, String> {
    let app = scratch_app(model).await?;
    let graphql = app.graphql().map(|g| g.sdl());
    let endpoints = record_on(&app, model).await?;
    Ok(Recorded { endpoints, graphql })
}

/// Every endpoint of the model with its recorded samples, in document order: the
/// identity endpoints, then each collection in spec order (list, create, get,
/// update, delete).
pub async fn record(model: &Model) -> Result<Vec<Endpoint>, String> {
    let app = scratch_app(model).await?;
    record_on(&app, model).await
}

async fn record_on(app: &App, model: &Model) -> Result<Vec<Endpoint>, String> {
    let mut rec = exchange::Recorder::new(app.router());
    let users = model
        .collections
        .iter()
        .find(|c| c.builtin)
        .ok_or("the model has no users collection")?;
    let roles: Vec<String> = model.roles.keys().cloned().collect();
    let user = bodies::create(users, 0, &BTreeMap::new());
    let (signed_in, auth_endpoints) = if model.auth.password {
        auth::record(app, &rec, &user, &roles).await?
    } else {
        (
            auth::provision(app, users, &user, &roles).await?,
            Vec::new(),
        )
    };
    rec.sign_in(&signed_in.access_token);
    let mut run = collection::Runner::new(&rec);
    run.ids.insert(users.name.clone(), signed_in.id);

    // Parents before children, so each sample can point at its refs' sample records.
    let order: Vec<&keel_spec::Collection> = keel_store::schema::tables(model)
        .into_iter()
        .filter_map(|t| model.collection(&t.name))
        .collect();
    let mut endpoints = Vec::new();
    for c in &order {
        endpoints.extend(run.collection(c).await?);
    }
    // Deletes last, children before parents, so restricting refs do not get in the way.
    for c in order.iter().rev() {
        endpoints.push(run.delete(c).await?);
    }
    // Document order: sign-in first, then the spec's collections, each one's
    // endpoints together (the deletes were recorded last).
    let mut sorted = auth_endpoints;
    for c in &model.collections {
        sorted.extend(endpoints.iter().filter(|e| e.collection == c.name).cloned());
    }
    Ok(redact::Redactor::default().endpoints(sorted))
}

/// A 32-byte key for `encrypted` fields of the scratch database (it lives in memory
/// and dies with the run).
const SCRATCH_FIELD_KEY: &str = "scratch:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The app as `keel serve` builds it, over an in-memory database. Its listener binds
/// a free loopback port (the samples go through the router, never through it).
async fn scratch_app(model: &Model) -> Result<App, String> {
    let mut settings = Settings::new(model.clone(), "sqlite::memory:");
    settings.addr = "127.0.0.1:0".into();
    settings.field_keys = Some(SCRATCH_FIELD_KEY.into());
    settings.limit_store = Some(Arc::new(FirstRequest));
    App::build(settings)
        .await
        .map_err(|e| format!("the scratch app: {e}"))
}

/// Rate limits as each sample's caller sees them on its first request: the samples
/// show the API's answers, not the 429 that a hundred requests in a second earn
/// under a tight `[limits]` (the in-process algorithm, with nothing counted yet).
struct FirstRequest;

impl LimitStore for FirstRequest {
    fn check<'a>(
        &'a self,
        quota: &'a Quota,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(async move { RateLimiter::new().check_at(quota, key, std::time::Instant::now()) })
    }
}
