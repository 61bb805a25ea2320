//! `[auth.oauth.*]` and `[auth] redirect_urls`: what loads, and every mistake found
//! at its line with a hint.
#![allow(clippy::unwrap_used)]

use keel_spec::{SpecError, load_str};
use std::collections::BTreeMap;

fn errors(src: &str) -> Vec<SpecError> {
    load_str(src, "keel.toml", &BTreeMap::new())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

fn has(errors: &[SpecError], line: usize, needle: &str) -> SpecError {
    errors
        .iter()
        .find(|e| e.line == line && e.message.contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no error at line {line} containing {needle:?} in {errors:#?}"))
}

#[test]
fn providers_with_overrides_load() {
    let src = r#"[app]
name = "x"
[auth]
redirect_urls = ["https://app.example.com/auth/done", "http://localhost:3000/*"]
[auth.oauth.google]
client_id = "g"
client_secret = "s"
authorize_url = "http://127.0.0.1:9000/auth"
token_url = "http://127.0.0.1:9000/token"
jwks_url = "http://127.0.0.1:9000/jwks"
issuer = "http://127.0.0.1:9000"
scopes = ["openid", "email"]
redirect_url = "https://api.example.com/v1/auth/oauth/google/callback"
[auth.oauth.github]
client_id = "h"
client_secret = "s"
emails_url = "http://127.0.0.1:9000/user/emails"
[auth.oauth.corp]
client_id = "c"
client_secret = "s"
issuer = "https://login.corp.example"
"#;
    let m = load_str(src, "keel.toml", &BTreeMap::new()).unwrap();
    assert_eq!(m.auth.redirect_urls.len(), 2);
    let g = &m.auth.oauth["google"];
    assert_eq!(g.token_url.as_deref(), Some("http://127.0.0.1:9000/token"));
    assert_eq!(g.jwks_url.as_deref(), Some("http://127.0.0.1:9000/jwks"));
    assert_eq!(g.scopes.as_deref().unwrap(), ["openid", "email"]);
    assert!(g.redirect_url.as_deref().unwrap().ends_with("/callback"));
    assert_eq!(
        m.auth.oauth["github"].emails_url.as_deref(),
        Some("http://127.0.0.1:9000/user/emails")
    );
    assert_eq!(
        m.auth.oauth["corp"].issuer.as_deref(),
        Some("https://login.corp.example")
    );
}

#[test]
fn provider_mistakes_are_reported_at_their_line() {
    let src = r#"[app]
name = "x"
[auth]
redirect_urls = ["javascript:alert(1)", "https://ok.example.com/"]
[auth.oauth.corp]
client_id = "c"
client_secret = "s"
[auth.oauth.google]
client_id = "g"
client_secret = "s"
token_uri = "http://127.0.0.1/token"
emails_url = "http://127.0.0.1/emails"
[auth.oauth.github]
client_secret = "s"
issuer = "https://github.com"
[auth.oauth.other]
client_id = "o"
client_secret = "s"
issuer = "ftp://idp.example"
scopes = "openid"
[auth.oauth.Bad]
client_id = "b"
"#;
    let errs = errors(src);
    has(
        &errs,
        4,
        "`auth.redirect_urls` must be an absolute http:// or https:// URL",
    );
    has(&errs, 5, "OAuth provider `corp` needs an `issuer`");
    let e = has(&errs, 11, "unknown key `token_uri` in an OAuth provider");
    assert_eq!(e.hint.as_deref(), Some("did you mean `token_url`?"));
    has(
        &errs,
        8,
        "`emails_url` applies only to github, not to `google`",
    );
    let e = has(&errs, 13, "OAuth provider `github` needs a `client_id`");
    assert!(e.hint.unwrap().contains("${VAR}"));
    has(&errs, 13, "GitHub is not an OpenID Connect issuer");
    has(
        &errs,
        19,
        "`issuer` must be an absolute http:// or https:// URL",
    );
    has(&errs, 20, "scopes must be an array of strings");
    has(&errs, 21, "`Bad` is not a valid OAuth provider name");
}

#[test]
fn the_json_schema_knows_the_provider_keys() {
    let schema = keel_spec::schema::json_schema();
    let props = &schema["properties"]["auth"]["properties"];
    assert!(props["redirect_urls"].is_object());
    let p = &props["oauth"]["additionalProperties"]["properties"];
    for key in [
        "client_id",
        "client_secret",
        "issuer",
        "authorize_url",
        "token_url",
        "userinfo_url",
        "emails_url",
        "jwks_url",
        "scopes",
        "redirect_url",
    ] {
        assert!(p[key].is_object(), "schema lacks {key}");
    }
}
