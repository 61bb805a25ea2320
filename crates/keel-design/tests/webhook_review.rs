//! The webhook lints: KD017 (plain http off this machine) and KD018 (a private or
//! loopback address the relay will refuse), decided from the URL alone.
#![allow(clippy::unwrap_used)]

use keel_design::Severity;
use std::collections::BTreeMap;

/// The codes and severities the review gives one webhook at `url`.
fn findings(url: &str, allow_private: bool) -> Vec<(&'static str, Severity)> {
    let src = format!(
        "[app]\nname = \"w\"\n[events.webhooks.h]\nurl = \"{url}\"\non = [\"*\"]\nallow_private = {allow_private}\n[scale]\nusers = 10\n"
    );
    let model = keel_spec::load_str(&src, "keel.toml", &BTreeMap::<String, String>::new())
        .unwrap_or_else(|e| panic!("{e}"));
    keel_design::review(&model, &src, "keel.toml")
        .into_iter()
        .filter(|f| f.code != "KD013")
        .map(|f| {
            assert_eq!((f.line, f.column), (4, 7), "at the url: {f:?}");
            (f.code, f.severity)
        })
        .collect()
}

fn codes(url: &str, allow_private: bool) -> Vec<&'static str> {
    findings(url, allow_private)
        .into_iter()
        .map(|f| f.0)
        .collect()
}

#[test]
fn public_https_is_fine() {
    for url in [
        "https://hooks.example.com/x",
        "https://8.8.8.8/x",
        "https://[2001:db8::1]:8443/x",
        "https://user:pw@hooks.example.com/x",
        "https://100.128.0.1/",
    ] {
        assert!(codes(url, false).is_empty(), "{url}");
    }
}

#[test]
fn plain_http_off_this_machine_is_a_warning() {
    assert_eq!(
        findings("http://hooks.example.com/x", false),
        [("KD017", Severity::Warning)]
    );
    // Allowed to reach a private network, but still in clear.
    assert_eq!(codes("http://192.168.1.20:8080/x", true), ["KD017"]);
    // Loopback traffic never leaves the machine.
    assert!(codes("http://localhost:3000/x", true).is_empty());
    assert!(codes("http://[::1]:3000/x", true).is_empty());
}

#[test]
fn private_and_loopback_addresses_need_allow_private() {
    for url in [
        "https://localhost/x",
        "https://api.localhost/x",
        "https://127.0.0.53/x",
        "https://[::1]/x",
        "https://10.0.0.1/x",
        "https://172.16.5.4/x",
        "https://192.168.0.1/x",
        "https://169.254.169.254/latest",
        "https://100.64.0.1/x",
        "https://0.0.0.0/x",
        "https://[fd00::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://u:p@10.0.0.1:8443/x",
    ] {
        assert_eq!(findings(url, false), [("KD018", Severity::Error)], "{url}");
        assert!(codes(url, true).is_empty(), "{url} with allow_private");
    }
    assert_eq!(codes("http://10.0.0.1/x", false), ["KD017", "KD018"]);
    assert_eq!(codes("http://127.0.0.1/x", false), ["KD018"]);
}

#[test]
fn the_new_lints_are_listed() {
    for code in ["KD017", "KD018"] {
        assert!(keel_design::LINTS.iter().any(|l| l.code == code), "{code}");
    }
}
