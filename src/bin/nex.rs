//! `nex`: the daemon and operator CLI of the NEX session import service.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    nex::cli::init_tracing();
    nex::cli::run(nex::cli::Cli::parse())
}
