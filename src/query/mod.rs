//! Read-only queries over the agents ledger: what `nex search`, `nex sessions`, `nex usage` and
//! the MCP server (`nex mcp`) answer. Each query is one function over a [`Connection`] that
//! returns typed rows; the CLI prints them and the MCP tools serialise them, so both answer the
//! same.
//!
//! Layout:
//! - `ledger` (this file): the read-only connection ([`open_read_only`]), the schema check,
//!   [`QueryError`], and where a session's provider and project come from ([`session_facts`]).
//! - `time`: dates on the command line (`--since`, `--until`) and RFC 3339 output.
//! - `search`: full-text search over messages and tool calls ([`search::search`]).
//! - `snippet`: the text around a hit's matches, cut without re-tokenizing the whole row.
//! - `sessions`: session lists and one session ([`sessions::list`], [`sessions::get`]).
//! - `usage`: token sums grouped by day, project, model… ([`usage::report`]).

pub mod search;
pub mod sessions;
pub mod snippet;
pub mod time;
pub mod usage;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::protocol::Code;

/// Why a query could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no ledger at {0}")]
    LedgerNotFound(PathBuf),
    /// The ledger predates the tables this query reads; the daemon or the next import migrates
    /// it (a read-only reader never does).
    #[error(
        "the ledger at {0} predates full-text search; run `nex import backfill` (or restart the daemon) to upgrade it"
    )]
    LedgerSchemaOlder(PathBuf),
    /// The FTS5 query does not parse (unbalanced quotes, a bare operator, an unknown column).
    #[error("invalid search query: {0}")]
    SearchQueryInvalid(String),
    /// A filter or argument that cannot be used (an unknown role, a date that does not parse).
    #[error("{0}")]
    BadArgument(String),
    #[error("no session {0}")]
    SessionNotFound(String),
    #[error("cannot read the ledger ({0})")]
    Ledger(#[from] rusqlite::Error),
}

impl QueryError {
    pub fn code(&self) -> Code {
        match self {
            QueryError::LedgerNotFound(_) => Code::LedgerNotFound,
            QueryError::LedgerSchemaOlder(_) => Code::LedgerSchemaOlder,
            QueryError::SearchQueryInvalid(_) => Code::SearchQueryInvalid,
            QueryError::BadArgument(_) => Code::BadRequest,
            QueryError::SessionNotFound(_) => Code::SessionNotFound,
            QueryError::Ledger(_) => Code::LedgerReadFailed,
        }
    }
}

/// Opens the ledger at `path` read-only (never creating it, never migrating it). A WAL reader:
/// the importer keeps writing while a query runs, and the query sees the last commit before it
/// started.
///
/// Errors: `ledger_not_found` when there is no file; `ledger_read_failed` when it is not a
/// readable SQLite file.
pub fn open_read_only(path: &Path) -> Result<Connection, QueryError> {
    if !path.exists() {
        return Err(QueryError::LedgerNotFound(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Whether the ledger holds `table` (a read-only reader of an older ledger cannot create it).
pub fn has_table(conn: &Connection, table: &str) -> Result<bool, QueryError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = ?1",
        [table],
        |r| r.get(0),
    )?)
}

/// SQL expressions for a session's provider and project over `sessions AS s`: the one place
/// that says where they come from: `sessions.provider` and `sessions.workspace_path`
/// (migration 0003), the project falling back on `routing_key` (the item's workspace, else its
/// project) for a session whose source names no workspace.
pub const fn session_facts() -> SessionFacts {
    SessionFacts {
        provider: "s.provider",
        project: "COALESCE(s.workspace_path, s.routing_key)",
    }
}

/// See [`session_facts`].
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    pub provider: &'static str,
    pub project: &'static str,
}

/// `--project DIR` as the queries compare it: an existing directory made absolute (so `.` works),
/// without a trailing `/`. A session matches its project or any directory under it.
pub fn project_filter(dir: &str) -> String {
    let path = Path::new(dir);
    let absolute = std::fs::canonicalize(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.to_owned());
    let trimmed = absolute.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// SQL that is true when `project_expr` is the project `?param` or under it.
pub(crate) fn project_matches(project_expr: &str, param: &str) -> String {
    format!(
        "({param} IS NULL OR {project_expr} = {param} \
         OR substr({project_expr}, 1, length({param}) + 1) = {param} || '/')"
    )
}
