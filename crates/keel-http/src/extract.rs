//! Extractors whose rejections are problem+json: a JSON body (415, 413, 400), path
//! parameters (400), list parameters (400) and `If-Match` (400).

use crate::problem::Problem;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use keel_core::ErrorCode;
use keel_core::ListText;

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
                ErrorCode::UnsupportedMediaType,
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
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {limit} bytes"),
                )
            })?;
        // serde_json refuses nesting deeper than 128: that is the depth limit.
        let value = crate::json::from_slice_strict(&bytes).map_err(|e| {
            Problem::new(
                ErrorCode::MalformedRequest,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        Ok(JsonBody(value))
    }
}

/// Path parameters whose rejection (e.g. a segment that is not UTF-8 once
/// percent-decoded) is problem+json like every other error.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(PathParams(t)),
            Err(e) => Err(Problem::new(
                ErrorCode::MalformedRequest,
                format!("the path is malformed: {}", e.body_text()),
            )),
        }
    }
}

/// The query string of a list, as text (the core types it: `Engine::list_query`).
pub struct ListQueryString(pub ListText);

impl<S: Send + Sync> FromRequestParts<S> for ListQueryString {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let pairs = parse_query(parts.uri.query())?;
        let mut p = ListText::default();
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
        Ok(ListQueryString(p))
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
            ErrorCode::InvalidParameter,
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
                    ErrorCode::MalformedRequest,
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

/// `If-Match` (RFC 9110 §13.1.1) as the versions a conditional write accepts: `None`
/// when absent or `*`, else the versions named by its strong entity-tags. A weak tag
/// never matches (strong comparison), nor does a tag that is not a version, so a
/// well-formed header can yield an empty list (always 412); only a malformed header
/// is a 400.
pub fn if_match(headers: &HeaderMap) -> Result<Option<Vec<i64>>, Problem> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut versions = Vec::new();
    for v in values {
        let s = v.to_str().map_err(|_| malformed_if_match())?.trim();
        if s == "*" {
            return Ok(None);
        }
        for tag in entity_tags(s).ok_or_else(malformed_if_match)? {
            if let EntityTag::Strong(opaque) = tag
                && let Ok(n) = opaque.parse::<i64>()
                && opaque.bytes().all(|b| b.is_ascii_digit())
            {
                versions.push(n);
            }
        }
    }
    Ok(Some(versions))
}

/// One entity-tag of a list: its opaque text, strong or weak.
enum EntityTag<'a> {
    Strong(&'a str),
    Weak,
}

/// `1#entity-tag`, or `None` when the text is not one (RFC 9110 §8.8.3).
fn entity_tags(s: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(r) = rest.strip_prefix(',') {
            rest = r; // empty list elements are allowed
            continue;
        }
        if rest.is_empty() {
            break;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let r = r.strip_prefix('"')?;
        let end = r.find('"')?;
        let opaque = &r[..end];
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        out.push(if weak {
            EntityTag::Weak
        } else {
            EntityTag::Strong(opaque)
        });
        rest = r[end + 1..].trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None if rest.is_empty() => break,
            None => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn malformed_if_match() -> Problem {
    Problem::new(
        ErrorCode::MalformedRequest,
        "If-Match must be `*` or a list of entity-tags, e.g. \"3\"",
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
            ErrorCode::MalformedRequest,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}
