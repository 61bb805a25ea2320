//! A webhook destination: `POST url` with the envelope, signed per Standard Webhooks
//! (`webhook-id` = the event id on every retry, `webhook-timestamp`, `webhook-signature`).
//! 2xx is delivered; 410 disables the endpoint; anything else, a timeout or a refused
//! connection is retried (`Retry-After` honoured by the relay's schedule). Private and
//! loopback addresses are refused unless the webhook says `allow_private = true`:
//! checked on the addresses DNS returns, at connect time (no rebinding window).

use crate::envelope::Envelope;
use crate::signature::{self, WebhookSecrets};
use crate::sink::{Outcome, Sink};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long one attempt may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a webhook cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook `{name}`: invalid secret: {source}")]
    Secret {
        name: String,
        source: signature::SecretError,
    },
    #[error("webhook `{name}`: cannot build its HTTP client: {message}")]
    Client { name: String, message: String },
}

/// One `[events.webhooks.NAME]`.
pub struct WebhookSink {
    destination: String,
    /// Parsed once (not per attempt); `Err` holds why the URL is unusable, for
    /// each attempt's error.
    url: Result<reqwest::Url, String>,
    /// The host, when the URL names an IP literal: checked before each attempt.
    literal: Option<IpAddr>,
    secrets: Option<WebhookSecrets>,
    allow_private: bool,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(hook: &keel_spec::Webhook, destination: String) -> Result<Self, WebhookError> {
        let secrets = match hook.secret.as_deref() {
            Some(s) => Some(
                WebhookSecrets::parse(s).map_err(|source| WebhookError::Secret {
                    name: hook.name.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")));
        if !hook.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().map_err(|e| WebhookError::Client {
            name: hook.name.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            destination,
            url: reqwest::Url::parse(&hook.url)
                .map_err(|e| format!("invalid URL `{}`: {e}", hook.url)),
            literal: literal_host(&hook.url),
            secrets,
            allow_private: hook.allow_private,
            client,
        })
    }

    async fn attempt(&self, event: &Envelope, body: &[u8]) -> Outcome {
        if !self.allow_private
            && let Some(ip) = self.literal
            && !is_public(ip)
        {
            return refused_private(ip);
        }
        let url = match &self.url {
            Ok(url) => url.clone(),
            Err(e) => {
                return Outcome::Retry {
                    status: None,
                    error: e.clone(),
                    after: None,
                };
            }
        };
        let id = event.id.to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::WEBHOOK_ID, &id)
            .header(signature::WEBHOOK_TIMESTAMP, timestamp.to_string());
        if let Some(secrets) = &self.secrets {
            request = request.header(
                signature::WEBHOOK_SIGNATURE,
                signature::sign(secrets, &id, timestamp, body),
            );
        }
        match request.body(body.to_vec()).send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let after = retry_after(res.headers());
                match status {
                    200..=299 => Outcome::Delivered {
                        status: Some(status),
                    },
                    410 => Outcome::Gone {
                        status: Some(status),
                    },
                    _ => Outcome::Retry {
                        status: Some(status),
                        error: format!("answered {status}"),
                        after,
                    },
                }
            }
            Err(e) => Outcome::Retry {
                status: None,
                error: describe(&e),
                after: None,
            },
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.destination
    }

    fn deliver<'a>(
        &'a self,
        event: &'a Envelope,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.attempt(event, body))
    }
}

/// The error of a failed request, with its causes (reqwest's own text is terse).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn refused_private(ip: IpAddr) -> Outcome {
    Outcome::Retry {
        status: None,
        error: format!(
            "refused: {ip} is a private or loopback address (set allow_private = true on this webhook to allow it)"
        ),
        after: None,
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(wait.as_seconds_f64().max(0.0)))
}

/// The host of a URL when it is an IP literal.
fn literal_host(url: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether an address is on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast, unspecified or otherwise reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// A resolver that answers only public addresses: a webhook's host that resolves to
/// a private one fails to connect, whenever DNS is asked.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                let shown = addrs
                    .first()
                    .map_or_else(|| host.clone(), |a| a.ip().to_string());
                return Err(format!(
                    "refused: {host} resolves to {shown}, a private or loopback address (set allow_private = true on this webhook to allow it)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                !is_public(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(
                is_public(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            "7".parse()
                .unwrap_or(reqwest::header::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
