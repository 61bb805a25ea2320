//! Which quotas apply to a request, named by what it does (an operation on a
//! collection, an identity action) rather than by a URL, so REST, GraphQL and
//! realtime count against the same limits. `"POST /v1/posts" = "10/min"` in
//! keel.toml is read as a spelling of (posts, create).

use super::{Decision, LimitStore, Quota};
use keel_spec::Model;
use std::sync::Arc;
use std::time::Duration;

/// The operations a quota can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    List,
    Get,
    Create,
    Update,
    Delete,
}

/// The identity actions a quota can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    Signup,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    Me,
    OAuthStart,
    OAuthCallback,
}

impl AuthAction {
    /// The REST spelling of each action, as keel.toml writes it.
    const ROUTES: [(AuthAction, &'static str, &'static str); 8] = [
        (AuthAction::Signup, "POST", "auth/signup"),
        (AuthAction::Login, "POST", "auth/login"),
        (AuthAction::Refresh, "POST", "auth/refresh"),
        (AuthAction::Logout, "POST", "auth/logout"),
        (AuthAction::LogoutAll, "POST", "auth/logout-all"),
        (AuthAction::Me, "GET", "auth/me"),
        (AuthAction::OAuthStart, "GET", "auth/oauth/{provider}"),
        (
            AuthAction::OAuthCallback,
            "GET",
            "auth/oauth/{provider}/callback",
        ),
    ];
}

/// What a request asks to do, as every surface names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitTarget {
    Operation {
        collection: String,
        op: OpKind,
    },
    Auth(AuthAction),
    /// Another route of one surface (e.g. `GET /v1/openapi.json`): only quotas
    /// spelled as that route apply.
    Route {
        method: String,
        path: String,
    },
}

impl LimitTarget {
    /// The target of a REST request, from its method and path (`/v1/...`).
    pub fn from_rest(method: &str, path: &str) -> LimitTarget {
        // At most a few segments matter; no allocation on the request path.
        let mut parts = path.trim_matches('/').split('/');
        let mut buf = [""; 6];
        let mut n = 0;
        for part in parts.by_ref() {
            if n == buf.len() {
                n += 1;
                break;
            }
            buf[n] = part;
            n += 1;
        }
        let segments: &[&str] = if n > buf.len() { &[] } else { &buf[..n] };
        if segments.len() > 1
            && segments[0] == "v1"
            && segments[1] == "auth"
            && let Some(action) = AuthAction::ROUTES.iter().find_map(|(a, m, p)| {
                (*m == method && pattern_matches(p, &segments[1..])).then_some(*a)
            })
        {
            return LimitTarget::Auth(action);
        }
        let op = match (method, segments) {
            ("GET", ["v1", c]) => Some((c, OpKind::List)),
            ("POST", ["v1", c]) => Some((c, OpKind::Create)),
            ("GET", ["v1", c, _]) => Some((c, OpKind::Get)),
            ("PATCH", ["v1", c, _]) => Some((c, OpKind::Update)),
            ("DELETE", ["v1", c, _]) => Some((c, OpKind::Delete)),
            _ => None,
        };
        match op {
            Some((c, op)) if !matches!(*c, "auth" | "admin" | "openapi.json") => {
                LimitTarget::Operation {
                    collection: (*c).to_string(),
                    op,
                }
            }
            _ => LimitTarget::Route {
                method: method.to_string(),
                path: path.to_string(),
            },
        }
    }
}

fn pattern_matches(pattern: &str, segments: &[&str]) -> bool {
    pattern.split('/').count() == segments.len()
        && pattern
            .split('/')
            .zip(segments)
            .all(|(p, s)| p == *s || (p.starts_with('{') && p.ends_with('}')))
}

/// Quotas for identity actions when keel.toml does not name them.
pub const AUTH_DEFAULTS: &[(AuthAction, u32, u64)] = &[
    (AuthAction::Login, 10, 60),
    (AuthAction::Signup, 20, 3600),
    (AuthAction::Refresh, 60, 60),
    // Each start writes a row; both ends of an OAuth login are cheap to abuse.
    (AuthAction::OAuthStart, 30, 60),
    (AuthAction::OAuthCallback, 30, 60),
];

/// Failed or not, this many login attempts per account per 15 minutes.
pub const LOGIN_PER_ACCOUNT: (u32, u64) = (10, 900);

/// The limits of one deployment, by what they apply to.
#[derive(Debug, Clone, Default)]
pub struct LimitPolicy {
    pub anonymous: Option<Quota>,
    pub authenticated: Option<Quota>,
    pub targeted: Vec<(Scope, Quota)>,
}

/// What one targeted quota applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Operation {
        collection: String,
        op: OpKind,
    },
    Auth(AuthAction),
    /// A route pattern of another kind: `(method, segments)`, `{x}` matching any.
    Route {
        method: String,
        segments: Vec<String>,
    },
}

fn quota(name: &str, requests: u32, secs: u64) -> Quota {
    Quota {
        name: name.to_string(),
        requests,
        period: Duration::from_secs(secs.max(1)),
    }
}

/// The policy name of a REST spelling, as `RateLimit-Policy` shows it
/// (`POST /v1/posts` → `post_v1_posts`).
fn policy_name(route: &str) -> String {
    route
        .replace([' ', '/'], "_")
        .to_lowercase()
        .trim_matches('_')
        .replace("__", "_")
}

impl LimitPolicy {
    pub fn from_model(model: &Model) -> Self {
        let mut policy = LimitPolicy::default();
        for l in &model.limits {
            match l.key.as_str() {
                "anonymous" => policy.anonymous = Some(quota("anonymous", l.requests, l.per_secs)),
                "authenticated" => {
                    policy.authenticated = Some(quota("authenticated", l.requests, l.per_secs))
                }
                route => {
                    let Some(scope) = Scope::parse(route) else {
                        continue;
                    };
                    policy
                        .targeted
                        .push((scope, quota(&policy_name(route), l.requests, l.per_secs)));
                }
            }
        }
        for (action, requests, secs) in AUTH_DEFAULTS {
            let scope = Scope::Auth(*action);
            if !policy.targeted.iter().any(|(s, _)| *s == scope) {
                let (_, m, p) = AuthAction::ROUTES
                    .iter()
                    .find(|(a, _, _)| a == action)
                    .copied()
                    .unwrap_or((*action, "POST", "auth"));
                let name = policy_name(&format!("{m} /v1/{p}"));
                policy
                    .targeted
                    .push((scope, quota(&name, *requests, *secs)));
            }
        }
        policy
    }

    /// The quotas that apply to a target: the caller's global one, then targeted ones.
    pub fn quotas<'a>(
        &'a self,
        target: &'a LimitTarget,
        signed_in: bool,
    ) -> impl Iterator<Item = &'a Quota> + 'a {
        let global = if signed_in {
            self.authenticated.as_ref()
        } else {
            self.anonymous.as_ref()
        };
        global.into_iter().chain(
            self.targeted
                .iter()
                .filter(move |(scope, _)| scope.applies_to(target))
                .map(|(_, q)| q),
        )
    }
}

impl Scope {
    /// Read a keel.toml spelling: `POST /v1/posts`, `GET /v1/posts/{id}`,
    /// `POST /v1/auth/login`, or any other `METHOD /path`.
    pub fn parse(spelling: &str) -> Option<Scope> {
        let (method, path) = spelling.split_once(' ')?;
        let method = method.trim().to_ascii_uppercase();
        let path = path.trim();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        // A `{placeholder}` in the id position stands for any id.
        let concrete = path.replace("{id}", "_");
        Some(match LimitTarget::from_rest(&method, &concrete) {
            LimitTarget::Operation { collection, op } => Scope::Operation { collection, op },
            LimitTarget::Auth(a) => Scope::Auth(a),
            LimitTarget::Route { .. } => Scope::Route {
                method,
                segments: path
                    .trim_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect(),
            },
        })
    }

    fn applies_to(&self, target: &LimitTarget) -> bool {
        match (self, target) {
            (
                Scope::Operation { collection, op },
                LimitTarget::Operation {
                    collection: c,
                    op: o,
                },
            ) => collection == c && op == o,
            (Scope::Auth(a), LimitTarget::Auth(b)) => a == b,
            (Scope::Route { method, segments }, LimitTarget::Route { method: m, path }) => {
                let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
                method == m
                    && segments.len() == segs.len()
                    && segments
                        .iter()
                        .zip(&segs)
                        .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}')))
            }
            _ => false,
        }
    }
}

/// The answer to a rate-limit check.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Allowed; the tightest quota that applied and its state, for `RateLimit`.
    Allowed(Option<(Quota, Decision)>),
    /// Refused by this quota.
    Refused(Quota, Decision),
}

/// The policy and the store it counts in: what every surface calls.
pub struct RateLimits {
    pub policy: LimitPolicy,
    store: Arc<dyn LimitStore>,
}

impl RateLimits {
    pub fn new(policy: LimitPolicy, store: Arc<dyn LimitStore>) -> Self {
        Self { policy, store }
    }

    /// Count one request by a caller (a user id, or else a client address) to a
    /// target against every quota that applies; refuse on the first exhausted one.
    pub async fn check(
        &self,
        user: Option<uuid::Uuid>,
        client_ip: &str,
        target: &LimitTarget,
    ) -> Verdict {
        let who = match user {
            Some(id) => format!("user:{id}"),
            None => format!("ip:{client_ip}"),
        };
        let mut tightest: Option<(Quota, Decision)> = None;
        for q in self.policy.quotas(target, user.is_some()) {
            let key = format!("{}|{who}", q.name);
            let d = self.store.check(q, &key).await;
            if !d.allowed {
                return Verdict::Refused(q.clone(), d);
            }
            if tightest
                .as_ref()
                .is_none_or(|(_, t)| d.remaining < t.remaining)
            {
                tightest = Some((q.clone(), d));
            }
        }
        Verdict::Allowed(tightest)
    }

    /// Count a login attempt for an account, whatever its outcome.
    pub async fn login_attempt(&self, email: &str) -> Verdict {
        let q = quota(
            "login_per_account",
            LOGIN_PER_ACCOUNT.0,
            LOGIN_PER_ACCOUNT.1,
        );
        let key = format!("login|{}", email.trim().to_lowercase());
        let d = self.store.check(&q, &key).await;
        if d.allowed {
            Verdict::Allowed(Some((q, d)))
        } else {
            Verdict::Refused(q, d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_spellings_name_operations_and_actions() {
        assert_eq!(
            Scope::parse("POST /v1/posts"),
            Some(Scope::Operation {
                collection: "posts".into(),
                op: OpKind::Create
            })
        );
        assert_eq!(
            Scope::parse("PATCH /v1/posts/{id}"),
            Some(Scope::Operation {
                collection: "posts".into(),
                op: OpKind::Update
            })
        );
        assert_eq!(
            Scope::parse("POST /v1/auth/login"),
            Some(Scope::Auth(AuthAction::Login))
        );
        assert_eq!(
            Scope::parse("GET /v1/auth/oauth/{provider}/callback"),
            Some(Scope::Auth(AuthAction::OAuthCallback))
        );
        assert!(matches!(
            Scope::parse("GET /v1/openapi.json"),
            Some(Scope::Route { .. })
        ));
        assert_eq!(
            LimitTarget::from_rest("GET", "/v1/auth/oauth/github"),
            LimitTarget::Auth(AuthAction::OAuthStart)
        );
        assert_eq!(
            LimitTarget::from_rest("DELETE", "/v1/posts/0190"),
            LimitTarget::Operation {
                collection: "posts".into(),
                op: OpKind::Delete
            }
        );
    }

    #[test]
    fn names_match_the_rest_spelling() {
        assert_eq!(policy_name("POST /v1/posts"), "post_v1_posts");
        assert_eq!(policy_name("POST /v1/auth/login"), "post_v1_auth_login");
    }
}
