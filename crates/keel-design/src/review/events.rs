//! KD013, KD017 and KD018: webhooks that are unsigned, that send events in clear, or
//! that point where the relay will not deliver (a private or loopback address without
//! `allow_private = true`).
//!
//! Only what the URL itself says is judged: a literal address, `localhost` or a
//! `*.localhost` name. A host name that resolves to a private address is refused by
//! the relay when it resolves it, which the review cannot see.

use super::{Ctx, Severity};
use keel_spec::{Model, Webhook};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a webhook's host stands, as far as its URL tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// This machine: `localhost`, 127.0.0.0/8, `::1`.
    Loopback,
    /// A private, link-local, shared (CGNAT) or unspecified address.
    Private,
    /// A public address, or a host name (resolved only when delivering).
    Public,
}

impl Reach {
    pub(crate) fn of(host: &str) -> Reach {
        let lower = host.to_ascii_lowercase();
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Reach::Loopback;
        }
        match lower.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Self::v4(ip),
            Ok(IpAddr::V6(ip)) => Self::v6(ip),
            Err(_) => Reach::Public,
        }
    }

    fn v4(ip: Ipv4Addr) -> Reach {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() {
            Reach::Loopback
        } else if ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || a == 0
            || (a == 100 && (64..128).contains(&b))
        {
            Reach::Private
        } else {
            Reach::Public
        }
    }

    fn v6(ip: Ipv6Addr) -> Reach {
        if let Some(v4) = ip.to_ipv4_mapped() {
            Self::v4(v4)
        } else if ip.is_loopback() {
            Reach::Loopback
        } else if ip.is_unspecified() || ip.is_unique_local() || ip.is_unicast_link_local() {
            Reach::Private
        } else {
            Reach::Public
        }
    }
}

/// The webhook findings of `model`.
pub(super) fn webhooks(cx: &mut Ctx<'_>, model: &Model) {
    for w in &model.webhooks {
        if w.secret.is_none() {
            cx.push(
                Severity::Warning,
                "KD013",
                w.span.start,
                format!("webhook `{}` has no secret", w.name),
                "without a signing secret the receiver cannot tell Keel's deliveries from forged ones",
                format!(
                    "add `secret = \"${{{}_WEBHOOK_SECRET}}\"` and verify the signature on the receiving side",
                    w.name.to_uppercase()
                ),
            );
        }
        let Some(host) = w.host() else {
            continue;
        };
        let reach = Reach::of(host);
        let at = url_at(cx.src, w);
        if w.url.starts_with("http://") && reach != Reach::Loopback {
            cx.push(
                Severity::Warning,
                "KD017",
                at,
                format!("webhook `{}` sends events over plain http to `{host}`", w.name),
                "events and their signatures travel in clear: anyone on the path reads every change (the records themselves) and can replay a captured delivery",
                "serve the receiver over TLS and use an `https://` URL".into(),
            );
        }
        if reach != Reach::Public && !w.allow_private {
            let what = match reach {
                Reach::Loopback => "a loopback",
                _ => "a private",
            };
            cx.push(
                Severity::Error,
                "KD018",
                at,
                format!("webhook `{}` points at {what} address (`{host}`)", w.name),
                "the relay refuses private and loopback destinations unless the webhook allows them (a guard against requests forged into the internal network), so every delivery would fail and be dead-lettered",
                "point it at a public address, or add `allow_private = true` if this internal destination is meant".into(),
            );
        }
    }
}

/// Where the webhook's `url` value is written: after `url =` inside its table, else
/// the table itself.
fn url_at(src: &str, w: &Webhook) -> usize {
    let start = w.span.start;
    let rest = src.get(start..).unwrap_or("");
    // The table ends at the next header (an inline table ends sooner; the first `url`
    // after its start is still its own).
    let end = rest
        .match_indices("\n[")
        .map(|(i, _)| i)
        .next()
        .unwrap_or(rest.len());
    let table = &rest[..end];
    for (i, _) in table.match_indices("url") {
        let before = table[..i].chars().next_back();
        if before.is_some_and(|c| !(c.is_whitespace() || c == '{' || c == ',')) {
            continue;
        }
        let after = table[i + 3..].trim_start();
        if let Some(value) = after.strip_prefix('=') {
            let value_at = table.len() - value.trim_start().len();
            return start + value_at;
        }
    }
    start
}
