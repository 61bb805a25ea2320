//! The `keel` binary: parse the command line, set up logs, run one command.

mod cli;
mod commands;
mod config;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc, with argon2id's large blocks from the system allocator (see keel-alloc).
#[global_allocator]
static ALLOCATOR: keel_alloc::SplitAllocator = keel_alloc::SplitAllocator;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(commands::run(cli));
    telemetry::flush();
    code
}
