//! `[events]`: webhooks, their filters, and the brokers, as resolved from keel.toml.
//! `Debug` is written by hand for each type that holds a URL or a secret.

use super::{Collection, Model, SourceSpan, UrlRedacted, redacted};
use keel_expr::Typed;
use std::collections::BTreeMap;
use std::fmt;

/// `[events.webhooks.<name>]`. `Debug` redacts the secret and any password in the URL.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub on: Vec<String>,
    /// `whsec_<base64>` (Standard Webhooks); several, space-separated, while rotating.
    pub secret: Option<String>,
    pub filter: Option<EventFilter>,
    /// May reach private and loopback addresses (refused by default).
    pub allow_private: bool,
    pub span: SourceSpan,
}

impl Webhook {
    /// Whether the webhook receives `<collection>.<kind>` events (`kind`: `created`,
    /// `updated` or `deleted`), by its `on` patterns: `posts.created`, `posts.*` or
    /// `*`.
    pub fn wants(&self, collection: &str, kind: &str) -> bool {
        self.on
            .iter()
            .any(|p| pattern_matches(p, collection, Some(kind)))
    }

    /// The collections of `model` whose events (of any kind) the webhook receives, in
    /// the model's order: what its `filter` is typed against.
    pub fn collections<'m>(&self, model: &'m Model) -> Vec<&'m Collection> {
        model
            .collections
            .iter()
            .filter(|c| self.on.iter().any(|p| pattern_matches(p, &c.name, None)))
            .collect()
    }

    /// The host the URL names, without userinfo, port or IPv6 brackets
    /// (`https://u:p@[::1]:8443/x` → `::1`).
    pub fn host(&self) -> Option<&str> {
        url_host(&self.url)
    }

    /// The secrets it signs with: one, or several (space-separated) while rotating.
    pub fn secrets(&self) -> Vec<&str> {
        self.secret
            .as_deref()
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default()
    }
}

/// Whether an `on` pattern covers `collection` (and `kind`, when given).
fn pattern_matches(pattern: &str, collection: &str, kind: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    pattern
        .split_once('.')
        .is_some_and(|(c, k)| c == collection && (k == "*" || kind.is_none_or(|kind| k == kind)))
}

/// The host of an absolute URL, without userinfo, port or IPv6 brackets.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => host_port.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then_some(host)
}

/// A webhook's `filter`: the expression language over the event's record (`data`;
/// `previous` for a delete), type-checked against each collection the webhook hears.
#[derive(Debug, Clone)]
pub struct EventFilter {
    pub source: String,
    /// The filter typed for each collection whose events the webhook receives.
    pub typed: BTreeMap<String, Typed>,
    pub span: SourceSpan,
}

/// Delivered events are kept this long by default (seconds): 7 days.
pub const DEFAULT_EVENT_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// `[events]`: how long events are kept, and the brokers they are published to (every
/// event goes to every configured broker). Webhooks are [`Model::webhooks`].
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Events are pruned this many seconds after they occurred, once none of their
    /// deliveries is pending; the realtime feed can resume within this window.
    pub retention_secs: u64,
    pub nats: Option<NatsConfig>,
    pub rabbitmq: Option<RabbitMqConfig>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retention_secs: DEFAULT_EVENT_RETENTION_SECS,
            nats: None,
            rabbitmq: None,
        }
    }
}

/// `[events.nats]`: NATS JetStream. Subjects are `<subject_prefix>.<collection>.<op>`,
/// captured by `stream` (created if missing). `Debug` redacts URL credentials.
#[derive(Clone)]
pub struct NatsConfig {
    pub url: String,
    /// Default `keel.<app name>` (the name as one token: anything but letters,
    /// digits, `-` and `_` as `_`).
    pub subject_prefix: String,
    /// Default `KEEL_<APP NAME>` (upper case, anything but letters and digits as `_`).
    pub stream: String,
    pub span: SourceSpan,
}

/// `[events.rabbitmq]`: a topic exchange, routing key `<collection>.<op>`. `Debug`
/// redacts URL credentials.
#[derive(Clone)]
pub struct RabbitMqConfig {
    pub url: String,
    /// Default `keel`.
    pub exchange: String,
    pub span: SourceSpan,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            name,
            url,
            on,
            secret,
            filter,
            allow_private,
            span,
        } = self;
        f.debug_struct("Webhook")
            .field("name", name)
            .field("url", &UrlRedacted(url))
            .field("on", on)
            .field("secret", &redacted(secret))
            .field("filter", &filter.as_ref().map(|f| &f.source))
            .field("allow_private", allow_private)
            .field("span", span)
            .finish()
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            url,
            subject_prefix,
            stream,
            span,
        } = self;
        f.debug_struct("NatsConfig")
            .field("url", &UrlRedacted(url))
            .field("subject_prefix", subject_prefix)
            .field("stream", stream)
            .field("span", span)
            .finish()
    }
}

impl fmt::Debug for RabbitMqConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            url,
            exchange,
            span,
        } = self;
        f.debug_struct("RabbitMqConfig")
            .field("url", &UrlRedacted(url))
            .field("exchange", exchange)
            .field("span", span)
            .finish()
    }
}
