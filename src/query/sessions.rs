//! Sessions as the read commands and the MCP tools `list_sessions` / `get_session` show them.
//!
//! The minimal version of the `search` branch: the `usage` branch owns `nex sessions list|show`
//! and its richer rows; when both are merged, the MCP tools call that branch's functions under
//! these names.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{QueryError, project_matches, session_facts};

/// Characters of the first prompt kept as a session's title.
pub const TITLE_CHARS: usize = 80;

/// `list` filters.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub provider: Option<String>,
    /// As [`super::project_filter`] gives it.
    pub project: Option<String>,
    /// Sessions updated at or after (epoch ms).
    pub since_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// One session of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub label: String,
    pub session_id: Option<String>,
    pub provider: Option<String>,
    pub project: Option<String>,
    /// The first prompt, cut to [`TITLE_CHARS`].
    pub title: Option<String>,
    /// The model of the latest turn that names one.
    pub model: Option<String>,
    pub turns: u64,
    pub total_tokens: i64,
    /// From the first turn's start to the last turn's end.
    pub duration_ms: i64,
    pub is_subagent: bool,
    pub parent_session_label: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One session in full: its row, its turns (oldest first) and the sessions it spawned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    pub session: SessionRow,
    pub spawn_tool_call_id: Option<String>,
    pub children: Vec<String>,
    pub turn_list: Vec<TurnRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRow {
    pub id: String,
    pub parent_turn_id: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub messages: u64,
    pub tool_calls: u64,
}

fn row_sql() -> String {
    let facts = session_facts();
    format!(
        "SELECT s.label, s.origin_session_id, {provider}, {project},
            (SELECT m.content FROM turns t JOIN messages m ON m.turn_id = t.id
             WHERE t.session_label = s.label AND m.role = 'user'
             ORDER BY m.created_at, m.sequence LIMIT 1),
            (SELECT t.model FROM turns t WHERE t.session_label = s.label AND t.model IS NOT NULL
             ORDER BY t.started_at DESC LIMIT 1),
            (SELECT COUNT(*) FROM turns t WHERE t.session_label = s.label),
            (SELECT COALESCE(SUM(t.total_tokens), 0) FROM turns t WHERE t.session_label = s.label),
            (SELECT COALESCE(MAX(COALESCE(t.completed_at, t.started_at)) - MIN(t.started_at), 0)
             FROM turns t WHERE t.session_label = s.label),
            s.is_subagent, s.parent_session_label, s.created_at, s.updated_at
         FROM sessions s",
        provider = facts.provider,
        project = facts.project,
    )
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let title: Option<String> = r.get(4)?;
    Ok(SessionRow {
        label: r.get(0)?,
        session_id: r.get(1)?,
        provider: r.get(2)?,
        project: r.get(3)?,
        title: title.map(|t| cut(t.trim(), TITLE_CHARS)),
        model: r.get(5)?,
        turns: r.get::<_, i64>(6)?.max(0) as u64,
        total_tokens: r.get(7)?,
        duration_ms: r.get(8)?,
        is_subagent: r.get::<_, i64>(9)? != 0,
        parent_session_label: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// Sessions under `filter`, most recently updated first (then by label).
///
/// Errors: `ledger_read_failed`.
pub fn list(conn: &Connection, filter: &SessionFilter) -> Result<Vec<SessionRow>, QueryError> {
    let facts = session_facts();
    let sql = format!(
        "{} WHERE (?1 IS NULL OR {provider} = ?1) AND {project_ok}
            AND (?3 IS NULL OR s.updated_at >= ?3)
         ORDER BY s.updated_at DESC, s.label LIMIT ?4 OFFSET ?5",
        row_sql(),
        provider = facts.provider,
        project_ok = project_matches(facts.project, "?2"),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        params![
            filter.provider,
            filter.project,
            filter.since_ms,
            filter.limit,
            filter.offset
        ],
        session_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One session by its full label.
///
/// Errors: `session_not_found`, `ledger_read_failed`.
pub fn get(conn: &Connection, label: &str) -> Result<SessionView, QueryError> {
    let session = conn
        .query_row(
            &format!("{} WHERE s.label = ?1", row_sql()),
            [label],
            session_row,
        )
        .optional()?
        .ok_or_else(|| QueryError::SessionNotFound(label.to_owned()))?;
    let spawn_tool_call_id = conn.query_row(
        "SELECT spawn_tool_call_id FROM sessions WHERE label = ?1",
        [label],
        |r| r.get(0),
    )?;
    let mut stmt =
        conn.prepare("SELECT label FROM sessions WHERE parent_session_label = ?1 ORDER BY label")?;
    let children = stmt
        .query_map([label], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT t.id, t.parent_turn_id, t.started_at, t.completed_at, t.model, t.input_tokens,
            t.output_tokens, t.total_tokens,
            (SELECT COUNT(*) FROM messages m WHERE m.turn_id = t.id),
            (SELECT COUNT(*) FROM tool_calls c WHERE c.turn_id = t.id)
         FROM turns t WHERE t.session_label = ?1 ORDER BY t.started_at, t.id",
    )?;
    let turn_list = stmt
        .query_map([label], |r| {
            Ok(TurnRow {
                id: r.get(0)?,
                parent_turn_id: r.get(1)?,
                started_at: r.get(2)?,
                completed_at: r.get(3)?,
                model: r.get(4)?,
                input_tokens: r.get(5)?,
                output_tokens: r.get(6)?,
                total_tokens: r.get(7)?,
                messages: r.get::<_, i64>(8)?.max(0) as u64,
                tool_calls: r.get::<_, i64>(9)?.max(0) as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(SessionView {
        session,
        spawn_tool_call_id,
        children,
        turn_list,
    })
}
