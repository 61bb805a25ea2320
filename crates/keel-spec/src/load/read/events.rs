//! Reading `[events]`: `retention`, `[events.webhooks.<name>]`, `[events.nats]` and
//! `[events.rabbitmq]`. Which collections a webhook hears is resolved later, its
//! `filter` is typed in the rules stage, and the NATS names left unsaid are derived
//! from the app's name.

use super::values::Reader;
use super::{Item, RawWebhook};
use crate::model::*;
use std::collections::BTreeMap;

const EVENTS_KEYS: &[&str] = &["retention", "webhooks", "nats", "rabbitmq"];
const WEBHOOK_KEYS: &[&str] = &["url", "on", "filter", "secret", "allow_private"];
const NATS_KEYS: &[&str] = &["url", "subject_prefix", "stream"];
const RABBITMQ_KEYS: &[&str] = &["url", "exchange"];

/// Standard Webhooks recommends secrets of 24 to 64 random bytes; fewer are refused.
const MIN_SECRET_BYTES: usize = 24;

const SECRET_HINT: &str = "generate one with `openssl rand -base64 32` and prefix it with whsec_";

/// `[events]` as read: the settings, and the webhooks still to resolve.
pub(in crate::load) struct RawEvents {
    pub(in crate::load) config: EventsConfig,
    pub(in crate::load) webhooks: Vec<RawWebhook>,
}

impl Reader<'_, '_> {
    pub(super) fn read_events(&mut self, item: &Item<'_>) -> RawEvents {
        let mut events = RawEvents {
            config: EventsConfig::default(),
            webhooks: Vec::new(),
        };
        let Some(t) = self.table(item, "[events]") else {
            return events;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "retention" => {
                    if let Some(d) = self.duration(v, "events.retention") {
                        events.config.retention_secs = d;
                    }
                }
                "webhooks" => {
                    let Some(hooks) = self.table(v, "[events.webhooks]") else {
                        continue;
                    };
                    for (name, h) in hooks.iter() {
                        let n = name.get_ref().to_string();
                        if !self.check_name(&n, name.span().start, "webhook") {
                            continue;
                        }
                        if let Some(hook) = self.read_webhook(n, h) {
                            events.webhooks.push(hook);
                        }
                    }
                }
                "nats" => events.config.nats = self.read_nats(v),
                "rabbitmq" => events.config.rabbitmq = self.read_rabbitmq(v),
                _ => self.unknown_key(k, "[events]", EVENTS_KEYS),
            }
        }
        events
    }

    fn read_webhook(&mut self, name: String, item: &Item<'_>) -> Option<RawWebhook> {
        let t = self.table(item, "a webhook")?;
        let mut hook = Webhook {
            name,
            url: String::new(),
            on: Vec::new(),
            secret: None,
            filter: None,
            allow_private: false,
            span: item.span(),
        };
        let mut on_spans = Vec::new();
        let (mut url_written, mut on_written) = (false, false);
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "url" => {
                    url_written = true;
                    if let Some(s) = self.string(v, "url") {
                        if let Some(problem) = http_url_problem(&s.value) {
                            self.error(
                                s.span.start,
                                format!(
                                    "webhook `{}` needs an http(s) `url`: {problem}",
                                    hook.name
                                ),
                                Some("for example url = \"https://hooks.example.com/keel\"".into()),
                            );
                        }
                        hook.url = s.value;
                    }
                }
                "on" => {
                    on_written = true;
                    let Some(list) = self.string_list(v, "on") else {
                        continue;
                    };
                    if list.is_empty() {
                        self.error(
                            v.span().start,
                            format!("webhook `{}` listens to no event", hook.name),
                            Some(ON_HINT.into()),
                        );
                    }
                    for s in list {
                        hook.on.push(s.value);
                        on_spans.push(s.span);
                    }
                }
                "filter" => {
                    if let Some(s) = self.raw_string(v, "filter") {
                        hook.filter = Some(EventFilter {
                            source: s.value,
                            typed: BTreeMap::new(),
                            span: s.span,
                        });
                    }
                }
                "secret" => {
                    if let Some(s) = self.string(v, "secret") {
                        if let Some(problem) = secret_problem(&s.value) {
                            self.error(
                                s.span.start,
                                format!(
                                    "webhook `{}`: `secret` is not a Standard Webhooks secret (`whsec_` and the base64 of at least {MIN_SECRET_BYTES} random bytes): {problem}",
                                    hook.name
                                ),
                                Some(SECRET_HINT.into()),
                            );
                        }
                        hook.secret = Some(s.value);
                    }
                }
                "allow_private" => {
                    hook.allow_private = self.bool(v, "allow_private").unwrap_or(false)
                }
                _ => self.unknown_key(k, "a webhook", WEBHOOK_KEYS),
            }
        }
        if !url_written {
            self.error(
                item.span().start,
                format!("webhook `{}` needs an http(s) `url`", hook.name),
                Some("for example url = \"https://hooks.example.com/keel\"".into()),
            );
        }
        if !on_written {
            self.error(
                item.span().start,
                format!("webhook `{}` needs `on`, the events it receives", hook.name),
                Some(ON_HINT.into()),
            );
        }
        Some(RawWebhook { hook, on_spans })
    }

    fn read_nats(&mut self, item: &Item<'_>) -> Option<NatsConfig> {
        let t = self.table(item, "[events.nats]")?;
        let mut nats = NatsConfig {
            url: String::new(),
            subject_prefix: String::new(),
            stream: String::new(),
            span: item.span(),
        };
        let mut url = None;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "url" => {
                    url = Some(self.broker_url(v, "[events.nats]", &NATS_SCHEMES));
                }
                "subject_prefix" => {
                    let Some(s) = self.string(v, "subject_prefix") else {
                        continue;
                    };
                    if is_subject_prefix(&s.value) {
                        nats.subject_prefix = s.value;
                    } else {
                        self.error(
                            s.span.start,
                            format!("`{}` is not a NATS subject prefix", s.value),
                            Some("write dot-separated tokens without spaces or wildcards (`*`, `>`), e.g. \"keel.social\"".into()),
                        );
                    }
                }
                "stream" => {
                    let Some(s) = self.string(v, "stream") else {
                        continue;
                    };
                    if is_stream_name(&s.value) {
                        nats.stream = s.value;
                    } else {
                        self.error(
                            s.span.start,
                            format!("`{}` is not a JetStream stream name", s.value),
                            Some("use letters, digits, `-` and `_` (no spaces, `.`, `*`, `>` or slashes), e.g. \"KEEL_SOCIAL\"".into()),
                        );
                    }
                }
                _ => self.unknown_key(k, "[events.nats]", NATS_KEYS),
            }
        }
        match url {
            Some(Some(url)) => {
                nats.url = url;
                Some(nats)
            }
            Some(None) => None,
            None => {
                self.error(
                    item.span().start,
                    "[events.nats] needs a `url`",
                    Some("url = \"${KEEL_NATS_URL}\", e.g. nats://localhost:4222".into()),
                );
                None
            }
        }
    }

    fn read_rabbitmq(&mut self, item: &Item<'_>) -> Option<RabbitMqConfig> {
        let t = self.table(item, "[events.rabbitmq]")?;
        let mut rabbitmq = RabbitMqConfig {
            url: String::new(),
            exchange: "keel".into(),
            span: item.span(),
        };
        let mut url = None;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "url" => url = Some(self.broker_url(v, "[events.rabbitmq]", &AMQP_SCHEMES)),
                "exchange" => {
                    let Some(s) = self.string(v, "exchange") else {
                        continue;
                    };
                    if is_exchange_name(&s.value) {
                        rabbitmq.exchange = s.value;
                    } else {
                        self.error(
                            s.span.start,
                            format!("`{}` is not a RabbitMQ exchange name", s.value),
                            Some("use at most 127 letters, digits, `-`, `_`, `.` and `:`, not starting with `amq.`, e.g. \"keel\"".into()),
                        );
                    }
                }
                _ => self.unknown_key(k, "[events.rabbitmq]", RABBITMQ_KEYS),
            }
        }
        match url {
            Some(Some(url)) => {
                rabbitmq.url = url;
                Some(rabbitmq)
            }
            Some(None) => None,
            None => {
                self.error(
                    item.span().start,
                    "[events.rabbitmq] needs a `url`",
                    Some("url = \"${KEEL_AMQP_URL}\", e.g. amqp://localhost:5672/%2f".into()),
                );
                None
            }
        }
    }

    /// A broker's `url` (after `${VAR}`), each of its comma-separated servers with one
    /// of `schemes.accepted`; `None` after an error. The URL is never echoed, as it
    /// may hold a password.
    fn broker_url(&mut self, item: &Item<'_>, section: &str, schemes: &Schemes) -> Option<String> {
        let s = self.string(item, "url")?;
        let servers: Vec<&str> = if schemes.several {
            s.value.split(',').map(str::trim).collect()
        } else {
            vec![s.value.trim()]
        };
        for server in servers {
            let problem = match url_scheme(server) {
                None => Some("found no scheme".to_string()),
                Some(scheme) if !schemes.accepted.contains(&scheme) => {
                    Some(format!("found a `{scheme}://` URL"))
                }
                Some(_) if crate::model::url_host(server).is_none() => {
                    Some("found no host".to_string())
                }
                Some(_) if server.chars().any(char::is_whitespace) => {
                    Some("found a space".to_string())
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                let names: Vec<String> =
                    schemes.accepted.iter().map(|s| format!("{s}://")).collect();
                let names = match names.split_last() {
                    Some((last, [])) => last.clone(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                self.error(
                    s.span.start,
                    format!("`url` of {section} needs {names}, {problem}"),
                    Some(format!("for example \"{}\"", schemes.example)),
                );
                return None;
            }
        }
        Some(s.value)
    }
}

const ON_HINT: &str =
    "on = [\"posts.created\", \"posts.updated\"], or \"posts.*\", or \"*\" for every event";

/// The URL schemes a broker takes.
struct Schemes {
    accepted: &'static [&'static str],
    /// Whether `url` may list several servers, comma-separated.
    several: bool,
    example: &'static str,
}

const NATS_SCHEMES: Schemes = Schemes {
    accepted: &["nats", "tls", "ws", "wss"],
    several: true,
    example: "nats://localhost:4222",
};

const AMQP_SCHEMES: Schemes = Schemes {
    accepted: &["amqp", "amqps"],
    several: false,
    example: "amqp://localhost:5672/%2f",
};

/// `https` for `https://host/…`.
fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

/// What keeps `url` from being an absolute http(s) URL; never echoes it (it may hold
/// a password).
fn http_url_problem(url: &str) -> Option<String> {
    match url_scheme(url) {
        None => Some("found no scheme".into()),
        Some("http" | "https") if crate::model::url_host(url).is_none() => {
            Some("found no host".into())
        }
        Some("http" | "https") if url.chars().any(char::is_whitespace) => {
            Some("found a space".into())
        }
        Some("http" | "https") => None,
        Some(other) => Some(format!("found a `{other}://` URL")),
    }
}

/// What is wrong with a webhook secret, if anything: it must be one or several
/// (space-separated, while rotating) `whsec_<base64>` of enough bytes. Never echoes
/// the secret.
fn secret_problem(value: &str) -> Option<String> {
    let secrets: Vec<&str> = value.split_whitespace().collect();
    if secrets.is_empty() {
        return Some("it is empty".into());
    }
    for (i, secret) in secrets.iter().enumerate() {
        let which = if secrets.len() > 1 {
            format!("secret {} of {}", i + 1, secrets.len())
        } else {
            "it".into()
        };
        let Some(b64) = secret.strip_prefix("whsec_") else {
            return Some(format!("{which} does not start with `whsec_`"));
        };
        match base64_len(b64) {
            None => return Some(format!("{which} is not padded base64 after `whsec_`")),
            Some(n) if n < MIN_SECRET_BYTES => {
                return Some(format!("{which} holds only {n} bytes"));
            }
            Some(_) => {}
        }
    }
    None
}

/// How many bytes standard, padded base64 decodes to; `None` when it is not that.
fn base64_len(s: &str) -> Option<usize> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    (pad <= 2 && body.bytes().all(alphabet)).then(|| s.len() / 4 * 3 - pad)
}

/// Dot-separated NATS tokens: no empty token, no whitespace, no wildcard.
fn is_subject_prefix(s: &str) -> bool {
    s.split('.').all(|token| {
        !token.is_empty()
            && !token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>'))
    })
}

/// A JetStream stream name: no whitespace, `.`, `*`, `>`, path separators or control
/// characters.
fn is_stream_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}

/// An AMQP 0-9-1 exchange name a client may declare.
fn is_exchange_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && !s.starts_with("amq.")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_base64_of_enough_bytes() {
        // The Standard Webhooks test vector's secret: 24 bytes.
        assert_eq!(
            secret_problem("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            None
        );
        let b32 = "whsec_q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
        assert_eq!(secret_problem(b32), None);
        assert_eq!(
            secret_problem(&format!("{b32} whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
            None
        );
        assert!(secret_problem("").is_some());
        assert!(secret_problem("hunter2").unwrap().contains("whsec_"));
        assert!(
            secret_problem("whsec_c2VjcmV0cw")
                .unwrap()
                .contains("padded")
        );
        assert!(
            secret_problem("whsec_c2VjcmV0")
                .unwrap()
                .contains("only 6 bytes")
        );
        assert!(
            secret_problem(&format!("{b32} nope"))
                .unwrap()
                .starts_with("secret 2 of 2")
        );
        assert_eq!(base64_len("YQ=="), Some(1));
        assert_eq!(base64_len("YWI="), Some(2));
        assert_eq!(base64_len("YWJj"), Some(3));
        assert_eq!(base64_len("YW=j"), None);
        assert_eq!(base64_len("Y==="), None);
    }

    #[test]
    fn broker_names() {
        assert!(is_subject_prefix("keel.social"));
        assert!(!is_subject_prefix("keel..social"));
        assert!(!is_subject_prefix("keel.*"));
        assert!(!is_subject_prefix(""));
        assert!(is_stream_name("KEEL_SOCIAL"));
        assert!(!is_stream_name("KEEL.SOCIAL"));
        assert!(is_exchange_name("keel.events"));
        assert!(!is_exchange_name("amq.topic"));
        assert!(!is_exchange_name(""));
        assert_eq!(url_scheme("amqps://h"), Some("amqps"));
        assert_eq!(url_scheme("localhost:4222"), None);
        assert_eq!(http_url_problem("https://h/x"), None);
        assert!(http_url_problem("https:///x").is_some());
    }
}
