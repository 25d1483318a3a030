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
//! Item rule 15 **(extension)**: a `retract` item deletes its session whole ([`retract_session`]):
//! the worker produced the session from a source that still exists and whose final content,
//! read whole under the current mapping, yields no such session any more. The rows go as rule
//! 13's do (the session's turns, messages, tool calls, threads and history entries), and with
//! them the session row and its import mapping. Links from other sessions are left to those
//! sessions: a subagent whose parent was retracted keeps its rows and its `parent_session_label`
//! (as when its parent is not imported yet); only references the foreign keys hold (a turn or a
//! session naming a removed turn as parent, a tool call naming a removed message) are cleared.
//!
//! Turns written before `turns.session_label` existed were attributed by migration 0002 (head,
//! messages, parent links), and their messages and tool calls by 0003 (from their turn); a row
//! they could not attribute is never removed.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

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
        let mut unlink_result = conn.prepare_cached(
            "UPDATE tool_calls SET result_message_id = NULL WHERE result_message_id = ?1",
        )?;
        let mut delete = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
        for id in &messages {
            unlink.execute([id])?;
            unlink_result.execute([id])?;
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

/// What a retract found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Retract {
    /// The ledger held no such session (never imported, or retracted before): nothing done.
    Absent,
    /// The session `label` and its rows were deleted.
    Deleted { label: String, removed: Removed },
}

/// Item rule 15: deletes the session `(source, provider, session_id)`: its import mapping, its
/// history, its session row, then every turn, message and tool call of its label (as
/// [`remove_stale_rows`] with nothing kept). A label that another import mapping still names
/// keeps its rows (only this mapping goes). Idempotent: an absent session is
/// [`Retract::Absent`].
///
/// Errors: a ledger failure (the caller's savepoint rolls everything back).
pub(crate) fn retract_session(
    conn: &Connection,
    source: &str,
    provider: &str,
    session_id: &str,
) -> Result<Retract, ImportError> {
    let label: Option<String> = conn
        .prepare_cached(super::sql::SELECT_MAPPING)?
        .query_row(params![source, provider, session_id], |r| r.get(1))
        .optional()?;
    let Some(label) = label else {
        return Ok(Retract::Absent);
    };
    conn.prepare_cached(
        "DELETE FROM session_imports
         WHERE source = ?1 AND source_provider = ?2 AND source_session_id = ?3",
    )?
    .execute(params![source, provider, session_id])?;
    let shared: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM session_imports WHERE session_label = ?1)")?
        .query_row([&label], |r| r.get(0))?;
    if shared {
        return Ok(Retract::Deleted {
            label,
            removed: Removed::default(),
        });
    }
    conn.prepare_cached("DELETE FROM session_history WHERE session_label = ?1")?
        .execute([&label])?;
    conn.prepare_cached("DELETE FROM sessions WHERE label = ?1")?
        .execute([&label])?;
    let keep = Keep {
        turns: HashSet::new(),
        messages: HashSet::new(),
        tool_calls: HashSet::new(),
    };
    let removed = remove_stale_rows(conn, &label, &keep)?;
    Ok(Retract::Deleted { label, removed })
}
