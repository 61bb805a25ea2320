//! `keel design` and the design review of `keel check`, as users run them.

use std::path::Path;
use std::process::{Command, Output};

fn keel(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_SPEC")
        .output()
        .expect("run keel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FLAWED: &str = "[app]\nname = \"g\"\n[collections.entries]\nfields.m = { type = \"text\" }\nindexes = [[\"-created_at\"]]\naccess.create = \"true\"\naccess.delete = \"false\"\n[scale]\nusers = 1\n";

#[test]
fn check_reviews_the_design_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keel.toml"), FLAWED).unwrap();
    let out = keel(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1), "KD010 is an error");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("keel.toml:6:17: warning[KD001]: anonymous callers may create `entries`"),
        "{stdout}"
    );
    assert!(stdout.contains("keel.toml:4:8: warning[KD009]"), "{stdout}");
    assert!(stdout.contains("keel.toml:7:17: error[KD010]"), "{stdout}");
    assert!(
        stdout.contains("  why: ") && stdout.contains("  fix: "),
        "{stdout}"
    );

    let out = keel(&["check", "--format", "json"], dir.path());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let codes: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["KD009", "KD001", "KD010"]);
    for f in json["findings"].as_array().unwrap() {
        for k in [
            "severity", "file", "line", "column", "message", "hint", "why", "fix",
        ] {
            assert!(!f[k].is_null(), "{k} in {f}");
        }
    }

    let out = keel(&["check", "--format", "sarif"], dir.path());
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[2]["ruleId"], "KD010");
    assert_eq!(results[2]["level"], "error");
    assert_eq!(results[0]["level"], "warning");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert!(rules.iter().any(|r| r["id"] == "KD001"));

    // Warnings alone pass.
    let warned = FLAWED.replace("access.delete = \"false\"\n", "");
    std::fs::write(dir.path().join("keel.toml"), warned).unwrap();
    let out = keel(&["check"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn every_template_inits_and_passes_the_review_without_warnings() {
    for t in ["social", "shop", "saas"] {
        let dir = tempfile::tempdir().unwrap();
        let out = keel(&["init", "--template", t, "app"], dir.path());
        assert!(out.status.success(), "{t}: {}", text(&out.stderr));
        let out = keel(&["check", "app/keel.toml", "--format", "json"], dir.path());
        assert!(out.status.success(), "{t}: {}", text(&out.stdout));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let loud: Vec<_> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info")
            .collect();
        assert!(loud.is_empty(), "{t}: {loud:?}");
    }
}

#[test]
fn design_writes_the_document_and_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel(&["init", "--template", "shop", "."], dir.path());
    assert!(out.status.success());
    let out = keel(&["design"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = dir.path().join("design");
    for f in [
        "ARCHITECTURE.md",
        "openapi.json",
        "schema.sqlite.sql",
        "schema.postgres.sql",
        "migrations/0001_initial.sqlite.sql",
        "Dockerfile",
        "docker-compose.yml",
        "k8s/deployment.yaml",
        "k8s/hpa.yaml",
        "k8s/pdb.yaml",
        "k8s/service.yaml",
    ] {
        assert!(d.join(f).is_file(), "{f}");
    }
    let first = std::fs::read(d.join("ARCHITECTURE.md")).unwrap();
    let out = keel(
        &["design", "keel.toml", "-o", "again", "--format", "md"],
        dir.path(),
    );
    assert!(out.status.success());
    assert_eq!(
        first,
        std::fs::read(dir.path().join("again/ARCHITECTURE.md")).unwrap()
    );
    let out = keel(&["design", "-o", "html", "--format", "html"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(dir.path().join("html/ARCHITECTURE.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("class=\"mermaid\""));
    // A broken spec writes nothing and says why.
    std::fs::write(dir.path().join("bad.toml"), "[app]\n").unwrap();
    let out = keel(&["design", "bad.toml", "-o", "bad"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("bad").exists());
}
