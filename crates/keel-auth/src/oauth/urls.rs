//! Where a finished login may send the browser (`[auth] redirect_urls`), and how the
//! tokens travel there (in the URL fragment, never the query).

use reqwest::Url;

/// Is `url` allowed as a `redirect_to` by `[auth] redirect_urls`? Exact entries, or
/// entries ending in `/*` matching by prefix (the `/` keeps the host fixed).
pub fn redirect_allowed(allowed: &[String], url: &str) -> bool {
    if url.contains(['#', '\\']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return false;
    }
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') => url.starts_with(prefix),
        _ => a == url,
    })
}

/// Add `key=value` pairs to a URL's fragment (how tokens reach a browser app).
pub fn with_fragment(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = Url::parse("http://x/").ok();
    let fragment = ser
        .as_mut()
        .map(|u| {
            u.query_pairs_mut().extend_pairs(pairs.iter().copied());
            u.query().unwrap_or_default().to_string()
        })
        .unwrap_or_default();
    format!("{url}#{fragment}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redirect_to_must_be_allowed() {
        let allowed = vec![
            "https://app.example.com/auth/done".to_string(),
            "http://localhost:3000/*".to_string(),
        ];
        assert!(redirect_allowed(
            &allowed,
            "https://app.example.com/auth/done"
        ));
        assert!(redirect_allowed(&allowed, "http://localhost:3000/"));
        assert!(redirect_allowed(&allowed, "http://localhost:3000/a/b?x=1"));
        for bad in [
            "https://app.example.com/auth/done/x",
            "https://app.example.com/auth/done#x",
            "https://app.example.com.evil.test/auth/done",
            "http://localhost:30001/",
            "http://localhost:3000.evil.test/",
            "http://localhost:3000\\@evil.test/",
            "javascript:alert(1)",
            "//evil.test/",
            "",
        ] {
            assert!(!redirect_allowed(&allowed, bad), "{bad}");
        }
        assert!(!redirect_allowed(&[], "https://app.example.com/auth/done"));
    }

    #[test]
    fn tokens_go_in_the_fragment_encoded() {
        assert_eq!(
            with_fragment(
                "https://a.test/done?x=1",
                &[("access_token", "a.b+c"), ("expires_in", "900")]
            ),
            "https://a.test/done?x=1#access_token=a.b%2Bc&expires_in=900"
        );
    }
}
