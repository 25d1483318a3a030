//! The `nex` command line: the clap tree and one module per command. Adding a command is one
//! enum variant here plus its module (`import replay`, `daemon`, `sessions ...` come later).
//!
//! Layout:
//! - `apply`: `nex import apply`: apply service-level requests from JSON Lines to a ledger.

pub mod apply;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nex: the NEX session import service.
#[derive(Debug, Parser)]
#[command(name = "nex", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import sessions into the agents ledger.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `nex import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Apply service-level import and chunk requests (JSON Lines) to the ledger, printing one
    /// JSON response line per request line.
    Apply(apply::ApplyArgs),
}

/// Runs a parsed command line; the exit code reports I/O failures, not request errors (those
/// are printed as response lines).
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Import(ImportCommand::Apply(args)) => apply::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error_code = err.code(), "{err}");
            eprintln!("nex: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
