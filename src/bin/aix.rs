//! `aix`: the NEX session import worker. Thin: argument parsing and process setup; the logic
//! lives in `nex::aix`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use nex::aix::{self, RootOverrides, StopSignal, WorkerOptions};
use nex::protocol::RunMode;

#[derive(Parser)]
#[command(
    name = "aix",
    version,
    about = "Reads AI coding agent sessions and emits NEX import frames"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
struct Roots {
    /// A Claude Code `projects` directory, or the `~/.claude` holding it (repeatable; default
    /// from $CLAUDE_CONFIG_DIR or ~/.claude).
    #[arg(long = "claude-dir", value_name = "DIR")]
    claude_dirs: Vec<PathBuf>,
    /// A Codex `sessions` directory, or the `~/.codex` holding it (repeatable; default from
    /// $CODEX_HOME or ~/.codex).
    #[arg(long = "codex-dir", value_name = "DIR")]
    codex_dirs: Vec<PathBuf>,
    /// A Cursor `User` folder or `state.vscdb` (repeatable; a global database brings the
    /// workspace databases beside it; default ~/.config/Cursor/User or ~/Library/Application
    /// Support/Cursor/User, where it exists).
    #[arg(long = "cursor-db", value_name = "PATH")]
    cursor_dbs: Vec<PathBuf>,
    /// An OpenCode data directory holding opencode.db and/or storage/, or the folder holding it
    /// as `opencode/` (repeatable; default
    /// $OPENCODE_DATA_DIR or ~/.local/share/opencode, where it exists).
    #[arg(long = "opencode-dir", value_name = "DIR")]
    opencode_dirs: Vec<PathBuf>,
    /// A Gemini CLI `tmp` directory holding `<project>/chats/`, or the `~/.gemini` holding it
    /// (repeatable; default ~/.gemini/tmp, where it exists).
    #[arg(long = "gemini-dir", value_name = "DIR")]
    gemini_dirs: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Speak IPC protocol v1 with NEX over stdin/stdout.
    Worker {
        /// Use stdin/stdout (the only transport so far).
        #[arg(long)]
        stdio: bool,
        #[command(flatten)]
        roots: Roots,
    },
    /// Write the frames of one run to stdout without a handshake (pipe into `nex import replay -`).
    Emit {
        #[arg(long, value_enum)]
        mode: Mode,
        #[command(flatten)]
        roots: Roots,
        /// Read every file whole, ignoring cursors.
        #[arg(long)]
        full: bool,
    },
    /// Summarise the sessions under the roots, or print their items as JSON lines.
    Scan {
        #[command(flatten)]
        roots: Roots,
        /// Print items as JSON lines instead of the summary.
        #[arg(long, conflicts_with = "sessions")]
        json: bool,
        /// Print one JSON line of figures per session (turns, messages, tool calls, spawn
        /// links, token sums, lineage), as `nex import verify` compares them with the ledger.
        #[arg(long)]
        sessions: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Backfill,
    Tail,
}

fn main() -> ExitCode {
    nex::memory::tune_allocator();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Plain lines for users and for nex's log: no colours, no Rust module paths.
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let roots = match &cli.command {
        Command::Worker { roots, .. }
        | Command::Emit { roots, .. }
        | Command::Scan { roots, .. } => roots.located(),
    };
    if let Err(e) = roots {
        eprintln!("aix: {e} [{}]", e.code());
        return ExitCode::from(2);
    }
    let factory = aix::default_parser_factory();
    let result = match cli.command {
        Command::Worker { stdio, roots } => {
            if !stdio {
                eprintln!("aix worker: only --stdio is supported");
                return ExitCode::from(2);
            }
            aix::pipe::enlarge_stdout_pipe();
            let stop = Arc::new(StopSignal::default());
            watch_signals(stop.clone());
            stdout().and_then(|out| {
                aix::run_worker(
                    std::io::BufReader::new(std::io::stdin()),
                    out,
                    &overrides(&roots, false),
                    factory,
                    stop,
                )
            })
        }
        Command::Emit { mode, roots, full } => {
            aix::pipe::enlarge_stdout_pipe();
            let stop = Arc::new(StopSignal::default());
            watch_signals(stop.clone());
            let mode = match mode {
                Mode::Backfill => RunMode::Backfill,
                Mode::Tail => RunMode::Tail,
            };
            let options = WorkerOptions::resolve(&overrides(&roots, full), None);
            stdout().and_then(|out| aix::emit(mode, options, &factory, out, &stop).map(|_| ()))
        }
        Command::Scan {
            roots,
            json,
            sessions,
        } => {
            let options = WorkerOptions::resolve(&overrides(&roots, false), None);
            if sessions {
                scan_sessions(&options, &factory)
            } else {
                scan(&options, &factory, json)
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error_code = %e.code(), error = %e, "aix failed");
            ExitCode::FAILURE
        }
    }
}

impl Roots {
    /// The given locations, each as the parser reads it (a tool's home is recognised), or the
    /// first one that is missing or of another tool.
    fn located(&self) -> Result<Roots, aix::locate::LocateError> {
        use aix::locate::locate_all;
        use aix::sources::Provider;
        Ok(Roots {
            claude_dirs: locate_all(Provider::ClaudeCode, &self.claude_dirs)?,
            codex_dirs: locate_all(Provider::Codex, &self.codex_dirs)?,
            cursor_dbs: locate_all(Provider::Cursor, &self.cursor_dbs)?,
            opencode_dirs: locate_all(Provider::OpenCode, &self.opencode_dirs)?,
            gemini_dirs: locate_all(Provider::GeminiCli, &self.gemini_dirs)?,
        })
    }
}

/// The located roots (checked in `main` before any command runs).
fn overrides(roots: &Roots, full: bool) -> RootOverrides {
    let roots = roots.located().unwrap_or_else(|_| roots.clone());
    RootOverrides {
        claude_dirs: roots.claude_dirs,
        codex_dirs: roots.codex_dirs,
        cursor_dbs: roots.cursor_dbs,
        opencode_dirs: roots.opencode_dirs,
        gemini_dirs: roots.gemini_dirs,
        full,
    }
}

fn stdout() -> Result<Box<dyn std::io::Write + Send>, aix::WorkerError> {
    aix::pipe::stdout_writer().map_err(aix::WorkerError::Output)
}

fn scan(
    options: &WorkerOptions,
    factory: &aix::ParserFactory,
    json: bool,
) -> Result<(), aix::WorkerError> {
    let mut out = stdout()?;
    let summary = if json {
        aix::scan(options, factory, Some(&mut *out))
    } else {
        aix::scan(options, factory, None)
    }
    .map_err(aix::WorkerError::Output)?;
    if !json {
        out.write_all(aix::render_summary(&summary).as_bytes())
            .map_err(aix::WorkerError::Output)?;
    }
    out.flush().map_err(aix::WorkerError::Output)
}

fn scan_sessions(
    options: &WorkerOptions,
    factory: &aix::ParserFactory,
) -> Result<(), aix::WorkerError> {
    let (_, figures) = aix::scan_figures(options, factory).map_err(aix::WorkerError::Output)?;
    let mut out = stdout()?;
    for f in &figures {
        // Plain data: serialisation cannot fail; only the write can.
        let mut line = serde_json::to_vec(f).map_err(|e| aix::WorkerError::Output(e.into()))?;
        line.push(b'\n');
        out.write_all(&line).map_err(aix::WorkerError::Output)?;
    }
    out.flush().map_err(aix::WorkerError::Output)
}

/// SIGINT / SIGTERM -> stop (the run flushes what it has and ends with `run.complete`). The handlers
/// are installed before this returns, so a signal sent right after start is not lost.
fn watch_signals(stop: Arc<StopSignal>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            tracing::warn!("signal handling unavailable");
            return;
        };
        let handlers = {
            let _guard = rt.enter();
            signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
        };
        let Ok((mut term, mut int)) = handlers else {
            tracing::warn!("signal handling unavailable");
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("aix-signals".into())
            .spawn(move || {
                rt.block_on(async {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                });
                tracing::info!("signal received; stopping");
                stop.stop();
            });
        if spawned.is_err() {
            tracing::warn!("signal handling unavailable");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = stop;
        tracing::warn!("signal handling unavailable on this platform");
    }
}
