//! The `keel` binary as users run it: check, schema, init, migrate, serve + SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keel(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_DATABASE_URL")
        .env_remove("KEEL_ADDR")
        .output()
        .expect("run keel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BAD: &str = "[app]\nname = \"x\"\n[collections.posts]\nfields.title = { type = \"txt\" }\nfields.n = { type = \"int\", min = 5, max = 1 }\n";

#[test]
fn check_reports_every_error_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), BAD).unwrap();
    let out = keel(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("keel.toml:4:25: error: unknown field type `txt`"),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `text`?"), "{err}");
    assert!(
        err.contains("keel.toml:5:12: error: field `n`: min 5 is greater than max 1"),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");

    let out = keel(&["check", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 2);
    assert_eq!(json["findings"][0]["line"], 4);

    let out = keel(&["check", "--format", "sarif"], dir.path());
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );

    let out = keel(&["check", "missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("keel init"));
}

#[test]
fn init_writes_a_spec_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel(&["init", "--template", "social", "app"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keel(&["check", "app/keel.toml"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keel(&["init", "app"], dir.path());
    assert_eq!(out.status.code(), Some(1), "refuses to overwrite");
    let out = keel(&["init", "--template", "nope", "x"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("possible values: social, shop, saas"),
        "{}",
        text(&out.stderr)
    );
    // `--help` names every template, each with what it holds.
    let out = keel(&["init", "--help"], dir.path());
    let help = text(&out.stdout);
    for name in ["social", "shop", "saas"] {
        assert!(help.contains(name), "{help}");
    }
    // Every template writes a spec that checks.
    for name in ["shop", "saas"] {
        let out = keel(&["init", "--template", name, name], dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = keel(&["check", &format!("{name}/keel.toml")], dir.path());
        assert!(out.status.code() != Some(2), "{}", text(&out.stderr));
    }
}

#[test]
fn schema_prints_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel(&["schema"], dir.path());
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["collections"].is_object());
}

#[test]
fn migrate_plans_applies_and_refuses_destructive_steps() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = "[app]\nname = \"x\"\n[collections.items]\nfields.name = { type = \"text\" }\nfields.old = { type = \"int\" }\naccess.read = \"true\"\n";
    std::fs::write(dir.path().join("keel.toml"), v1).unwrap();
    let out = keel(&["migrate", "--plan"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("CREATE TABLE \"items\""), "{plan}");
    let out = keel(&["migrate"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("applied"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        dir.path().join("keel.db").exists(),
        "the database lives beside the spec"
    );
    let out = keel(&["migrate"], dir.path());
    assert!(text(&out.stdout).contains("up to date"));

    // Dropping a column loses data: migrate and serve both refuse, naming the way out.
    let v2 = "[app]\nname = \"x\"\n[collections.items]\nfields.name = { type = \"text\" }\naccess.read = \"true\"\n";
    std::fs::write(dir.path().join("keel.toml"), v2).unwrap();
    let out = keel(&["migrate"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--allow-destructive"),
        "{}",
        text(&out.stderr)
    );
    let out = keel(&["serve", "--addr", "127.0.0.1:0"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("keel migrate --allow-destructive"),
        "{}",
        text(&out.stderr)
    );
    let out = keel(&["migrate", "--allow-destructive"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn events_explains_itself_and_refuses_unknown_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "[app]\nname = \"x\"\n[collections.posts]\nfields.title = { type = \"text\" }\naccess.read = \"true\"\n[events.webhooks.hook]\nurl = \"https://hooks.example.com/in\"\non = [\"*\"]\n";
    std::fs::write(dir.path().join("keel.toml"), spec).unwrap();
    let out = keel(&["events", "--help"], dir.path());
    let help = text(&out.stdout);
    for word in [
        "list",
        "retry",
        "replay",
        "--database",
        "webhook:<name>",
        "Examples:",
    ] {
        assert!(help.contains(word), "`{word}` missing from:\n{help}");
    }
    for (sub, words) in [
        (
            "list",
            &[
                "--state",
                "pending",
                "delivered",
                "dead",
                "--destination",
                "--limit",
                "--format",
                "--database",
            ][..],
        ),
        ("retry", &["--destination", "--database", "410"][..]),
        (
            "replay",
            &[
                "--destination",
                "--since",
                "RFC 3339",
                "1h",
                "event id",
                "--database",
            ][..],
        ),
    ] {
        let out = keel(&["events", sub, "--help"], dir.path());
        assert!(out.status.success());
        let help = text(&out.stdout);
        for word in words {
            assert!(
                help.contains(word),
                "`{word}` missing from `keel events {sub} --help`:\n{help}"
            );
        }
    }
    // A fresh database: nothing to show, the configured destination summarised.
    let out = keel(&["events", "list"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("no deliveries"), "{shown}");
    assert!(shown.contains("webhook:hook  0 pending, 0 dead"), "{shown}");
    // `--database` is accepted after the subcommand too.
    let db = format!("sqlite://{}", dir.path().join("other.db").display());
    let out = keel(
        &["events", "list", "--format", "json", "--database", &db],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(line["kind"], "destination");
    assert_eq!(line["destination"], "webhook:hook");
    // Unknown destinations are refused with the configured ones named.
    let out = keel(
        &["events", "replay", "--destination", "hook", "--since", "1h"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown destination `hook` (did you mean `webhook:hook`?)"),
        "{err}"
    );
    let out = keel(
        &["events", "replay", "--destination", "webhook:hook"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "--since is required");
    let out = keel(
        &["events", "retry", "--destination", "webhook:hook"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("webhook:hook: 0 dead deliveries pending again"));
}

#[test]
fn serve_answers_then_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keel.toml"),
        include_str!("../../../../examples/social/keel.toml"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--log-format", "json"])
        .env("KEEL_ADDR", "127.0.0.1:0")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    // Wait for the "listening" line and read the bound address from it.
    let addr = loop {
        let line = lines
            .next()
            .expect("keel serve exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["addr"].as_str() {
            break addr.to_string();
        }
    };
    let body = Command::new("curl")
        .args(["-fsS", &format!("http://{addr}/readyz")])
        .output()
        .unwrap();
    assert!(
        text(&body.stdout).contains("ready"),
        "{}",
        text(&body.stderr)
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    // Every log line is JSON with a level and a message.
    for l in &rest {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["level"].is_string(), "{l}");
    }
    // The request got one access line with its id, method, path, status and time.
    let access: Vec<serde_json::Value> = rest
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["path"] == "/readyz")
        .collect();
    assert_eq!(access.len(), 1, "{rest:?}");
    let line = &access[0];
    assert_eq!(line["message"], "request", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["elapsed_ms"].as_f64().is_some(), "{line}");
    let id = line["request_id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 36, "a generated UUID request id: {line}");
    let stamp = line["timestamp"].as_str().unwrap_or_default();
    assert!(
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(),
        "{line}"
    );
}

#[test]
fn serve_over_tls_sends_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("keel.toml"), "[app]\nname = \"tls\"\n[collections.notes]\nfields.text = { type = \"text\" }\naccess.read = \"true\"\n").unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(d)
        .output()
        .expect("openssl is needed for the TLS test");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("keel serve exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["addr"].as_str() {
            assert!(
                v["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("https://"),
                "{line}"
            );
            break addr.to_string();
        }
    };
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--cacert",
            "cert.pem",
            &format!("https://{addr}/v1/notes"),
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let response = text(&out.stdout);
    assert!(
        response.starts_with("HTTP/"),
        "{response}{}",
        text(&out.stderr)
    );
    assert!(
        response
            .to_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{response}"
    );
    assert!(response.contains("\"items\""), "{response}");
    // Plain HTTP to the TLS port does not get an API answer.
    let plain = Command::new("curl")
        .args(["-sS", "-m", "5", &format!("http://{addr}/v1/notes")])
        .output()
        .unwrap();
    assert!(!text(&plain.stdout).contains("\"items\""));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
