//! `keel design` and the design review of `keel check`, as users run them; the API
//! samples `keel design` records from the real app; and real tools on the design.

use keel_design::samples::{Endpoint, Exchange};
use keel_design::{Files, Format};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

// ---- the API samples, recorded from the real app ----

const EXAMPLES: [&str; 3] = ["social", "shop", "saas"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join(format!("examples/{name}/keel.toml"))).unwrap()
}

fn load(src: &str) -> keel_spec::Model {
    keel_spec::load_str(src, "keel.toml", &BTreeMap::<String, String>::new())
        .unwrap_or_else(|e| panic!("spec is invalid:\n{e}"))
}

async fn design(src: &str, format: Format) -> Files {
    keel::samples::design(&load(src), src, "keel.toml", format)
        .await
        .unwrap()
}

fn file<'a>(files: &'a Files, name: &str) -> &'a str {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| panic!("no {name} in the design"))
}

fn header<'a>(x: &'a Exchange, name: &str) -> Option<&'a str> {
    x.response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What holds of any answer the app gives, so a sample that breaks it was not
/// answered by the app: problems are problem+json with their status, an ETag is the
/// body's version, a Location names the body's record.
fn assert_consistent(e: &Endpoint, x: &Exchange) {
    let what = format!("{} {} ({})", x.method, x.path, x.note);
    assert_ne!(
        x.status, 429,
        "{what}: the samples must not be rate limited"
    );
    let body = x.response.as_ref();
    if x.status >= 400 {
        assert_eq!(
            header(x, "content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        let p = body.unwrap_or_else(|| panic!("{what}: a problem without a body"));
        assert_eq!(p["status"], x.status, "{what}: {p}");
        assert!(
            p["type"].as_str().unwrap().starts_with("/docs/errors#"),
            "{what}: {p}"
        );
        assert_eq!(
            p["instance"],
            x.path.split('?').next().unwrap(),
            "{what}: {p}"
        );
    } else if let Some(b) = body {
        assert_eq!(
            header(x, "content-type"),
            Some("application/json"),
            "{what}: {b}"
        );
    } else {
        assert_eq!(x.status, 204, "{what}");
    }
    match header(x, "etag") {
        // A 412 tells the current version.
        Some(tag) if x.status == 412 => {
            let detail = body.unwrap()["detail"].as_str().unwrap();
            let now = format!("version {}", tag.trim_matches('"'));
            assert!(detail.contains(&now), "{what}: {tag} {detail}");
        }
        // A list's: a weak tag over its bytes.
        Some(tag) if tag.starts_with("W/") => {
            assert!(tag.len() == 20 && tag.ends_with('"'), "{what}: {tag}");
        }
        Some(tag) => assert_eq!(tag, format!("\"{}\"", body.unwrap()["version"]), "{what}"),
        None => {}
    }
    if let Some(loc) = header(x, "location") {
        assert_eq!(
            loc,
            format!("{}/{}", e.route, body.unwrap()["id"].as_str().unwrap())
        );
    }
}

const RECORDED: &str = r#"
[app]
name = "recorded"

[auth]
password = true

[roles]
editor = {}

[collections.notes]
fields.owner  = { type = "ref", to = "users", default = "auth.id", immutable = true, on_delete = "cascade" }
fields.title  = { type = "text", required = true, max_length = 40 }
fields.secret = { type = "text", encrypted = true, max_length = 40 }
indexes = [["owner", "-created_at"]]
access.read   = "owner == auth.id"
access.create = "auth.id != null && owner == auth.id"
access.update = "owner == auth.id"
access.delete = 'auth.has_role("editor")'

[limits]
anonymous = "1/min"
"#;

/// The samples of a known spec are the app's answers: a 201 with its Location and
/// ETag, the 412 and 422 problems with their types and `errors`, a 204 without a
/// body; the sample user holds every role (a role-only delete succeeds), encrypted
/// fields work, and a tight anonymous limit does not turn the samples into 429s.
#[tokio::test]
async fn recorded_samples_are_what_the_app_answers() {
    let endpoints = keel::samples::record(&load(RECORDED)).await.unwrap();
    let ops: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} {}", e.collection, e.operation))
        .collect();
    assert_eq!(
        ops,
        [
            "auth signup",
            "auth login",
            "auth refresh",
            "auth me",
            "auth logout",
            "users list",
            "users create",
            "users get",
            "users update",
            "users delete",
            "notes list",
            "notes create",
            "notes get",
            "notes update",
            "notes delete",
        ]
    );
    let ep = |c: &str, op: &str| {
        endpoints
            .iter()
            .find(|e| e.collection == c && e.operation == op)
            .unwrap()
    };
    let error = |e: &Endpoint, status: u16| -> Exchange {
        e.errors
            .iter()
            .find(|x| x.status == status)
            .unwrap_or_else(|| panic!("no {status} in {:#?}", e.errors))
            .clone()
    };
    for e in &endpoints {
        for x in std::iter::once(&e.success).chain(&e.errors) {
            assert_consistent(e, x);
        }
    }

    let login = &ep("auth", "login").success;
    assert_eq!(login.status, 200);
    assert_eq!(
        login.response.as_ref().unwrap()["user"]["roles"],
        json!(["editor"])
    );
    assert_eq!(
        error(ep("auth", "signup"), 409).response.unwrap()["type"],
        "/docs/errors#conflict"
    );

    let create = ep("notes", "create");
    let created = create.success.response.clone().unwrap();
    assert_eq!(create.success.status, 201, "{created}");
    assert_eq!(header(&create.success, "etag"), Some("\"1\""));
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        header(&create.success, "location"),
        Some(format!("/v1/notes/{id}").as_str())
    );
    assert_eq!(
        created["secret"], "Sample secret",
        "decrypted for its reader"
    );
    let missing = error(create, 422).response.unwrap();
    assert_eq!(missing["errors"][0]["field"], "title", "{missing}");
    assert_eq!(error(create, 401).note, "an anonymous caller");

    let get = &ep("notes", "get").success;
    assert_eq!((get.status, header(get, "etag")), (200, Some("\"1\"")));
    let update = ep("notes", "update");
    assert_eq!(update.success.status, 200);
    assert!(
        update
            .success
            .request_headers
            .contains(&("if-match".into(), "\"1\"".into()))
    );
    assert_eq!(header(&update.success, "etag"), Some("\"2\""));
    let stale = error(update, 412).response.unwrap();
    assert_eq!(stale["type"], "/docs/errors#precondition-failed", "{stale}");
    assert_eq!(stale["title"], "Precondition failed", "{stale}");
    let wrong = error(update, 422).response.unwrap();
    assert_eq!(wrong["type"], "/docs/errors#validation", "{wrong}");
    assert_eq!(wrong["errors"][0]["field"], "title", "{wrong}");

    let delete = ep("notes", "delete");
    assert_eq!(
        (delete.success.status, &delete.success.response),
        (204, &None)
    );
    assert_eq!(
        error(delete, 404).response.unwrap()["type"],
        "/docs/errors#not-found"
    );
}

#[tokio::test]
async fn the_design_shows_every_endpoint_with_samples_from_the_app() {
    for name in EXAMPLES {
        let src = example(name);
        let model = load(&src);
        let endpoints = keel::samples::record(&model).await.unwrap();
        for e in &endpoints {
            for x in std::iter::once(&e.success).chain(&e.errors) {
                assert_consistent(e, x);
            }
        }
        let files = keel_design::render(
            &model,
            &src,
            "keel.toml",
            Format::Markdown,
            &endpoints,
            None,
        );
        let doc = file(&files, "ARCHITECTURE.md");
        // Every collection operation appears with a request and a JSON response.
        for c in &model.collections {
            for route in [
                format!("#### `GET /v1/{}` ", c.name),
                format!("#### `POST /v1/{}` ", c.name),
                format!("#### `GET /v1/{}/{{id}}` ", c.name),
                format!("#### `PATCH /v1/{}/{{id}}` ", c.name),
                format!("#### `DELETE /v1/{}/{{id}}` ", c.name),
            ] {
                assert!(doc.contains(&route), "{name}: {route}");
            }
        }
        assert!(doc.contains("Response **201 Created**"), "{name}");
        assert!(doc.contains("Response **204 No Content**"), "{name}");
        assert!(doc.contains("- **412 Precondition Failed**"), "{name}");
        assert!(doc.contains("- **404 Not Found**"), "{name}");
        // Every JSON block is JSON.
        for block in doc.split("```json\n").skip(1) {
            let body = block.split("\n```").next().unwrap();
            serde_json::from_str::<serde_json::Value>(body)
                .unwrap_or_else(|e| panic!("{name}: bad JSON block ({e}):\n{body}"));
        }
        // The samples are placeholders, not this run's ids and clock.
        assert!(!doc.contains("\"next_cursor\": \"ey") || doc.contains("c2lnbmF0dXJl"));
    }
}

#[tokio::test]
async fn design_is_byte_identical_across_runs() {
    for name in EXAMPLES {
        let src = example(name);
        let a = design(&src, Format::Markdown).await;
        let b = design(&src, Format::Markdown).await;
        assert_eq!(a, b, "{name}");
        let a = design(&src, Format::Html).await;
        let b = design(&src, Format::Html).await;
        assert!(a == b, "{name} (html)");
    }
}

// ---- real tools ----

fn tool_dir(var: &str) -> PathBuf {
    let dir = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test.sh, which installs the validators (scripts/tools.sh) and exports it")
    });
    let p = PathBuf::from(dir);
    assert!(p.is_dir(), "{var}={} is not a directory", p.display());
    p
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// openapi-spec-validator, jsonschema (every sample against its operation's schema),
/// PyYAML, the Mermaid parser and graphql-js (`schema.graphql`) accept the design (the scripts live with
/// keel-design's tests).
#[tokio::test]
async fn real_validators_accept_the_design() {
    let bin = tool_dir("KEEL_TOOLS_BIN");
    let node = tool_dir("KEEL_NODE_DIR");
    let script = root().join("crates/keel-design/tests/tools");
    // The Mermaid checker must sit beside its node_modules to import them.
    std::fs::copy(
        script.join("mermaid_parse.mjs"),
        node.join("mermaid_parse.mjs"),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    let mut schemas = Vec::new();
    for name in EXAMPLES {
        let src = example(name);
        let model = load(&src);
        let recorded = keel::samples::record_all(&model).await.unwrap();
        let endpoints = recorded.endpoints;
        let files = keel_design::render(
            &model,
            &src,
            "keel.toml",
            Format::Markdown,
            &endpoints,
            recorded.graphql.as_deref(),
        );
        let dir = tmp.path().join(name);
        for (n, c) in &files {
            let p = dir.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        let mut samples = Vec::new();
        for e in &endpoints {
            for x in std::iter::once(&e.success).chain(&e.errors) {
                samples.push(json!({
                    "method": x.method, "route": e.route, "status": x.status,
                    "request": x.request, "response": x.response,
                    "content_type": header(x, "content-type").unwrap_or_default(),
                }));
            }
        }
        let samples_path = dir.join("samples.json");
        std::fs::write(&samples_path, serde_json::to_vec(&samples).unwrap()).unwrap();
        let spec_path = dir.join("keel.toml");
        std::fs::write(&spec_path, &src).unwrap();
        run(Command::new(bin.join("python"))
            .arg(script.join("check_design.py"))
            .arg(&dir)
            .arg(&samples_path)
            .arg(&spec_path));
        docs.push(dir.join("ARCHITECTURE.md"));
        schemas.push(dir.join("schema.graphql"));
    }
    run(Command::new("node")
        .arg("mermaid_parse.mjs")
        .args(&docs)
        .current_dir(&node));
    // graphql-js: each schema.graphql builds and validates.
    let realtime = tool_dir("KEEL_REALTIME_DIR");
    std::fs::copy(
        root().join("tests/realtime/graphql_schema_check.mjs"),
        realtime.join("graphql_schema_check.mjs"),
    )
    .unwrap();
    run(Command::new("node")
        .arg("graphql_schema_check.mjs")
        .arg("sdl")
        .args(&schemas)
        .current_dir(&realtime));
}
