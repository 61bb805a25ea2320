//! The API samples the document shows, as plain data: each [`Endpoint`] with its
//! success [`Exchange`] and key errors. `keel design` records them by driving the
//! real app in process (`keel::samples`), so every status, header and body here is
//! what the server answered; this crate only renders them.

use serde_json::Value as Json;

/// One request and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub method: String,
    /// The concrete path with its query, e.g. `/v1/posts?limit=2`.
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request: Option<Json>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response: Option<Json>,
    /// What this exchange shows (e.g. "a body that misses required fields").
    pub note: String,
}

/// One endpoint: its route template, the success exchange and the key errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub collection: String,
    pub operation: &'static str,
    pub method: &'static str,
    /// `/v1/posts/{id}`.
    pub route: String,
    pub summary: String,
    pub success: Exchange,
    pub errors: Vec<Exchange>,
}
