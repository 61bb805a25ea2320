//! `keel check`: validate keel.toml and report every problem at once.

use crate::cli::{CheckArgs, CheckFormat};
use keel_spec::{ProcessEnv, SpecError};
use serde_json::json;
use std::process::ExitCode;

pub fn run(args: CheckArgs) -> ExitCode {
    let path = &args.spec.spec;
    let result = keel_spec::load_file(path, &ProcessEnv);
    let errors: Vec<SpecError> = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.0.clone(),
    };
    match args.format {
        CheckFormat::Text => match &result {
            Ok(model) => println!(
                "{}: ok ({} collections: {})",
                path.display(),
                model.collections.len(),
                model
                    .collections
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => super::print_errors(e),
        },
        CheckFormat::Json => {
            let findings: Vec<_> = errors
                .iter()
                .map(|e| {
                    json!({
                        "severity": "error",
                        "code": "spec",
                        "file": e.file,
                        "line": e.line,
                        "column": e.column,
                        "message": e.message,
                        "hint": e.hint,
                    })
                })
                .collect();
            println!("{}", json!({"ok": errors.is_empty(), "findings": findings}));
        }
        CheckFormat::Sarif => println!("{}", sarif(&errors)),
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// SARIF 2.1.0, so GitHub code scanning can show the findings on keel.toml.
fn sarif(errors: &[SpecError]) -> serde_json::Value {
    let results: Vec<_> = errors
        .iter()
        .map(|e| {
            let text = match &e.hint {
                Some(h) => format!("{} (hint: {h})", e.message),
                None => e.message.clone(),
            };
            json!({
                "ruleId": "spec",
                "level": "error",
                "message": {"text": text},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": e.file},
                    "region": {"startLine": e.line.max(1), "startColumn": e.column.max(1)}
                }}]
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keel",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": [{"id": "spec", "shortDescription": {"text": "keel.toml is invalid"}}]
            }},
            "results": results
        }]
    })
}
