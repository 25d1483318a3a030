//! `nex`: the daemon and operator CLI of the NEX session import service.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    nex::memory::tune_allocator();
    let cli = nex::cli::Cli::parse();
    match cli.command {
        nex::cli::Command::Daemon(_) => nex::cli::init_tracing_with_default("info"),
        _ => nex::cli::init_tracing(),
    }
    nex::cli::run(cli)
}
