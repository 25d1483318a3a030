//! `nex doctor [--json]`: the one command to run when something seems missing. For each
//! provider: where the worker would look (and whether each place exists), the files and
//! sessions the sources hold (an `aix scan`, in this process, with the locations an import's
//! worker gets), the sessions the ledger holds, and what was skipped and why (unreadable
//! files, malformed lines, records that are not messages, by type); then whether a daemon and
//! its tail run. Reads only: the ledger is opened read-only, nothing is created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::control_ctx::{
    ControlArgs, Session, WorkerArgs, fail, outln, print_json, runtime, table,
};
use super::fmt::count;
use crate::aix::{RootOverrides, WorkerOptions};
use crate::control::config::ControlSettings;
use crate::control::health::StatusReport;
use crate::control::{ControlError, Request};

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Print one JSON object (see docs/control.md, "nex doctor") instead of the report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// `nex doctor --json`.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub providers: Vec<ProviderReport>,
    pub ledger: LedgerReport,
    pub daemon: DaemonReport,
}

#[derive(Debug, Serialize)]
pub struct ProviderReport {
    pub provider: &'static str,
    /// Where the worker looks, each with whether it exists.
    pub locations: Vec<Location>,
    /// Session files (stores, for Cursor and OpenCode) found there.
    pub files: u64,
    /// Sessions those files and stores hold (subagents included).
    pub sessions: u64,
    /// Sessions of this provider in the ledger.
    pub ledger_sessions: u64,
    /// Files (or stores) that could not be read.
    pub unreadable_files: u64,
    /// Lines that are not JSON even after repair (not imported).
    pub malformed_lines: u64,
    /// Lines imported after repairing bytes.
    pub lossy_lines: u64,
    /// Records that are not messages and are not imported, by record type (a format this
    /// version does not know shows here under its type).
    pub skipped_records: BTreeMap<String, u64>,
    /// Files read whole that gave no session (a format this version does not read, or no
    /// conversation in them).
    pub skipped_files: u64,
    /// Those files by the format version seen in them (`version 2.0.14`, `cli_version
    /// 0.46.0`, `pre-envelope`, `json document`; `none` when no record marked it).
    pub skipped_file_formats: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Location {
    pub path: PathBuf,
    pub exists: bool,
}

#[derive(Debug, Serialize)]
pub struct LedgerReport {
    pub path: PathBuf,
    pub exists: bool,
    pub sessions: u64,
}

#[derive(Debug, Serialize)]
pub struct DaemonReport {
    pub running: bool,
    pub pid: Option<u32>,
    /// The tail's state (`running`, `stopped`, `backoff`, `error`, `disabled`); `null`
    /// without a daemon.
    pub tail: Option<String>,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(report(&args)) {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                print(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn report(args: &DoctorArgs) -> Result<DoctorReport, ControlError> {
    let control = args.control.with_worker(&args.worker);
    let settings = control.settings(false)?;
    let options = worker_options(&settings);
    let factory = crate::aix::default_parser_factory();
    let summary = tokio::task::spawn_blocking(move || crate::aix::scan(&options, &factory, None))
        .await
        .map_err(|_| ControlError::BadRequest("the source scan panicked".into()))?
        .map_err(|e| ControlError::Io {
            path: PathBuf::from("-"),
            source: e,
        })?;
    let ledger_path = settings.paths.ledger.clone();
    let in_ledger = ledger_counts(&ledger_path);
    let providers = summary
        .into_iter()
        .map(|(provider, p)| ProviderReport {
            provider: provider.as_str(),
            locations: p
                .locations
                .iter()
                .map(|l| Location {
                    path: l.clone(),
                    exists: l.exists(),
                })
                .collect(),
            files: p.files,
            sessions: p.sessions + p.subagent_sessions,
            ledger_sessions: in_ledger.get(provider.as_str()).copied().unwrap_or(0),
            unreadable_files: p.unreadable_files,
            malformed_lines: p.malformed_lines,
            lossy_lines: p.lossy_lines,
            skipped_records: p.skipped_records,
            skipped_files: p.skipped_files,
            skipped_file_formats: p.skipped_file_formats,
        })
        .collect();
    let daemon = match Session::daemon(&args.control).await? {
        Some(mut c) => match c.call::<StatusReport>(Request::Status).await {
            Ok(st) => DaemonReport {
                running: true,
                pid: Some(st.pid),
                tail: serde_json::to_value(st.tail.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned)),
            },
            Err(_) => DaemonReport {
                running: true,
                pid: None,
                tail: None,
            },
        },
        None => DaemonReport {
            running: false,
            pid: None,
            tail: None,
        },
    };
    Ok(DoctorReport {
        providers,
        ledger: LedgerReport {
            exists: ledger_path.exists(),
            sessions: in_ledger.values().sum(),
            path: ledger_path,
        },
        daemon,
    })
}

/// The locations an import's worker gets from these settings: flags, then the Claude Code and
/// Codex homes (as `CLAUDE_CONFIG_DIR` / `CODEX_HOME` would give them), then config, then the
/// worker's defaults.
pub fn worker_options(settings: &ControlSettings) -> WorkerOptions {
    let s = &settings.sources;
    let mut flags: RootOverrides = s.given.clone();
    if flags.claude_dirs.is_empty()
        && let Some(dirs) = &s.claude_config_dir
    {
        flags.claude_dirs = dirs
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| Path::new(d.trim()).join("projects"))
            .collect();
    }
    if flags.codex_dirs.is_empty()
        && let Some(home) = &s.codex_home
    {
        flags.codex_dirs = vec![Path::new(home).join("sessions")];
    }
    let one = |v: &Option<String>| v.iter().map(PathBuf::from).collect::<Vec<_>>();
    if flags.cursor_dbs.is_empty() {
        flags.cursor_dbs = one(&s.cursor_db);
    }
    if flags.opencode_dirs.is_empty() {
        flags.opencode_dirs = one(&s.opencode_dir);
    }
    if flags.gemini_dirs.is_empty() {
        flags.gemini_dirs = one(&s.gemini_dir);
    }
    WorkerOptions::resolve(&flags, None)
}

/// Sessions per provider in the ledger (by the provider part of their label); none when the
/// ledger does not exist or cannot be read.
fn ledger_counts(path: &Path) -> BTreeMap<String, u64> {
    if !path.exists() {
        return BTreeMap::new();
    }
    let read = || -> rusqlite::Result<BTreeMap<String, u64>> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::ledger::text::register(&conn)?;
        let mut stmt = conn.prepare(
            "SELECT substr(label, 8, instr(substr(label, 8), ':') - 1) AS p, COUNT(*) \
             FROM sessions WHERE label LIKE 'import:%' GROUP BY p",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| r.map(|(p, n)| (p, n.max(0) as u64))).collect()
    };
    read().unwrap_or_else(|e| {
        tracing::warn!(ledger = %path.display(), error = %e, "cannot count the ledger's sessions");
        BTreeMap::new()
    })
}

/// `  claude-code: /h/.claude/projects (missing)`, one line per provider: where a worker with
/// these settings looks.
pub fn where_it_looks(settings: &ControlSettings) -> Vec<String> {
    let options = worker_options(settings);
    crate::aix::sources::Provider::ALL
        .iter()
        .map(|p| {
            let places: Vec<String> = crate::aix::scan::locations(&options, *p)
                .iter()
                .map(|l| {
                    let state = if l.exists() { "found" } else { "missing" };
                    format!("{} ({state})", l.display())
                })
                .collect();
            if places.is_empty() {
                format!(
                    "  {}: no location to look in ($HOME is not set)",
                    p.as_str()
                )
            } else {
                format!("  {}: {}", p.as_str(), places.join(", "))
            }
        })
        .collect()
}

fn print(r: &DoctorReport) {
    let rows: Vec<Vec<String>> = r
        .providers
        .iter()
        .map(|p| {
            vec![
                p.provider.to_owned(),
                p.files.to_string(),
                p.sessions.to_string(),
                p.ledger_sessions.to_string(),
                p.unreadable_files.to_string(),
                p.malformed_lines.to_string(),
                p.skipped_records.values().sum::<u64>().to_string(),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(
            &[
                "PROVIDER",
                "FILES",
                "SESSIONS",
                "IN LEDGER",
                "UNREADABLE",
                "MALFORMED LINES",
                "SKIPPED RECORDS",
            ],
            &rows
        )
    );
    outln!("");
    for p in &r.providers {
        if p.locations.is_empty() {
            outln!("{}: no location to look in ($HOME is not set)", p.provider);
        } else {
            let looked: Vec<String> = p
                .locations
                .iter()
                .map(|l| {
                    format!(
                        "{} ({})",
                        l.path.display(),
                        if l.exists { "found" } else { "missing" }
                    )
                })
                .collect();
            outln!("{}: looked in {}", p.provider, looked.join(", "));
        }
        if !p.skipped_records.is_empty() {
            let kinds: Vec<String> = p
                .skipped_records
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            outln!(
                "  records not imported (not messages): {}",
                kinds.join(", ")
            );
        }
        if p.skipped_files > 0 {
            let formats: Vec<String> = p
                .skipped_file_formats
                .iter()
                .map(|(f, n)| format!("{f} ({n})"))
                .collect();
            outln!(
                "  {} gave no session (a format this version does not read, or no \
                 conversation in them); format seen: {}",
                count(p.skipped_files, "file", "files"),
                formats.join(", ")
            );
        }
        if p.sessions > p.ledger_sessions {
            outln!(
                "  {} in the sources but not in the ledger: run `nex import backfill`",
                count(p.sessions - p.ledger_sessions, "session", "sessions")
            );
        }
    }
    outln!("");
    outln!(
        "ledger: {} ({})",
        r.ledger.path.display(),
        if r.ledger.exists {
            count(r.ledger.sessions, "session", "sessions")
        } else {
            "not created yet: run `nex import backfill`".to_owned()
        }
    );
    match (&r.daemon.pid, &r.daemon.tail) {
        (Some(pid), Some(tail)) => outln!("daemon: running (pid {pid}), tail {tail}"),
        _ if r.daemon.running => outln!("daemon: running, status unknown"),
        _ => outln!(
            "daemon: not running (new sessions are imported only by `nex import backfill`, \
             `nex import tail` or `nex daemon`)"
        ),
    }
}
