//! OAuth2 / OpenID Connect login end to end against a REAL OpenID provider: panva's
//! `oidc-provider` (tests/oidc/server.js, installed by scripts/tools.sh; the folder is
//! `KEEL_OIDC_DIR`) on a random loopback port. Every redirect is followed by hand.
//!
//! - `local`: a generic OIDC issuer found by discovery (client_secret_basic; email
//!   from userinfo, as the provider puts only `sub` in the ID token);
//! - `google`: the Google provider type pointed at the same provider by endpoint
//!   overrides (client_secret_post, no discovery);
//! - `github`: GitHub's flow (user + emails API) against routes of the same Node
//!   server that answer in GitHub's documented shapes.

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, problem, spawn_app};
use reqwest::{Client, Response, Url};
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::io::AsyncBufReadExt;

/// The Node OpenID provider, killed on drop.
struct Oidc {
    port: u16,
    _child: tokio::process::Child,
    script: std::path::PathBuf,
}

impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

impl Oidc {
    async fn start() -> Self {
        let dir = std::env::var("KEEL_OIDC_DIR").unwrap_or_else(|_| {
            panic!(
                "KEEL_OIDC_DIR is not set: run the tests through scripts/test.sh, or run \
                 scripts/tools.sh and export KEEL_OIDC_DIR=$HOME/.cache/keel-tools/oidc"
            )
        });
        let dir = std::path::PathBuf::from(dir);
        assert!(
            dir.join("node_modules/oidc-provider/package.json").exists(),
            "oidc-provider is not installed in {} (scripts/tools.sh installs it)",
            dir.display()
        );
        // The script must sit beside node_modules for `import 'oidc-provider'`.
        let script = dir.join(format!("server-{}.mjs", uuid::Uuid::now_v7().simple()));
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/oidc/server.js"),
            &script,
        )
        .expect("copy server.js");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the OpenID provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read provider output") {
                if let Some(p) = line.strip_prefix("LISTENING ") {
                    return p.trim().parse::<u16>().expect("port");
                }
            }
            panic!("the OpenID provider exited before listening")
        })
        .await
        .expect("the OpenID provider did not start within 30 s");
        // Keep draining stdout so the provider never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Oidc {
            port,
            _child: child,
            script,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spec(&self) -> String {
        let b = self.base();
        format!(
            r#"
[app]
name = "oauthtest"

[auth]
redirect_urls = ["http://app.test/done", "http://spa.test/*"]

[auth.oauth.local]
client_id = "keel"
client_secret = "keel-secret"
issuer = "{b}"

[auth.oauth.google]
client_id = "keel-google"
client_secret = "google-secret"
issuer = "{b}"
authorize_url = "{b}/auth"
token_url = "{b}/token"
userinfo_url = "{b}/me"
jwks_url = "{b}/jwks"

[auth.oauth.github]
client_id = "gh-client"
client_secret = "gh-secret"
authorize_url = "{b}/github/login/oauth/authorize"
token_url = "{b}/github/login/oauth/access_token"
userinfo_url = "{b}/github/user"
emails_url = "{b}/github/user/emails"

[limits]
"GET /v1/auth/oauth/{{provider}}" = "1000/min"
"GET /v1/auth/oauth/{{provider}}/callback" = "1000/min"
"#
        )
    }
}

/// A browser: no automatic redirects, a cookie jar by hand (names only; every
/// cookie goes everywhere, which is harmless here).
struct Browser {
    http: Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn get(&mut self, url: &str) -> Response {
        let mut req = self.http.get(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let res = req.send().await.unwrap();
        for v in res.headers().get_all("set-cookie") {
            let first = v.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        res
    }

    /// GET `url`, asserting a redirect, and return the absolute Location.
    async fn redirect(&mut self, url: &str) -> String {
        let res = self.get(url).await;
        let status = res.status().as_u16();
        let base = Url::parse(url).unwrap();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let Some(location) = location else {
            panic!(
                "GET {url}: {status}, no Location: {}",
                res.text().await.unwrap()
            );
        };
        assert!(
            [302, 303].contains(&status),
            "GET {url}: {status} to {location}"
        );
        base.join(&location).unwrap().to_string()
    }

    /// Start a login at Keel and log in at the provider (changing the provider URL
    /// with `tweak` first); returns Keel's callback URL, code and state included.
    async fn login_at_provider(
        &mut self,
        app: &TestApp,
        start: &str,
        tweak: impl Fn(&mut Url),
    ) -> String {
        let mut url = Url::parse(&self.redirect(&app.url(start)).await).unwrap();
        assert!(
            self.cookies.contains_key("keel_oauth"),
            "the start sets the binding cookie"
        );
        tweak(&mut url);
        let mut next = url.to_string();
        for _ in 0..10 {
            if next.starts_with(&app.base) {
                return next;
            }
            next = self.redirect(&next).await;
        }
        panic!("no redirect back to Keel")
    }
}

fn query(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn hint(login: &'static str) -> impl Fn(&mut Url) {
    move |u: &mut Url| {
        u.query_pairs_mut().append_pair("login_hint", login);
    }
}

async fn session(res: Response) -> Value {
    let status = res.status();
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(body["user"].get("password_hash").is_none());
    body
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app
        .client
        .get(app.url("/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn oidc_login_creates_then_links(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("Ada@Example.com"))
        .await;
    let q = query(&callback);
    assert!(
        q.contains_key("code") && q.contains_key("state"),
        "{callback}"
    );
    let first = session(browser.get(&callback).await).await;
    assert_eq!(first["user"]["email"], "ada@example.com");
    let id = first["user"]["id"].as_str().unwrap().to_string();
    let me1 = me(&app, first["access_token"].as_str().unwrap()).await;
    assert_eq!(me1["id"], id.as_str());
    // Keel's refresh token works as after a password login.
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            serde_json::json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);

    // The same state again (a replayed callback): refused.
    let body = problem(browser.get(&callback).await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("state"), "{body}");

    // A second login (new browser) links to the same user.
    let mut other = Browser::new();
    let callback = other
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("ada@example.com"))
        .await;
    let second = session(other.get(&callback).await).await;
    assert_eq!(second["user"]["id"], id.as_str());
    let users = app
        .auth
        .user_id_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(users, id);

    // A password account with the same email is never linked: a password sign-up does
    // not prove the address, so linking would let its maker take the provider's user.
    let res = app
        .post(
            "/v1/auth/signup",
            serde_json::json!({"email": "bob@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let bob: Value = res.json().await.unwrap();
    let mut third = Browser::new();
    let callback = third
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("bob@example.com"))
        .await;
    let refused = third.get(&callback).await;
    assert_eq!(refused.status(), 409);
    let p: Value = refused.json().await.unwrap();
    assert_eq!(p["type"], "/docs/errors#conflict");
    assert!(bob["user"]["id"].is_string());
}

async fn oidc_state_nonce_and_binding_are_checked(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;

    // A tampered state.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("eve@example.com"))
        .await;
    let mut url = Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    problem(browser.get(url.as_str()).await, 401).await;
    // No state at all.
    problem(
        browser
            .get(&app.url("/v1/auth/oauth/local/callback?code=abc"))
            .await,
        401,
    )
    .await;

    // The callback from another browser (no binding cookie): refused, and the
    // state is spent.
    let mut victim = Browser::new();
    let callback = victim
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("eve@example.com"))
        .await;
    let mut attacker = Browser::new();
    let body = problem(attacker.get(&callback).await, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("another browser"),
        "{body}"
    );
    problem(victim.get(&callback).await, 401).await;

    // A nonce other than Keel's (the provider signs what it was asked).
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/local", |u: &mut Url| {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "nonce" {
                        "forged-nonce".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("login_hint", "eve@example.com");
        })
        .await;
    let body = problem(browser.get(&callback).await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("nonce"), "{body}");

    // A code issued to another client, presented to Keel's callback.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/local", |u: &mut Url| {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "client_id" {
                        "other".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        })
        .await;
    let body = problem(browser.get(&callback).await, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("refused the code"),
        "{body}"
    );

    // An email the provider has not verified.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/local", hint("unverified@example.com"))
        .await;
    let body = problem(browser.get(&callback).await, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("verified"),
        "{body}"
    );
    assert!(
        app.auth
            .user_id_by_email("unverified@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // The provider's own error (the user said no).
    let mut browser = Browser::new();
    let authorize = browser.redirect(&app.url("/v1/auth/oauth/local")).await;
    let state = query(&authorize)["state"].clone();
    let denied = format!(
        "{}?error=access_denied&error_description=no%20thanks&state={state}",
        app.url("/v1/auth/oauth/local/callback")
    );
    let body = problem(browser.get(&denied).await, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("access_denied"),
        "{body}"
    );
}

async fn oidc_start_builds_a_pkce_request(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;
    let mut browser = Browser::new();
    let res = browser.get(&app.url("/v1/auth/oauth/local")).await;
    assert_eq!(res.status(), 302);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/auth?", oidc.base())),
        "{location}"
    );
    let q = query(&location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "keel");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_eq!(q["redirect_uri"], app.url("/v1/auth/oauth/local/callback"));
    assert!(q["scope"].split(' ').any(|s| s == "openid"));

    // GitHub: no nonce, its scopes.
    let location = browser.redirect(&app.url("/v1/auth/oauth/github")).await;
    let q = query(&location);
    assert!(!q.contains_key("nonce"));
    assert_eq!(q["scope"], "read:user user:email");
    assert_eq!(q["code_challenge_method"], "S256");

    // Unknown provider: 404; redirect_to not allowed: 400 (no open redirect).
    problem(browser.get(&app.url("/v1/auth/oauth/nope")).await, 404).await;
    problem(
        browser
            .get(&app.url("/v1/auth/oauth/nope/callback?code=a&state=b"))
            .await,
        404,
    )
    .await;
    for bad in [
        "https://evil.test/done",
        "http://app.test/done/../../x",
        "http://app.test/done#x",
        "http://spa.test.evil.test/",
    ] {
        let url = format!(
            "{}?redirect_to={}",
            app.url("/v1/auth/oauth/local"),
            urlencode(bad)
        );
        let body = problem(browser.get(&url).await, 400).await;
        assert_eq!(body["errors"][0]["field"], "redirect_to", "{body}");
    }
}

fn urlencode(s: &str) -> String {
    let mut u = Url::parse("http://x/").unwrap();
    u.query_pairs_mut().append_pair("v", s);
    u.query().unwrap()[2..].to_string()
}

async fn redirect_to_gets_tokens_in_the_fragment(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;
    let mut browser = Browser::new();
    let start = format!(
        "/v1/auth/oauth/local?redirect_to={}",
        urlencode("http://spa.test/after/login?x=1")
    );
    let callback = browser
        .login_at_provider(&app, &start, hint("fragment@example.com"))
        .await;
    let end = browser.redirect(&callback).await;
    let (base, fragment) = end.split_once('#').expect("a fragment");
    assert_eq!(base, "http://spa.test/after/login?x=1");
    let f: BTreeMap<String, String> = Url::parse(&format!("http://x/?{fragment}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(f["token_type"], "Bearer");
    assert_eq!(f["expires_in"], "900");
    assert_eq!(f["provider"], "local");
    let user = me(&app, &f["access_token"]).await;
    assert_eq!(user["email"], "fragment@example.com");
    let res = app
        .post(
            "/v1/auth/refresh",
            serde_json::json!({"refresh_token": f["refresh_token"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

async fn google_by_endpoint_overrides(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/google", hint("grace@example.com"))
        .await;
    assert!(callback.starts_with(&app.url("/v1/auth/oauth/google/callback?")));
    let s = session(browser.get(&callback).await).await;
    assert_eq!(s["user"]["email"], "grace@example.com");
    let user = me(&app, s["access_token"].as_str().unwrap()).await;
    assert_eq!(user["id"], s["user"]["id"]);
    // A google state is not a local one.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/google", hint("grace@example.com"))
        .await;
    let crossed = callback.replace("/oauth/google/", "/oauth/local/");
    problem(browser.get(&crossed).await, 401).await;
}

async fn github_user_and_emails(b: Backend) {
    let oidc = Oidc::start().await;
    let app = spawn_app(b, &oidc.spec()).await;
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/github", |u: &mut Url| {
            u.query_pairs_mut().append_pair("login", "octocat");
        })
        .await;
    let s = session(browser.get(&callback).await).await;
    // The primary verified address, not the other verified one.
    assert_eq!(s["user"]["email"], "octocat@github.example");
    assert_eq!(s["user"]["name"], "The Octocat");
    me(&app, s["access_token"].as_str().unwrap()).await;

    // A primary email GitHub has not verified.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/github", |u: &mut Url| {
            u.query_pairs_mut().append_pair("login", "unverified-cat");
        })
        .await;
    let body = problem(browser.get(&callback).await, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("not verified"),
        "{body}"
    );

    // GitHub's 200-with-error answer to a bad code.
    let mut browser = Browser::new();
    let callback = browser
        .login_at_provider(&app, "/v1/auth/oauth/github", |_: &mut Url| {})
        .await;
    let mut url = Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                "wrong".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let body = problem(browser.get(url.as_str()).await, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("bad_verification_code"),
        "{body}"
    );
}

async fn unreachable_provider_is_a_502(b: Backend) {
    // A port nothing listens on: discovery fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let spec = format!(
        "[app]\nname = \"x\"\n[auth.oauth.local]\nclient_id = \"a\"\nclient_secret = \"b\"\nissuer = \"http://127.0.0.1:{port}\"\n"
    );
    let app = spawn_app(b, &spec).await;
    let mut browser = Browser::new();
    let body = problem(browser.get(&app.url("/v1/auth/oauth/local")).await, 502).await;
    assert_eq!(body["type"], "/docs/errors#bad-gateway");
    // The OpenAPI document lists the routes when providers are configured.
    let doc: Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["paths"]["/v1/auth/oauth/{provider}"]["get"].is_object());
    assert!(
        doc["paths"]["/v1/auth/oauth/{provider}/callback"]["get"]["responses"]["302"].is_object()
    );
}

backend_tests!(
    oidc_login_creates_then_links,
    oidc_state_nonce_and_binding_are_checked,
    oidc_start_builds_a_pkce_request,
    redirect_to_gets_tokens_in_the_fragment,
    google_by_endpoint_overrides,
    github_user_and_emails,
    unreachable_provider_is_a_502,
);
