//! `keel migrate`: plan the schema change, show it, apply it in one transaction.

use crate::cli::MigrateArgs;
use crate::config;
use keel_spec::Model;
use keel_store::{Store, StoreError};
use std::process::ExitCode;

pub async fn run(args: MigrateArgs, model: Model) -> ExitCode {
    let url = config::database_url(args.database.database.as_deref(), &model, &args.spec.spec);
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", keel_store::redact(&url));
            return ExitCode::FAILURE;
        }
    };
    if args.plan {
        return match store.plan(&model).await {
            Ok(plan) if plan.is_empty() => {
                println!("-- the database is up to date");
                ExitCode::SUCCESS
            }
            Ok(plan) => {
                print!("{}", plan.script());
                if plan.has_destructive() {
                    eprintln!(
                        "note: this plan has destructive steps; applying it needs --allow-destructive"
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match store.migrate(&model, args.allow_destructive).await {
        Ok(plan) if plan.is_empty() => {
            println!("the database is up to date");
            ExitCode::SUCCESS
        }
        Ok(plan) => {
            let n = plan.steps.len();
            for (i, step) in plan.steps.iter().enumerate() {
                println!("[{}/{n}] {}", i + 1, step.description);
            }
            println!("applied {n} step{}", if n == 1 { "" } else { "s" });
            ExitCode::SUCCESS
        }
        Err(StoreError::Destructive(plan)) => {
            eprintln!("error: the migration would lose data:");
            for step in plan.destructive() {
                eprintln!("  - {}", step.description);
            }
            eprintln!(
                "run `keel migrate --plan` to see the SQL, then `keel migrate --allow-destructive` to apply it"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
