//! One module per command.

mod admin;
mod check;
pub mod design;
mod events;
mod init;
mod migrate;
mod serve;

use crate::cli::{Cli, Command, LogFormatArg};
use keel_spec::{LogFormat, Model, ProcessEnv, SpecErrors};
use std::path::Path;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> ExitCode {
    let json_logs = |model: Option<&Model>| match cli.log_format {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Pretty) => false,
        None => model.and_then(|m| m.server.log_format) == Some(LogFormat::Json),
    };
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Check(args) => check::run(args),
        Command::Design(args) => design::run(args).await,
        Command::Schema => {
            match serde_json::to_string_pretty(&keel_spec::schema::json_schema()) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Migrate(args) => {
            let Some(model) = load(&args.spec.spec) else {
                return ExitCode::FAILURE;
            };
            crate::telemetry::init(json_logs(Some(&model)), &cli.log, false);
            migrate::run(args, model).await
        }
        Command::Admin(args) => {
            let Some(model) = load(&args.spec.spec) else {
                return ExitCode::FAILURE;
            };
            crate::telemetry::init(json_logs(Some(&model)), &cli.log, false);
            admin::run(args, model).await
        }
        Command::Events(args) => {
            let Some(model) = load(&args.spec.spec) else {
                return ExitCode::FAILURE;
            };
            crate::telemetry::init(json_logs(Some(&model)), &cli.log, false);
            events::run(args, model).await
        }
        Command::Serve(args) => {
            let Some(model) = load(&args.spec.spec) else {
                return ExitCode::FAILURE;
            };
            let json = json_logs(Some(&model));
            crate::telemetry::init(json, &cli.log, true);
            serve::run(args, model, json).await
        }
    }
}

/// Load the spec, printing every error to stderr.
pub fn load(path: &Path) -> Option<Model> {
    match keel_spec::load_file(path, &ProcessEnv) {
        Ok(model) => Some(model),
        Err(errors) => {
            print_errors(&errors);
            None
        }
    }
}

pub fn print_errors(errors: &SpecErrors) {
    eprintln!("{errors}");
    let n = errors.0.len();
    eprintln!("\n{n} error{} in the spec", if n == 1 { "" } else { "s" });
}
