//! What the [`crate::edge`] applies to every request: its [`Limits`], the access-log
//! line it writes, and the client's address it settles once ([`ClientAddr`]): the
//! TCP peer, or, when the peer is a trusted proxy, the address its `X-Forwarded-For` /
//! `Forwarded` header names.

use axum::http::{HeaderName, header};
use keel_spec::Cidr;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One request's access-log line.
#[derive(Debug)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub elapsed_ms: f64,
}

/// Where access lines go when not through `tracing`: the binary writes them itself,
/// because formatting each one through the tracing JSON formatter cost a fifth of a
/// get-by-id's throughput.
pub trait AccessLog: Send + Sync + std::fmt::Debug {
    fn write(&self, line: &AccessLine<'_>);
}

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Access lines go here when set; through `tracing::info!` otherwise.
    pub access_log: Option<std::sync::Arc<dyn AccessLog>>,
    /// Where request counts and latencies go (`/metrics`).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Served over TLS: send `Strict-Transport-Security`.
    pub hsts: bool,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: Arc<[Cidr]>,
    /// Extra details `/readyz` reports (never failing it).
    pub readiness: Vec<Arc<dyn crate::health::ReadinessDetail>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            access_log: None,
            metrics: Default::default(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            hsts: false,
            trusted_proxies: Arc::from(Vec::new()),
            readiness: Vec::new(),
        }
    }
}

/// The client's address as this request's extension, settled by [`request_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// An address as text, as `Display` writes it; IPv4 without the formatter's padding
/// machinery, which showed in the profile (the limiter keys anonymous callers by it).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut numbers = itoa::Buffer::new();
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(numbers.format(octet));
            }
            text
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The client of a connection from `peer`: when the peer is trusted, the rightmost
/// address of `X-Forwarded-For` (or else of `Forwarded: for=`) that is not itself a
/// trusted proxy; otherwise the peer. Headers from untrusted peers are ignored.
pub fn client_addr(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let mut hops: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| parse_hop(h.trim()))
        .collect();
    if hops.is_empty() {
        hops = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_hop(v.trim()))
                })
            })
            .collect();
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            // Past the last trusted proxy: the client. Unknown or obfuscated hops
            // cannot be trusted further, so the address before them stands.
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`, quoted or not.
fn parse_hop(h: &str) -> Option<IpAddr> {
    let h = h.trim_matches('"');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = h.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    h.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.255",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ] {
            assert_eq!(ip_text(ip(s)), ip(s).to_string());
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_peers() {
        let trusted: Vec<Cidr> = vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "127.0.0.1".parse().expect("cidr"),
        ];
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.9")]);
        // From a trusted proxy: the rightmost untrusted hop (a client-sent 6.6.6.6 is
        // not believed).
        assert_eq!(client_addr(ip("127.0.0.1"), &xff, &trusted), ip("1.2.3.4"));
        // From anyone else, or with nothing trusted: the peer.
        assert_eq!(client_addr(ip("8.8.8.8"), &xff, &trusted), ip("8.8.8.8"));
        assert_eq!(client_addr(ip("127.0.0.1"), &xff, &[]), ip("127.0.0.1"));
        // Two header lines are one list.
        let two = headers(&[
            ("x-forwarded-for", "5.5.5.5"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(client_addr(ip("10.0.0.1"), &two, &trusted), ip("5.5.5.5"));
        // Every hop trusted: the leftmost.
        let inner = headers(&[("x-forwarded-for", "10.0.0.5")]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &inner, &trusted),
            ip("10.0.0.5")
        );
        // Garbage stops the walk at the last good hop.
        let junk = headers(&[("x-forwarded-for", "nonsense, 10.0.0.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &junk, &trusted), ip("10.0.0.7"));
    }

    #[test]
    fn the_forwarded_header_is_read_when_x_forwarded_for_is_absent() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let f = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
        )]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &f, &trusted),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers(&[("forwarded", "for=192.0.2.60, for=_hidden")]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &hidden, &trusted),
            ip("10.0.0.1")
        );
        let port = headers(&[("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &port, &trusted),
            ip("192.0.2.43")
        );
    }
}
