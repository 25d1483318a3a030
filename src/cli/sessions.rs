//! `nex sessions list|show|export`: what landed in the agents ledger, read through a
//! read-only connection (the daemon may be writing; WAL lets both run). `list` and `show`
//! print counts, ids and a title (the tool's, else the first prompt, cut); `export` prints a
//! whole session. The queries are in [`crate::query`]; this module parses flags and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use super::control_ctx::{ControlArgs, errln, outln, print_json, table, when};
use super::fmt::{count, or_dash};
use crate::control::ControlError;
use crate::query::sessions::{
    ListFilter, SessionOverview, list_labels, resolve_label, session_overview,
};
use crate::query::{Filters, QueryError};

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

/// One row of `sessions list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub label: String,
    pub provider: Option<String>,
    pub source_session_id: Option<String>,
    pub persona_id: String,
    pub is_subagent: bool,
    pub parent_session_label: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    /// Turns on the session's thread (head turn to root).
    pub turns: u64,
    #[serde(flatten)]
    pub overview: SessionOverview,
}

/// `sessions show --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub thread_id: Option<String>,
    pub origin: Option<String>,
    pub routing_key: Option<String>,
    pub parent_turn_id: Option<String>,
    pub spawn_tool_call_id: Option<String>,
    pub source_session_fingerprint: Option<String>,
    pub imported_at: Option<i64>,
    pub last_run_id: Option<String>,
    pub messages: u64,
    pub tool_calls: u64,
    /// Labels of the sessions this one spawned.
    pub children: Vec<String>,
    /// The thread, root first.
    pub turn_list: Vec<TurnSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnSummary {
    pub id: String,
    pub parent_turn_id: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub messages: u64,
    pub tool_calls: u64,
}

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
    Ok(SessionSummary {
        label,
        provider: row.get(1)?,
        source_session_id: row.get(2)?,
        persona_id: row.get(3)?,
        is_subagent: row.get::<_, Option<i64>>(4)?.unwrap_or(0) != 0,
        parent_session_label: row.get(5)?,
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

/// Human duration: `45s`, `12m`, `3h05m`, `2d04h`.
fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
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
                            s.provider.clone().unwrap_or_default(),
                            o.project.clone().unwrap_or_default(),
                            o.model.clone().unwrap_or_default(),
                            o.total_tokens.to_string(),
                            duration(o.duration_ms),
                            s.turns.to_string(),
                            if s.is_subagent { "sub" } else { "" }.to_owned(),
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

pub fn show(args: ShowArgs) -> ExitCode {
    match show_session(&args) {
        Ok(Shown::FirstRun) => {
            if args.json {
                print_json(&serde_json::Value::Null);
            } else {
                outln!("{NO_SESSIONS_YET}");
            }
            ExitCode::SUCCESS
        }
        Ok(Shown::Session(d)) => {
            if args.json {
                print_json(&d);
            } else {
                print_detail(&d);
            }
            ExitCode::SUCCESS
        }
        Err(e) => e.report(),
    }
}

/// What `sessions show` found.
enum Shown {
    Session(Box<SessionDetail>),
    /// The ledger holds no session yet.
    FirstRun,
}

fn show_session(args: &ShowArgs) -> Result<Shown, Failure> {
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok(Shown::FirstRun);
    }
    let Some(conn) = conn else {
        return Ok(Shown::FirstRun);
    };
    let label = resolve_label(&conn, &args.label)?;
    match session_detail(&conn, &label)? {
        Some(d) => Ok(Shown::Session(Box::new(d))),
        // Deleted between resolution and reading.
        None => Err(QueryError::SessionNotFound(args.label.clone()).into()),
    }
}

fn session_detail(conn: &Connection, label: &str) -> Result<Option<SessionDetail>, Failure> {
    let Some(summary) = summary_with_overview(conn, label)? else {
        return Ok(None);
    };
    let err = || ControlError::store("sessions_show");
    type Extra = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let (thread_id, origin, routing_key, parent_turn_id, spawn_tool_call_id): Extra = conn
        .query_row(
            "SELECT thread_id, origin, routing_key, parent_turn_id, spawn_tool_call_id
             FROM sessions WHERE label = ?1",
            params![label],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(err())?;
    let mapping: Option<(String, i64, Option<String>)> = conn
        .query_row(
            "SELECT source_session_fingerprint, imported_at, last_run_id FROM session_imports
             WHERE session_label = ?1 LIMIT 1",
            params![label],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err())?;
    let mut stmt = conn
        .prepare(&format!(
            "{THREAD} SELECT t.id, t.parent_turn_id, t.started_at, t.completed_at, t.model,
                t.provider, t.input_tokens, t.output_tokens,
                (SELECT COUNT(*) FROM messages m WHERE m.turn_id = t.id),
                (SELECT COUNT(*) FROM tool_calls c WHERE c.turn_id = t.id)
             FROM chain JOIN turns t ON t.id = chain.id ORDER BY chain.depth DESC"
        ))
        .map_err(err())?;
    let turn_list: Vec<TurnSummary> = stmt
        .query_map(params![label], |r| {
            Ok(TurnSummary {
                id: r.get(0)?,
                parent_turn_id: r.get(1)?,
                started_at: r.get(2)?,
                completed_at: r.get(3)?,
                model: r.get(4)?,
                provider: r.get(5)?,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                messages: r.get::<_, i64>(8)? as u64,
                tool_calls: r.get::<_, i64>(9)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(err())?;
    let mut stmt = conn
        .prepare("SELECT label FROM sessions WHERE parent_session_label = ?1 ORDER BY label")
        .map_err(err())?;
    let children: Vec<String> = stmt
        .query_map(params![label], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(err())?;
    let (fingerprint, imported_at, last_run_id) = match mapping {
        Some((f, i, r)) => (Some(f), Some(i), r),
        None => (None, None, None),
    };
    Ok(Some(SessionDetail {
        messages: turn_list.iter().map(|t| t.messages).sum(),
        tool_calls: turn_list.iter().map(|t| t.tool_calls).sum(),
        summary,
        thread_id,
        origin,
        routing_key,
        parent_turn_id,
        spawn_tool_call_id,
        source_session_fingerprint: fingerprint,
        imported_at,
        last_run_id,
        children,
        turn_list,
    }))
}

fn print_detail(d: &SessionDetail) {
    let s = &d.summary;
    outln!("session {}", s.label);
    let o = &s.overview;
    if let Some(title) = &o.title {
        outln!("  title {title}");
    }
    outln!(
        "  project {}, model {}, {} tokens, {}",
        o.project.as_deref().unwrap_or("-"),
        o.model.as_deref().unwrap_or("-"),
        o.total_tokens,
        match o.duration_ms {
            Some(_) => format!("lasted {}", duration(o.duration_ms)),
            None => "no turns".to_owned(),
        }
    );
    outln!(
        "  provider {} / {}",
        s.provider.as_deref().unwrap_or("-"),
        s.source_session_id.as_deref().unwrap_or("-")
    );
    outln!("  persona {}, status {}", s.persona_id, s.status);
    outln!(
        "  created {}, updated {}, imported {}",
        when(Some(s.created_at)),
        when(Some(s.updated_at)),
        when(d.imported_at)
    );
    outln!(
        "  {}, {}, {}",
        count(s.turns, "turn", "turns"),
        count(d.messages, "message", "messages"),
        count(d.tool_calls, "tool call", "tool calls")
    );
    if let Some(parent) = &s.parent_session_label {
        outln!(
            "  spawned by {} (turn {}, tool call {})",
            parent,
            d.parent_turn_id.as_deref().unwrap_or("-"),
            d.spawn_tool_call_id.as_deref().unwrap_or("-")
        );
    }
    for child in &d.children {
        outln!("  spawned {child}");
    }
    if !d.turn_list.is_empty() {
        let rows: Vec<Vec<String>> = d
            .turn_list
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    when(Some(t.started_at)),
                    or_dash(t.model.as_deref()),
                    t.messages.to_string(),
                    t.tool_calls.to_string(),
                    // Unknown tokens (Cursor) are `-`, never `0/0`.
                    match (t.input_tokens, t.output_tokens) {
                        (None, None) => "-".to_owned(),
                        (i, o) => format!("{}/{}", or_dash(i), or_dash(o)),
                    },
                ]
            })
            .collect();
        outln!(
            "{}",
            table(
                &["TURN", "STARTED", "MODEL", "MSGS", "TOOLS", "TOKENS IN/OUT"],
                &rows
            )
        );
    }
}

pub fn export(args: ExportArgs) -> ExitCode {
    match export_session(&args) {
        Ok(None) => {
            outln!("{NO_SESSIONS_YET}");
            ExitCode::SUCCESS
        }
        Ok(Some(())) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Writes the export; `None` on a first run (nothing to export).
fn export_session(args: &ExportArgs) -> Result<Option<()>, Failure> {
    use crate::query::export::{ExportOptions, export_session, to_markdown};
    let conn = open(&args.ledger)?;
    if is_first_run(conn.as_ref())? {
        return Ok(None);
    }
    let Some(conn) = conn else {
        return Ok(None);
    };
    let label = resolve_label(&conn, &args.label)?;
    let options = ExportOptions {
        max_tool_chars: args.max_tool_chars,
        redactor: args.redact.then(|| {
            let home = std::env::var("HOME").ok();
            crate::query::redact::Redactor::new(home.as_deref())
        }),
    };
    let Some(doc) = export_session(&conn, &label, &options)? else {
        return Err(QueryError::SessionNotFound(args.label.clone()).into());
    };
    let mut text = match args.format {
        // Plain data: serialisation cannot fail.
        ExportFormat::Json => serde_json::to_string_pretty(&doc).expect("export serialises"),
        ExportFormat::Md => to_markdown(&doc),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match &args.output {
        Some(path) => write_private(path, text.as_bytes()).map_err(ControlError::io(path))?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) is not an error.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
    Ok(Some(()))
}

/// Writes `bytes` to `path`, created (or truncated) with mode 0600: an export holds a
/// conversation.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
