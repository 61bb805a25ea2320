//! Identity: sign-up and login with passwords, Ed25519 access tokens with a JWKS,
//! rotating refresh tokens with reuse detection, roles with inheritance, and the
//! principal a bearer token stands for. Users are records of the built-in `users`
//! collection, written through the operation core like any other.
//!
//! - `password`: argon2id hashing and constant-time-ish verification;
//! - `jwt`: signing and verifying access tokens (algorithm pinned to EdDSA);
//! - `keys`: the key ring in the database (newest signs, all verify);
//! - `refresh`: refresh-token families in the database.

pub mod jwt;
pub mod keys;
pub mod oauth;
pub mod oauth_idtoken;
pub mod password;
pub mod refresh;
pub mod verified;

use keel_core::{CoreError, Engine, FieldError, Principal};
use keel_spec::{Model, Storage};
use keel_store::{Stmt, StoreError};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;
use std::sync::Arc;

pub use jwt::{Claims, TokenError};
pub use keys::KeyRing;

/// The role every deployment has: may grant roles and administer users.
pub const ADMIN_ROLE: &str = "admin";

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("an account with this email signs in with a password")]
    AccountExists,
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("password sign-in is disabled")]
    PasswordDisabled,
    #[error("the request body is invalid")]
    Validation(Vec<FieldError>),
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Tokens handed to a client after sign-up, login or refresh (OAuth 2.0 names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Session {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: Json,
}

/// Password sign-in settings.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
}

impl PasswordPolicy {
    /// The policy keel.toml asks for (`[auth] password_min_length`).
    pub fn from_model(model: &Model) -> Self {
        Self {
            min_length: model.auth.password_min_length.max(8),
            ..Self::default()
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        // OWASP ASVS 2.1: at least 8 (12 recommended), allow at least 64; argon2
        // takes any length, the cap only bounds work per request.
        Self {
            min_length: 8,
            max_length: 256,
        }
    }
}

/// Sign-up, login, tokens and roles over one engine.
pub struct AuthService {
    engine: Arc<Engine>,
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
    access_ttl: u64,
    refresh_ttl: u64,
    policy: PasswordPolicy,
    /// Access tokens verified before: one signature check per token, not per request.
    verified: verified::VerifiedTokens,
}

impl AuthService {
    /// Load (or create) the signing keys and set up the service.
    pub async fn new(engine: Arc<Engine>, policy: PasswordPolicy) -> Result<Self, StoreError> {
        let keys = Arc::new(KeyRing::load(engine.store().clone()).await?);
        let model = engine.model();
        let name = format!("keel:{}", model.app.name);
        Ok(Self {
            issuer: name.clone(),
            audience: name,
            access_ttl: model.auth.access_ttl_secs,
            refresh_ttl: model.auth.refresh_ttl_secs,
            policy,
            keys,
            engine,
            verified: Default::default(),
        })
    }

    pub fn model(&self) -> &Model {
        self.engine.model()
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The JSON Web Key Set (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Json {
        self.keys.jwks()
    }

    /// The principal a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, TokenError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(known) = self.verified.get(token, now) {
            return known;
        }
        let verify = |keys: &KeyRing| {
            jwt::verify(
                token,
                &|kid| keys.verifying(kid),
                &self.issuer,
                &self.audience,
                now,
            )
        };
        let claims = match verify(&self.keys) {
            // Another node may have rotated: look again, at most every few seconds.
            Err(TokenError::UnknownKey) if self.keys.may_reload() => {
                let _ = self.keys.reload().await;
                verify(&self.keys)?
            }
            other => other?,
        };
        let id = uuid::Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Malformed)?;
        let principal = Principal {
            id: Some(id),
            email: claims.email,
            roles: expand_roles(self.model(), &claims.roles),
            system: false,
        };
        self.verified
            .insert(token, &principal, claims.nbf, claims.exp);
        Ok(principal)
    }

    fn check_password(&self, password: &str) -> Result<(), AuthError> {
        let n = password.chars().count();
        if n < self.policy.min_length {
            return Err(AuthError::Validation(vec![FieldError::new(
                "password",
                "too_short",
                format!("must be at least {} characters", self.policy.min_length),
            )]));
        }
        if n > self.policy.max_length {
            return Err(AuthError::Validation(vec![FieldError::new(
                "password",
                "too_long",
                format!("must be at most {} characters", self.policy.max_length),
            )]));
        }
        Ok(())
    }

    /// Create an account with a password and sign it in.
    pub async fn signup(&self, body: &Json) -> Result<Session, AuthError> {
        if !self.model().auth.password {
            return Err(AuthError::PasswordDisabled);
        }
        let Some(obj) = body.as_object() else {
            return Err(AuthError::Validation(vec![FieldError::new(
                "",
                "type",
                "the body must be a JSON object",
            )]));
        };
        let mut fields = obj.clone();
        let password = match fields.remove("password") {
            Some(Json::String(p)) => p,
            Some(_) => {
                return Err(AuthError::Validation(vec![FieldError::new(
                    "password",
                    "type",
                    "must be a string",
                )]));
            }
            None => {
                return Err(AuthError::Validation(vec![FieldError::new(
                    "password",
                    "required",
                    "is required",
                )]));
            }
        };
        self.check_password(&password)?;
        let hash = password::hash(password)
            .await
            .map_err(AuthError::Internal)?;
        let mut server = Map::new();
        server.insert("password_hash".into(), Json::String(hash));
        server.insert("roles".into(), json!([]));
        let created = self
            .engine
            .create_with(
                &Principal::system(),
                "users",
                &Json::Object(fields),
                None,
                &server,
            )
            .await?;
        tracing::info!(target: "audit", event = "signup", user_id = %created.id);
        self.session(&created.id, Vec::new()).await
    }

    /// Check an email and password; the same answer for an unknown email and a wrong
    /// password, after the same amount of work.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, AuthError> {
        if !self.model().auth.password {
            return Err(AuthError::PasswordDisabled);
        }
        let email = email.trim().to_lowercase();
        let row = self.find_user_by_email(&email).await?;
        let (id, hash, roles) = match row {
            Some((id, hash, roles)) => (Some(id), hash, roles),
            None => (None, None, Vec::new()),
        };
        let ok = password::verify(password.to_string(), hash).await;
        let known = id.is_some();
        match (ok, id) {
            (true, Some(id)) => {
                tracing::info!(target: "audit", event = "login_succeeded", user_id = %id);
                self.session(&id, roles).await
            }
            _ => {
                tracing::warn!(target: "audit", event = "login_failed", known_account = known);
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    async fn find_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(String, Option<String>, Vec<String>)>, AuthError> {
        let d = self.engine.store().dialect();
        let q = sea_query::Query::select()
            .columns(["id", "password_hash", "roles"].map(sea_query::Alias::new))
            .from(sea_query::Alias::new("users"))
            .and_where(sea_query::ExprTrait::eq(
                sea_query::Expr::col(sea_query::Alias::new("email")),
                email,
            ))
            .to_owned();
        let rows = self
            .engine
            .store()
            .query(
                &Stmt::build(&q, d),
                &[Storage::Uuid, Storage::Text, Storage::Json],
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| {
            let id = r[0].as_str().unwrap_or_default().to_string();
            let hash = r[1].as_str().map(str::to_string);
            (id, hash, role_list(&r[2]))
        }))
    }

    /// Sign in someone whose email an OAuth / OpenID Connect provider verified: the
    /// user with that email (linked by email), or a new one created through the
    /// operation core as the system. Returns the session and whether it was created.
    pub async fn sign_in_verified(
        &self,
        provider: &str,
        email: &str,
        name: Option<&str>,
    ) -> Result<(Session, bool), AuthError> {
        let email = email.trim().to_lowercase();
        if let Some((id, password_hash, roles)) = self.find_user_by_email(&email).await? {
            // Password sign-ups do not prove they own their email; linking to one would
            // hand the account of whoever signed up first with a victim's address the
            // victim's provider login. Only accounts made by verified logins link.
            if password_hash.is_some() {
                tracing::warn!(target: "audit", event = "oauth_login_refused", provider = %provider, user_id = %id, reason = "password account with this email");
                return Err(AuthError::AccountExists);
            }
            tracing::info!(target: "audit", event = "oauth_login_succeeded", provider = %provider, user_id = %id, linked = true);
            return Ok((self.session(&id, roles).await?, false));
        }
        let name: Option<String> = name
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|n| !n.trim().is_empty());
        let mut server = Map::new();
        server.insert("roles".into(), json!([]));
        let attempt = |with_name: bool| {
            let mut body = Map::new();
            body.insert("email".into(), Json::String(email.clone()));
            if let (true, Some(n)) = (with_name, &name) {
                body.insert("name".into(), Json::String(n.clone()));
            }
            Json::Object(body)
        };
        let mut created = self
            .engine
            .create_with(&Principal::system(), "users", &attempt(true), None, &server)
            .await;
        if name.is_some() && matches!(created, Err(CoreError::Validation(_))) {
            // The provider's display name may not fit the `users` rules: go without.
            created = self
                .engine
                .create_with(
                    &Principal::system(),
                    "users",
                    &attempt(false),
                    None,
                    &server,
                )
                .await;
        }
        match created {
            Ok(c) => {
                tracing::info!(target: "audit", event = "oauth_login_succeeded", provider = %provider, user_id = %c.id, created = true);
                Ok((self.session(&c.id, Vec::new()).await?, true))
            }
            // Another node created it a moment ago: link to it.
            Err(CoreError::Conflict { .. }) => match self.find_user_by_email(&email).await? {
                Some((id, _, roles)) => {
                    tracing::info!(target: "audit", event = "oauth_login_succeeded", provider = %provider, user_id = %id, linked = true);
                    Ok((self.session(&id, roles).await?, false))
                }
                None => Err(AuthError::Internal("user vanished while signing in".into())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The id of the user with this email, if any.
    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<String>, AuthError> {
        Ok(self
            .find_user_by_email(&email.trim().to_lowercase())
            .await?
            .map(|(id, _, _)| id))
    }

    async fn user(&self, id: &str) -> Result<Json, AuthError> {
        Ok(self
            .engine
            .get(&Principal::system(), "users", id, &Default::default())
            .await?)
    }

    async fn session(&self, user_id: &str, roles: Vec<String>) -> Result<Session, AuthError> {
        let user = self.user(user_id).await?;
        let email = user.get("email").and_then(Json::as_str).map(str::to_string);
        let access_token = self.access_token(user_id, email, roles)?;
        let refresh_token = refresh::issue(self.engine.store(), user_id, self.refresh_ttl).await?;
        Ok(Session {
            access_token,
            token_type: "Bearer",
            expires_in: self.access_ttl,
            refresh_token,
            user,
        })
    }

    fn access_token(
        &self,
        user_id: &str,
        email: Option<String>,
        roles: Vec<String>,
    ) -> Result<String, AuthError> {
        let (kid, key) = self
            .keys
            .current()
            .ok_or_else(|| AuthError::Internal("no signing key".into()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl as i64,
            jti: uuid::Uuid::now_v7().to_string(),
            email,
            roles,
        };
        Ok(jwt::sign(&claims, &kid, &key))
    }

    /// Exchange a refresh token for new tokens (and retire it).
    pub async fn refresh(&self, token: &str) -> Result<Session, AuthError> {
        match refresh::rotate(self.engine.store(), token, self.refresh_ttl).await? {
            refresh::Rotation::Rotated { user_id, token } => {
                // Roles may have changed since the last token: read them again.
                let user = self.user(&user_id).await?;
                let roles = role_list(user.get("roles").unwrap_or(&Json::Null));
                let email = user.get("email").and_then(Json::as_str).map(str::to_string);
                Ok(Session {
                    access_token: self.access_token(&user_id, email, roles)?,
                    token_type: "Bearer",
                    expires_in: self.access_ttl,
                    refresh_token: token,
                    user,
                })
            }
            refresh::Rotation::Reused { user_id } => {
                tracing::warn!(target: "audit", event = "refresh_token_reused", user_id = %user_id, "a rotated refresh token was presented again; its family is revoked");
                Err(AuthError::InvalidRefreshToken)
            }
            refresh::Rotation::Invalid => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// End one session (its refresh-token family).
    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        refresh::revoke(self.engine.store(), token).await?;
        Ok(())
    }

    /// End every session of the principal.
    pub async fn logout_all(&self, principal: &Principal) -> Result<(), AuthError> {
        if let Some(id) = principal.id {
            refresh::revoke_user(self.engine.store(), &id.to_string()).await?;
            tracing::info!(target: "audit", event = "logout_all", user_id = %id);
        }
        Ok(())
    }

    /// The principal's own user record.
    pub async fn me(&self, principal: &Principal) -> Result<Json, AuthError> {
        match principal.id {
            Some(id) => self.user(&id.to_string()).await,
            None => Err(AuthError::InvalidCredentials),
        }
    }

    /// Grant or revoke a role. `actor` must be an admin (checked by the caller's
    /// route); the change is audit-logged.
    pub async fn set_role(
        &self,
        actor: &str,
        user_id: &str,
        role: &str,
        granted: bool,
    ) -> Result<Json, AuthError> {
        if role != ADMIN_ROLE && !self.model().roles.contains_key(role) {
            return Err(AuthError::UnknownRole(role.to_string()));
        }
        let user = self.user(user_id).await?;
        let mut roles: BTreeSet<String> = role_list(user.get("roles").unwrap_or(&Json::Null))
            .into_iter()
            .collect();
        if granted {
            roles.insert(role.to_string());
        } else {
            roles.remove(role);
        }
        let mut server = Map::new();
        server.insert("roles".into(), json!(roles));
        let updated = self
            .engine
            .update_with(
                &Principal::system(),
                "users",
                user_id,
                &json!({}),
                None,
                &server,
            )
            .await?;
        tracing::info!(target: "audit", event = if granted { "role_granted" } else { "role_revoked" }, actor = %actor, user_id = %user_id, role = %role);
        Ok(updated)
    }

    /// Create a user with a password and the admin role (bootstrap, `keel admin create`).
    pub async fn create_admin(&self, email: &str, password: &str) -> Result<Json, AuthError> {
        self.check_password(password)?;
        let hash = password::hash(password.to_string())
            .await
            .map_err(AuthError::Internal)?;
        let mut server = Map::new();
        server.insert("password_hash".into(), Json::String(hash));
        server.insert("roles".into(), json!([ADMIN_ROLE]));
        let created = self
            .engine
            .create_with(
                &Principal::system(),
                "users",
                &json!({"email": email}),
                None,
                &server,
            )
            .await?;
        tracing::info!(target: "audit", event = "admin_created", user_id = %created.id);
        Ok(created.record)
    }
}

fn role_list(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Granted roles plus everything they inherit, from `[roles]`.
pub fn expand_roles(model: &Model, granted: &[String]) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = granted.to_vec();
    while let Some(r) = stack.pop() {
        if out.insert(r.clone())
            && let Some(role) = model.roles.get(&r)
        {
            stack.extend(role.inherits.iter().cloned());
        }
    }
    out.into_iter().collect()
}
