//! `nex sessions list|show|export`: what landed in the agents ledger, read through a
//! read-only connection (the daemon may be writing; WAL lets both run). `list` and `show`
//! print counts, ids and a title (the tool's, else the first prompt, cut); `export` prints a
//! whole session. The queries are in [`crate::query`]; this module parses flags and prints.
//!
//! Layout: this file the flags, the ledger's opening (first run, read-only) and `list`;
//! `show` and `export` one file each.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::control_ctx::{ControlArgs, errln, outln, print_json, table, when};
use crate::control::ControlError;
use crate::query::sessions::{ListFilter, SessionOverview, list_labels, session_overview};
use crate::query::{Filters, QueryError};

mod export;
mod show;

pub use export::export;
pub use show::{SessionDetail, TurnSummary, show};

#[derive(Debug, Clone, Subcommand)]
pub enum SessionsCommand {
    /// Imported sessions, most recently updated first.
    #[command(after_help = "EXAMPLES:
  nex sessions list                        the 50 most recently updated sessions
  nex sessions list --provider claude-code --limit 10
  nex sessions list --json | jq -r '.[].label'")]
    List(ListArgs),
    /// One session: import mapping, turns, message and tool-call counts, lineage.
    Show(ShowArgs),
    /// One session as a document: turns, messages, tool calls (long parameters and results
    /// cut with a marker), and its subagents inline under the tool calls that spawned them.
    Export(ExportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Agents ledger (default: $NEX_LEDGER, else config `ledger`, else $NEX_HOME/agents.db).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Only sessions of this provider.
    #[arg(long, value_name = "P", value_parser = super::fmt::provider_names())]
    pub provider: Option<String>,
    /// Only sessions whose project (workspace) is this directory or under it.
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Only sessions updated at or after: YYYY-MM-DD (from its midnight, local time; UTC under
    /// --utc), an RFC 3339 time, or 12h / 7d / 2w ago.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// At most this many sessions, most recently updated first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print a JSON array of sessions (`SessionSummary`, docs/control.md) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The sessions of every machine in the shared replica (`[replica]` in config.toml).
    #[arg(long)]
    pub replica: bool,
    /// With `--replica`: one row per machine (sessions, turns, last update, watermark).
    #[arg(long, value_enum, requires = "replica")]
    pub by: Option<super::replica::SessionsBy>,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The session: its label (`import:<provider>:<session>:<hash>`), a unique prefix of
    /// one, or the tool's own session id (or a unique prefix of it).
    pub label: String,
    /// Print the session as one JSON object (`SessionDetail`, docs/control.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Md,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// The session: its label, a unique prefix of one, or the tool's own session id (or a
    /// unique prefix of it).
    pub label: String,
    #[arg(long, value_enum, default_value_t = ExportFormat::Md)]
    pub format: ExportFormat,
    /// Mask what looks like a secret (API keys, tokens, passwords in URLs, private keys) and
    /// the home directory (as `~`).
    #[arg(long)]
    pub redact: bool,
    /// Tool parameters, results and errors longer than this many characters are cut.
    #[arg(long, value_name = "N", default_value_t = crate::query::export::DEFAULT_MAX_TOOL_CHARS)]
    pub max_tool_chars: usize,
    /// Write to this file (created with mode 0600) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub use crate::query::sessions::SessionSummary;

/// What every read command says before the first import (no ledger, or no session in it).
pub const NO_SESSIONS_YET: &str = "no sessions yet: run `nex import backfill`";

/// The ledger `args` name: the flag, else `$NEX_LEDGER`, config `ledger`, `$NEX_HOME/agents.db`.
pub(crate) fn ledger_path(args: &LedgerArgs) -> Result<PathBuf, ControlError> {
    Ok(match &args.ledger {
        Some(p) => p.clone(),
        None => args.control.settings(false)?.paths.ledger,
    })
}

/// The ledger, read-only; `None` before the first import (no file, or no sessions table yet).
/// Never creates the file.
///
/// Errors: `store_failed` when the file exists but cannot be read as a ledger.
pub(crate) fn open(args: &LedgerArgs) -> Result<Option<Connection>, ControlError> {
    open_path(&ledger_path(args)?)
}

fn open_path(path: &Path) -> Result<Option<Connection>, ControlError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(ControlError::store("open_ledger_read_only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(ControlError::store("open_ledger_read_only"))?;
    crate::ledger::text::register(&conn).map_err(ControlError::store("open_ledger_read_only"))?;
    Ok(has_schema(&conn)?.then_some(conn))
}

/// Whether the ledger holds no session yet (a first run): the read commands then say
/// [`NO_SESSIONS_YET`] instead of an empty table.
///
/// Errors: `store_failed` when the ledger exists but cannot be read.
pub(crate) fn is_first_run(conn: Option<&Connection>) -> Result<bool, ControlError> {
    let Some(conn) = conn else {
        return Ok(true);
    };
    conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM sessions)", [], |r| {
        r.get(0)
    })
    .map_err(ControlError::store("sessions_list"))
}

/// [`is_first_run`] for the ledger at `path` (`nex import status|jobs`); a ledger that cannot
/// be read counts as not empty, so its error surfaces where sessions are read.
pub fn ledger_is_empty(path: &Path) -> bool {
    open_path(path)
        .and_then(|conn| is_first_run(conn.as_ref()))
        .unwrap_or(false)
}

/// The thread of a session: its head turn and ancestors, root first.
const THREAD: &str = crate::query::sessions::THREAD_SQL;

const SUMMARY: &str = "SELECT s.label, si.source_provider, si.source_session_id, s.persona_id,
        s.is_subagent, s.parent_session_label, s.created_at, s.updated_at, s.status,
        COALESCE(s.workspace_path, s.routing_key)
    FROM sessions s LEFT JOIN session_imports si ON si.session_label = s.label";

fn summary_row(conn: &Connection, row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionSummary> {
    let label: String = row.get(0)?;
    let turns = conn.query_row(
        &format!("{THREAD} SELECT COUNT(*) FROM chain"),
        params![label],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let is_subagent = row.get::<_, Option<i64>>(4)?.unwrap_or(0) != 0;
    let parent_session_label: Option<String> = row.get(5)?;
    Ok(SessionSummary {
        label,
        provider: row.get(1)?,
        source_session_id: row.get(2)?,
        persona_id: row.get(3)?,
        is_subagent,
        kind: session_kind(is_subagent, parent_session_label.is_some()),
        parent_session_label,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        status: row.get(8)?,
        turns,
        overview: SessionOverview {
            project: row.get(9)?,
            ..SessionOverview::default()
        },
    })
}

/// [`summary_row`] with the session's overview (title, model, tokens, duration).
fn summary_with_overview(
    conn: &Connection,
    label: &str,
) -> Result<Option<SessionSummary>, Failure> {
    let summary = conn
        .query_row(
            &format!("{SUMMARY} WHERE s.label = ?1"),
            params![label],
            |row| summary_row(conn, row),
        )
        .optional()
        .map_err(ControlError::store("sessions_summary"))?;
    let Some(mut summary) = summary else {
        return Ok(None);
    };
    summary.overview = session_overview(conn, label, summary.overview.project.take())?;
    Ok(Some(summary))
}

/// Why a sessions command failed: the control plane (settings, opening the ledger) or a
/// query (resolution, dates, reads).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl Failure {
    pub(crate) fn report(&self) -> ExitCode {
        match self {
            Failure::Control(e) => super::control_ctx::fail(e),
            Failure::Query(e) => {
                tracing::debug!(error_code = %e.code(), "command failed");
                errln!("nex: {e} [{}]", e.code());
                ExitCode::FAILURE
            }
        }
    }
}

pub use crate::query::sessions::session_kind;

/// Human duration: `45s`, `12m`, `3h05m`, `2d04h`; `-` when unknown: no turns, or 0 ms (the
/// tool recorded one time for the whole session, as Cursor chats and 2025 Codex rollouts do,
/// not when it ended).
fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|ms| *ms > 0) else {
        return "-".to_owned();
    };
    let s = ms / 1000;
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

pub fn list(args: ListArgs) -> ExitCode {
    if args.replica {
        return super::replica::sessions_list(&args);
    }
    match list_sessions(&args) {
        Ok((rows, first_run)) => {
            if args.json {
                print_json(&rows);
            } else if first_run {
                outln!("{NO_SESSIONS_YET}");
            } else if rows.is_empty() {
                outln!("no sessions");
            } else {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|s| {
                        let o = &s.overview;
                        vec![
                            s.label.clone(),
                            s.provider.clone().unwrap_or_else(|| "-".to_owned()),
                            o.project.clone().unwrap_or_else(|| "-".to_owned()),
                            o.model.clone().unwrap_or_else(|| "-".to_owned()),
                            if o.tokens_known {
                                o.total_tokens.to_string()
                            } else {
                                "-".to_owned()
                            },
                            duration(o.duration_ms),
                            s.turns.to_string(),
                            s.kind.to_owned(),
                            when(Some(s.updated_at)),
                            o.title.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    table(
                        &[
                            "LABEL", "PROVIDER", "PROJECT", "MODEL", "TOKENS", "DURATION", "TURNS",
                            "KIND", "UPDATED", "TITLE"
                        ],
                        &body
                    )
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => e.report(),
    }
}

/// Whether the ledger has its schema yet (a daemon may be creating it right now).
fn has_schema(conn: &Connection) -> Result<bool, ControlError> {
    conn.query_row(
        "SELECT COUNT(*) = 2 FROM sqlite_master WHERE type = 'table' \
         AND name IN ('sessions', 'session_imports')",
        [],
        |r| r.get(0),
    )
    .map_err(ControlError::store("ledger_schema"))
}

/// A `--project` directory as an absolute path (relative to the working directory), so it
/// compares with the absolute workspace paths the tools record.
pub(crate) fn project_arg(dir: Option<&Path>) -> Option<String> {
    dir.map(|d| {
        std::path::absolute(d)
            .unwrap_or_else(|_| d.to_path_buf())
            .to_string_lossy()
            .into_owned()
    })
}

/// The sessions, and whether the ledger is still empty (a first run).
fn list_sessions(args: &ListArgs) -> Result<(Vec<SessionSummary>, bool), Failure> {
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok((Vec::new(), true));
    }
    let Some(conn) = conn else {
        return Ok((Vec::new(), true));
    };
    let facts = crate::query::session_facts(&conn)?;
    let filter = ListFilter {
        filters: Filters {
            provider: args.provider.clone(),
            project: project_arg(args.project.as_deref()),
            since_ms: crate::query::time::window(args.since.as_deref(), None, super::fmt::zone())?
                .0,
            until_ms: None,
            zone: super::fmt::zone(),
        },
        limit: args.limit,
        offset: 0,
    };
    let mut rows = Vec::new();
    for label in list_labels(&facts, &filter) {
        if let Some(summary) = summary_with_overview(&conn, &label)? {
            rows.push(summary);
        }
    }
    Ok((rows, false))
}
