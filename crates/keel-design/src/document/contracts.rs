//! Section 4, the API contracts: the endpoint table with who may call each, then every
//! recorded sample exchange (request, response, key errors) as HTTP and JSON blocks.

use super::{Inputs, SECTIONS, audience_text};
use crate::samples::Exchange;
use keel_spec::Operation;
use std::fmt::Write;

pub(super) fn contracts(d: &mut String, i: &Inputs<'_>) {
    let m = i.model;
    let _ = writeln!(d, "## {}\n", SECTIONS[3]);
    let _ = writeln!(
        d,
        "Every sample below is real: `keel design` ran each operation against a scratch in-memory instance of this spec (SQLite, migrated, the same operation core as `keel serve`), signed in as a user holding every role, and anonymous for the 401 samples. Ids, timestamps and cursors are then replaced by fixed placeholders so the document is reproducible. Errors are `application/problem+json` (RFC 9457); their `type`s are listed at `/docs/errors`. The full contract is `openapi.json`.\n"
    );
    let _ = writeln!(d, "| endpoint | what | who may |\n|---|---|---|");
    for e in i.endpoints {
        let Some(c) = m.collection(&e.collection) else {
            let who = if e.operation == "me" {
                "signed-in callers"
            } else {
                "anyone (rate limited)"
            };
            let _ = writeln!(
                d,
                "| `{} {}` | {} | {} |",
                e.method, e.route, e.summary, who
            );
            continue;
        };
        let op = match e.operation {
            "create" => Operation::Create,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            _ => Operation::Read,
        };
        let _ = writeln!(
            d,
            "| `{} {}` | {} | {} |",
            e.method,
            e.route,
            e.summary,
            audience_text(c, op)
        );
    }
    d.push('\n');
    if m.auth.password || !m.auth.oauth.is_empty() {
        let _ = writeln!(
            d,
            "Sign-in endpoints (`/v1/auth/...`: signup, login, refresh, logout) follow OAuth 2.0 naming (`access_token`, `token_type`, `expires_in`, `refresh_token`); their samples come first below. Users are created by sign-up, not by `POST /v1/users`; signed-in requests carry `Authorization: Bearer <access_token>`.\n"
        );
    }
    let mut current = "";
    for e in i.endpoints {
        if e.collection != current {
            current = &e.collection;
            let _ = writeln!(d, "### `{}`\n", e.collection);
        }
        let _ = writeln!(d, "#### `{} {}` — {}\n", e.method, e.route, e.summary);
        exchange(d, &e.success, true);
        if !e.errors.is_empty() {
            let _ = writeln!(d, "Key errors:\n");
            for x in &e.errors {
                exchange(d, x, false);
            }
        }
    }
    if let Some(sdl) = i.graphql {
        graphql(d, sdl);
    }
}

/// The GraphQL part: the endpoint, how it maps to REST, and the root types.
fn graphql(d: &mut String, sdl: &str) {
    let _ = writeln!(d, "### GraphQL\n");
    let _ = writeln!(
        d,
        "`POST /graphql` (and `GET /graphql` for queries) serves the same collections over the same operation core: the rules, validation, rate limits and events above apply unchanged, and errors carry `extensions.code` with the problem `type` slug of the REST error (`validation` adds `extensions.errors`). Per collection `c`: `c(filter, sort, limit, cursor, count)` is `GET /v1/c`, `c_by_id(id)` is `GET /v1/c/{{id}}`, `create_c(input, idempotency_key)`, `update_c(id, input, if_version)` and `delete_c(id, if_version)` are its writes; a ref field resolves to the referenced record (batched per request and caller). Subscriptions (`c_events(filter, since)`) stream the realtime feed over a WebSocket at the same path (`graphql-transport-ws`). The full schema is `schema.graphql`; its root types:\n"
    );
    let _ = writeln!(d, "```graphql");
    for root in ["Query", "Mutation", "Subscription"] {
        if let Some(block) = type_block(sdl, root) {
            let _ = writeln!(d, "{block}\n");
        }
    }
    let _ = writeln!(d, "```\n");
}

/// `type <name> { … }` as written in the SDL.
fn type_block<'a>(sdl: &'a str, name: &str) -> Option<&'a str> {
    let head = format!("type {name} {{");
    let start = sdl.find(&head)?;
    let end = sdl[start..].find("\n}")? + start + 2;
    Some(&sdl[start..end])
}

fn status_text(s: u16) -> &'static str {
    match s {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        422 => "Unprocessable Content",
        _ => "",
    }
}

fn exchange(d: &mut String, x: &Exchange, success: bool) {
    if success {
        let mut req = format!("{} {}", x.method, x.path);
        for (k, v) in &x.request_headers {
            req.push_str(&format!("\n{k}: {v}"));
        }
        let _ = writeln!(d, "Request:\n\n```http\n{req}\n```\n");
        if let Some(body) = &x.request {
            let _ = writeln!(d, "```json\n{}\n```\n", pretty(body));
        }
        if x.status >= 400 {
            let _ = writeln!(
                d,
                "Response **{} {}**{} — every caller is refused here (the rule denies or is absent):\n",
                x.status,
                status_text(x.status),
                headers(x)
            );
        } else {
            let _ = writeln!(
                d,
                "Response **{} {}**{}:\n",
                x.status,
                status_text(x.status),
                headers(x)
            );
        }
    } else {
        let body = x
            .request
            .as_ref()
            .map(|b| format!(" with `{}`", serde_json::to_string(b).unwrap_or_default()))
            .unwrap_or_default();
        let ifm = x
            .request_headers
            .iter()
            .find(|(k, _)| k == "if-match")
            .map(|(_, v)| format!(" and `If-Match: {v}`"))
            .unwrap_or_default();
        let _ = writeln!(
            d,
            "- **{} {}** — {}: `{} {}`{body}{ifm}\n",
            x.status,
            status_text(x.status),
            x.note,
            x.method,
            x.path
        );
    }
    if let Some(body) = &x.response {
        let _ = writeln!(d, "```json\n{}\n```\n", pretty(body));
    }
}

fn headers(x: &Exchange) -> String {
    let hs: Vec<String> = x
        .response_headers
        .iter()
        .filter(|(k, _)| k != "content-type")
        .map(|(k, v)| format!("`{k}: {v}`"))
        .collect();
    if hs.is_empty() {
        String::new()
    } else {
        format!(", {}", hs.join(", "))
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
