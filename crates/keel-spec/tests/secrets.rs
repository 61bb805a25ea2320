//! Secrets read from keel.toml (usually through `${VAR}`) never show in the model's
//! `Debug` output, so a logged or panicking model cannot leak them.

#![allow(clippy::unwrap_used)]

use keel_spec::load_str;
use std::collections::BTreeMap;

const SERVER_SECRET: &str = "server-secret-0123456789abcdef0123456789";
const CLIENT_SECRET: &str = "oauth-client-secret-value";
/// A Standard Webhooks secret: `whsec_` and the base64 of 32 bytes.
const HOOK_SECRET: &str = "whsec_d2ViaG9vay1zaWduaW5nLXNlY3JldC12YWx1ZS0wMSE=";
const DB_PASSWORD: &str = "database-password-value";
const HOOK_PASSWORD: &str = "webhook-basic-password-value";

fn model() -> keel_spec::Model {
    let env: BTreeMap<String, String> = [
        ("KEEL_SECRET", SERVER_SECRET),
        ("GITHUB_CLIENT_SECRET", CLIENT_SECRET),
        ("HOOK_SECRET", HOOK_SECRET),
        ("DB_PASSWORD", DB_PASSWORD),
        ("HOOK_PASSWORD", HOOK_PASSWORD),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let src = r#"[app]
name = "x"

[server]
secret = "${KEEL_SECRET}"
database = "postgres://keel:${DB_PASSWORD}@db.internal:5432/keel"

[auth.oauth.github]
client_id = "github-client-id"
client_secret = "${GITHUB_CLIENT_SECRET}"

[auth.oauth.corp]
client_id = "corp-client-id"
client_secret = "literal-secret-in-file"
issuer = "https://id.example.com"

[events.webhooks.moderation]
url = "https://keel:${HOOK_PASSWORD}@mod.example.com/hook"
on = ["users.created"]
secret = "${HOOK_SECRET}"
"#;
    load_str(src, "keel.toml", &env).unwrap()
}

#[test]
fn debug_output_redacts_every_secret() {
    let model = model();
    for shown in [format!("{model:?}"), format!("{model:#?}")] {
        for secret in [
            SERVER_SECRET,
            CLIENT_SECRET,
            "literal-secret-in-file",
            HOOK_SECRET,
            DB_PASSWORD,
            HOOK_PASSWORD,
        ] {
            assert!(!shown.contains(secret), "`{secret}` shows in:\n{shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
        // What is not secret still shows, to keep Debug useful.
        assert!(shown.contains("github-client-id"), "{shown}");
        assert!(shown.contains("db.internal:5432/keel"), "{shown}");
        assert!(shown.contains("mod.example.com/hook"), "{shown}");
    }
}

#[test]
fn the_values_themselves_are_unchanged() {
    let model = model();
    assert_eq!(model.server.secret.as_deref(), Some(SERVER_SECRET));
    assert_eq!(
        model.server.database.as_deref(),
        Some("postgres://keel:database-password-value@db.internal:5432/keel")
    );
    assert_eq!(model.auth.oauth["github"].client_secret, CLIENT_SECRET);
    assert_eq!(model.webhooks[0].secret.as_deref(), Some(HOOK_SECRET));
    assert_eq!(
        model.webhooks[0].url,
        "https://keel:webhook-basic-password-value@mod.example.com/hook"
    );
}
