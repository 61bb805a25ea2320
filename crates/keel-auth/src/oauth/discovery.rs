//! Each provider's endpoints: Google's and GitHub's built in, any other issuer's
//! found by OpenID Connect Discovery, then every `[auth.oauth.<name>]` override; and
//! the issuer's key set. Both are cached (an hour; a key set sooner on an unknown key).

use super::{Kind, OAuth, OAuthError, Provider, denied};
use crate::oauth_idtoken::ASYMMETRIC;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long discovery documents and key sets are kept.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// A key set is fetched again for an unknown `kid` at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);

const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// The endpoints in use for one provider: its defaults or discovery, then overrides.
#[derive(Debug, Clone)]
pub(super) struct Endpoints {
    pub(super) authorize: String,
    pub(super) token: String,
    pub(super) userinfo: Option<String>,
    pub(super) emails: Option<String>,
    pub(super) jwks: Option<String>,
    /// Accepted `iss` values (OIDC); empty for GitHub.
    pub(super) issuers: Vec<String>,
    pub(super) algorithms: Vec<Algorithm>,
    /// client_secret_basic (else client_secret_post).
    pub(super) basic_auth: bool,
}

impl OAuth {
    /// GET `url` as JSON, with a bearer token when given. An unreachable host or a
    /// 5xx is `Unreachable`; another refusal is `Denied`.
    pub(super) async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<Json, OAuthError> {
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

    pub(super) async fn endpoints(&self, p: &Provider) -> Result<Arc<Endpoints>, OAuthError> {
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

    pub(super) async fn key_set(
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
}
