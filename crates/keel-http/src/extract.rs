//! Extractors whose rejections are problem+json: a JSON body (415, 413, 400), list
//! parameters (400) and `If-Match` (400).

use crate::problem::Problem;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use keel_core::ListParams;

/// A JSON request body, within the size limit.
pub struct JsonBody(pub serde_json::Value);

/// The body size limit, set on the router as an extension.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                "unsupported-media-type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(1024 * 1024, |l| l.0);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                Problem::new(
                    "payload-too-large",
                    format!("the body is larger than {limit} bytes"),
                )
            })?;
        // serde_json refuses nesting deeper than 128: that is the depth limit.
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                "malformed-request",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        Ok(JsonBody(value))
    }
}

/// The query string of a list.
pub struct ListQuery(pub ListParams);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let pairs = parse_query(parts.uri.query())?;
        let mut p = ListParams::default();
        for (k, v) in pairs {
            match k.as_str() {
                "filter" => p.filter = Some(v),
                "sort" => p.sort = Some(v),
                "cursor" => p.cursor = Some(v),
                "fields" => p.fields = Some(v),
                "expand" => p.expand = Some(v),
                "limit" => {
                    p.limit = Some(v.parse().map_err(|_| {
                        invalid(
                            "limit",
                            format!("`{v}` is not a whole number from 1 to 200"),
                        )
                    })?)
                }
                "count" => {
                    p.count = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("count", "use true or false".into())),
                    }
                }
                _ => {}
            }
        }
        Ok(ListQuery(p))
    }
}

/// `fields` and `expand` of a single-record read.
pub struct RecordQuery {
    pub fields: Option<String>,
    pub expand: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RecordQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mut q = RecordQuery {
            fields: None,
            expand: None,
        };
        for (k, v) in parse_query(parts.uri.query())? {
            match k.as_str() {
                "fields" => q.fields = Some(v),
                "expand" => q.expand = Some(v),
                _ => {}
            }
        }
        Ok(q)
    }
}

fn parse_query(q: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    let Some(q) = q else { return Ok(Vec::new()) };
    if q.len() > 8192 {
        return Err(Problem::new(
            "invalid-parameter",
            "the query string is longer than 8192 bytes",
        ));
    }
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| -> Result<String, Problem> {
            let s = s.replace('+', " ");
            percent_decode(&s).ok_or_else(|| {
                Problem::new(
                    "malformed-request",
                    "the query string is not valid UTF-8 percent-encoding",
                )
            })
        };
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn invalid(param: &'static str, message: String) -> Problem {
    Problem::from(keel_core::CoreError::BadParam {
        param,
        message,
        position: None,
    })
}

/// The version in `If-Match` (`"3"`, `W/"3"` or `3`); `*` matches any.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| malformed_if_match())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse::<i64>().map(Some).map_err(|_| malformed_if_match())
}

fn malformed_if_match() -> Problem {
    Problem::new(
        "malformed-request",
        "If-Match must be the record's ETag, e.g. \"3\"",
    )
}

/// A sane `Idempotency-Key`, if one was sent.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s)
            if !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Ok(Some(s.to_string()))
        }
        _ => Err(Problem::new(
            "malformed-request",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}
