//! The resolved model: what every later stage (storage, operations, HTTP, design)
//! derives from. Built only by [`crate::load`], so every value here has been checked.

use keel_expr::{Type, Typed};
use std::collections::BTreeMap;
use std::fmt;

mod events;
pub(crate) use events::url_host;
pub use events::{
    DEFAULT_EVENT_RETENTION_SECS, EventFilter, EventsConfig, NatsConfig, RabbitMqConfig, Webhook,
};

/// Byte range in keel.toml, kept so later stages (lints, design) can point back at it.
pub type SourceSpan = std::ops::Range<usize>;

/// A validated keel.toml.
#[derive(Debug, Clone)]
pub struct Model {
    pub app: App,
    pub server: Server,
    pub auth: Auth,
    pub roles: BTreeMap<String, Role>,
    /// Collections in declaration order; `users` is always first.
    pub collections: Vec<Collection>,
    pub limits: Vec<Limit>,
    pub webhooks: Vec<Webhook>,
    /// `[events]`: retention and the brokers events are published to.
    pub events: EventsConfig,
    pub flags: BTreeMap<String, Flag>,
    pub scale: Scale,
}

impl Model {
    /// Look a collection up by its name.
    pub fn collection(&self, name: &str) -> Option<&Collection> {
        self.collections.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct App {
    pub name: String,
    pub description: Option<String>,
}

/// Deployment settings that may live in the spec; flags and `KEEL_*` variables override them.
/// `Debug` redacts the secret and the database password.
#[derive(Clone, Default)]
pub struct Server {
    pub addr: Option<String>,
    pub database: Option<String>,
    pub log_format: Option<LogFormat>,
    /// Signs list cursors; when absent the store keeps a generated one.
    pub secret: Option<String>,
    /// Browser origins allowed to call the API (CORS); `*` allows any.
    pub cors_origins: Vec<String>,
    /// PEM files: serve HTTPS (and send HSTS) when both are set.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// `redis://…`: rate limits and login throttles shared by every node.
    pub redis: Option<String>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` name the client.
    pub trusted_proxies: Vec<Cidr>,
    /// `postgres://…` read replicas of `database`.
    pub replicas: Vec<String>,
}

/// An IP network, `10.0.0.0/8` or `::1/128`; a bare address is one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`) is compared as IPv4.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// `ADDRESS/PREFIX` or `ADDRESS`; the message says what is wrong.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network: `{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "`{s}` is not an IP network: the prefix length must be 0 to {max}"
                    ));
                }
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub password: bool,
    pub password_min_length: usize,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub oauth: BTreeMap<String, OAuthProvider>,
    /// Where an OAuth login may send the browser back to (`redirect_to`): exact URLs,
    /// or prefixes written with a trailing `/*`.
    pub redirect_urls: Vec<String>,
}

/// `[auth.oauth.<name>]`: `google` and `github` are known; any other name is an
/// OpenID Connect issuer found by discovery. Every endpoint may be overridden.
/// `Debug` redacts the client secret.
#[derive(Clone, Default)]
pub struct OAuthProvider {
    pub client_id: String,
    pub client_secret: String,
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// GitHub's `/user/emails`.
    pub emails_url: Option<String>,
    pub jwks_url: Option<String>,
    /// Scopes asked for; the provider's defaults when absent.
    pub scopes: Option<Vec<String>>,
    /// The callback URL registered with the provider; derived from the request when absent.
    pub redirect_url: Option<String>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, Default)]
pub struct Role {
    pub inherits: Vec<String>,
}

/// `"POST /v1/posts" = "10/min"` or `anonymous = "60/min"`.
#[derive(Debug, Clone)]
pub struct Limit {
    pub key: String,
    pub requests: u32,
    pub per_secs: u64,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct Flag {
    pub rollout: u8,
}

#[derive(Debug, Clone, Default)]
pub struct Scale {
    pub users: Option<u64>,
    pub peak_rps: Option<u64>,
    pub read_write_ratio: Option<u64>,
    pub records_per_user: Option<u64>,
    pub nodes: Option<u64>,
}

/// One collection: a table, a REST resource, a GraphQL type.
#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    pub description: Option<String>,
    /// System fields first (id, created_at, updated_at, version), then declared ones.
    pub fields: Vec<Field>,
    pub indexes: Vec<Index>,
    pub uniques: Vec<Unique>,
    pub access: Access,
    /// Sort used when a list names none, e.g. `-created_at`.
    pub default_sort: Vec<SortKey>,
    pub builtin: bool,
    pub span: SourceSpan,
}

impl Collection {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// Fields a client may send on create.
    pub fn creatable(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.system && !f.readonly)
    }
    /// Fields a client may send on update.
    pub fn updatable(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|f| !f.system && !f.readonly && !f.immutable)
    }
    /// Fields a client sees.
    pub fn visible(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.hidden)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

impl std::fmt::Display for SortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.descending {
            write!(f, "-{}", self.field)
        } else {
            write!(f, "{}", self.field)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Index {
    pub keys: Vec<SortKey>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct Unique {
    pub fields: Vec<String>,
    pub span: SourceSpan,
}

/// The four row-level rules; `None` means nobody may (default deny).
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub read: Option<Rule>,
    pub create: Option<Rule>,
    pub update: Option<Rule>,
    pub delete: Option<Rule>,
}

impl Access {
    pub fn get(&self, op: Operation) -> Option<&Rule> {
        match op {
            Operation::Read => self.read.as_ref(),
            Operation::Create => self.create.as_ref(),
            Operation::Update => self.update.as_ref(),
            Operation::Delete => self.delete.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Create,
    Update,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 4] = [Self::Read, Self::Create, Self::Update, Self::Delete];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// An access rule: its source and its type-checked form.
#[derive(Debug, Clone)]
pub struct Rule {
    pub source: String,
    pub typed: Typed,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub default: Option<DefaultValue>,
    pub unique: bool,
    pub immutable: bool,
    /// Set by the server only; never accepted from a client.
    pub readonly: bool,
    /// Never leaves the server.
    pub hidden: bool,
    /// Stored encrypted (AEAD); never filtered, sorted, indexed or used in rules.
    pub encrypted: bool,
    pub system: bool,
    pub description: Option<String>,
    pub span: SourceSpan,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    Text {
        min_length: Option<u32>,
        max_length: Option<u32>,
        pattern: Option<String>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Datetime,
    Date,
    Uuid,
    Email,
    Url,
    Enum {
        values: Vec<String>,
    },
    Json,
    Ref {
        to: String,
        on_delete: OnDelete,
        /// Whether `on_delete` was written (a lint wants it explicit).
        on_delete_explicit: bool,
    },
}

impl FieldType {
    /// The spec's name of the type.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Int { .. } => "int",
            Self::Float { .. } => "float",
            Self::Bool => "bool",
            Self::Datetime => "datetime",
            Self::Date => "date",
            Self::Uuid => "uuid",
            Self::Email => "email",
            Self::Url => "url",
            Self::Enum { .. } => "enum",
            Self::Json => "json",
            Self::Ref { .. } => "ref",
        }
    }

    /// The type an expression sees.
    pub fn expr_type(&self) -> Type {
        match self {
            Self::Text { .. } | Self::Email | Self::Url => Type::Text,
            Self::Int { .. } => Type::Int,
            Self::Float { .. } => Type::Float,
            Self::Bool => Type::Bool,
            Self::Datetime => Type::Datetime,
            Self::Date => Type::Date,
            Self::Uuid | Self::Ref { .. } => Type::Uuid,
            Self::Enum { values } => Type::Enum(values.clone()),
            Self::Json => Type::Json,
        }
    }

    /// The storage class the store maps to a column type per dialect.
    pub fn storage(&self) -> Storage {
        match self {
            Self::Text { .. } | Self::Email | Self::Url | Self::Enum { .. } => Storage::Text,
            Self::Int { .. } => Storage::Int,
            Self::Float { .. } => Storage::Float,
            Self::Bool => Storage::Bool,
            Self::Datetime => Storage::Datetime,
            Self::Date => Storage::Date,
            Self::Uuid | Self::Ref { .. } => Storage::Uuid,
            Self::Json => Storage::Json,
        }
    }
}

impl Field {
    /// Whether its column is `NOT NULL`: system fields and required ones.
    pub fn not_null(&self) -> bool {
        self.system || self.required
    }

    /// How the column is stored: encrypted fields hold ciphertext text.
    pub fn storage(&self) -> Storage {
        if self.encrypted {
            Storage::Text
        } else {
            self.ty.storage()
        }
    }
}

/// Column classes shared by both dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    Text,
    Int,
    Float,
    Bool,
    Datetime,
    Date,
    Uuid,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    Restrict,
    SetNull,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cascade => "cascade",
            Self::Restrict => "restrict",
            Self::SetNull => "set_null",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    /// A constant, already checked against the field's type.
    Value(serde_json::Value),
    /// The caller's id (`"auth.id"`).
    AuthId,
    /// The current time (`"now()"`).
    Now,
}

/// Stands for a secret in `Debug` output.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Whether a secret is set (`Some([redacted])`), never its value.
pub(crate) fn redacted(secret: &Option<String>) -> Option<Redacted> {
    secret.as_ref().map(|_| Redacted)
}

/// A URL whose credentials are redacted: `postgres://keel:[redacted]@db/keel`, or
/// `https://[redacted]@host/` when the userinfo is a single token.
pub(crate) struct UrlRedacted<'a>(pub(crate) &'a str);

impl fmt::Debug for UrlRedacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return fmt::Debug::fmt(url, f);
        };
        // The userinfo ends at the last `@` before any query or fragment, so a
        // password holding `/` or `@` is still covered (at worst, too much is hidden).
        let before_query = rest.split(['?', '#']).next().unwrap_or_default();
        let Some(at) = before_query.rfind('@') else {
            return fmt::Debug::fmt(url, f);
        };
        let userinfo = match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:[redacted]"),
            None => "[redacted]".to_string(),
        };
        fmt::Debug::fmt(&format!("{scheme}://{userinfo}@{}", &rest[at + 1..]), f)
    }
}

// `Debug` by hand for the structs that hold secrets. Each destructures `self`, so a
// field added later must be placed here, and so be decided secret or not.

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            addr,
            database,
            log_format,
            secret,
            cors_origins,
            tls_cert,
            tls_key,
            redis,
            trusted_proxies,
            replicas,
        } = self;
        f.debug_struct("Server")
            .field("addr", addr)
            .field("database", &database.as_deref().map(UrlRedacted))
            .field("log_format", log_format)
            .field("secret", &redacted(secret))
            .field("cors_origins", cors_origins)
            .field("tls_cert", tls_cert)
            .field("tls_key", tls_key)
            .field("redis", &redis.as_deref().map(UrlRedacted))
            .field("trusted_proxies", trusted_proxies)
            .field(
                "replicas",
                &replicas.iter().map(|r| UrlRedacted(r)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl fmt::Debug for OAuthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            client_id,
            client_secret: _,
            issuer,
            authorize_url,
            token_url,
            userinfo_url,
            emails_url,
            jwks_url,
            scopes,
            redirect_url,
            span,
        } = self;
        f.debug_struct("OAuthProvider")
            .field("client_id", client_id)
            .field("client_secret", &Redacted)
            .field("issuer", issuer)
            .field("authorize_url", authorize_url)
            .field("token_url", token_url)
            .field("userinfo_url", userinfo_url)
            .field("emails_url", emails_url)
            .field("jwks_url", jwks_url)
            .field("scopes", scopes)
            .field("redirect_url", redirect_url)
            .field("span", span)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::UrlRedacted;

    fn shown(url: &str) -> String {
        format!("{:?}", UrlRedacted(url))
    }

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            shown("postgres://keel:pw@db:5432/keel"),
            r#""postgres://keel:[redacted]@db:5432/keel""#
        );
        assert_eq!(
            shown("postgres://keel:p/w@d@db/keel?x=a@b"),
            r#""postgres://keel:[redacted]@db/keel?x=a@b""#
        );
        assert_eq!(
            shown("https://token@host/hook"),
            r#""https://[redacted]@host/hook""#
        );
        assert_eq!(
            shown("https://host/hook?to=a@b"),
            r#""https://host/hook?to=a@b""#
        );
        assert_eq!(shown("keel.db"), r#""keel.db""#);
    }
}
