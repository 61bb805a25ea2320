//! Reading `[app]`, `[server]` and `[auth]` (with its OAuth providers).

use super::Item;
use super::values::Reader;
use crate::model::*;
use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::DeTable;

const OAUTH_KEYS: &[&str] = &[
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
];

/// `[auth]` when the spec says nothing.
pub(super) fn default_auth() -> Auth {
    Auth {
        password: true,
        password_min_length: 8,
        access_ttl_secs: 15 * 60,
        refresh_ttl_secs: 30 * 24 * 3600,
        oauth: BTreeMap::new(),
        redirect_urls: Vec::new(),
    }
}

impl Reader<'_, '_> {
    pub(super) fn read_app(&mut self, item: &Item<'_>) -> App {
        let mut app = App::default();
        let Some(t) = self.table(item, "[app]") else {
            return app;
        };
        let mut has_name = false;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "name" => {
                    if let Some(s) = self.string(v, "app.name") {
                        has_name = true;
                        app.name = s.value;
                    }
                }
                "description" => {
                    app.description = self.string(v, "app.description").map(|s| s.value)
                }
                _ => self.unknown_key(k, "[app]", &["name", "description"]),
            }
        }
        if !has_name {
            self.error(
                item.span().start,
                "[app] needs a `name`",
                Some("name = \"my-app\"".into()),
            );
        }
        app
    }

    pub(super) fn read_server(&mut self, item: &Item<'_>) -> Server {
        let mut server = Server::default();
        let Some(t) = self.table(item, "[server]") else {
            return server;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "addr" => server.addr = self.string(v, "server.addr").map(|s| s.value),
                "database" => server.database = self.string(v, "server.database").map(|s| s.value),
                "secret" => {
                    if let Some(s) = self.string(v, "server.secret") {
                        if s.value.len() < 32 {
                            self.error(
                                s.span.start,
                                "server.secret must be at least 32 characters",
                                Some("generate one with `openssl rand -hex 32`".into()),
                            );
                        }
                        server.secret = Some(s.value);
                    }
                }
                "log_format" => {
                    if let Some(s) = self.string(v, "server.log_format") {
                        server.log_format = match s.value.as_str() {
                            "pretty" => Some(LogFormat::Pretty),
                            "json" => Some(LogFormat::Json),
                            other => {
                                self.error(
                                    s.span.start,
                                    format!("unknown log format `{other}`"),
                                    Some("use \"pretty\" or \"json\"".into()),
                                );
                                None
                            }
                        }
                    }
                }
                "cors_origins" => {
                    for o in self
                        .string_list(v, "server.cors_origins")
                        .unwrap_or_default()
                    {
                        let ok = o.value == "*"
                            || ((o.value.starts_with("http://")
                                || o.value.starts_with("https://"))
                                && !o.value.ends_with('/'));
                        if !ok {
                            self.error(
                                o.span.start,
                                format!("`{}` is not an origin", o.value),
                                Some("write scheme://host[:port] without a path, e.g. \"https://app.example.com\", or \"*\"".into()),
                            );
                        }
                        server.cors_origins.push(o.value);
                    }
                }
                "tls_cert" => server.tls_cert = self.string(v, "server.tls_cert").map(|s| s.value),
                "tls_key" => server.tls_key = self.string(v, "server.tls_key").map(|s| s.value),
                "redis" => {
                    if let Some(s) = self.string(v, "server.redis") {
                        let ok = ["redis://", "unix://", "redis+unix://"]
                            .iter()
                            .any(|p| s.value.starts_with(p));
                        // An empty value (an unset `${KEEL_REDIS_URL}`) means no Redis.
                        if !ok && !s.value.is_empty() {
                            self.error(
                                s.span.start,
                                "server.redis must be a redis:// URL",
                                Some(
                                    "e.g. redis = \"redis://redis:6379\" or \"${KEEL_REDIS_URL}\""
                                        .into(),
                                ),
                            );
                        }
                        server.redis = Some(s.value).filter(|v| !v.is_empty());
                    }
                }
                "trusted_proxies" => {
                    for p in self
                        .string_list(v, "server.trusted_proxies")
                        .unwrap_or_default()
                    {
                        match p.value.parse::<Cidr>() {
                            Ok(c) => server.trusted_proxies.push(c),
                            Err(e) => self.error(
                                p.span.start,
                                e,
                                Some("write an address or a network, e.g. \"10.0.0.0/8\" or \"127.0.0.1\"".into()),
                            ),
                        }
                    }
                }
                "replicas" => {
                    for r in self.string_list(v, "server.replicas").unwrap_or_default() {
                        // `${KEEL_DATABASE_REPLICAS}` may hold several, comma-separated.
                        for url in r.value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                                server.replicas.push(url.to_string());
                            } else {
                                self.error(
                                    r.span.start,
                                    "server.replicas must be postgres:// URLs",
                                    Some("e.g. replicas = [\"postgres://replica1/app\"] or [\"${KEEL_DATABASE_REPLICAS}\"]".into()),
                                );
                            }
                        }
                    }
                }
                _ => self.unknown_key(
                    k,
                    "[server]",
                    &[
                        "addr",
                        "database",
                        "secret",
                        "log_format",
                        "cors_origins",
                        "tls_cert",
                        "tls_key",
                        "redis",
                        "trusted_proxies",
                        "replicas",
                    ],
                ),
            }
        }
        server
    }

    pub(super) fn read_auth(&mut self, item: &Item<'_>) -> Auth {
        let mut auth = default_auth();
        let Some(t) = self.table(item, "[auth]") else {
            return auth;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "password" => auth.password = self.bool(v, "auth.password").unwrap_or(true),
                "password_min_length" => match self.int(v, "auth.password_min_length") {
                    Some(n @ 8..=128) => auth.password_min_length = n as usize,
                    Some(_) => self.error(
                        v.span().start,
                        "auth.password_min_length must be between 8 and 128",
                        Some("OWASP ASVS asks for at least 8 (12 recommended)".into()),
                    ),
                    None => {}
                },
                "access_ttl" => {
                    if let Some(d) = self.duration(v, "auth.access_ttl") {
                        auth.access_ttl_secs = d;
                    }
                }
                "refresh_ttl" => {
                    if let Some(d) = self.duration(v, "auth.refresh_ttl") {
                        auth.refresh_ttl_secs = d;
                    }
                }
                "oauth" => {
                    let Some(providers) = self.table(v, "[auth.oauth]") else {
                        continue;
                    };
                    for (name, p) in providers.iter() {
                        let n = name.get_ref().to_string();
                        if !self.check_name(&n, name.span().start, "OAuth provider") {
                            continue;
                        }
                        let Some(pt) = self.table(p, "an OAuth provider") else {
                            continue;
                        };
                        let provider = self.read_oauth_provider(name, p, pt);
                        auth.oauth.insert(n, provider);
                    }
                }
                "redirect_urls" => {
                    if let Some(list) = self.string_list(v, "auth.redirect_urls") {
                        for u in list {
                            if self.check_url(&u.value, u.span.start, "auth.redirect_urls") {
                                auth.redirect_urls.push(u.value);
                            }
                        }
                    }
                }
                _ => self.unknown_key(
                    k,
                    "[auth]",
                    &[
                        "password",
                        "access_ttl",
                        "refresh_ttl",
                        "oauth",
                        "redirect_urls",
                    ],
                ),
            }
        }
        auth
    }

    /// `[auth.oauth.<name>]`: its keys, then what the provider's kind requires.
    fn read_oauth_provider(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        item: &Item<'_>,
        t: &DeTable<'_>,
    ) -> OAuthProvider {
        let n = name.get_ref().as_ref();
        let mut provider = OAuthProvider {
            span: item.span(),
            ..Default::default()
        };
        for (pk, pv) in t.iter() {
            match pk.get_ref().as_ref() {
                "client_id" => {
                    provider.client_id = self
                        .string(pv, "client_id")
                        .map(|s| s.value)
                        .unwrap_or_default()
                }
                "client_secret" => {
                    provider.client_secret = self
                        .string(pv, "client_secret")
                        .map(|s| s.value)
                        .unwrap_or_default()
                }
                "issuer" => {
                    provider.issuer = self.url(pv, "issuer");
                }
                "authorize_url" => provider.authorize_url = self.url(pv, "authorize_url"),
                "token_url" => provider.token_url = self.url(pv, "token_url"),
                "userinfo_url" => provider.userinfo_url = self.url(pv, "userinfo_url"),
                "emails_url" => provider.emails_url = self.url(pv, "emails_url"),
                "jwks_url" => provider.jwks_url = self.url(pv, "jwks_url"),
                "redirect_url" => provider.redirect_url = self.url(pv, "redirect_url"),
                "scopes" => {
                    provider.scopes = self
                        .string_list(pv, "scopes")
                        .map(|l| l.into_iter().map(|s| s.value).collect())
                }
                _ => self.unknown_key(pk, "an OAuth provider", OAUTH_KEYS),
            }
        }
        for (key, value) in [
            ("client_id", &provider.client_id),
            ("client_secret", &provider.client_secret),
        ] {
            if value.is_empty() {
                self.error(
                    name.span().start,
                    format!("OAuth provider `{n}` needs a `{key}`"),
                    Some(format!(
                        "copy it from the provider's console, as `{key} = \"${{VAR}}\"`"
                    )),
                );
            }
        }
        if n == "github" && provider.issuer.is_some() {
            self.error(
                name.span().start,
                "GitHub is not an OpenID Connect issuer: `issuer` does not apply",
                Some(
                    "point it elsewhere with authorize_url, token_url, userinfo_url and emails_url"
                        .into(),
                ),
            );
        }
        if n != "github" && provider.emails_url.is_some() {
            self.error(
                name.span().start,
                format!("`emails_url` applies only to github, not to `{n}`"),
                None,
            );
        }
        if !matches!(n, "google" | "github") && provider.issuer.is_none() {
            self.error(
                name.span().start,
                format!("OAuth provider `{n}` needs an `issuer`"),
                Some("only google and github are known without one".into()),
            );
        }
        provider
    }
}
