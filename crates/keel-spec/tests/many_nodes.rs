//! `[server] redis` and `[server] trusted_proxies`: read, validated with positions,
//! redacted in `Debug`, and known to the JSON Schema.

#![allow(clippy::unwrap_used)]

use keel_spec::{Cidr, SpecError, load_str};
use std::collections::BTreeMap;
use std::net::IpAddr;

fn errors(src: &str) -> Vec<SpecError> {
    load_str(src, "keel.toml", &BTreeMap::new())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn redis_and_trusted_proxies_are_read_and_the_password_never_shown() {
    let mut env = BTreeMap::new();
    env.insert(
        "KEEL_REDIS_URL".to_string(),
        "redis://:hunter2@redis:6379/0".to_string(),
    );
    let model = load_str(
        "[app]\nname = \"x\"\n[server]\nredis = \"${KEEL_REDIS_URL}\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"fd00::/8\"]\n",
        "keel.toml",
        &env,
    )
    .unwrap();
    assert_eq!(
        model.server.redis.as_deref(),
        Some("redis://:hunter2@redis:6379/0")
    );
    let shown = format!("{:?}", model.server);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("redis://:[redacted]@redis:6379/0"),
        "{shown}"
    );
    let p = &model.server.trusted_proxies;
    assert_eq!(
        p.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]
    );
    assert!(p[0].contains(ip("10.200.3.4")));
    assert!(p[0].contains(ip("::ffff:10.1.2.3")));
    assert!(!p[0].contains(ip("11.0.0.1")));
    assert!(p[1].contains(ip("127.0.0.1")) && !p[1].contains(ip("127.0.0.2")));
    assert!(p[2].contains(ip("fd12::1")) && !p[2].contains(ip("fe80::1")));
}

#[test]
fn bad_cidrs_and_redis_urls_are_errors_with_positions() {
    let src = "[app]\nname = \"x\"\n[server]\nredis = \"localhost:6379\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"proxy.local\"]\n";
    let errs = errors(src);
    let find = |line: usize, column: usize, needle: &str| {
        errs.iter()
            .find(|e| e.line == line && e.column == column && e.message.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no error at {line}:{column} with `{needle}`: {errs:#?}"))
    };
    let e = find(4, 9, "server.redis must be a redis:// URL");
    assert!(e.hint.unwrap().contains("KEEL_REDIS_URL"));
    let e = find(
        5,
        34,
        "`10.0.0.0/33` is not an IP network: the prefix length must be 0 to 32",
    );
    assert!(e.hint.unwrap().contains("10.0.0.0/8"));
    find(5, 49, "`proxy.local` is not an IP network");
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn cidrs_parse_on_their_own() {
    let c: Cidr = "192.168.1.77/24".parse().unwrap();
    assert!(c.contains(ip("192.168.1.1")) && !c.contains(ip("192.168.2.1")));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
    let v6: Cidr = "::1".parse().unwrap();
    assert!(v6.contains(ip("::1")));
    assert!("10.0.0.0/".parse::<Cidr>().is_err());
    assert!("::/129".parse::<Cidr>().is_err());
}

#[test]
fn the_json_schema_knows_them() {
    let schema = keel_spec::schema::json_schema();
    let server = &schema["properties"]["server"]["properties"];
    assert_eq!(server["redis"]["type"], "string");
    assert_eq!(server["trusted_proxies"]["type"], "array");
}
