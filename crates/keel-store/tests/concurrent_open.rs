//! Several stores (as several processes would) opening and migrating one fresh SQLite
//! file at the same moment: every open and every migration succeeds, and exactly one
//! of them applies the plan.
#![allow(clippy::unwrap_used)]

use keel_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

const SPEC: &str = r#"
[app]
name = "c"
[collections.items]
fields.name = { type = "text", required = true }
fields.size = { type = "int" }
indexes = [["name"], ["-size"]]
access.read = "true"
[collections.tags]
fields.label = { type = "text" }
fields.item = { type = "ref", to = "items", on_delete = "cascade" }
access.read = "true"
"#;

const STORES: usize = 8;
const ROUNDS: usize = 12;

#[test]
fn concurrent_opens_and_migrations_on_one_file_all_succeed() {
    let model = Arc::new(keel_spec::load_str(SPEC, "keel.toml", &BTreeMap::new()).unwrap());
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let start = Arc::new(Barrier::new(STORES));
        let threads: Vec<_> = (0..STORES)
            .map(|_| {
                let (url, model, start) = (url.clone(), model.clone(), start.clone());
                // One runtime per thread: as close to separate processes as a test gets.
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        start.wait();
                        let store = Store::open(&url).await.map_err(|e| format!("open: {e}"))?;
                        let plan = store
                            .migrate(&model, false)
                            .await
                            .map_err(|e| format!("migrate: {e}"))?;
                        Ok::<usize, String>(plan.steps.len())
                    })
                })
            })
            .collect();
        let results: Vec<Result<usize, String>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failures.is_empty(), "round {round}: {failures:?}");
        let applied = results
            .iter()
            .filter(|r| matches!(r, Ok(n) if *n > 0))
            .count();
        assert_eq!(applied, 1, "round {round}: {results:?}");
    }
}
