//! Finding sessions: a label from what a user types (a label, a unique prefix of one, or the
//! tool's own session id), and the session list with project, title, model, tokens and
//! duration (`nex sessions list`, MCP `list_sessions`).

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Filters, NOT_ROOT_TURN, QueryError, SessionFacts};

/// Candidates named in a `session_ambiguous` error.
pub const AMBIGUOUS_SHOWN: usize = 10;
/// Characters of a title made from a first prompt.
pub const TITLE_CHARS: usize = 80;

/// The label of the one session `input` names, trying in turn: an exact label; an exact
/// session id of the tool (`session_imports.source_session_id`,
/// `sessions.origin_session_id`); a prefix of labels and of tool session ids. The first step
/// that finds sessions decides.
///
/// Errors: `session_not_found` when nothing matches; `session_ambiguous` with the candidates
/// when a step finds more than one session; `ledger_read_failed`, `ledger_busy`.
pub fn resolve_label(conn: &Connection, input: &str) -> Result<String, QueryError> {
    let input_t = input.trim();
    if input_t.is_empty() {
        return Err(QueryError::SessionNotFound(input.to_owned()));
    }
    let err = QueryError::ledger;
    let exact: Option<String> = conn
        .query_row(
            "SELECT label FROM sessions WHERE label = ?1",
            [input_t],
            |r| r.get(0),
        )
        .optional()
        .map_err(err("resolve_label"))?;
    if let Some(label) = exact {
        return Ok(label);
    }
    let steps = [
        "SELECT session_label FROM session_imports WHERE source_session_id = ?1
         UNION SELECT label FROM sessions WHERE origin_session_id = ?1",
        "SELECT label FROM sessions WHERE substr(label, 1, length(?1)) = ?1
         UNION SELECT session_label FROM session_imports
             WHERE substr(source_session_id, 1, length(?1)) = ?1
         UNION SELECT label FROM sessions WHERE substr(origin_session_id, 1, length(?1)) = ?1",
    ];
    for sql in steps {
        let mut stmt = conn.prepare(sql).map_err(err("resolve_label"))?;
        let found: BTreeSet<String> = stmt
            .query_map([input_t], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(err("resolve_label"))?;
        match found.len() {
            0 => continue,
            1 => return Ok(found.into_iter().next().unwrap_or_default()),
            total => {
                return Err(QueryError::SessionAmbiguous {
                    input: input_t.to_owned(),
                    candidates: found.into_iter().take(AMBIGUOUS_SHOWN).collect(),
                    total,
                });
            }
        }
    }
    Err(QueryError::SessionNotFound(input_t.to_owned()))
}

/// A session's thread as SQL: `chain(id, depth)` holds its head turn and each of its
/// ancestors (`?1` = the label). Turns on the thread are what `nex sessions list` counts.
pub const THREAD_SQL: &str = "WITH RECURSIVE chain(id, depth) AS (
        SELECT thread_id, 0 FROM sessions WHERE label = ?1 AND thread_id IS NOT NULL
        UNION ALL
        SELECT t.parent_turn_id, chain.depth + 1 FROM turns t JOIN chain ON t.id = chain.id
        WHERE t.parent_turn_id IS NOT NULL AND chain.depth < 1000000
    )";

/// Where a session stands, as its row and thread say (the fields `nex sessions list` shows
/// beside the overview).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionState {
    pub persona_id: String,
    pub status: String,
    /// The row's `is_subagent` (a fork has a parent without being a subagent).
    pub is_subagent: bool,
    /// Turns on the session's thread (head turn to root).
    pub turns: u64,
}

/// The state of one session; `None` when the ledger has no such session.
///
/// Errors: `ledger_read_failed`, `ledger_busy`.
pub fn session_state(conn: &Connection, label: &str) -> Result<Option<SessionState>, QueryError> {
    let err = QueryError::ledger;
    let row: Option<(String, String, Option<i64>)> = conn
        .prepare_cached("SELECT persona_id, status, is_subagent FROM sessions WHERE label = ?1")
        .and_then(|mut s| {
            s.query_row([label], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(err("session_state"))?;
    let Some((persona_id, status, is_subagent)) = row else {
        return Ok(None);
    };
    let turns: i64 = conn
        .prepare_cached(&format!("{THREAD_SQL} SELECT COUNT(*) FROM chain"))
        .and_then(|mut s| s.query_row([label], |r| r.get(0)))
        .map_err(err("session_state"))?;
    Ok(Some(SessionState {
        persona_id,
        status,
        is_subagent: is_subagent.unwrap_or(0) != 0,
        turns: u64::try_from(turns).unwrap_or(0),
    }))
}

/// One row of `nex sessions list --json` and of the MCP tool `list_sessions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub label: String,
    pub provider: Option<String>,
    pub source_session_id: Option<String>,
    pub persona_id: String,
    pub is_subagent: bool,
    pub parent_session_label: Option<String>,
    /// `subagent` (spawned by a parent session), `fork` (a copy of another session's history
    /// continued on its own: a parent without being a subagent), or `main`.
    pub kind: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    /// Turns on the session's thread (head turn to root).
    pub turns: u64,
    #[serde(flatten)]
    pub overview: SessionOverview,
}

/// A session's kind as `nex sessions list` and `list_sessions` name it: `subagent` (spawned by
/// a parent session), `fork` (a parent without being a subagent: another session's history
/// continued on its own), or `main`.
pub fn session_kind(is_subagent: bool, has_parent: bool) -> &'static str {
    match (is_subagent, has_parent) {
        (true, _) => "subagent",
        (false, true) => "fork",
        (false, false) => "main",
    }
}

/// What `nex sessions list` adds to a session's identity: project, title, model, tokens,
/// duration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionOverview {
    /// The workspace directory.
    pub project: Option<String>,
    /// The tool's own title when the ledger has it, else the first prompt (whitespace
    /// collapsed, cut to [`TITLE_CHARS`] characters with `…`).
    pub title: Option<String>,
    /// The model of most of the session's turns.
    pub model: Option<String>,
    /// The session's own total tokens (its subagents are sessions of their own); 0 when no
    /// turn has a token count (see `tokens_known`).
    pub total_tokens: i64,
    /// Whether any turn of the session has a token count: Cursor chats and 2025 Codex
    /// rollouts have none, and their `total_tokens` 0 means unknown (shown as `-`).
    pub tokens_known: bool,
    /// From the first turn's start to the last turn's end (or start), in milliseconds.
    pub duration_ms: Option<i64>,
}

/// The overview of one session.
///
/// Errors: `ledger_read_failed`, `ledger_busy`.
pub fn session_overview(
    conn: &Connection,
    label: &str,
    project: Option<String>,
) -> Result<SessionOverview, QueryError> {
    let err = QueryError::ledger;
    let (total, first, last, known): (i64, Option<i64>, Option<i64>, bool) = conn
        .prepare_cached(&format!(
            "SELECT COALESCE(SUM(COALESCE(t.total_tokens,
                    COALESCE(t.input_tokens, 0) + COALESCE(t.output_tokens, 0)
                    + COALESCE(t.cached_input_tokens, 0) + COALESCE(t.cache_write_tokens, 0))), 0),
                MIN(t.started_at), MAX(COALESCE(t.completed_at, t.started_at)),
                COALESCE(MAX(t.total_tokens IS NOT NULL OR t.input_tokens IS NOT NULL
                    OR t.output_tokens IS NOT NULL OR t.cached_input_tokens IS NOT NULL
                    OR t.cache_write_tokens IS NOT NULL), 0)
             FROM turns t WHERE t.session_label = ?1 AND {NOT_ROOT_TURN}"
        ))
        .and_then(|mut s| {
            s.query_row([label], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
            })
        })
        .map_err(err("session_overview"))?;
    let model: Option<String> = conn
        .prepare_cached(
            "SELECT model FROM turns WHERE session_label = ?1 AND model IS NOT NULL
             GROUP BY model ORDER BY COUNT(*) DESC, model LIMIT 1",
        )
        .and_then(|mut s| s.query_row([label], |r| r.get(0)).optional())
        .map_err(err("session_overview"))?;
    Ok(SessionOverview {
        project,
        title: session_title(conn, label)?,
        model,
        total_tokens: total,
        tokens_known: known,
        duration_ms: first.zip(last).map(|(a, b)| (b - a).max(0)),
    })
}

/// The tool's title (a `title` in the session's or a turn's metadata), else the first user
/// prompt, cut ([`cut_title`]).
pub fn session_title(conn: &Connection, label: &str) -> Result<Option<String>, QueryError> {
    Ok(raw_session_title(conn, label)?.map(|t| cut_title(&t)))
}

/// [`session_title`] before the cut (an export redacts it first, so a secret is never cut
/// into a piece its pattern no longer matches).
pub fn raw_session_title(conn: &Connection, label: &str) -> Result<Option<String>, QueryError> {
    let err = QueryError::ledger;
    let own: Option<String> = conn
        .prepare_cached(
            "SELECT json_extract(effective_config_json, '$.title') FROM turns
             WHERE session_label = ?1 AND effective_config_json LIKE '%\"title\"%'
               AND json_valid(effective_config_json)
               AND json_type(effective_config_json, '$.title') = 'text'
             ORDER BY started_at DESC LIMIT 1",
        )
        .and_then(|mut s| s.query_row([label], |r| r.get(0)).optional())
        .map_err(err("session_title"))?;
    if let Some(t) = own.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(t));
    }
    let prompt: Option<String> = conn
        .prepare_cached(
            "SELECT m.content FROM messages m
             WHERE m.session_label = ?1 AND m.role = 'user' AND m.content IS NOT NULL
               AND trim(m.content) <> ''
             ORDER BY m.created_at, m.sequence LIMIT 1",
        )
        .and_then(|mut s| s.query_row([label], |r| r.get(0)).optional())
        .map_err(err("session_title"))?;
    Ok(prompt)
}

/// Whitespace collapsed to single spaces, cut to [`TITLE_CHARS`] characters with `…`.
pub fn cut_title(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= TITLE_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(TITLE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Which sessions `nex sessions list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Provider and project as in [`Filters`]; `since` keeps sessions updated from that day
    /// on (`until` is not used).
    pub filters: Filters,
    pub limit: u32,
    /// Sessions skipped before the first one returned (paging, e.g. an MCP cursor).
    pub offset: u32,
}

/// The labels of the sessions `filter` covers, most recently updated first, at most
/// `filter.limit`.
pub fn list_labels(facts: &HashMap<String, SessionFacts>, filter: &ListFilter) -> Vec<String> {
    let mut rows: Vec<&SessionFacts> = facts
        .values()
        .filter(|f| filter.filters.covers(f))
        .filter(|f| filter.filters.since_ms.is_none_or(|s| f.updated_at >= s))
        .collect();
    rows.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.label.cmp(&b.label))
    });
    rows.into_iter()
        .skip(filter.offset as usize)
        .take(filter.limit as usize)
        .map(|f| f.label.clone())
        .collect()
}

/// Sessions spawned by `label`, with the tool call that spawned each.
pub fn spawned_sessions(
    conn: &Connection,
    label: &str,
) -> Result<Vec<(String, Option<String>)>, QueryError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT label, spawn_tool_call_id FROM sessions WHERE parent_session_label = ?1
             ORDER BY created_at, label",
        )
        .map_err(QueryError::ledger("spawned_sessions"))?;
    stmt.query_map(params![label], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(QueryError::ledger("spawned_sessions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_flattened_and_cut_with_a_marker() {
        assert_eq!(cut_title("  fix\n the   build "), "fix the build");
        let long = "word ".repeat(40);
        let t = cut_title(&long);
        assert_eq!(t.chars().count(), TITLE_CHARS);
        assert!(t.ends_with('…'));
    }
}
