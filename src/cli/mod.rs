//! The `nex` command line: the clap tree and one module per command. Adding a command is one
//! enum variant here plus its module (`import replay`, `daemon`, `sessions ...` come later).
//!
//! Layout:
//! - `apply`: `nex import apply`: apply service-level requests from JSON Lines to a ledger.
//! - `daemon`: `nex daemon`: the daemon in the foreground; `nex daemon stop`.
//! - `service`: `nex service install|uninstall|status`: the daemon as a systemd/launchd user
//!   service.
//! - `import_ctl`: `nex import backfill|tail|stop|restart|watch`: operator controls.
//! - `status`: `nex import status|jobs`.
//! - `sessions`: `nex sessions list|show|export`: what landed in the ledger.
//! - `usage`: `nex usage`: tokens and cost, subagents rolled up.
//! - `search`: `nex search`: full-text search over the ledger.
//! - `mcp`: `nex mcp`: the MCP server on stdio.
//! - `replay`: `nex import replay`: run a recorded worker frame stream through the pipeline.
//! - `verify`: `nex import verify`: what the sources hold against what the ledger holds.
//! - `doctor`: `nex doctor`: where each provider was looked for, what the sources and the
//!   ledger hold, what was skipped, whether the daemon and tail run.
//! - `fmt`: the output conventions (local times with offset, `--utc`, `-`, plurals, colour,
//!   the one error line).
//! - `replica`: `nex replica status|sync`: the shared PostgreSQL replica.
//! - `control_ctx`: what the control commands share (flags, daemon-or-in-process, tables).

pub mod apply;
pub mod control_ctx;
pub mod daemon;
pub mod doctor;
pub mod fmt;
pub mod import_ctl;
pub mod mcp;
pub mod replay;
pub mod replica;
pub mod search;
pub mod service;
pub mod sessions;
pub mod sql;
pub mod status;
pub mod usage;
pub mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nex: the NEX session import service.
#[derive(Debug, Parser)]
#[command(
    name = "nex",
    version,
    about,
    after_help = "EXAMPLES:
  nex import backfill --wait           import every local agent history (re-run: only what changed)
  nex sessions list --provider codex   what landed in the ledger
  nex sessions show LABEL              one session's turns, lineage and counts
  nex daemon                           keep importing every new turn (nex service install: at login)
  nex import status                    the daemon, its tail and jobs
  nex daemon stop                      stop it
  nex doctor                           something seems missing: where nex looked, and what it found"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Show times in UTC instead of the local time zone (`TZ`, else the system's).
    #[arg(long, global = true)]
    pub utc: bool,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import sessions into the agents ledger.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run the daemon in the foreground: control socket, tail, backfill jobs (`nex daemon stop`
    /// stops it).
    Daemon(Box<daemon::DaemonArgs>),
    /// What landed in the agents ledger.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Run the daemon at login as a user service (systemd on Linux, launchd on macOS).
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Full-text search over every session's messages and tool calls (FTS5 syntax).
    Search(search::SearchArgs),
    /// A Model Context Protocol server on stdin/stdout: read-only tools search_sessions,
    /// list_sessions, get_session, get_usage, for agents to look up their history.
    Mcp(mcp::McpArgs),
    /// Where each provider's sessions were looked for, what the sources and the ledger hold,
    /// what was skipped and why, whether the daemon and its tail run.
    Doctor(Box<doctor::DoctorArgs>),
    /// Tokens and cost: input, output, cache reads and writes, reasoning, total, turns,
    /// sessions, by day, week, month, project, model, provider or session; subagents count in
    /// the session that spawned them.
    Usage(usage::UsageArgs),
    /// The shared PostgreSQL replica of the ledger (`[replica]` in config.toml).
    #[command(subcommand)]
    Replica(replica::ReplicaCommand),
    /// A read-only SQL query over the ledger, with `nex_text(x)`: the text of a tool call's
    /// compressed `params_json` or `result_json`.
    Sql(sql::SqlArgs),
}

/// `nex import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Apply service-level import and chunk requests (JSON Lines) to the ledger, printing one
    /// JSON response line per input line.
    ///
    /// Every input line gets exactly one response line, in order (a blank line gets
    /// `request_empty`). Exit status: 0 when every line succeeded; 1 when any line failed (its
    /// response line says why; the run goes on to the end), or the input, the output or the
    /// ledger failed.
    #[command(display_order = 100)]
    Apply(apply::ApplyArgs),
    /// Enqueue a backfill job (without a daemon: run it here, in the foreground).
    #[command(after_help = "EXAMPLES:
  nex import backfill --wait                     import what changed since the last run
  nex import backfill --wait --full              read every file again (the ledger converges, nothing doubles)
  nex import backfill --wait --claude-dir ~/.claude --codex-dir /backup/.codex/sessions")]
    Backfill(import_ctl::BackfillArgs),
    /// Start the tail (without a daemon: run it here, in the foreground).
    Tail(import_ctl::TailArgs),
    /// Stop the tail or cancel a backfill job.
    Stop(import_ctl::StopArgs),
    /// Restart the tail, clearing its restart count and error state.
    Restart(import_ctl::RestartArgs),
    /// Runs, jobs, health, lag, counters, rejects.
    Status(status::StatusArgs),
    /// Backfill job history.
    Jobs(status::JobsArgs),
    /// Stream the daemon's import events as JSON lines.
    Watch(import_ctl::WatchArgs),
    /// Run a recorded stream of worker frames through the import pipeline into the ledger,
    /// printing one JSON run report.
    #[command(display_order = 101)]
    Replay(replay::ReplayArgs),
    /// Compare what the sources hold (per session: turns, messages, tool calls, spawn links,
    /// tokens, lineage, as `aix scan --sessions` counts them) with what the ledger holds, and
    /// list every mismatch and the sessions whose source is gone. Exit 0 when everything
    /// matches, 1 on a mismatch.
    Verify(verify::VerifyArgs),
}

/// Runs a parsed command line; the exit code reports I/O failures, not request errors (those
/// are printed as response lines).
pub fn run(cli: Cli) -> ExitCode {
    fmt::set_utc(cli.utc);
    let result = match cli.command {
        Command::Import(ImportCommand::Apply(args)) => apply::run(&args),
        Command::Import(ImportCommand::Replay(args)) => return replay::main(&args),
        Command::Import(ImportCommand::Verify(args)) => return verify::run(args),
        // The control commands report their own errors and choose their exit codes.
        Command::Import(ImportCommand::Backfill(args)) => return import_ctl::backfill(args),
        Command::Import(ImportCommand::Tail(args)) => return import_ctl::tail(args),
        Command::Import(ImportCommand::Stop(args)) => return import_ctl::stop(args),
        Command::Import(ImportCommand::Restart(args)) => return import_ctl::restart(args),
        Command::Import(ImportCommand::Status(args)) => return status::status(args),
        Command::Import(ImportCommand::Jobs(args)) => return status::jobs(args),
        Command::Import(ImportCommand::Watch(args)) => return import_ctl::watch(args),
        Command::Daemon(args) => return daemon::run(*args),
        Command::Sessions(sessions::SessionsCommand::List(args)) => return sessions::list(args),
        Command::Sessions(sessions::SessionsCommand::Show(args)) => return sessions::show(args),
        Command::Sessions(sessions::SessionsCommand::Export(args)) => {
            return sessions::export(args);
        }
        Command::Usage(args) => return usage::run(args),
        Command::Service(service::ServiceCommand::Install(args)) => return service::install(args),
        Command::Service(service::ServiceCommand::Uninstall(args)) => {
            return service::uninstall(args);
        }
        Command::Service(service::ServiceCommand::Status(args)) => return service::status(args),
        Command::Search(args) => return search::run(args),
        Command::Mcp(args) => return mcp::run(args),
        Command::Doctor(args) => return doctor::run(*args),
        Command::Replica(replica::ReplicaCommand::Status(args)) => return replica::status(args),
        Command::Replica(replica::ReplicaCommand::Sync(args)) => return replica::sync(args),
        Command::Sql(args) => return sql::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::debug!(error_code = %err.code(), "command failed");
            fmt::print_error(&err, &err.code());
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    init_tracing_with_default("warn");
}

/// Logs to stderr, filtered by `RUST_LOG`, else `default` (the daemon logs at `info`).
pub fn init_tracing_with_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal and without NO_COLOR: a daemon's stderr usually goes to a
        // journal. No Rust module paths: the lines are for users.
        .with_ansi(fmt::color_stderr())
        .with_target(false)
        .try_init();
}
