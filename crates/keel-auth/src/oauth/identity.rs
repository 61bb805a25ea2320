//! The end of a login: the authorization code exchanged for tokens at the token
//! endpoint, then the identity they prove, with a verified email: from the ID token
//! (OIDC, Google; userinfo when the token has no email) or GitHub's user API.

use super::discovery::Endpoints;
use super::state::StateRow;
use super::{ExternalIdentity, Kind, OAuth, OAuthError, Provider, clip, denied};
use crate::oauth_idtoken::{self, Expect};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
}

impl OAuth {
    /// Exchange the code, then prove whom the tokens belong to.
    pub(super) async fn identify(
        &self,
        p: &Provider,
        e: &Endpoints,
        code: &str,
        row: &StateRow,
    ) -> Result<ExternalIdentity, OAuthError> {
        let tokens = self.exchange(p, e, code, row).await?;
        match p.kind {
            Kind::GitHub => self.github_identity(p, e, &tokens).await,
            Kind::Oidc | Kind::Google => self.oidc_identity(p, e, &tokens, &row.nonce).await,
        }
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
