//! Item rule 13 **(extension)**: a whole item of a newer mapping version replaces its session's
//! rows (SOURCES.md "Rewrites": rows are never deleted because a source changed or disappeared;
//! the one exception is a change of the worker's mapping, our own mistake being corrected).
//!
//! Every item of a versioned worker carries `mappingVersion`, and `wholeSession` when it holds
//! the whole session as its source holds it; `session_imports.mapping_version` keeps the version
//! the session was created under or last replaced with (NULL: written before versions, i.e.
//! version 1). When a whole item's version is above the stored one, the rows
//! of the session (its turns, messages and tool calls, by their `session_label`) that the item
//! does not hold are removed, after the item's own rows are written and in the
//! same savepoint: a failure leaves the session as it was, a success is one commit with the
//! import. Partial tail items never remove anything and never raise the stored version.
//!
//! Turns written before `turns.session_label` existed were attributed by migration 0002 (head,
//! messages, parent links), and their messages and tool calls by 0003 (from their turn); a row
//! they could not attribute is never removed.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::ImportError;

/// The version of sessions imported before mapping versions existed.
pub(crate) const BEFORE_VERSIONS: u32 = 1;

/// The row ids the replacing item holds.
pub(crate) struct Keep<'a> {
    pub turns: HashSet<&'a String>,
    pub messages: HashSet<&'a String>,
    pub tool_calls: HashSet<&'a String>,
}

/// How many rows a replacement removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
}

const SESSION_TURNS: &str = "SELECT id FROM turns WHERE session_label = ?1";
const SESSION_MESSAGES: &str = "SELECT id FROM messages WHERE session_label = ?1";
const SESSION_TOOL_CALLS: &str = "SELECT id FROM tool_calls WHERE session_label = ?1";

/// Removes the rows of session `label` that `keep` does not hold, in an order the foreign keys
/// accept: tool calls, messages (references to them from kept tool calls cleared), then the
/// turns with their threads and history entries (references to them from kept turns and from
/// the session cleared, `has_children` of kept parents re-derived).
///
/// Errors: a ledger failure (`ledger_write_failed` for the item; the caller's savepoint rolls
/// everything back).
pub(crate) fn remove_stale_rows(
    conn: &Connection,
    label: &str,
    keep: &Keep<'_>,
) -> Result<Removed, ImportError> {
    let stale = |sql: &str, keep: &HashSet<&String>| -> Result<Vec<String>, ImportError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let ids = stmt.query_map([label], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            if !keep.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    };
    let tool_calls = stale(SESSION_TOOL_CALLS, &keep.tool_calls)?;
    let messages = stale(SESSION_MESSAGES, &keep.messages)?;
    let turns = stale(SESSION_TURNS, &keep.turns)?;

    {
        let mut delete = conn.prepare_cached("DELETE FROM tool_calls WHERE id = ?1")?;
        for id in &tool_calls {
            delete.execute([id])?;
        }
    }
    {
        let mut unlink =
            conn.prepare_cached("UPDATE tool_calls SET message_id = NULL WHERE message_id = ?1")?;
        let mut delete = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
        for id in &messages {
            unlink.execute([id])?;
            delete.execute([id])?;
        }
    }
    let mut parents: HashSet<String> = HashSet::new();
    {
        let mut parent_of =
            conn.prepare_cached("SELECT parent_turn_id FROM turns WHERE id = ?1")?;
        let mut orphan = conn
            .prepare_cached("UPDATE turns SET parent_turn_id = NULL WHERE parent_turn_id = ?1")?;
        let mut history =
            conn.prepare_cached("DELETE FROM session_history WHERE thread_id = ?1")?;
        let mut session_turn = conn.prepare_cached(
            "UPDATE sessions SET parent_turn_id = NULL WHERE parent_turn_id = ?1",
        )?;
        let mut thread = conn.prepare_cached("DELETE FROM threads WHERE turn_id = ?1")?;
        let mut turn = conn.prepare_cached("DELETE FROM turns WHERE id = ?1")?;
        let stale: HashSet<&String> = turns.iter().collect();
        for id in &turns {
            let parent: Option<String> = parent_of.query_row([id], |r| r.get(0))?;
            if let Some(p) = parent.filter(|p| !stale.contains(p)) {
                parents.insert(p);
            }
            orphan.execute([id])?;
            history.execute([id])?;
            session_turn.execute([id])?;
            thread.execute([id])?;
            turn.execute([id])?;
        }
    }
    if !parents.is_empty() {
        let mut refresh = conn.prepare_cached(super::sql::REFRESH_HAS_CHILDREN)?;
        for id in &parents {
            refresh.execute(params![id])?;
        }
    }
    Ok(Removed {
        turns: turns.len() as u64,
        messages: messages.len() as u64,
        tool_calls: tool_calls.len() as u64,
    })
}
