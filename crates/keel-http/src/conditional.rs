//! Conditional GETs: every data `GET` answers with an `ETag`, and `If-None-Match`
//! naming the current one is a `304 Not Modified` with no body. A record's tag is its
//! version (`"3"`, the one `If-Match` takes); any other answer's is a weak tag over
//! its bytes (`W/"…"`), the same on every node running the same build.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A weak tag over a body's bytes: a 64-bit hash taken eight bytes at a time, with
/// fixed constants so every node computes the same tag for the same bytes. Not a
/// defence against anyone crafting collisions (a weak tag only saves a transfer);
/// SipHash over every list page was 5 % of a list's instructions.
fn weak_tag(bytes: &[u8]) -> String {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        h = (h.rotate_left(27) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(27) ^ u64::from(b)).wrapping_mul(K);
    }
    // A final mix, so nearby inputs spread over every bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    format!("W/\"{h:016x}\"")
}

/// Whether `If-None-Match` names `tag` (weak comparison, RFC 9110 §13.1.2).
pub fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = opaque(tag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

/// `"7"`: a record's version as its entity tag.
fn strong_tag(version: i64) -> String {
    let mut numbers = itoa::Buffer::new();
    let digits = numbers.format(version);
    let mut tag = String::with_capacity(digits.len() + 2);
    tag.push('"');
    tag.push_str(digits);
    tag.push('"');
    tag
}

/// A JSON answer to a `GET` (its text), tagged: `version` when it is a record's
/// (`None` tags the bytes), and `304` when the client already holds it.
pub fn json_answer(request: &HeaderMap, bytes: Vec<u8>, version: Option<i64>) -> Response {
    let tag = version.map_or_else(|| weak_tag(&bytes), strong_tag);
    let Ok(tag_value) = HeaderValue::from_str(&tag) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut res = if none_match(request, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = Response::new(Body::from(bytes));
        // Room for the edge's headers too: growing the map twice per answer showed.
        *res.headers_mut() = axum::http::HeaderMap::with_capacity(16);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    };
    res.headers_mut().insert(header::ETAG, tag_value);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_none_match_compares_weakly_and_lists() {
        assert!(none_match(&with("\"3\""), "\"3\""));
        assert!(none_match(&with("W/\"3\""), "\"3\""));
        assert!(none_match(&with("\"1\", \"3\""), "\"3\""));
        assert!(none_match(&with("*"), "W/\"ab\""));
        assert!(!none_match(&with("\"4\""), "\"3\""));
        assert!(!none_match(&HeaderMap::new(), "\"3\""));
    }

    #[test]
    fn versions_are_strong_tags() {
        assert_eq!(strong_tag(7), "\"7\"");
        assert_eq!(strong_tag(-12), "\"-12\"");
        assert_eq!(strong_tag(i64::MAX), format!("\"{}\"", i64::MAX));
    }

    #[test]
    fn tags_follow_the_bytes() {
        assert_eq!(weak_tag(b"{}"), weak_tag(b"{}"));
        assert_ne!(weak_tag(b"{\"a\":1}"), weak_tag(b"{\"a\":2}"));
        // Every length of tail, and a byte moved, changes the tag.
        let page = br#"{"items":[{"id":"0193","title":"a"}],"next_cursor":null}"#;
        let tags: std::collections::HashSet<String> =
            (0..=page.len()).map(|n| weak_tag(&page[..n])).collect();
        assert_eq!(tags.len(), page.len() + 1);
        assert_ne!(weak_tag(b"abcdefgh12"), weak_tag(b"bacdefgh12"));
        // Fixed constants: the same on every node (values from an independent
        // computation of the same function).
        assert_eq!(weak_tag(b"{}"), "W/\"91fe97e796165051\"");
        assert_eq!(weak_tag(b"{\"a\":1}"), "W/\"c1b405caeabe54bc\"");
    }
}
