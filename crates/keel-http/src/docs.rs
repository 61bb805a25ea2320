//! `/docs`: the OpenAPI document rendered by RapiDoc, bundled into the binary (no
//! CDN), and `/docs/errors`: the table of problem types.

use crate::problem::problem_types;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

const RAPIDOC: &[u8] = include_bytes!("../assets/rapidoc-min.js");
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

pub async fn page() -> Response {
    let html = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script type="module" src="/docs/rapidoc-min.js"></script></head>
<body><rapi-doc spec-url="/v1/openapi.json" render-style="read" show-header="false"
 allow-try="true" schema-style="table" theme="light"></rapi-doc></body></html>"#;
    with_csp(Html(html).into_response())
}

pub async fn rapidoc() -> Response {
    let mut res = RAPIDOC.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    res
}

pub async fn errors() -> Response {
    let mut rows = String::new();
    for t in problem_types() {
        rows.push_str(&format!(
            "<tr id=\"{slug}\"><td><code>/docs/errors#{slug}</code></td><td>{status}</td><td>{title}</td><td>{when}</td></tr>\n",
            slug = t.slug,
            status = t.status,
            title = t.title,
            when = html_escape(t.when)
        ));
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error types</title></head><body>\
<h1>Error types</h1><p>Every error is <code>application/problem+json</code> (RFC 9457) with one of these <code>type</code>s.</p>\
<table><thead><tr><th>type</th><th>status</th><th>title</th><th>when</th></tr></thead><tbody>\n{rows}</tbody></table></body></html>"
    );
    with_csp(Html(html).into_response())
}

fn with_csp(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    res
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
