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

/// Where the control plane lives and how it runs workers.
#[derive(Debug, Clone, Default, Args)]
pub struct ControlArgs {
    /// NEX home: socket, runtime db, default ledger, config.toml (default: $NEX_HOME, else
    /// ~/.nex).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Persona for imported sessions (default: config.toml `persona`, else `main`).
    #[arg(long, value_name = "ID")]
    pub persona: Option<String>,
    /// Worker command (default: $NEX_WORKER_CMD, else config, else `aix worker --stdio` next to
    /// this executable).
    #[arg(long, value_name = "CMD")]
    pub worker_cmd: Option<String>,
    /// Claude Code config dir for the worker (default: $CLAUDE_CONFIG_DIR, else config).
    #[arg(long, value_name = "DIR")]
    pub claude_config_dir: Option<String>,
    /// Codex home for the worker (default: $CODEX_HOME, else config).
    #[arg(long, value_name = "DIR")]
    pub codex_home: Option<String>,
    /// Cursor `state.vscdb` for the worker (default: config `cursor_db`, else the worker's
    /// platform default).
    #[arg(long, value_name = "PATH")]
    pub cursor_db: Option<String>,
    /// OpenCode data directory for the worker (default: config `opencode_dir`, else the
    /// worker's default).
    #[arg(long, value_name = "DIR")]
    pub opencode_dir: Option<String>,
    /// Gemini CLI `tmp` directory for the worker (default: config `gemini_dir`, else the
    /// worker's default).
    #[arg(long, value_name = "DIR")]
    pub gemini_dir: Option<String>,
    /// Open the agents ledger even when it is a symbolic link (refused otherwise: whoever can
    /// write the link's directory would choose where every conversation is written).
    #[arg(long)]
    pub allow_symlinked_ledger: bool,
}

impl ControlArgs {
    pub fn paths(&self) -> Result<Paths, ControlError> {
        Paths::resolve(self.home.clone())
    }

    /// flags > environment > config.toml > defaults.
    pub fn settings(&self, no_import: bool) -> Result<ControlSettings, ControlError> {
        let overrides = Overrides {
            persona: self.persona.clone(),
            worker_cmd: self.worker_cmd.clone(),
            claude_config_dir: self.claude_config_dir.clone(),
            codex_home: self.codex_home.clone(),
            cursor_db: self.cursor_db.clone(),
            opencode_dir: self.opencode_dir.clone(),
            gemini_dir: self.gemini_dir.clone(),
            no_import,
            allow_symlinked_ledger: self.allow_symlinked_ledger,
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
            if args.persona.is_some()
                || args.worker_cmd.is_some()
                || args.claude_config_dir.is_some()
                || args.codex_home.is_some()
                || args.cursor_db.is_some()
                || args.opencode_dir.is_some()
                || args.gemini_dir.is_some()
            {
                errln!(
                    "nex: a daemon is running: it uses its own persona, worker and source settings; \
                     --persona/--worker-cmd and the source flags are ignored"
                );
            }
            return Ok(Session {
                control,
                host: None,
            });
        }
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
    errln!("nex: {err} [{}]", err.code());
    ExitCode::FAILURE
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

/// Epoch ms as `YYYY-MM-DD HH:MM:SS` UTC; empty for `None`.
pub fn when(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
        assert_eq!(when(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(when(Some(1_764_120_000_000)), "2025-11-26 01:20:00");
        assert_eq!(duration(5_200), "5.2s");
        assert_eq!(duration(184_000), "3m04s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert_eq!(
            table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]),
            "A    BB\nxyz  1"
        );
    }
}
