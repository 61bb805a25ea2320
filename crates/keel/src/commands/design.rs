//! `keel design`: write the architecture document and its artifacts.

use keel_design::Format;
use keel_spec::ProcessEnv;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum DesignFormat {
    Md,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct DesignArgs {
    #[command(flatten)]
    pub spec: crate::cli::SpecArg,
    /// Directory to write ARCHITECTURE.md and the artifacts into (created if missing).
    #[arg(short = 'o', long = "out", default_value = "design")]
    pub out: PathBuf,
    /// Document format: md (Markdown with Mermaid diagrams) or html (one self-contained page).
    #[arg(long, value_enum, default_value = "md")]
    pub format: DesignFormat,
}

pub async fn run(args: DesignArgs) -> ExitCode {
    let path = &args.spec.spec;
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let file = path.display().to_string();
    let model = match keel_spec::load_str(&source, &file, &ProcessEnv) {
        Ok(m) => m,
        Err(errors) => {
            super::print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let format = match args.format {
        DesignFormat::Md => Format::Markdown,
        DesignFormat::Html => Format::Html,
    };
    let files = match keel::samples::design(&model, &source, &file, format).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot run the samples: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, contents) in &files {
        let target = args.out.join(name);
        if let Some(dir) = target.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&target, contents) {
            eprintln!("error: cannot write {}: {e}", target.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "wrote {} files to {} ({})",
        files.len(),
        args.out.display(),
        files.first().map(|(n, _)| n.as_str()).unwrap_or("")
    );
    ExitCode::SUCCESS
}
