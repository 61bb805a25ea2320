//! `keel init`: write a starter keel.toml from a template.

use crate::cli::InitArgs;
use std::process::ExitCode;

/// The templates `keel init --template` knows, with their keel.toml.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "social",
        include_str!("../../../../examples/social/keel.toml"),
    ),
    ("shop", include_str!("../../../../examples/shop/keel.toml")),
    ("saas", include_str!("../../../../examples/saas/keel.toml")),
];

pub fn run(args: InitArgs) -> ExitCode {
    let name = args.template.name();
    let Some((_, source)) = TEMPLATES.iter().find(|(n, _)| *n == name) else {
        eprintln!("error: the template `{name}` is missing from this build");
        return ExitCode::FAILURE;
    };
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("error: cannot create {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    let path = args.dir.join("keel.toml");
    if path.exists() && !args.force {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&path, source) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {} (template `{name}`)", path.display());
    println!("next: keel check {0} && keel serve {0}", path.display());
    ExitCode::SUCCESS
}
