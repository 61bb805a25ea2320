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
//!
//! - `discovery`: each provider's endpoints (defaults, discovery, overrides) and key
//!   sets, cached;
//! - `state`: logins in progress, stored and consumed once;
//! - `identity`: the code exchanged for tokens, and the identity they prove;
//! - `urls`: where a finished login may send the browser, and how tokens get there.

mod discovery;
mod identity;
mod state;
mod urls;

pub use urls::{redirect_allowed, with_fragment};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use discovery::Endpoints;
use jsonwebtoken::jwk::JwkSet;
use keel_spec::{Model, OAuthProvider};
use keel_store::{Store, StoreError};
use reqwest::Url;
use serde::Deserialize;
use sha2::Digest;
use state::{StateRow, random_token, sha256_hex};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a started login may take.
pub const STATE_TTL_SECS: i64 = 600;
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

/// Provider-supplied text, bounded and printable, for error details.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
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
        self.save_state(
            &sha256_hex(&state),
            &StateRow {
                provider: p.name.clone(),
                verifier: verifier.clone(),
                nonce: nonce.clone(),
                redirect_uri: callback_url.to_string(),
                redirect_to: redirect_to.map(str::to_string),
                binding_hash: sha256_hex(&binding),
            },
        )
        .await?;

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
        let identity = self.identify(p, &e, code, &row).await?;
        Ok(Completed {
            identity,
            redirect_to: row.redirect_to,
        })
    }
}
