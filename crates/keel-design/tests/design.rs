//! The architect: the review finds every planted fault, the templates are clean, the
//! design has every section and artifact, the DDL applies to real SQLite and
//! PostgreSQL, and the document shows recorded samples as given. (The samples are
//! recorded by driving the real app: `crates/keel/tests/api/design.rs` tests them,
//! the whole document with them, and the real validators on both.)
#![allow(clippy::unwrap_used)]

use keel_design::plan::Database;
use keel_design::samples::{Endpoint, Exchange};
use keel_design::{Files, Format, Severity};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// The design without API samples (recording them needs the app).
fn design(src: &str, format: Format) -> Files {
    keel_design::render(&load(src), src, "keel.toml", format, &[], None)
}

fn file<'a>(files: &'a Files, name: &str) -> &'a str {
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| panic!("no {name} in the design"))
}

// ---- review ----

#[test]
fn review_finds_every_planted_fault_at_its_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flawed");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        let src = std::fs::read_to_string(&path).unwrap();
        let mut expected: Vec<String> = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        expected.sort();
        let model = load(&src);
        let findings = keel_design::review(&model, &src, "keel.toml");
        let mut got: Vec<String> = findings
            .iter()
            .map(|f| format!("{}:{}", f.code, f.line))
            .collect();
        got.sort();
        assert_eq!(got, expected, "{}: {findings:#?}", path.display());
        for f in &findings {
            assert!(
                !f.why.is_empty() && !f.fix.is_empty() && f.column >= 1,
                "{f:?}"
            );
            assert!(keel_design::LINTS.iter().any(|l| l.code == f.code));
        }
    }
    assert!(seen >= 7, "flawed specs found: {seen}");
}

#[test]
fn severities_make_check_fail_only_on_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flawed");
    let src = std::fs::read_to_string(dir.join("plaintext_secrets.toml")).unwrap();
    let f = keel_design::review(&load(&src), &src, "keel.toml");
    assert!(f.iter().all(|f| f.severity == Severity::Error));
    assert!(keel_design::review::has_errors(&f));
    let src = std::fs::read_to_string(dir.join("anonymous_writes.toml")).unwrap();
    let f = keel_design::review(&load(&src), &src, "keel.toml");
    assert!(!keel_design::review::has_errors(&f));
}

#[test]
fn templates_pass_the_review_without_warnings() {
    for name in EXAMPLES {
        let src = example(name);
        let findings = keel_design::review(&load(&src), &src, "keel.toml");
        let loud: Vec<_> = findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .collect();
        assert!(loud.is_empty(), "{name}: {loud:#?}");
    }
}

#[test]
fn a_rate_limit_silences_the_anonymous_write_finding() {
    let src = "[app]\nname = \"g\"\n[collections.e]\nfields.m = { type = \"text\", max_length = 9 }\nindexes = [[\"-created_at\"]]\naccess.create = \"true\"\n[scale]\nusers = 1\n";
    let codes = |s: &str| -> Vec<&'static str> {
        keel_design::review(&load(s), s, "k")
            .iter()
            .map(|f| f.code)
            .collect()
    };
    assert_eq!(codes(src), ["KD001"]);
    let limited = format!("{src}[limits]\n\"POST /v1/e\" = \"5/min\"\n");
    assert!(codes(&limited).is_empty(), "{:?}", codes(&limited));
}

// ---- document and artifacts ----

#[test]
fn design_has_every_section_and_artifact() {
    for name in EXAMPLES {
        let src = example(name);
        let files = design(&src, Format::Markdown);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "ARCHITECTURE.md",
            "openapi.json",
            "schema.sqlite.sql",
            "schema.postgres.sql",
            "migrations/0001_initial.sqlite.sql",
            "migrations/0001_initial.postgres.sql",
            "Dockerfile",
            "docker-compose.yml",
            "k8s/deployment.yaml",
            "k8s/service.yaml",
            "k8s/hpa.yaml",
            "k8s/pdb.yaml",
            "k8s/configmap.yaml",
        ] {
            assert!(names.contains(&want), "{name}: no {want} in {names:?}");
        }
        let doc = file(&files, "ARCHITECTURE.md");
        // Exactly the seven sections, in order.
        let h2: Vec<&str> = doc.lines().filter_map(|l| l.strip_prefix("## ")).collect();
        assert_eq!(h2, keel_design::document::SECTIONS, "{name}");
        for sub in [
            "### Scalability",
            "### Security",
            "### Observability",
            "### Deployment & CI/CD",
        ] {
            assert!(doc.contains(sub), "{name}: {sub}");
        }
        assert!(doc.contains("```mermaid\nflowchart LR"), "{name}");
        assert!(doc.contains("```mermaid\nerDiagram"), "{name}");
        let sql = doc.split("```sql\n").nth(1).expect("a SQL block");
        assert!(
            sql.contains("CREATE TABLE") && sql.contains("PRIMARY KEY"),
            "{name}"
        );
        assert!(doc.contains("**At 10× the load**"), "{name}");
        // Every JSON block is JSON.
        for block in doc.split("```json\n").skip(1) {
            let body = block.split("\n```").next().unwrap();
            serde_json::from_str::<serde_json::Value>(body)
                .unwrap_or_else(|e| panic!("{name}: bad JSON block ({e}):\n{body}"));
        }
    }
}

#[test]
fn the_document_shows_recorded_samples_as_given() {
    let src = example("social");
    let x = |method: &str, path: &str, status: u16, note: &str| Exchange {
        method: method.into(),
        path: path.into(),
        request_headers: vec![("content-type".into(), "application/json".into())],
        request: Some(json!({"title": "t"})),
        status,
        response_headers: vec![("content-type".into(), "application/json".into())],
        response: Some(json!({"status": status})),
        note: note.into(),
    };
    let mut success = x("POST", "/v1/posts", 201, "");
    success.response_headers.extend([
        ("location".into(), "/v1/posts/p1".into()),
        ("etag".into(), "\"1\"".into()),
    ]);
    let endpoints = [Endpoint {
        collection: "posts".into(),
        operation: "create",
        method: "POST",
        route: "/v1/posts".into(),
        summary: "Create a record in `posts`".into(),
        success,
        errors: vec![x("POST", "/v1/posts", 412, "a stale tag")],
    }];
    let files = keel_design::render(
        &load(&src),
        &src,
        "keel.toml",
        Format::Markdown,
        &endpoints,
        None,
    );
    let doc = file(&files, "ARCHITECTURE.md");
    assert!(
        doc.contains("#### `POST /v1/posts` — Create a record in `posts`"),
        "{doc}"
    );
    assert!(
        doc.contains("Response **201 Created**, `location: /v1/posts/p1`, `etag: \"1\"`:"),
        "{doc}"
    );
    assert!(
        doc.contains("- **412 Precondition Failed** — a stale tag: `POST /v1/posts`"),
        "{doc}"
    );
}

#[test]
fn database_choice_follows_the_scale() {
    let with_scale = |scale: &str| {
        let src = example("social");
        let cut = src.find("[scale]").unwrap();
        format!("{}[scale]\n{scale}\n", &src[..cut])
    };
    let small = load(&with_scale(
        "users = 2_000\npeak_rps = 30\nread_write_ratio = 10",
    ));
    let p = keel_design::plan::plan(&small, 1.0);
    assert_eq!(p.database, Database::Sqlite, "{}", p.database_reason);
    assert_eq!(p.nodes, 1);
    // Past the single writer's ceiling.
    let writes = load(&with_scale(
        "users = 2_000\npeak_rps = 1_200\nread_write_ratio = 2",
    ));
    let p = keel_design::plan::plan(&writes, 1.0);
    assert_eq!(p.database, Database::Postgres);
    assert!(
        p.database_reason.contains("writes"),
        "{}",
        p.database_reason
    );
    // 10× of the small one is still computed, and grows.
    let p10 = keel_design::plan::plan(&small, 10.0);
    assert!(p10.peak_rps > 299.0 && p10.bytes_per_year > p.bytes_per_year / 1000.0);
    // And the documents differ where it matters.
    let md = |m: &keel_spec::Model| {
        keel_design::render(m, "", "keel.toml", Format::Markdown, &[], None)
            .remove(0)
            .1
    };
    assert!(md(&small).contains("| Database | SQLite"));
    assert!(md(&writes).contains("| Database | PostgreSQL"));
    let shop = load(&example("shop"));
    let saas = load(&example("saas"));
    assert_eq!(
        keel_design::plan::plan(&shop, 1.0).database,
        Database::Sqlite
    );
    assert_eq!(
        keel_design::plan::plan(&saas, 1.0).database,
        Database::Postgres
    );
}

#[test]
fn html_is_one_self_contained_page() {
    let files = design(&example("shop"), Format::Html);
    let (name, html) = &files[0];
    assert_eq!(name, "ARCHITECTURE.html");
    for s in keel_design::document::SECTIONS {
        assert!(html.contains(&format!(">{s}</h2>")), "{s}");
    }
    assert!(html.contains("<pre class=\"mermaid\">\nflowchart LR"));
    assert!(html.contains("<pre class=\"mermaid\">\nerDiagram"));
    assert!(html.contains("mermaid.initialize("));
    assert!(html.len() > 1_000_000, "mermaid is inlined");
    for external in ["<script src=", "<link ", "src=\"http", "href=\"http"] {
        assert!(!html.contains(external), "fetches {external}");
    }
}

// ---- the DDL on real databases ----

#[test]
fn ddl_applies_to_sqlite() {
    for name in EXAMPLES {
        let files = design(&example(name), Format::Markdown);
        for f in ["schema.sqlite.sql", "migrations/0001_initial.sqlite.sql"] {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
            conn.execute_batch(file(&files, f))
                .unwrap_or_else(|e| panic!("{name} {f}: {e}"));
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_keel%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let model = load(&example(name));
            assert_eq!(tables as usize, model.collections.len(), "{name} {f}");
            let fks: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master m, pragma_foreign_key_list(m.name) WHERE m.type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(fks > 0, "{name} {f}: no foreign keys");
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("KEEL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must be running at {url} ({e}); scripts/test.sh starts it")
        });
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn ddl_applies_to_postgres() {
    let admin_url = postgres_admin_url();
    let admin = pg_connect(&admin_url).await;
    for name in EXAMPLES {
        let files = design(&example(name), Format::Markdown);
        for (i, f) in [
            "schema.postgres.sql",
            "migrations/0001_initial.postgres.sql",
        ]
        .into_iter()
        .enumerate()
        {
            let db = format!("keel_design_{name}_{i}_{}", std::process::id());
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .unwrap();
            let base = admin_url.rsplit_once('/').unwrap().0;
            let client = pg_connect(&format!("{base}/{db}")).await;
            let result = client.batch_execute(file(&files, f)).await;
            let counts = client
                .query_one(
                    "SELECT (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_keel%'), \
                            (SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'public' AND constraint_type = 'FOREIGN KEY')",
                    &[],
                )
                .await;
            drop(client);
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
                .unwrap();
            result.unwrap_or_else(|e| panic!("{name} {f}: {e:?}"));
            let row = counts.unwrap();
            let model = load(&example(name));
            assert_eq!(
                row.get::<_, i64>(0) as usize,
                model.collections.len(),
                "{name} {f}"
            );
            assert!(row.get::<_, i64>(1) > 0, "{name} {f}: no foreign keys");
        }
    }
}
