//! What the control commands share: the flags that locate and configure the control plane,
//! settings resolution, "talk to the daemon, else run in-process", signals, errors, tables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::control::config::{ControlSettings, Overrides, Paths};

/// `println!` that never panics: a closed stdout (`nex ... | head`) is not an error.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::control_ctx::write_line(false, &format!($($arg)*)) };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::control_ctx::write_line(true, &format!($($arg)*)) };
}
pub(crate) use {errln, outln};

/// Writes `line` and a newline to stdout (or stderr), ignoring write errors.
pub fn write_line(stderr: bool, line: &str) {
    use std::io::Write;
    let result = if stderr {
        let mut e = std::io::stderr().lock();
        e.write_all(line.as_bytes())
            .and_then(|()| e.write_all(b"\n"))
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(line.as_bytes())
            .and_then(|()| o.write_all(b"\n"))
            .and_then(|()| o.flush())
    };
    let _ = result;
}
use crate::control::{Control, ControlClient, ControlError, Host, HostMode};

/// Where the control plane lives: the options of every control command.
#[derive(Debug, Clone, Default, Args)]
pub struct ControlArgs {
    /// NEX home: socket, runtime db, default ledger, config.toml (default: $NEX_HOME, else
    /// ~/.nex).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Open the agents ledger even when it is a symbolic link (refused otherwise: whoever can
    /// write the link's directory would choose where every conversation is written).
    #[arg(long)]
    pub allow_symlinked_ledger: bool,
    /// The worker and source options of the commands that run workers (`backfill`, `tail`,
    /// `daemon`); default (none given) for the others.
    #[arg(skip)]
    pub worker: WorkerArgs,
}

/// How a run's worker is started and where it reads: only on the commands that run workers.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Worker and sources")]
pub struct WorkerArgs {
    /// Persona for imported sessions (default: config.toml `persona`, else `main`).
    #[arg(long, value_name = "ID")]
    pub persona: Option<String>,
    /// Worker command (default: $NEX_WORKER_CMD, else config, else `aix worker --stdio` next to
    /// this executable).
    #[arg(long, value_name = "CMD")]
    pub worker_cmd: Option<String>,
    /// Where the worker reads.
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// The source locations of a run, as the worker gets them: on the commands that run workers and
/// on `nex import verify` (which must look where an import looks).
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A Claude Code `projects` folder, or the `~/.claude` holding it (repeatable; replaces
    /// the default and --claude-config-dir).
    #[arg(long = "claude-dir", value_name = "DIR")]
    pub claude_dirs: Vec<PathBuf>,
    /// A Codex `sessions` folder, or the `~/.codex` holding it (repeatable; replaces the
    /// default and --codex-home).
    #[arg(long = "codex-dir", value_name = "DIR")]
    pub codex_dirs: Vec<PathBuf>,
    /// A Cursor `User` folder, Cursor's own folder, or a `state.vscdb` (repeatable; a global
    /// database brings its workspaces'; replaces config `cursor_db`).
    #[arg(long = "cursor-db", value_name = "PATH")]
    pub cursor_dbs: Vec<PathBuf>,
    /// An OpenCode data folder, or the folder holding it as `opencode/` (repeatable; replaces
    /// config `opencode_dir`).
    #[arg(long = "opencode-dir", value_name = "DIR")]
    pub opencode_dirs: Vec<PathBuf>,
    /// A Gemini CLI `tmp` folder, or the `~/.gemini` holding it (repeatable; replaces config
    /// `gemini_dir`).
    #[arg(long = "gemini-dir", value_name = "DIR")]
    pub gemini_dirs: Vec<PathBuf>,
    /// Claude Code config dir (`~/.claude`) passed to the worker as $CLAUDE_CONFIG_DIR
    /// (default: $CLAUDE_CONFIG_DIR, else config `claude_config_dir`).
    #[arg(long, value_name = "DIR")]
    pub claude_config_dir: Option<String>,
    /// Codex home (`~/.codex`) passed to the worker as $CODEX_HOME (default: $CODEX_HOME,
    /// else config `codex_home`).
    #[arg(long, value_name = "DIR")]
    pub codex_home: Option<String>,
}

impl WorkerArgs {
    /// Any option given: a running daemon cannot take them for one request.
    pub fn any(&self) -> bool {
        self.persona.is_some() || self.worker_cmd.is_some() || self.sources.any()
    }
}

impl SourceArgs {
    /// Any location given.
    pub fn any(&self) -> bool {
        self.claude_config_dir.is_some() || self.codex_home.is_some() || !self.no_roots()
    }

    fn no_roots(&self) -> bool {
        self.claude_dirs.is_empty()
            && self.codex_dirs.is_empty()
            && self.cursor_dbs.is_empty()
            && self.opencode_dirs.is_empty()
            && self.gemini_dirs.is_empty()
    }

    /// The source flags, each located ([`crate::aix::locate`]): a tool's home is recognised,
    /// a missing path or one of another tool is an error naming it.
    pub fn roots(&self) -> Result<crate::aix::RootOverrides, crate::aix::locate::LocateError> {
        use crate::aix::locate::locate_all;
        use crate::aix::sources::Provider;
        Ok(crate::aix::RootOverrides {
            claude_dirs: locate_all(Provider::ClaudeCode, &self.claude_dirs)?,
            codex_dirs: locate_all(Provider::Codex, &self.codex_dirs)?,
            cursor_dbs: locate_all(Provider::Cursor, &self.cursor_dbs)?,
            opencode_dirs: locate_all(Provider::OpenCode, &self.opencode_dirs)?,
            gemini_dirs: locate_all(Provider::GeminiCli, &self.gemini_dirs)?,
            full: false,
        })
    }
}

impl ControlArgs {
    /// These control options with the command's worker options.
    pub fn with_worker(&self, worker: &WorkerArgs) -> ControlArgs {
        ControlArgs {
            worker: worker.clone(),
            ..self.clone()
        }
    }

    pub fn paths(&self) -> Result<Paths, ControlError> {
        Paths::resolve(self.home.clone())
    }

    /// flags > environment > config.toml > defaults.
    pub fn settings(&self, no_import: bool) -> Result<ControlSettings, ControlError> {
        let w = &self.worker;
        let roots = w.sources.roots()?;
        let overrides = Overrides {
            persona: w.persona.clone(),
            worker_cmd: w.worker_cmd.clone(),
            claude_config_dir: w.sources.claude_config_dir.clone(),
            codex_home: w.sources.codex_home.clone(),
            roots,
            no_import,
            allow_symlinked_ledger: self.allow_symlinked_ledger,
            ..Overrides::default()
        };
        ControlSettings::load(self.paths()?, &overrides)
    }
}

/// A control plane for one command: the daemon's, or one started in this process (stopped by
/// [`Session::finish`]).
pub struct Session {
    pub control: Control,
    pub host: Option<Host>,
}

impl Session {
    /// The running daemon, or `None`.
    pub async fn daemon(args: &ControlArgs) -> Result<Option<Control>, ControlError> {
        let paths = args.paths()?;
        Ok(ControlClient::connect(&paths.socket)
            .await?
            .map(Control::Daemon))
    }

    /// The running daemon, else an in-process control plane.
    pub async fn daemon_or_local(args: &ControlArgs) -> Result<Session, ControlError> {
        if let Some(control) = Session::daemon(args).await? {
            if args.worker.any() {
                // Never a run that silently reads elsewhere than asked.
                return Err(ControlError::DaemonHasOwnSettings);
            }
            return Ok(Session {
                control,
                host: None,
            });
        }
        args.worker.sources.roots()?;
        let mut settings = args.settings(false)?;
        // The in-process plane runs only what the command asks for.
        settings.start_tail = false;
        if !settings.import_enabled {
            return Err(ControlError::ImportDisabled);
        }
        let host = Host::start(settings, HostMode::InProcess).await?;
        Ok(Session {
            control: Control::Local(host.handle.clone()),
            host: Some(host),
        })
    }

    pub fn is_local(&self) -> bool {
        self.host.is_some()
    }

    /// Stops the in-process control plane, if any (graceful: runs drained and marked).
    pub async fn finish(self) {
        drop(self.control);
        if let Some(host) = self.host {
            host.stop().await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A multi-thread runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            errln!("nex: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Prints `err` with its code and returns the failure exit code.
pub fn fail(err: &ControlError) -> ExitCode {
    tracing::debug!(error_code = %err.code(), "command failed");
    super::fmt::print_error(err, &err.code());
    if err.is_usage() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Prints `value` as one line of JSON.
pub fn print_json<T: serde::Serialize>(value: &T) {
    // Plain data: serialisation cannot fail.
    outln!(
        "{}",
        serde_json::to_string(value).expect("output serialises")
    );
}

/// A plain text table: left-aligned columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Epoch ms as a local time with its offset, `-` for `None` ([`super::fmt::time`]).
pub fn when(ms: Option<i64>) -> String {
    super::fmt::time(ms)
}

/// A duration in ms as `1h02m`, `3m04s`, `5.2s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(when(None), "-");
        assert_eq!(duration(5_200), "5.2s");
        assert_eq!(duration(184_000), "3m04s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert_eq!(
            table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]),
            "A    BB\nxyz  1"
        );
    }
}
