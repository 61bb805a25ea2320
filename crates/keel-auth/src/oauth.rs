//! OAuth2 / OpenID Connect login: the authorization-code flow with PKCE (S256),
//! `state` and (OIDC) `nonce`, for `google`, `github` and any OIDC issuer found by
//! discovery, each configured by `[auth.oauth.<name>]` (every endpoint overridable).
//!
//! A login's state (PKCE verifier, nonce, redirect URIs, a hash of the browser
//! binding) is kept in `_keel_oauth_states`, keyed by a hash of `state`: single use,
//! ten minutes, and shared by every node. The browser that started a login carries a
//! random binding cookie; the callback must come with it (no login CSRF).
//!
//! The end of a flow is a verified email ([`ExternalIdentity`]); the caller signs it
//! in with [`crate::AuthService::sign_in_verified`].

use crate::oauth_idtoken::{self, ASYMMETRIC, Expect};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use keel_spec::{Model, OAuthProvider, Storage};
use keel_store::{Dialect, Stmt, Store, StoreError};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value as Json;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a started login may take.
pub const STATE_TTL_SECS: i64 = 600;
/// How long discovery documents and key sets are kept.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// A key set is fetched again for an unknown `kid` at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// The cookie binding a login to the browser that started it.
pub const BINDING_COOKIE: &str = "keel_oauth";

/// Install aws-lc-rs as the process-wide rustls provider (one provider only; call
/// once at start-up, before any TLS connection). Harmless if one is installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oidc,
    Google,
    GitHub,
}

const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Why a login failed. The HTTP layer maps: unknown provider 404, bad request 400,
/// denied 401, unreachable 502.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("there is no OAuth provider `{0}`")]
    UnknownProvider(String),
    #[error("invalid `{param}`: {message}")]
    BadRequest {
        param: &'static str,
        message: String,
    },
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

fn denied(m: impl Into<String>) -> OAuthError {
    OAuthError::Denied(m.into())
}

/// The endpoints in use for one provider: its defaults or discovery, then overrides.
#[derive(Debug, Clone)]
struct Endpoints {
    authorize: String,
    token: String,
    userinfo: Option<String>,
    emails: Option<String>,
    jwks: Option<String>,
    /// Accepted `iss` values (OIDC); empty for GitHub.
    issuers: Vec<String>,
    algorithms: Vec<Algorithm>,
    /// client_secret_basic (else client_secret_post).
    basic_auth: bool,
}

/// A login that was started: send the browser to `location`, with the binding cookie.
#[derive(Debug, Clone)]
pub struct Started {
    pub location: String,
    pub binding: String,
}

/// What the provider sent back to the callback.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207: the issuer of the response (checked when present).
    pub iss: Option<String>,
}

/// Someone whose email the provider verified.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub provider: String,
    pub subject: String,
    pub email: String,
    pub name: Option<String>,
}

/// A finished login: who, and where the browser asked to go back to.
#[derive(Debug, Clone)]
pub struct Completed {
    pub identity: ExternalIdentity,
    pub redirect_to: Option<String>,
}

struct Provider {
    name: String,
    kind: Kind,
    config: OAuthProvider,
}

/// The configured providers and what was learnt about them.
pub struct OAuth {
    providers: BTreeMap<String, Provider>,
    redirect_urls: Vec<String>,
    http: reqwest::Client,
    store: Store,
    endpoints: tokio::sync::Mutex<HashMap<String, (Arc<Endpoints>, Instant)>>,
    jwks: tokio::sync::Mutex<HashMap<String, (Arc<JwkSet>, Instant)>>,
}

fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| OAuthError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ph(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => "?".into(),
        Dialect::Postgres => format!("${n}"),
    }
}

fn time_text(offset_secs: i64) -> String {
    keel_expr::format_datetime(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs),
    )
}

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

impl OAuth {
    /// The providers of `[auth.oauth.*]`; `None` when there are none.
    pub fn new(model: &Model, store: Store) -> Result<Option<Self>, OAuthError> {
        if model.auth.oauth.is_empty() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OAuthError::Internal(format!("HTTP client: {e}")))?;
        let providers = model
            .auth
            .oauth
            .iter()
            .map(|(name, config)| {
                let kind = match name.as_str() {
                    "google" => Kind::Google,
                    "github" => Kind::GitHub,
                    _ => Kind::Oidc,
                };
                (
                    name.clone(),
                    Provider {
                        name: name.clone(),
                        kind,
                        config: config.clone(),
                    },
                )
            })
            .collect();
        Ok(Some(Self {
            providers,
            redirect_urls: model.auth.redirect_urls.clone(),
            http,
            store,
            endpoints: tokio::sync::Mutex::new(HashMap::new()),
            jwks: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// Names of the configured providers.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    fn provider(&self, name: &str) -> Result<&Provider, OAuthError> {
        self.providers
            .get(name)
            .ok_or_else(|| OAuthError::UnknownProvider(name.to_string()))
    }

    /// The callback URL configured for a provider, if any (else the caller derives it).
    pub fn configured_redirect_url(&self, name: &str) -> Option<&str> {
        self.providers
            .get(name)
            .and_then(|p| p.config.redirect_url.as_deref())
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Json, OAuthError> {
        let mut req = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let res = req
            .send()
            .await
            .map_err(|e| OAuthError::Unreachable(format!("cannot reach `{url}`: {e}")))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(OAuthError::Unreachable(format!(
                "`{url}` answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(denied(format!("the provider answered {status} at `{url}`")));
        }
        res.json()
            .await
            .map_err(|e| OAuthError::Unreachable(format!("`{url}` sent no JSON: {e}")))
    }

    async fn endpoints(&self, p: &Provider) -> Result<Arc<Endpoints>, OAuthError> {
        if let Some((e, at)) = self.endpoints.lock().await.get(&p.name)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(e.clone());
        }
        let c = &p.config;
        let explicit = c.authorize_url.is_some() && c.token_url.is_some() && c.jwks_url.is_some();
        let mut e = match p.kind {
            Kind::GitHub => Endpoints {
                authorize: "https://github.com/login/oauth/authorize".into(),
                token: "https://github.com/login/oauth/access_token".into(),
                userinfo: Some("https://api.github.com/user".into()),
                emails: Some("https://api.github.com/user/emails".into()),
                jwks: None,
                issuers: Vec::new(),
                algorithms: Vec::new(),
                basic_auth: false,
            },
            Kind::Google if c.issuer.is_none() || explicit => Endpoints {
                authorize: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
                userinfo: Some("https://openidconnect.googleapis.com/v1/userinfo".into()),
                emails: None,
                jwks: Some("https://www.googleapis.com/oauth2/v3/certs".into()),
                issuers: match &c.issuer {
                    Some(i) => vec![i.clone()],
                    None => GOOGLE_ISSUERS.map(String::from).to_vec(),
                },
                algorithms: vec![Algorithm::RS256],
                basic_auth: false,
            },
            _ => {
                let issuer = c.issuer.clone().unwrap_or_default();
                self.discover(&issuer).await?
            }
        };
        if let Some(u) = &c.authorize_url {
            e.authorize = u.clone();
        }
        if let Some(u) = &c.token_url {
            e.token = u.clone();
        }
        if let Some(u) = &c.userinfo_url {
            e.userinfo = Some(u.clone());
        }
        if let Some(u) = &c.emails_url {
            e.emails = Some(u.clone());
        }
        if let Some(u) = &c.jwks_url {
            e.jwks = Some(u.clone());
        }
        let e = Arc::new(e);
        self.endpoints
            .lock()
            .await
            .insert(p.name.clone(), (e.clone(), Instant::now()));
        Ok(e)
    }

    /// OpenID Connect Discovery 1.0: `/.well-known/openid-configuration`.
    async fn discover(&self, issuer: &str) -> Result<Endpoints, OAuthError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url, None).await.map_err(|e| match e {
            OAuthError::Denied(m) => OAuthError::Unreachable(m),
            other => other,
        })?;
        let s = |k: &str| doc.get(k).and_then(Json::as_str).map(str::to_string);
        // Discovery §4.3: the document must name the issuer we asked.
        if s("issuer").as_deref() != Some(issuer) {
            return Err(OAuthError::Unreachable(format!(
                "the discovery document of `{issuer}` names issuer {:?}",
                s("issuer")
            )));
        }
        let (Some(authorize), Some(token), Some(jwks)) = (
            s("authorization_endpoint"),
            s("token_endpoint"),
            s("jwks_uri"),
        ) else {
            return Err(OAuthError::Unreachable(format!(
                "the discovery document of `{issuer}` lacks an endpoint"
            )));
        };
        let list = |k: &str| -> Vec<String> {
            doc.get(k)
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut algorithms: Vec<Algorithm> = list("id_token_signing_alg_values_supported")
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .filter(|a| ASYMMETRIC.contains(a))
            .collect();
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let methods = list("token_endpoint_auth_methods_supported");
        Ok(Endpoints {
            authorize,
            token,
            userinfo: s("userinfo_endpoint"),
            emails: None,
            jwks: Some(jwks),
            issuers: vec![issuer.to_string()],
            algorithms,
            basic_auth: methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic"),
        })
    }

    async fn key_set(
        &self,
        p: &Provider,
        url: &str,
        fresh: bool,
    ) -> Result<Arc<JwkSet>, OAuthError> {
        if let Some((k, at)) = self.jwks.lock().await.get(&p.name) {
            let age = at.elapsed();
            if age < CACHE_TTL && !(fresh && age >= JWKS_REFETCH) {
                return Ok(k.clone());
            }
        }
        let doc = self.get_json(url, None).await?;
        let set: JwkSet = serde_json::from_value(doc)
            .map_err(|e| OAuthError::Unreachable(format!("`{url}` is not a JWK set: {e}")))?;
        let set = Arc::new(set);
        self.jwks
            .lock()
            .await
            .insert(p.name.clone(), (set.clone(), Instant::now()));
        Ok(set)
    }

    /// Start a login: remember its state and return where to send the browser.
    /// `callback_url` is this server's callback for the provider; `binding` the
    /// browser's binding cookie, if it already has one.
    pub async fn start(
        &self,
        provider: &str,
        redirect_to: Option<&str>,
        callback_url: &str,
        binding: Option<&str>,
    ) -> Result<Started, OAuthError> {
        let p = self.provider(provider)?;
        if let Some(to) = redirect_to
            && !redirect_allowed(&self.redirect_urls, to)
        {
            return Err(OAuthError::BadRequest {
                param: "redirect_to",
                message: "not one of the URLs allowed by `[auth] redirect_urls`".into(),
            });
        }
        let e = self.endpoints(p).await?;
        let state = random_token()?;
        let verifier = random_token()?;
        let nonce = random_token()?;
        let binding = match binding {
            Some(b)
                if b.len() == 43
                    && b.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                b.to_string()
            }
            _ => random_token()?,
        };
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let d = self.store.dialect();
        let mut tx = self.store.begin().await?;
        tx.execute(&Stmt::new(
            format!(
                "DELETE FROM _keel_oauth_states WHERE expires_at < {}",
                ph(d, 1)
            ),
            vec![time_text(0).into()],
        ))
        .await?;
        tx.execute(&Stmt::new(
            format!(
                "INSERT INTO _keel_oauth_states (state_hash, provider, code_verifier, nonce, redirect_uri, redirect_to, binding_hash, created_at, expires_at) VALUES ({})",
                (1..=9).map(|n| ph(d, n)).collect::<Vec<_>>().join(", ")
            ),
            vec![
                sha256_hex(&state).into(),
                p.name.clone().into(),
                verifier.into(),
                nonce.clone().into(),
                callback_url.to_string().into(),
                redirect_to.map(str::to_string).into(),
                sha256_hex(&binding).into(),
                time_text(0).into(),
                time_text(STATE_TTL_SECS).into(),
            ],
        ))
        .await?;
        tx.commit().await?;

        let mut url = Url::parse(&e.authorize).map_err(|err| {
            OAuthError::Internal(format!(
                "bad authorization endpoint `{}`: {err}",
                e.authorize
            ))
        })?;
        let scopes = match (&p.config.scopes, p.kind) {
            (Some(s), _) => s.join(" "),
            (None, Kind::GitHub) => "read:user user:email".into(),
            (None, _) => "openid email profile".into(),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.config.client_id)
                .append_pair("redirect_uri", callback_url)
                .append_pair("scope", &scopes)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if p.kind != Kind::GitHub {
                q.append_pair("nonce", &nonce);
            }
        }
        Ok(Started {
            location: url.into(),
            binding,
        })
    }

    /// Finish a login: check and consume the state, exchange the code, verify the
    /// identity and return its verified email.
    pub async fn callback(
        &self,
        provider: &str,
        params: &CallbackParams,
        binding: Option<&str>,
    ) -> Result<Completed, OAuthError> {
        let p = self.provider(provider)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .ok_or_else(|| denied("the callback has no `state`; start the login again"))?;
        let row = self.consume_state(&sha256_hex(state)).await?;
        let Some(row) = row.filter(|r| r.provider == p.name) else {
            return Err(denied(
                "the login state is unknown, already used or expired; start the login again",
            ));
        };
        if binding.map(sha256_hex).as_deref() != Some(row.binding_hash.as_str()) {
            return Err(denied(
                "this login was started in another browser (the `keel_oauth` cookie does not match)",
            ));
        }
        if let Some(err) = &params.error {
            let desc = params.error_description.as_deref().unwrap_or_default();
            return Err(denied(format!(
                "the provider refused the login: {}{}{}",
                clip(err),
                if desc.is_empty() { "" } else { ": " },
                clip(desc)
            )));
        }
        let e = self.endpoints(p).await?;
        if let Some(iss) = &params.iss
            && !e.issuers.is_empty()
            && !e.issuers.contains(iss)
        {
            return Err(denied(
                "the authorization response comes from another issuer",
            ));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| OAuthError::BadRequest {
                param: "code",
                message: "is required".into(),
            })?;
        let tokens = self.exchange(p, &e, code, &row).await?;
        let identity = match p.kind {
            Kind::GitHub => self.github_identity(p, &e, &tokens).await?,
            Kind::Oidc | Kind::Google => self.oidc_identity(p, &e, &tokens, &row.nonce).await?,
        };
        Ok(Completed {
            identity,
            redirect_to: row.redirect_to,
        })
    }

    async fn consume_state(&self, hash: &str) -> Result<Option<StateRow>, OAuthError> {
        let d = self.store.dialect();
        let mut tx = self.store.begin().await?;
        let rows = tx
            .query(
                &Stmt::new(
                    format!(
                        "SELECT provider, code_verifier, nonce, redirect_uri, redirect_to, binding_hash, expires_at FROM _keel_oauth_states WHERE state_hash = {}",
                        ph(d, 1)
                    ),
                    vec![hash.to_string().into()],
                ),
                &[Storage::Text; 7],
            )
            .await?;
        let deleted = tx
            .execute(&Stmt::new(
                format!(
                    "DELETE FROM _keel_oauth_states WHERE state_hash = {}",
                    ph(d, 1)
                ),
                vec![hash.to_string().into()],
            ))
            .await?;
        tx.commit().await?;
        // A concurrent callback with the same state deletes nothing: single use.
        if deleted != 1 {
            return Ok(None);
        }
        let Some(r) = rows.into_iter().next() else {
            return Ok(None);
        };
        let text = |i: usize| r.get(i).and_then(|v| v.as_str()).map(str::to_string);
        let (
            Some(provider),
            Some(verifier),
            Some(nonce),
            Some(redirect_uri),
            Some(binding_hash),
            Some(expires),
        ) = (text(0), text(1), text(2), text(3), text(5), text(6))
        else {
            return Ok(None);
        };
        if expires < time_text(0) {
            return Ok(None);
        }
        Ok(Some(StateRow {
            provider,
            verifier,
            nonce,
            redirect_uri,
            redirect_to: text(4),
            binding_hash,
        }))
    }

    async fn exchange(
        &self,
        p: &Provider,
        e: &Endpoints,
        code: &str,
        row: &StateRow,
    ) -> Result<TokenResponse, OAuthError> {
        let c = &p.config;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &row.redirect_uri),
            ("code_verifier", &row.verifier),
        ];
        let mut req = self
            .http
            .post(&e.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if e.basic_auth {
            // RFC 6749 §2.3.1: form-encode both before Basic.
            let enc = |s: &str| {
                Url::parse("http://x/")
                    .map(|mut u| {
                        u.query_pairs_mut().append_pair("v", s);
                        u.query().unwrap_or_default()[2..].to_string()
                    })
                    .unwrap_or_default()
            };
            req = req.basic_auth(enc(&c.client_id), Some(enc(&c.client_secret)));
        } else {
            form.push(("client_id", &c.client_id));
            form.push(("client_secret", &c.client_secret));
        }
        let res = req.form(&form).send().await.map_err(|err| {
            OAuthError::Unreachable(format!("cannot reach the token endpoint: {err}"))
        })?;
        let status = res.status();
        if status.is_server_error() {
            return Err(OAuthError::Unreachable(format!(
                "the token endpoint answered {status}"
            )));
        }
        let body: Json = res.json().await.unwrap_or(Json::Null);
        // GitHub answers errors with 200 and an `error` member.
        if let Some(err) = body.get("error").and_then(Json::as_str) {
            let desc = body
                .get("error_description")
                .and_then(Json::as_str)
                .unwrap_or_default();
            return Err(denied(format!(
                "the provider refused the code: {}{}{}",
                clip(err),
                if desc.is_empty() { "" } else { ": " },
                clip(desc)
            )));
        }
        if !status.is_success() {
            return Err(denied(format!("the token endpoint answered {status}")));
        }
        serde_json::from_value(body)
            .map_err(|_| denied("the token endpoint's answer has no access token"))
    }

    async fn oidc_identity(
        &self,
        p: &Provider,
        e: &Endpoints,
        tokens: &TokenResponse,
        nonce: &str,
    ) -> Result<ExternalIdentity, OAuthError> {
        let id_token = tokens.id_token.as_deref().ok_or_else(|| {
            denied("the provider sent no ID token (is `openid` among the scopes?)")
        })?;
        let jwks_url = e
            .jwks
            .as_deref()
            .ok_or_else(|| OAuthError::Internal(format!("`{}` has no jwks_url", p.name)))?;
        let expect = Expect {
            issuers: &e.issuers,
            client_id: &p.config.client_id,
            nonce,
            algorithms: &e.algorithms,
        };
        let keys = self.key_set(p, jwks_url, false).await?;
        let claims = match oauth_idtoken::verify(id_token, &keys, &expect) {
            Err(oauth_idtoken::IdTokenError::UnknownKey) => {
                // The provider may have rotated its keys.
                let keys = self.key_set(p, jwks_url, true).await?;
                oauth_idtoken::verify(id_token, &keys, &expect)
            }
            other => other,
        }
        .map_err(|err| denied(err.to_string()))?;
        let (email, verified, name) = match &claims.email {
            Some(email) => (
                email.clone(),
                oauth_idtoken::is_verified(claims.email_verified.as_ref()),
                claims.name.clone(),
            ),
            None => {
                // Many providers put the email in userinfo only.
                let url = e.userinfo.as_deref().ok_or_else(|| {
                    denied("the ID token has no email and the provider has no userinfo endpoint")
                })?;
                let info = self.get_json(url, Some(&tokens.access_token)).await?;
                if info.get("sub").and_then(Json::as_str) != Some(claims.sub.as_str()) {
                    return Err(denied(
                        "userinfo describes another subject than the ID token",
                    ));
                }
                let email = info.get("email").and_then(Json::as_str).ok_or_else(|| {
                    denied("the provider gave no email (ask for the `email` scope)")
                })?;
                (
                    email.to_string(),
                    oauth_idtoken::is_verified(info.get("email_verified")),
                    info.get("name")
                        .and_then(Json::as_str)
                        .map(str::to_string)
                        .or(claims.name.clone()),
                )
            }
        };
        if !verified {
            return Err(denied(
                "the provider has not verified this account's email; verify it there first",
            ));
        }
        Ok(ExternalIdentity {
            provider: p.name.clone(),
            subject: claims.sub,
            email,
            name,
        })
    }

    async fn github_identity(
        &self,
        p: &Provider,
        e: &Endpoints,
        tokens: &TokenResponse,
    ) -> Result<ExternalIdentity, OAuthError> {
        let user_url = e
            .userinfo
            .as_deref()
            .unwrap_or("https://api.github.com/user");
        let emails_url = e
            .emails
            .as_deref()
            .unwrap_or("https://api.github.com/user/emails");
        let user = self.get_json(user_url, Some(&tokens.access_token)).await?;
        let emails = self
            .get_json(emails_url, Some(&tokens.access_token))
            .await?;
        let subject = match user.get("id") {
            Some(Json::Number(n)) => n.to_string(),
            Some(Json::String(s)) => s.clone(),
            _ => return Err(denied("GitHub's /user answer has no id")),
        };
        let primary = emails
            .as_array()
            .and_then(|list| {
                list.iter()
                    .find(|m| m.get("primary").and_then(Json::as_bool) == Some(true))
            })
            .ok_or_else(|| denied("the GitHub account has no primary email"))?;
        if primary.get("verified").and_then(Json::as_bool) != Some(true) {
            return Err(denied(
                "the GitHub account's primary email is not verified; verify it on GitHub first",
            ));
        }
        let email = primary
            .get("email")
            .and_then(Json::as_str)
            .ok_or_else(|| denied("the GitHub account has no primary email"))?;
        let name = user
            .get("name")
            .and_then(Json::as_str)
            .or_else(|| user.get("login").and_then(Json::as_str))
            .map(str::to_string);
        Ok(ExternalIdentity {
            provider: p.name.clone(),
            subject,
            email: email.to_string(),
            name,
        })
    }
}

struct StateRow {
    provider: String,
    verifier: String,
    nonce: String,
    redirect_uri: String,
    redirect_to: Option<String>,
    binding_hash: String,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
}

/// Provider-supplied text, bounded and printable, for error details.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
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
