//! What a search shows of its best hits: their rows, read through the filters, and their
//! snippets.

use rusqlite::{Connection, params};

use super::{
    Kind, MATCH_CLOSE, MATCH_OPEN, Ranked, RoleFilter, SNIPPET_TOKENS, Scored, SearchFilter,
    SearchHit, query_error,
};
use crate::query::{QueryError, SESSION_PROJECT_SQL, SESSION_PROVIDER_SQL, project_matches};

/// The rows of `batch` (hits of one index) that pass the filters, with what a hit shows, in
/// the order of `batch`.
pub(super) fn rows_of(
    conn: &Connection,
    kind: Kind,
    filter: &SearchFilter,
    batch: &[Scored],
) -> Result<Vec<Ranked>, QueryError> {
    let (row_select, table, at, role, role_filter) = match kind {
        Kind::Message => (
            "m.id, m.turn_id, m.id",
            "messages m ON m.rowid = j.value JOIN turns t ON t.id = m.turn_id",
            "m.created_at",
            "m.role",
            "(?6 IS NULL OR m.role = ?6)",
        ),
        Kind::ToolCall => (
            "c.id, c.turn_id, c.message_id",
            "tool_calls c ON c.rowid = j.value JOIN turns t ON t.id = c.turn_id",
            "c.started_at",
            "'tool'",
            "(?6 IS NULL OR ?6 = 'tool')",
        ),
    };
    let sql = format!(
        "SELECT j.value, {row_select}, {role}, {at},
                t.session_label, s.origin_session_id, {provider}, {project}
         FROM json_each(?1) j JOIN {table}
         LEFT JOIN sessions s ON s.label = t.session_label
         WHERE (?2 IS NULL OR {provider} = ?2)
           AND {project_ok}
           AND (?4 IS NULL OR {at} >= ?4)
           AND (?5 IS NULL OR {at} < ?5)
           AND {role_filter}",
        provider = SESSION_PROVIDER_SQL,
        project = SESSION_PROJECT_SQL,
        project_ok = project_matches(SESSION_PROJECT_SQL, "?3"),
    );
    let ids = format!(
        "[{}]",
        batch
            .iter()
            .map(|h| h.rowid.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let score_of: std::collections::HashMap<i64, (usize, f64)> = batch
        .iter()
        .enumerate()
        .map(|(i, h)| (h.rowid, (i, h.score)))
        .collect();
    let mut stmt = conn.prepare_cached(&sql).map_err(query_error)?;
    let rows = stmt
        .query_map(
            params![
                ids,
                filter.provider,
                filter.project,
                filter.since_ms,
                filter.until_ms,
                filter.role.map(RoleFilter::as_str),
            ],
            |r| {
                let rowid: i64 = r.get(0)?;
                let at_ms: i64 = r.get(5)?;
                // json_each gives back the rowids it was given.
                let (order, score) = score_of.get(&rowid).copied().unwrap_or((usize::MAX, 0.0));
                Ok((
                    order,
                    Ranked {
                        kind,
                        rowid,
                        id: r.get(1)?,
                        at_ms,
                        hit: SearchHit {
                            label: r.get(6)?,
                            session_id: r.get(7)?,
                            provider: r.get(8)?,
                            project: r.get(9)?,
                            turn_id: r.get(2)?,
                            message_id: r.get(3)?,
                            role: r.get(4)?,
                            at: crate::query::time::rfc3339(at_ms),
                            snippet: String::new(),
                            score,
                        },
                    },
                ))
            },
        )
        .map_err(query_error)?;
    let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(query_error)?;
    out.sort_by_key(|(order, _)| *order);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// The snippet of one hit (computed for the hits returned only: it reads the row's text as
/// the index saw it: a tool call's through `tool_calls_search`), cut by [`crate::query::snippet`];
/// FTS5's `snippet()` when that finds no matching token.
pub(super) fn snippet(
    conn: &Connection,
    kind: Kind,
    query: &str,
    rowid: i64,
) -> Result<String, QueryError> {
    let columns_sql = match kind {
        Kind::Message => "SELECT content, thinking, NULL, NULL FROM messages WHERE rowid = ?1",
        Kind::ToolCall => {
            "SELECT tool_name, params_json, result_json, error FROM tool_calls_search
             WHERE call_rowid = ?1"
        }
    };
    let columns: [Option<String>; 4] = conn
        .query_row(columns_sql, [rowid], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
        })
        .map_err(query_error)?;
    if let Some(cut) = crate::query::snippet::snippet(&columns, query) {
        return Ok(cut);
    }
    let index = kind.index();
    let sql = format!(
        "SELECT snippet({index}, -1, ?3, ?4, '…', {SNIPPET_TOKENS})
         FROM {index} WHERE {index} MATCH ?1 AND rowid = ?2"
    );
    let text: Option<String> = conn
        .query_row(&sql, params![query, rowid, MATCH_OPEN, MATCH_CLOSE], |r| {
            r.get(0)
        })
        .map_err(query_error)?;
    Ok(text.unwrap_or_default())
}
