//! keel.toml → [`Model`], in named stages:
//! 1. **parse**: TOML syntax (the `toml` crate, keeping spans);
//! 2. **read**: the shape of every section, unknown keys, value types, `${VAR}`;
//! 3. **resolve**: names across the spec (refs, indexes, roles, webhooks);
//! 4. **type rules**: access rules are parsed and type-checked against the model.
//!
//! Every stage records errors and carries on, so one run reports them all.

use crate::error::{SourceMap, SpecError, SpecErrors, closest};
use crate::model::*;
use crate::scope::{CollectionScope, ScopeKind};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

type Span = std::ops::Range<usize>;
type Item<'i> = Spanned<DeValue<'i>>;

/// Names no collection may take: they are routes or expression roots.
pub const RESERVED_COLLECTIONS: &[&str] = &[
    "auth", "input", "admin", "docs", "graphql", "realtime", "openapi", "healthz", "readyz",
    "metrics",
];
/// Names no field may take: system fields and expression roots.
pub const SYSTEM_FIELDS: &[&str] = &["id", "created_at", "updated_at", "version"];
const RESERVED_FIELDS: &[&str] = &["auth", "input", "null", "true", "false"];
const MAX_NAME: usize = 63;
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

/// Where environment variables come from (tests pass a map).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Load a spec from source text. `file` is only used in error messages.
pub fn load_str(src: &str, file: &str, env: &dyn Environment) -> Result<Model, SpecErrors> {
    let mut cx = Loader {
        map: SourceMap::new(src),
        src,
        file,
        env,
        errors: Vec::new(),
        pending_refs: Vec::new(),
        pending_rules: Vec::new(),
        pending_sorts: Vec::new(),
    };
    let root = match DeTable::parse(src) {
        Ok(root) => root,
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            cx.error(at, format!("invalid TOML: {}", e.message().trim()), None);
            return Err(SpecErrors(cx.errors));
        }
    };
    let model = cx.read_root(root.get_ref());
    if cx.errors.is_empty() {
        Ok(model)
    } else {
        cx.errors.sort_by_key(|e| e.offset);
        Err(SpecErrors(cx.errors))
    }
}

struct Loader<'s> {
    map: SourceMap<'s>,
    src: &'s str,
    file: &'s str,
    env: &'s dyn Environment,
    errors: Vec<SpecError>,
    /// (collection, field, target, offset) of refs, checked once all collections are read.
    pending_refs: Vec<(String, String, String, usize)>,
    pending_rules: Vec<PendingRule>,
    pending_sorts: Vec<(String, Span)>,
}

/// A value read from the spec with its place.
struct At<T> {
    value: T,
    span: Span,
}

impl<'s> Loader<'s> {
    fn error(&mut self, offset: usize, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.map.line_col(offset);
        self.errors.push(SpecError {
            file: self.file.to_string(),
            line,
            column,
            offset,
            message: message.into(),
            hint,
        });
    }

    fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        section: &str,
        allowed: &[&str],
    ) {
        let name = key.get_ref().as_ref();
        let hint = match closest(name, allowed.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("{section} takes: {}", allowed.join(", ")),
        };
        self.error(
            key.span().start,
            format!("unknown key `{name}` in {section}"),
            Some(hint),
        );
    }

    fn table<'a, 'i>(&mut self, item: &'a Item<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match item.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a table, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    /// A string, with `${VAR}` replaced from the environment.
    fn string(&mut self, item: &Item<'_>, what: &str) -> Option<At<String>> {
        let raw = self.raw_string(item, what)?;
        let value = self.interpolate(&raw.value, raw.span.start)?;
        Some(At {
            value,
            span: raw.span,
        })
    }

    /// A string taken literally (rules and filters are never interpolated).
    fn raw_string(&mut self, item: &Item<'_>, what: &str) -> Option<At<String>> {
        match item.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: item.span(),
            }),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a string, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn interpolate(&mut self, s: &str, at: usize) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    at,
                    "unterminated `${` in string",
                    Some("write `${NAME}`".into()),
                );
                return None;
            };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error(
                    at,
                    format!("`${{{name}}}` is not a valid variable name"),
                    None,
                );
                ok = false;
            } else {
                match self.env.var(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        self.error(
                            at,
                            format!("environment variable `{name}` is not set"),
                            Some(format!("export {name}=… before running keel")),
                        );
                        ok = false;
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    fn bool(&mut self, item: &Item<'_>, what: &str) -> Option<bool> {
        match item.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be true or false, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn int(&mut self, item: &Item<'_>, what: &str) -> Option<i64> {
        match item.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                match i64::from_str_radix(digits.trim_start_matches('+'), i.radix()) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        self.error(item.span().start, format!("{what} is out of range"), None);
                        None
                    }
                }
            }
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be an integer, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn number(&mut self, item: &Item<'_>, what: &str) -> Option<f64> {
        match item.get_ref() {
            DeValue::Float(f) => {
                let s: String = f.as_str().chars().filter(|c| *c != '_').collect();
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Some(v),
                    _ => {
                        self.error(
                            item.span().start,
                            format!("{what} must be a finite number"),
                            None,
                        );
                        None
                    }
                }
            }
            DeValue::Integer(_) => self.int(item, what).map(|v| v as f64),
            other => {
                self.error(
                    item.span().start,
                    format!("{what} must be a number, found {}", other.type_str()),
                    None,
                );
                None
            }
        }
    }

    fn count(&mut self, item: &Item<'_>, what: &str) -> Option<u64> {
        let v = self.int(item, what)?;
        if v < 0 {
            self.error(
                item.span().start,
                format!("{what} cannot be negative"),
                None,
            );
            return None;
        }
        Some(v as u64)
    }

    fn string_list(&mut self, item: &Item<'_>, what: &str) -> Option<Vec<At<String>>> {
        match item.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for v in a.iter() {
                    out.push(self.raw_string(v, what)?);
                }
                Some(out)
            }
            other => {
                self.error(
                    item.span().start,
                    format!(
                        "{what} must be an array of strings, found {}",
                        other.type_str()
                    ),
                    None,
                );
                None
            }
        }
    }

    fn check_name(&mut self, name: &str, at: usize, what: &str) -> bool {
        let valid = name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            self.error(
                at,
                format!("`{name}` is not a valid {what} name"),
                Some(format!(
                    "use lowercase letters, digits and `_`, starting with a letter, at most {MAX_NAME} characters"
                )),
            );
        }
        valid
    }

    // ---- stage 2: read ----

    fn read_root(&mut self, root: &DeTable<'_>) -> Model {
        let mut model = Model {
            app: App::default(),
            server: Server::default(),
            auth: Auth {
                password: true,
                password_min_length: 8,
                access_ttl_secs: 15 * 60,
                refresh_ttl_secs: 30 * 24 * 3600,
                oauth: BTreeMap::new(),
                redirect_urls: Vec::new(),
            },
            roles: BTreeMap::new(),
            collections: Vec::new(),
            limits: Vec::new(),
            webhooks: Vec::new(),
            flags: BTreeMap::new(),
            scale: Scale::default(),
        };
        let mut raw_collections = Vec::new();
        let mut saw_app = false;
        for (key, item) in root.iter() {
            match key.get_ref().as_ref() {
                "app" => {
                    saw_app = true;
                    self.read_app(item, &mut model.app)
                }
                "server" => self.read_server(item, &mut model.server),
                "auth" => self.read_auth(item, &mut model.auth),
                "roles" => self.read_roles(item, &mut model.roles),
                "collections" => {
                    if let Some(t) = self.table(item, "[collections]") {
                        for (name, c) in t.iter() {
                            raw_collections.push((name, c));
                        }
                    }
                }
                "limits" => self.read_limits(item, &mut model.limits),
                "events" => self.read_events(item, &mut model.webhooks),
                "flags" => self.read_flags(item, &mut model.flags),
                "scale" => self.read_scale(item, &mut model.scale),
                _ => self.unknown_key(
                    key,
                    "keel.toml",
                    &[
                        "app",
                        "server",
                        "auth",
                        "roles",
                        "collections",
                        "limits",
                        "events",
                        "flags",
                        "scale",
                    ],
                ),
            }
        }
        if !saw_app {
            self.error(
                0,
                "missing [app] section",
                Some("add `[app]` with `name = \"…\"`".into()),
            );
        }

        // Collections: `users` is built in and may be extended.
        let mut users = crate::builtin::users();
        let mut collections = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, item) in raw_collections {
            let n = name.get_ref().as_ref();
            let at = name.span().start;
            if !self.check_name(n, at, "collection") {
                continue;
            }
            if RESERVED_COLLECTIONS.contains(&n) || n.starts_with("_keel") {
                self.error(
                    at,
                    format!("`{n}` is a reserved name"),
                    Some("choose another collection name".into()),
                );
                continue;
            }
            if !seen.insert(n.to_string()) {
                self.error(at, format!("collection `{n}` is declared twice"), None);
                continue;
            }
            if n == "users" {
                self.read_collection(item, &mut users);
            } else {
                let mut c = crate::builtin::empty_collection(n, item.span());
                self.read_collection(item, &mut c);
                collections.push(c);
            }
        }
        model.collections.push(users);
        model.collections.extend(collections);

        // Stages 3 and 4 need the whole model, so they run after reading.
        self.resolve(&mut model);
        model
    }

    fn read_app(&mut self, item: &Item<'_>, app: &mut App) {
        let Some(t) = self.table(item, "[app]") else {
            return;
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
    }

    fn read_server(&mut self, item: &Item<'_>, server: &mut Server) {
        let Some(t) = self.table(item, "[server]") else {
            return;
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
                    ],
                ),
            }
        }
    }

    fn read_auth(&mut self, item: &Item<'_>, auth: &mut Auth) {
        let Some(t) = self.table(item, "[auth]") else {
            return;
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
                        let mut provider = OAuthProvider {
                            span: p.span(),
                            ..Default::default()
                        };
                        for (pk, pv) in pt.iter() {
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
                                "authorize_url" => {
                                    provider.authorize_url = self.url(pv, "authorize_url")
                                }
                                "token_url" => provider.token_url = self.url(pv, "token_url"),
                                "userinfo_url" => {
                                    provider.userinfo_url = self.url(pv, "userinfo_url")
                                }
                                "emails_url" => provider.emails_url = self.url(pv, "emails_url"),
                                "jwks_url" => provider.jwks_url = self.url(pv, "jwks_url"),
                                "redirect_url" => {
                                    provider.redirect_url = self.url(pv, "redirect_url")
                                }
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
                                Some("point it elsewhere with authorize_url, token_url, userinfo_url and emails_url".into()),
                            );
                        }
                        if n != "github" && provider.emails_url.is_some() {
                            self.error(
                                name.span().start,
                                format!("`emails_url` applies only to github, not to `{n}`"),
                                None,
                            );
                        }
                        if !matches!(n.as_str(), "google" | "github") && provider.issuer.is_none() {
                            self.error(
                                name.span().start,
                                format!("OAuth provider `{n}` needs an `issuer`"),
                                Some("only google and github are known without one".into()),
                            );
                        }
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
    }

    /// An absolute `http(s)://` URL (after `${VAR}`), or an error.
    fn url(&mut self, item: &Item<'_>, what: &str) -> Option<String> {
        let s = self.string(item, what)?;
        self.check_url(&s.value, s.span.start, what)
            .then_some(s.value)
    }

    fn check_url(&mut self, url: &str, at: usize, what: &str) -> bool {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        let ok = matches!(host, Some(h) if !h.is_empty() && !h.contains(['@', ' ', '\\']))
            && !url.chars().any(char::is_whitespace);
        if !ok {
            self.error(
                at,
                format!("`{what}` must be an absolute http:// or https:// URL, found `{url}`"),
                Some("for example \"https://app.example.com/auth/done\"".into()),
            );
        }
        ok
    }

    /// `"15m"`, `"30d"`, `"1h"`, `"90s"`.
    fn duration(&mut self, item: &Item<'_>, what: &str) -> Option<u64> {
        let s = self.string(item, what)?;
        match parse_duration(&s.value) {
            Some(d) if d > 0 => Some(d),
            _ => {
                self.error(
                    s.span.start,
                    format!("`{}` is not a duration", s.value),
                    Some("write a number and a unit: \"90s\", \"15m\", \"1h\", \"30d\"".into()),
                );
                None
            }
        }
    }

    fn read_roles(&mut self, item: &Item<'_>, roles: &mut BTreeMap<String, Role>) {
        let Some(t) = self.table(item, "[roles]") else {
            return;
        };
        for (name, v) in t.iter() {
            let n = name.get_ref().to_string();
            if !self.check_name(&n, name.span().start, "role") {
                continue;
            }
            let Some(rt) = self.table(v, "a role") else {
                continue;
            };
            let mut role = Role::default();
            for (k, rv) in rt.iter() {
                match k.get_ref().as_ref() {
                    "inherits" => {
                        for parent in self.string_list(rv, "inherits").unwrap_or_default() {
                            role.inherits.push(parent.value);
                        }
                    }
                    _ => self.unknown_key(k, "a role", &["inherits"]),
                }
            }
            roles.insert(n, role);
        }
        // Inherited roles must exist and not form a cycle.
        for (name, role) in roles.iter() {
            for parent in &role.inherits {
                if !roles.contains_key(parent) {
                    let at = self.find_offset(parent, item.span());
                    self.error(
                        at,
                        format!("role `{name}` inherits unknown role `{parent}`"),
                        closest(parent, roles.keys().map(String::as_str))
                            .map(|c| format!("did you mean `{c}`?")),
                    );
                }
            }
        }
        for name in roles.keys() {
            let mut stack = vec![name.as_str()];
            let mut seen = BTreeSet::new();
            while let Some(r) = stack.pop() {
                for p in roles
                    .get(r)
                    .map(|r| r.inherits.as_slice())
                    .unwrap_or_default()
                {
                    if p == name {
                        let at = self.find_offset(name, item.span());
                        self.error(
                            at,
                            format!("role `{name}` inherits itself"),
                            Some("remove the cycle from `inherits`".into()),
                        );
                        stack.clear();
                        break;
                    }
                    if seen.insert(p.as_str()) {
                        stack.push(p);
                    }
                }
            }
        }
    }

    /// Best-effort position of a word inside a span, for errors found after reading.
    fn find_offset(&self, word: &str, within: Span) -> usize {
        self.src
            .get(within.clone())
            .and_then(|s| s.find(word))
            .map(|i| within.start + i)
            .unwrap_or(within.start)
    }

    fn read_limits(&mut self, item: &Item<'_>, limits: &mut Vec<Limit>) {
        let Some(t) = self.table(item, "[limits]") else {
            return;
        };
        for (k, v) in t.iter() {
            let key = k.get_ref().to_string();
            let valid_key = key == "anonymous"
                || key == "authenticated"
                || key.split_once(' ').is_some_and(|(m, p)| {
                    matches!(m, "GET" | "POST" | "PATCH" | "PUT" | "DELETE") && p.starts_with('/')
                });
            if !valid_key {
                self.error(
                    k.span().start,
                    format!("`{key}` is not a limit key"),
                    Some(
                        "use `anonymous`, `authenticated` or a route like \"POST /v1/posts\""
                            .into(),
                    ),
                );
                continue;
            }
            let Some(s) = self.string(v, "a limit") else {
                continue;
            };
            match parse_rate(&s.value) {
                Some((requests, per_secs)) => limits.push(Limit {
                    key,
                    requests,
                    per_secs,
                    span: k.span(),
                }),
                None => self.error(
                    s.span.start,
                    format!("`{}` is not a rate", s.value),
                    Some("write requests per period: \"60/min\", \"10/s\", \"1000/hour\"".into()),
                ),
            }
        }
    }

    fn read_events(&mut self, item: &Item<'_>, webhooks: &mut Vec<Webhook>) {
        let Some(t) = self.table(item, "[events]") else {
            return;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "webhooks" => {
                    let Some(hooks) = self.table(v, "[events.webhooks]") else {
                        continue;
                    };
                    for (name, h) in hooks.iter() {
                        let n = name.get_ref().to_string();
                        if !self.check_name(&n, name.span().start, "webhook") {
                            continue;
                        }
                        let Some(ht) = self.table(h, "a webhook") else {
                            continue;
                        };
                        let mut hook = Webhook {
                            name: n,
                            url: String::new(),
                            on: Vec::new(),
                            secret: None,
                            span: h.span(),
                        };
                        for (hk, hv) in ht.iter() {
                            match hk.get_ref().as_ref() {
                                "url" => {
                                    hook.url =
                                        self.string(hv, "url").map(|s| s.value).unwrap_or_default()
                                }
                                "secret" => {
                                    hook.secret = self.string(hv, "secret").map(|s| s.value)
                                }
                                "on" => {
                                    hook.on = self
                                        .string_list(hv, "on")
                                        .unwrap_or_default()
                                        .into_iter()
                                        .map(|s| s.value)
                                        .collect()
                                }
                                _ => self.unknown_key(hk, "a webhook", &["url", "on", "secret"]),
                            }
                        }
                        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                            self.error(
                                h.span().start,
                                format!("webhook `{}` needs an http(s) `url`", hook.name),
                                None,
                            );
                        }
                        webhooks.push(hook);
                    }
                }
                _ => self.unknown_key(k, "[events]", &["webhooks"]),
            }
        }
    }

    fn read_flags(&mut self, item: &Item<'_>, flags: &mut BTreeMap<String, Flag>) {
        let Some(t) = self.table(item, "[flags]") else {
            return;
        };
        for (name, v) in t.iter() {
            let n = name.get_ref().to_string();
            if !self.check_name(&n, name.span().start, "flag") {
                continue;
            }
            let Some(ft) = self.table(v, "a flag") else {
                continue;
            };
            let mut flag = Flag { rollout: 100 };
            for (k, fv) in ft.iter() {
                match k.get_ref().as_ref() {
                    "rollout" => match self.int(fv, "rollout") {
                        Some(p @ 0..=100) => flag.rollout = p as u8,
                        Some(_) => self.error(
                            fv.span().start,
                            "rollout is a percentage from 0 to 100",
                            None,
                        ),
                        None => {}
                    },
                    _ => self.unknown_key(k, "a flag", &["rollout"]),
                }
            }
            flags.insert(n, flag);
        }
    }

    fn read_scale(&mut self, item: &Item<'_>, scale: &mut Scale) {
        let Some(t) = self.table(item, "[scale]") else {
            return;
        };
        for (k, v) in t.iter() {
            let slot = match k.get_ref().as_ref() {
                "users" => &mut scale.users,
                "peak_rps" => &mut scale.peak_rps,
                "read_write_ratio" => &mut scale.read_write_ratio,
                "records_per_user" => &mut scale.records_per_user,
                "nodes" => &mut scale.nodes,
                _ => {
                    self.unknown_key(
                        k,
                        "[scale]",
                        &[
                            "users",
                            "peak_rps",
                            "read_write_ratio",
                            "records_per_user",
                            "nodes",
                        ],
                    );
                    continue;
                }
            };
            *slot = self.count(v, "a scale figure");
        }
    }

    fn read_collection(&mut self, item: &Item<'_>, c: &mut Collection) {
        let Some(t) = self.table(item, "a collection") else {
            return;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "description" => c.description = self.string(v, "description").map(|s| s.value),
                "fields" => {
                    let Some(ft) = self.table(v, "fields") else {
                        continue;
                    };
                    for (name, f) in ft.iter() {
                        self.read_field(c, name, f);
                    }
                }
                "indexes" => {
                    for (keys, span) in self.key_lists(v, "indexes") {
                        let keys = keys
                            .into_iter()
                            .map(|k| match k.strip_prefix('-') {
                                Some(f) => SortKey {
                                    field: f.to_string(),
                                    descending: true,
                                },
                                None => SortKey {
                                    field: k,
                                    descending: false,
                                },
                            })
                            .collect();
                        c.indexes.push(Index { keys, span });
                    }
                }
                "unique" => {
                    for (fields, span) in self.key_lists(v, "unique") {
                        c.uniques.push(Unique { fields, span });
                    }
                }
                "default_sort" => {
                    if let Some(s) = self.raw_string(v, "default_sort") {
                        c.default_sort = s
                            .value
                            .split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(|p| match p.strip_prefix('-') {
                                Some(f) => SortKey {
                                    field: f.to_string(),
                                    descending: true,
                                },
                                None => SortKey {
                                    field: p.to_string(),
                                    descending: false,
                                },
                            })
                            .collect();
                        self.pending_sorts.push((c.name.clone(), s.span));
                    }
                }
                "access" => {
                    let Some(at) = self.table(v, "access") else {
                        continue;
                    };
                    for (op, rule) in at.iter() {
                        let which = match op.get_ref().as_ref() {
                            "read" => Operation::Read,
                            "create" => Operation::Create,
                            "update" => Operation::Update,
                            "delete" => Operation::Delete,
                            _ => {
                                self.unknown_key(
                                    op,
                                    "access",
                                    &["read", "create", "update", "delete"],
                                );
                                continue;
                            }
                        };
                        if let Some(src) = self.raw_string(rule, "an access rule") {
                            let quote = self.quote_len(src.span.start);
                            self.pending_rules.push(PendingRule {
                                collection: c.name.clone(),
                                op: which,
                                source: src.value,
                                span: src.span.clone(),
                                body_offset: src.span.start + quote,
                            });
                        }
                    }
                }
                _ => self.unknown_key(
                    k,
                    "a collection",
                    &[
                        "description",
                        "fields",
                        "indexes",
                        "unique",
                        "access",
                        "default_sort",
                    ],
                ),
            }
        }
    }

    fn quote_len(&self, at: usize) -> usize {
        let rest = self.src.get(at..).unwrap_or("");
        if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            3
        } else {
            1
        }
    }

    /// `[["a", "-b"], ["c"]]` (or one list `["a", "b"]` meaning one key).
    fn key_lists(&mut self, item: &Item<'_>, what: &str) -> Vec<(Vec<String>, Span)> {
        let DeValue::Array(outer) = item.get_ref() else {
            self.error(
                item.span().start,
                format!("{what} must be an array of arrays of field names"),
                Some(format!("{what} = [[\"author\", \"-created_at\"]]")),
            );
            return Vec::new();
        };
        if outer
            .iter()
            .all(|v| matches!(v.get_ref(), DeValue::String(_)))
            && !outer.is_empty()
        {
            let keys = self.string_list(item, what).unwrap_or_default();
            return vec![(keys.into_iter().map(|k| k.value).collect(), item.span())];
        }
        let mut out = Vec::new();
        for inner in outer.iter() {
            if let Some(keys) = self.string_list(inner, what) {
                if keys.is_empty() {
                    self.error(
                        inner.span().start,
                        format!("an entry of {what} needs at least one field"),
                        None,
                    );
                    continue;
                }
                out.push((keys.into_iter().map(|k| k.value).collect(), inner.span()));
            }
        }
        out
    }

    fn read_field(
        &mut self,
        c: &mut Collection,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        item: &Item<'_>,
    ) {
        let n = name.get_ref().to_string();
        let at = name.span().start;
        if !self.check_name(&n, at, "field") {
            return;
        }
        if let Some(existing) = c.fields.iter().find(|f| f.name == n) {
            if existing.system {
                self.error(
                    at,
                    format!("`{n}` is a system field"),
                    Some("every record already has id, created_at, updated_at and version".into()),
                );
            } else if c.builtin {
                self.error(
                    at,
                    format!("`{n}` is a built-in field of `{}`", c.name),
                    Some("extend users with new fields only".into()),
                );
            } else {
                self.error(at, format!("field `{n}` is declared twice"), None);
            }
            return;
        }
        if RESERVED_FIELDS.contains(&n.as_str()) {
            self.error(
                at,
                format!("`{n}` is a reserved name"),
                Some("choose another field name".into()),
            );
            return;
        }
        let Some(t) = self.table(item, "a field") else {
            return;
        };
        let mut field = Field {
            name: n.clone(),
            ty: FieldType::Bool,
            required: false,
            default: None,
            unique: false,
            immutable: false,
            readonly: false,
            hidden: false,
            encrypted: false,
            system: false,
            description: None,
            span: name.span().start..item.span().end,
        };
        let mut ty_name: Option<At<String>> = None;
        let mut opts: BTreeMap<String, &Item<'_>> = BTreeMap::new();
        let mut default_item = None;
        let mut encrypted_at = None;
        for (k, v) in t.iter() {
            let key = k.get_ref().as_ref();
            match key {
                "type" => ty_name = self.raw_string(v, "type"),
                "required" => field.required = self.bool(v, "required").unwrap_or(false),
                "unique" => field.unique = self.bool(v, "unique").unwrap_or(false),
                "immutable" => field.immutable = self.bool(v, "immutable").unwrap_or(false),
                "readonly" => field.readonly = self.bool(v, "readonly").unwrap_or(false),
                "hidden" => field.hidden = self.bool(v, "hidden").unwrap_or(false),
                "encrypted" => {
                    field.encrypted = self.bool(v, "encrypted").unwrap_or(false);
                    encrypted_at = Some(v.span().start);
                }
                "description" => field.description = self.string(v, "description").map(|s| s.value),
                "default" => default_item = Some(v),
                "min_length" | "max_length" | "pattern" | "min" | "max" | "values" | "to"
                | "on_delete" => {
                    opts.insert(key.to_string(), v);
                }
                _ => self.unknown_key(k, &format!("field `{n}`"), FIELD_KEYS),
            }
        }
        let Some(ty_name) = ty_name else {
            self.error(
                item.span().start,
                format!("field `{n}` needs a `type`"),
                Some(format!("one of: {}", TYPES.join(", "))),
            );
            return;
        };
        let allowed: &[&str] = match ty_name.value.as_str() {
            "text" => &["min_length", "max_length", "pattern"],
            "int" | "float" => &["min", "max"],
            "enum" => &["values"],
            "ref" => &["to", "on_delete"],
            _ => &[],
        };
        for (key, v) in &opts {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    v.span().start,
                    format!("`{key}` does not apply to a {} field", ty_name.value),
                    None,
                );
            }
        }
        let opt = |k: &str| opts.get(k).copied();
        field.ty = match ty_name.value.as_str() {
            "text" => {
                let min_length = opt("min_length")
                    .and_then(|v| self.count(v, "min_length"))
                    .map(|v| v.min(u32::MAX as u64) as u32);
                let max_length = opt("max_length")
                    .and_then(|v| self.count(v, "max_length"))
                    .map(|v| v.min(u32::MAX as u64) as u32);
                self.impossible_bounds(
                    item.span().start,
                    &n,
                    ("min_length", min_length),
                    ("max_length", max_length),
                );
                let pattern = opt("pattern").and_then(|v| self.raw_string(v, "pattern"));
                if let Some(p) = &pattern
                    && let Err(e) = regex_lite::Regex::new(&p.value)
                {
                    self.error(p.span.start, format!("invalid pattern: {e}"), None);
                }
                FieldType::Text {
                    min_length,
                    max_length,
                    pattern: pattern.map(|p| p.value),
                }
            }
            "int" => {
                let min = opt("min").and_then(|v| self.int(v, "min"));
                let max = opt("max").and_then(|v| self.int(v, "max"));
                self.impossible_bounds(item.span().start, &n, ("min", min), ("max", max));
                FieldType::Int { min, max }
            }
            "float" => {
                let min = opt("min").and_then(|v| self.number(v, "min"));
                let max = opt("max").and_then(|v| self.number(v, "max"));
                self.impossible_bounds(item.span().start, &n, ("min", min), ("max", max));
                FieldType::Float { min, max }
            }
            "bool" => FieldType::Bool,
            "datetime" => FieldType::Datetime,
            "date" => FieldType::Date,
            "uuid" => FieldType::Uuid,
            "email" => FieldType::Email,
            "url" => FieldType::Url,
            "json" => FieldType::Json,
            "enum" => {
                let values: Vec<String> = opt("values")
                    .and_then(|v| self.string_list(v, "values"))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.value)
                    .collect();
                if values.is_empty() {
                    self.error(
                        item.span().start,
                        format!("enum field `{n}` needs `values`"),
                        Some("values = [\"draft\", \"published\"]".into()),
                    );
                }
                let distinct: BTreeSet<&String> = values.iter().collect();
                if distinct.len() != values.len() {
                    self.error(
                        item.span().start,
                        format!("enum field `{n}` repeats a value"),
                        None,
                    );
                }
                FieldType::Enum { values }
            }
            "ref" => {
                let to = opt("to").and_then(|v| self.raw_string(v, "to"));
                let on_delete_s = opt("on_delete").and_then(|v| self.raw_string(v, "on_delete"));
                let on_delete = match on_delete_s.as_ref().map(|s| s.value.as_str()) {
                    None | Some("restrict") => OnDelete::Restrict,
                    Some("cascade") => OnDelete::Cascade,
                    Some("set_null") => OnDelete::SetNull,
                    Some(other) => {
                        let at = on_delete_s.as_ref().map(|s| s.span.start).unwrap_or(0);
                        self.error(
                            at,
                            format!("unknown on_delete `{other}`"),
                            Some("use \"cascade\", \"restrict\" or \"set_null\"".into()),
                        );
                        OnDelete::Restrict
                    }
                };
                match to {
                    Some(to) => {
                        self.pending_refs.push((
                            c.name.clone(),
                            n.clone(),
                            to.value.clone(),
                            to.span.start,
                        ));
                        FieldType::Ref {
                            to: to.value,
                            on_delete,
                            on_delete_explicit: on_delete_s.is_some(),
                        }
                    }
                    None => {
                        self.error(
                            item.span().start,
                            format!("ref field `{n}` needs `to`"),
                            Some("to = \"users\"".into()),
                        );
                        return;
                    }
                }
            }
            other => {
                let hint = closest(other, TYPES.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("one of: {}", TYPES.join(", ")));
                self.error(
                    ty_name.span.start,
                    format!("unknown field type `{other}`"),
                    Some(hint),
                );
                return;
            }
        };
        if field.required && field.ty == FieldType::Bool {
            // A required bool is fine; nothing to check.
        }
        if let FieldType::Ref {
            on_delete: OnDelete::SetNull,
            ..
        } = field.ty
            && field.required
        {
            self.error(
                item.span().start,
                format!("field `{n}` is required, so on_delete = \"set_null\" could never apply"),
                Some("use \"cascade\" or \"restrict\", or drop `required`".into()),
            );
        }
        if field.hidden && field.unique {
            // Allowed: e.g. a hidden unique token.
        }
        if let Some(d) = default_item {
            field.default = self.read_default(&field, d);
        }
        if field.encrypted {
            let at = encrypted_at.unwrap_or(item.span().start);
            if !matches!(field.ty, FieldType::Text { .. } | FieldType::Json) {
                self.error(
                    at,
                    format!("field `{n}`: only text and json fields can be encrypted"),
                    None,
                );
            }
            if field.unique {
                self.error(
                    at,
                    format!("field `{n}`: an encrypted field cannot be unique"),
                    Some("each write uses a fresh nonce, so equal values never look equal".into()),
                );
            }
        }
        c.fields.push(field);
    }

    /// A lower bound above the upper one: no value could ever be valid.
    fn impossible_bounds<T: PartialOrd + std::fmt::Display>(
        &mut self,
        at: usize,
        field: &str,
        (lo_name, lo): (&str, Option<T>),
        (hi_name, hi): (&str, Option<T>),
    ) {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            self.error(
                at,
                format!("field `{field}`: {lo_name} {lo} is greater than {hi_name} {hi}"),
                Some("no value could ever be valid".into()),
            );
        }
    }

    fn read_default(&mut self, field: &Field, item: &Item<'_>) -> Option<DefaultValue> {
        let at = item.span().start;
        let bad = |cx: &mut Self, why: String| {
            cx.error(at, format!("default of `{}`: {why}", field.name), None);
            None
        };
        match (item.get_ref(), &field.ty) {
            (DeValue::String(s), FieldType::Ref { .. } | FieldType::Uuid)
                if s.as_ref() == "auth.id" =>
            {
                Some(DefaultValue::AuthId)
            }
            (DeValue::String(s), FieldType::Datetime | FieldType::Date)
                if s.as_ref() == "now()" =>
            {
                Some(DefaultValue::Now)
            }
            (DeValue::String(s), ty) => {
                let s = s.to_string();
                let v = serde_json::Value::String(s.clone());
                match crate::validate::check_value(ty, &v) {
                    Ok(()) => Some(DefaultValue::Value(v)),
                    Err(e) => bad(self, format!("\"{s}\" {}", e.message())),
                }
            }
            (DeValue::Integer(_), FieldType::Int { .. }) => self
                .int(item, "default")
                .map(|i| DefaultValue::Value(i.into())),
            (DeValue::Integer(_) | DeValue::Float(_), FieldType::Float { .. }) => {
                self.number(item, "default").and_then(|f| {
                    serde_json::Number::from_f64(f)
                        .map(|n| DefaultValue::Value(serde_json::Value::Number(n)))
                })
            }
            (DeValue::Boolean(b), FieldType::Bool) => Some(DefaultValue::Value((*b).into())),
            (DeValue::Array(_) | DeValue::Table(_), FieldType::Json) => {
                Some(DefaultValue::Value(to_json(item.get_ref())))
            }
            (other, ty) => bad(
                self,
                format!("a {} cannot default to a {}", ty.name(), other.type_str()),
            ),
        }
    }

    // ---- stage 3: resolve names ----

    fn resolve(&mut self, model: &mut Model) {
        let names: Vec<String> = model.collections.iter().map(|c| c.name.clone()).collect();
        for (coll, field, to, at) in std::mem::take(&mut self.pending_refs) {
            if !names.contains(&to) {
                let hint = closest(&to, names.iter().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("collections: {}", names.join(", ")));
                self.error(
                    at,
                    format!("field `{coll}.{field}` refers to unknown collection `{to}`"),
                    Some(hint),
                );
            }
        }
        let sorts = std::mem::take(&mut self.pending_sorts);
        for c in &mut model.collections {
            for u in &c.uniques {
                for f in &u.fields {
                    if c.fields.iter().all(|x| &x.name != f) {
                        let at = self.find_offset(f, u.span.clone());
                        self.error(
                            at,
                            format!("unique constraint on unknown field `{}.{f}`", c.name),
                            closest(f, c.fields.iter().map(|x| x.name.as_str()))
                                .map(|s| format!("did you mean `{s}`?")),
                        );
                    }
                }
                let distinct: BTreeSet<&String> = u.fields.iter().collect();
                if distinct.len() != u.fields.len() {
                    self.error(
                        u.span.start,
                        "a unique constraint names a field twice",
                        None,
                    );
                }
            }
            for ix in &c.indexes {
                for k in &ix.keys {
                    match c.fields.iter().find(|x| x.name == k.field) {
                        None => {
                            let at = self.find_offset(&k.field, ix.span.clone());
                            self.error(
                                at,
                                format!("index on unknown field `{}.{}`", c.name, k.field),
                                closest(&k.field, c.fields.iter().map(|x| x.name.as_str()))
                                    .map(|s| format!("did you mean `{s}`?")),
                            );
                        }
                        Some(f) if f.ty == FieldType::Json => {
                            self.error(
                                ix.span.start,
                                format!("`{}` is a json field and cannot be indexed", k.field),
                                None,
                            );
                        }
                        Some(f) if f.encrypted => {
                            self.error(
                                ix.span.start,
                                format!("`{}` is encrypted and cannot be indexed", k.field),
                                Some("ciphertexts do not sort like their values".into()),
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
            if c.default_sort.is_empty() {
                c.default_sort = vec![SortKey {
                    field: "created_at".into(),
                    descending: true,
                }];
            } else {
                for k in c.default_sort.clone() {
                    if c.fields.iter().any(|x| x.name == k.field && x.encrypted) {
                        let at = sorts
                            .iter()
                            .find(|(n, _)| n == &c.name)
                            .map(|(_, s)| s.start)
                            .unwrap_or(c.span.start);
                        self.error(
                            at,
                            format!("`{}` is encrypted and cannot be sorted on", k.field),
                            None,
                        );
                    }
                    if c.fields.iter().all(|x| x.name != k.field) {
                        let at = sorts
                            .iter()
                            .find(|(n, _)| n == &c.name)
                            .map(|(_, s)| s.start)
                            .unwrap_or(c.span.start);
                        self.error(
                            at,
                            format!("default_sort on unknown field `{}.{}`", c.name, k.field),
                            None,
                        );
                    }
                }
            }
        }
        for hook in &model.webhooks {
            for ev in &hook.on {
                let ok = ev.split_once('.').is_some_and(|(c, e)| {
                    (names.iter().any(|n| n == c) || c == "*")
                        && matches!(e, "created" | "updated" | "deleted" | "*")
                });
                if !ok {
                    let at = self.find_offset(ev, hook.span.clone());
                    self.error(
                        at,
                        format!("webhook `{}` listens to unknown event `{ev}`", hook.name),
                        Some("events are `<collection>.created`, `.updated` or `.deleted`".into()),
                    );
                }
            }
        }

        // ---- stage 4: type rules ----
        let pending = std::mem::take(&mut self.pending_rules);
        let mut typed: Vec<(String, Operation, Rule)> = Vec::new();
        for p in pending {
            let Some(coll) = model.collection(&p.collection) else {
                continue;
            };
            let kind = ScopeKind::Rule {
                input: matches!(p.op, Operation::Create | Operation::Update),
            };
            let scope = CollectionScope::new(model, coll, kind);
            match keel_expr::parse(&p.source) {
                Err(e) => self.error(
                    p.body_offset + e.span.start,
                    format!(
                        "access.{} of `{}`: {}",
                        p.op.as_str(),
                        p.collection,
                        e.message
                    ),
                    None,
                ),
                Ok(expr) => match keel_expr::check(&expr, &scope) {
                    Ok(t) => typed.push((
                        p.collection,
                        p.op,
                        Rule {
                            source: p.source,
                            typed: t,
                            span: p.span,
                        },
                    )),
                    Err(errs) => {
                        for e in errs {
                            self.error(
                                p.body_offset + e.span.start,
                                format!(
                                    "access.{} of `{}`: {}",
                                    p.op.as_str(),
                                    p.collection,
                                    e.message
                                ),
                                e.hint,
                            );
                        }
                    }
                },
            }
        }
        for (coll, op, rule) in typed {
            if let Some(c) = model.collections.iter_mut().find(|c| c.name == coll) {
                match op {
                    Operation::Read => c.access.read = Some(rule),
                    Operation::Create => c.access.create = Some(rule),
                    Operation::Update => c.access.update = Some(rule),
                    Operation::Delete => c.access.delete = Some(rule),
                }
            }
        }
    }
}

/// A rule read in stage 2, typed in stage 4 once every collection is known.
struct PendingRule {
    collection: String,
    op: Operation,
    source: String,
    span: Span,
    body_offset: usize,
}

const FIELD_KEYS: &[&str] = &[
    "type",
    "encrypted",
    "required",
    "default",
    "unique",
    "immutable",
    "readonly",
    "hidden",
    "description",
    "min_length",
    "max_length",
    "pattern",
    "min",
    "max",
    "values",
    "to",
    "on_delete",
];

/// Every field type keel.toml knows.
pub const TYPES: &[&str] = &[
    "text", "int", "float", "bool", "datetime", "date", "uuid", "email", "url", "enum", "json",
    "ref",
];

fn to_json(v: &DeValue<'_>) -> serde_json::Value {
    match v {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(i) => i
            .as_str()
            .replace('_', "")
            .parse::<i64>()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Boolean(b) => (*b).into(),
        DeValue::Datetime(d) => serde_json::Value::String(d.to_string()),
        DeValue::Array(a) => {
            serde_json::Value::Array(a.iter().map(|x| to_json(x.get_ref())).collect())
        }
        DeValue::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_json(x.get_ref())))
                .collect(),
        ),
    }
}

/// `"15m"` → 900.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `"60/min"` → (60, 60).
pub fn parse_rate(s: &str) -> Option<(u32, u64)> {
    let (n, per) = s.trim().split_once('/')?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        other => parse_duration(other)?,
    };
    Some((n, per))
}
