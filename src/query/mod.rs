//! Read-only queries over the agents ledger, shared by the CLI (`nex usage`, `nex sessions
//! list|show|export`) and the MCP server: plain functions over a `rusqlite::Connection` that
//! return serde-serialisable structs. Nothing here prints or writes the ledger.
//!
//! Layout:
//! - `mod.rs` (this file): errors, filters, calendar days, what a session's provider and
//!   project are (one place: [`SessionFacts`]).
//! - `prices`: the price table (`prices.toml` + `config.toml` overrides) and model matching.
//! - `usage`: token and cost reports grouped by day, week, month, project, model, provider or
//!   session, with subagents rolled up into the session that spawned them; the spawn tree.
//! - `sessions`: label resolution (prefix, tool session id) and the session list.
//! - `export`: one session with its turns, messages, tool calls and subagents, as JSON or
//!   Markdown, optionally redacted.
//! - `redact`: masks secrets and the home path in exported text.
//! - `search`: full-text search over messages and tool calls ([`search::search`]), for
//!   `nex search` and the MCP tool `search_sessions`.
//! - `snippet`: the text around a hit's matches, cut without re-tokenizing the whole row.
//! - `time`: dates on the command line of `nex search` and the MCP tools, RFC 3339 output.

pub mod export;
pub mod prices;
pub mod redact;
pub mod search;
pub mod sessions;
pub mod snippet;
pub mod time;
pub mod usage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::protocol::Code;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no session matches `{0}` (a label, a label prefix or the tool's session id)")]
    SessionNotFound(String),
    /// More than one session matches; `candidates` holds the first few labels, `total` all.
    #[error("`{input}` matches {total} sessions: {}{}", candidates.join(", "), if *total > candidates.len() { ", …" } else { "" })]
    SessionAmbiguous {
        input: String,
        candidates: Vec<String>,
        total: usize,
    },
    #[error(
        "`{0}` is not a date: expected YYYY-MM-DD (a calendar day, local time unless --utc), YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], or 12h, 7d, 2w (ago)"
    )]
    DateInvalid(String),
    #[error("cannot read the ledger ({context}): {source}")]
    Ledger {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
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
    /// A read of the search queries, which carry no context of their own.
    #[error("cannot read the ledger ({0})")]
    LedgerRead(#[from] rusqlite::Error),
}

impl QueryError {
    /// `session_not_found`, `session_ambiguous`, `date_invalid`, `ledger_not_found`,
    /// `ledger_schema_older`, `search_query_invalid`, `bad_request`, or `ledger_busy` /
    /// `ledger_read_failed`.
    pub fn code(&self) -> Code {
        match self {
            QueryError::SessionNotFound(_) => Code::SessionNotFound,
            QueryError::SessionAmbiguous { .. } => Code::SessionAmbiguous,
            QueryError::DateInvalid(_) => Code::DateInvalid,
            QueryError::Ledger { source, .. } if crate::ledger::is_busy(source) => Code::LedgerBusy,
            QueryError::Ledger { .. } => Code::LedgerReadFailed,
            QueryError::LedgerNotFound(_) => Code::LedgerNotFound,
            QueryError::LedgerSchemaOlder(_) => Code::LedgerSchemaOlder,
            QueryError::SearchQueryInvalid(_) => Code::SearchQueryInvalid,
            QueryError::BadArgument(_) => Code::BadRequest,
            QueryError::LedgerRead(source) if crate::ledger::is_busy(source) => Code::LedgerBusy,
            QueryError::LedgerRead(_) => Code::LedgerReadFailed,
        }
    }

    pub(crate) fn ledger(context: &'static str) -> impl FnOnce(rusqlite::Error) -> QueryError {
        move |source| QueryError::Ledger { context, source }
    }
}

/// Opens the ledger at `path` read-only (the importer may be writing: WAL lets both run, and
/// a reader never blocks it). `None` when there is no file or no schema yet.
///
/// Errors: `ledger_read_failed` when the file exists but cannot be read as a ledger.
pub fn open_read_only(path: &Path) -> Result<Option<Connection>, QueryError> {
    if !path.exists() {
        return Ok(None);
    }
    let err = QueryError::ledger;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("open_read_only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err("open_read_only"))?;
    crate::ledger::text::register(&conn).map_err(err("open_read_only"))?;
    let has_schema: bool = conn
        .query_row(
            "SELECT COUNT(*) = 2 FROM sqlite_master WHERE type = 'table' \
             AND name IN ('sessions', 'session_imports')",
            [],
            |r| r.get(0),
        )
        .map_err(err("ledger_schema"))?;
    Ok(has_schema.then_some(conn))
}

/// Opens the ledger at `path` read-only like [`open_read_only`], for the queries that must
/// tell a missing ledger apart (`nex search`, the MCP server): never creating it, never
/// migrating it; the query sees the last commit before it started.
///
/// Errors: `ledger_not_found` when there is no file; `ledger_read_failed` when it is not a
/// readable SQLite file.
pub fn open_existing(path: &Path) -> Result<Connection, QueryError> {
    if !path.exists() {
        return Err(QueryError::LedgerNotFound(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Reads map the file instead of copying each page through SQLite's 2 MB cache: a search
    // reads the overflow pages of the rows it shows and filters (a hit's time sits after its
    // text), about 2-3 x less CPU for those reads at the standard size (the WAL is still read
    // through the cache; a reader changes nothing in the file).
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    crate::ledger::text::register(&conn)?;
    Ok(conn)
}

/// The most of the ledger file a reader of [`open_existing`] maps (address space, not memory:
/// the pages read are the OS's page cache, shared).
const READER_MMAP_BYTES: i64 = 1 << 30;

/// Whether the ledger holds `table` (a read-only reader of an older ledger cannot create it).
pub fn has_table(conn: &Connection, table: &str) -> Result<bool, QueryError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = ?1",
        [table],
        |r| r.get(0),
    )?)
}

/// `--project DIR` as the search compares it: an existing directory made absolute (so `.`
/// works), without a trailing `/`. A session matches its project or any directory under it.
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

/// SQL that is true when `project_expr` is the project `?param` or under it (the SQL twin of
/// [`project_under`]).
pub(crate) fn project_matches(project_expr: &str, param: &str) -> String {
    format!(
        "({param} IS NULL OR {project_expr} = {param} \
         OR substr({project_expr}, 1, length({param}) + 1) = {param} || '/')"
    )
}

/// Which sessions and turns a query covers. Every field is optional; `None` covers all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// A provider as the CLI names it (`claude-code`, `codex`, `gemini-cli`, `opencode`,
    /// `cursor`): the session's (a subagent's: its root session's).
    pub provider: Option<String>,
    /// A directory: sessions whose project is this directory or under it.
    pub project: Option<String>,
    /// Start of the window in epoch milliseconds (inclusive): `--since` as
    /// [`time::parse_bound`] reads it (its `start_ms`).
    pub since_ms: Option<i64>,
    /// End of the window in epoch milliseconds (exclusive): `--until`'s `end_ms` (the day after
    /// an `--until` day).
    pub until_ms: Option<i64>,
    /// The zone the dates were read in, and of `nex usage`'s day, week and month keys.
    pub zone: time::Zone,
}

impl Filters {
    /// Whether a session with these facts is covered by the provider and project filters.
    pub(crate) fn covers(&self, facts: &SessionFacts) -> bool {
        if let Some(p) = &self.provider
            && facts.provider.as_deref() != Some(p.as_str())
        {
            return false;
        }
        if let Some(dir) = &self.project {
            return facts
                .project
                .as_deref()
                .is_some_and(|project| project_under(project, dir));
        }
        true
    }
}

/// Whether `project` is `dir` or a directory under it (trailing slashes ignored).
pub fn project_under(project: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    let project = project.trim_end_matches('/');
    if dir.is_empty() {
        return true;
    }
    project == dir
        || project
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What a query needs to know of a session besides its rows: where it came from and who
/// spawned it. Loaded for every session at once ([`session_facts`]): the ledger holds
/// thousands of sessions, not millions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFacts {
    pub label: String,
    /// The CLI's provider name (`claude-code`, `codex`, `gemini-cli`, `opencode`, `cursor`).
    pub provider: Option<String>,
    /// The workspace directory the session ran in, when the source records one.
    pub project: Option<String>,
    pub parent_session_label: Option<String>,
    pub spawn_tool_call_id: Option<String>,
    pub source_session_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The provider and project of a session, as SQL over `sessions s` (the one place that says
/// where they come from): `sessions.provider` (agents.db 0003; else the `aix:<provider>`
/// origin), and `sessions.workspace_path` (else the routing key: the item's project).
pub const SESSION_PROVIDER_SQL: &str =
    "COALESCE(s.provider, CASE WHEN s.origin LIKE 'aix:_%' THEN substr(s.origin, 5) END)";
/// See [`SESSION_PROVIDER_SQL`].
pub const SESSION_PROJECT_SQL: &str = "COALESCE(s.workspace_path, s.routing_key)";

/// The columns of [`SessionFacts`], over `sessions s`.
fn facts_sql() -> String {
    format!(
        "SELECT s.label, {SESSION_PROVIDER_SQL}, {SESSION_PROJECT_SQL},
            s.parent_session_label, s.spawn_tool_call_id,
            COALESCE((SELECT si.source_session_id FROM session_imports si
                      WHERE si.session_label = s.label LIMIT 1), s.origin_session_id),
            s.created_at, s.updated_at
         FROM sessions s"
    )
}

fn facts_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionFacts> {
    Ok(SessionFacts {
        label: r.get(0)?,
        provider: r.get(1)?,
        project: r.get(2)?,
        parent_session_label: r.get(3)?,
        spawn_tool_call_id: r.get(4)?,
        source_session_id: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Every session's facts, by label.
pub fn session_facts(conn: &Connection) -> Result<HashMap<String, SessionFacts>, QueryError> {
    let err = QueryError::ledger;
    let mut stmt = conn.prepare(&facts_sql()).map_err(err("session_facts"))?;
    let rows = stmt
        .query_map([], facts_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err("session_facts"))?;
    Ok(rows.into_iter().map(|f| (f.label.clone(), f)).collect())
}

/// One session's facts.
pub fn session_fact(conn: &Connection, label: &str) -> Result<Option<SessionFacts>, QueryError> {
    conn.query_row(
        &format!("{} WHERE s.label = ?1", facts_sql()),
        [label],
        facts_row,
    )
    .optional()
    .map_err(QueryError::ledger("session_facts"))
}

/// The session a subagent rolls up into: the first ancestor without a parent in the ledger
/// (a session is its own root). A parent chain that loops ends where it repeats.
pub fn root_of<'a>(facts: &'a HashMap<String, SessionFacts>, label: &'a str) -> &'a str {
    let mut current = label;
    let mut seen = 0usize;
    while let Some(parent) = facts
        .get(current)
        .and_then(|f| f.parent_session_label.as_deref())
        .filter(|p| facts.contains_key(*p))
    {
        current = parent;
        seen += 1;
        if seen > facts.len() {
            break;
        }
    }
    current
}

/// Whether the tool `provider` reports reasoning tokens apart from its output tokens (then
/// they are billed on top, at the output price) rather than inside them.
///
/// Gemini CLI (`thoughts` beside `candidates`) and OpenCode (`tokens.reasoning` beside
/// `tokens.output`) report them apart; Codex's `reasoning_output_tokens` are part of its
/// `output_tokens`; Claude Code and Cursor report none.
pub fn reasoning_apart(provider: Option<&str>) -> bool {
    matches!(provider, Some("gemini-cli" | "opencode"))
}

/// The synthetic root turn of a session without turns (`import::ids::ROOT_TURN_ENTITY`): not
/// a turn of the conversation, never counted.
pub(crate) const NOT_ROOT_TURN: &str =
    "(t.source_event_id IS NULL OR t.source_event_id <> '__root__')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_filter_takes_the_directory_and_what_is_under_it() {
        assert!(project_under("/w/repo", "/w/repo"));
        assert!(project_under("/w/repo/sub", "/w/repo/"));
        assert!(!project_under("/w/repo2", "/w/repo"));
        assert!(!project_under("/w", "/w/repo"));
    }

    fn facts(pairs: &[(&str, Option<&str>)]) -> HashMap<String, SessionFacts> {
        pairs
            .iter()
            .map(|(label, parent)| {
                let f = SessionFacts {
                    label: (*label).to_owned(),
                    parent_session_label: parent.map(str::to_owned),
                    ..SessionFacts::default()
                };
                ((*label).to_owned(), f)
            })
            .collect()
    }

    #[test]
    fn subagents_roll_up_to_the_first_ancestor_and_a_loop_ends() {
        let f = facts(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            // A parent the ledger does not hold: the session is its own root.
            ("orphan", Some("gone")),
            ("x", Some("y")),
            ("y", Some("x")),
        ]);
        assert_eq!(root_of(&f, "c"), "a");
        assert_eq!(root_of(&f, "a"), "a");
        assert_eq!(root_of(&f, "orphan"), "orphan");
        assert_eq!(root_of(&f, "unknown"), "unknown");
        let looped = root_of(&f, "x");
        assert!(looped == "x" || looped == "y");
        assert!(reasoning_apart(Some("gemini-cli")) && reasoning_apart(Some("opencode")));
        assert!(!reasoning_apart(Some("codex")) && !reasoning_apart(None));
    }
}
