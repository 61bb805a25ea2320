//! `keel check`: validate keel.toml, then review the design; report every problem at
//! once. Spec errors and design findings share one shape (severity, code, location,
//! message, why, fix) in every format.

use crate::cli::{CheckArgs, CheckFormat};
use keel_design::{Finding, LINTS, Severity};
use keel_spec::{ProcessEnv, SpecError};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: CheckArgs) -> ExitCode {
    let path = &args.spec.spec;
    let file = path.display().to_string();
    let (result, source) = match std::fs::read_to_string(path) {
        Ok(src) => (keel_spec::load_str(&src, &file, &ProcessEnv), src),
        Err(_) => (keel_spec::load_file(path, &ProcessEnv), String::new()),
    };
    let errors: Vec<SpecError> = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.0.clone(),
    };
    let findings: Vec<Finding> = match &result {
        Ok(model) => keel_design::review(model, &source, &file),
        Err(_) => Vec::new(),
    };
    let failed = !errors.is_empty() || keel_design::review::has_errors(&findings);
    match args.format {
        CheckFormat::Text => {
            if let Err(e) = &result {
                super::print_errors(e);
            }
            let mut text = String::new();
            for f in &findings {
                text.push_str(&format!(
                    "{}:{}:{}: {}[{}]: {}\n  why: {}\n  fix: {}\n",
                    f.file,
                    f.line,
                    f.column,
                    f.severity.as_str(),
                    f.code,
                    f.message,
                    f.why,
                    f.fix
                ));
            }
            if let Ok(model) = &result {
                let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
                text.push_str(&format!(
                    "{}: {} ({} collections: {}; review: {} errors, {} warnings, {} notes)\n",
                    path.display(),
                    if failed { "failed" } else { "ok" },
                    model.collections.len(),
                    model
                        .collections
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    count(Severity::Error),
                    count(Severity::Warning),
                    count(Severity::Info)
                ));
            }
            // A closed pipe (`keel check | head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        CheckFormat::Json => {
            let mut out: Vec<_> = errors
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
                        "why": "keel.toml must be valid before anything can be derived from it",
                        "fix": e.hint,
                    })
                })
                .collect();
            out.extend(findings.iter().map(|f| {
                json!({
                    "severity": f.severity.as_str(),
                    "code": f.code,
                    "file": f.file,
                    "line": f.line,
                    "column": f.column,
                    "message": f.message,
                    "hint": f.fix,
                    "why": f.why,
                    "fix": f.fix,
                })
            }));
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                json!({"ok": !failed, "findings": out})
            );
        }
        CheckFormat::Sarif => {
            let _ = writeln!(std::io::stdout().lock(), "{}", sarif(&errors, &findings));
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// SARIF 2.1.0, so GitHub code scanning can show the findings on keel.toml.
fn sarif(errors: &[SpecError], findings: &[Finding]) -> serde_json::Value {
    let location = |file: &str, line: usize, column: usize| {
        json!([{"physicalLocation": {
            "artifactLocation": {"uri": file},
            "region": {"startLine": line.max(1), "startColumn": column.max(1)}
        }}])
    };
    let mut results: Vec<_> = errors
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
                "locations": location(&e.file, e.line, e.column)
            })
        })
        .collect();
    results.extend(findings.iter().map(|f| {
        json!({
            "ruleId": f.code,
            "level": f.severity.sarif_level(),
            "message": {"text": format!("{} — why: {} — fix: {}", f.message, f.why, f.fix)},
            "locations": location(&f.file, f.line, f.column)
        })
    }));
    let mut rules =
        vec![json!({"id": "spec", "shortDescription": {"text": "keel.toml is invalid"}})];
    rules.extend(LINTS.iter().map(|l| {
        json!({
            "id": l.code,
            "name": l.name,
            "shortDescription": {"text": l.summary}
        })
    }));
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keel",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules
            }},
            "results": results
        }]
    })
}
