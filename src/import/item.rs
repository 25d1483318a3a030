//! The item algorithm (IMPORT_SEMANTICS.md "Item algorithm"): one `ImportSessionItem` ->
//! upserted turns, threads, messages, tool calls, session, history and import mapping.
//!
//! Runs inside the caller's per-item savepoint; an error leaves the rollback to the caller.
//!
//! **(improvement, incremental tails)** A reference to a turn or message that is not in the
//! item but whose deterministic row already exists in the ledger links to that row (a tail
//! worker sends partial items: the header plus the turns touched by new lines). When the
//! referent is in the item the result is the baseline's; when it exists nowhere it is still
//! NULL / dropped. `has_children` is derived from the ledger's rows, and the session's head is
//! the latest of its stored head and the item's turns, so any sequence of partial items and one
//! full item converge on the same rows (README "Tail = backfill").
//!
//! **Item rule 14 (extension, partial turns)**: a turn may come with only its new and changed
//! messages and tool calls (a tail append to a long open turn, README "Tail: the open turn as
//! deltas"); it then carries `toolCallCount`, the count of all its tool calls, which becomes the
//! row's `tool_call_count` (`rows::write_turns`). Rows the item does not carry are left as they
//! are (never removed nor rewritten). Without the field (an older worker's whole turns) the
//! item's tool calls naming the turn are counted, as in rule 6.
//!
//! **Item rule 15 (extension, retract)**: an item with `retract` deletes its session whole
//! (`replace::retract_session`) and is `retracted`, or `skipped` (reason `session_absent`) when
//! the ledger does not hold the session; its fingerprint is not required and nothing else of it
//! is read.

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::ImportError;
use super::ids::{IdKind, ROOT_TURN_ENTITY, scoped_id, session_label};
use super::replace;
use super::rows::{ItemJson, write_messages, write_tool_calls, write_turns};
use super::sql;
use crate::ledger::change_log;
use crate::protocol::{ImportSessionItem, ItemStatus, Turn};

/// What an item import needs besides the item.
pub(crate) struct ItemContext<'a> {
    pub conn: &'a Connection,
    pub source: &'a str,
    pub persona: &'a str,
    pub run_id: &'a str,
    pub now_ms: i64,
    /// Whether the rows it inserts are logged by it (`ledger::change_log::logged_by_writer`).
    pub log_inserts: bool,
}

/// A successful item: imported, upserted or skipped (reason `fingerprint_unchanged`).
pub(crate) struct ItemOutcome {
    pub status: ItemStatus,
    pub label: String,
}

/// Resolves source ids to row ids: the item's own entities first, then (improvement) rows
/// already in the ledger; lookups in the ledger are cached per item.
pub(super) struct Refs<'a> {
    conn: &'a Connection,
    source: &'a str,
    pub(super) provider: &'a str,
    pub(super) session_id: &'a str,
    /// The session's label (`turns.session_label` of its turns).
    pub(super) label: &'a str,
    pub(super) turns: HashMap<&'a str, String>,
    pub(super) messages: HashMap<&'a str, String>,
    ledger: RefCell<HashMap<String, bool>>,
}

impl<'a> Refs<'a> {
    fn id(&self, kind: IdKind, entity: &str) -> String {
        scoped_id(kind, self.source, self.provider, self.session_id, entity)
    }

    pub(super) fn turn(&self, source_id: Option<&str>) -> Result<Option<String>, ImportError> {
        self.resolve(IdKind::Turn, source_id)
    }

    pub(super) fn message(&self, source_id: Option<&str>) -> Result<Option<String>, ImportError> {
        self.resolve(IdKind::Message, source_id)
    }

    fn resolve(
        &self,
        kind: IdKind,
        source_id: Option<&str>,
    ) -> Result<Option<String>, ImportError> {
        let Some(src) = source_id.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let own = match kind {
            IdKind::Turn => &self.turns,
            IdKind::Message => &self.messages,
            IdKind::Tool => return Ok(None),
        };
        if let Some(id) = own.get(src) {
            return Ok(Some(id.clone()));
        }
        let id = self.id(kind, src);
        if let Some(&known) = self.ledger.borrow().get(&id) {
            return Ok(known.then_some(id));
        }
        let query = match kind {
            IdKind::Turn => sql::TURN_EXISTS,
            _ => sql::MESSAGE_EXISTS,
        };
        let exists = self
            .conn
            .prepare_cached(query)?
            .query_row([&id], |_| Ok(()))
            .optional()?
            .is_some();
        self.ledger.borrow_mut().insert(id.clone(), exists);
        Ok(exists.then_some(id))
    }
}

/// Session-level times after the fallbacks of rule 5.
pub(super) struct Times {
    pub(super) imported_at: i64,
    pub(super) created: i64,
    pub(super) updated: i64,
}

/// Imports one item. Item-level errors (`source_*_required`, ledger failures) are returned for
/// the caller to record as the item's `failed` reason.
pub(crate) fn import_item(
    ctx: &ItemContext<'_>,
    item: &ImportSessionItem,
    json: Option<&ItemJson>,
) -> Result<ItemOutcome, ImportError> {
    let conn = ctx.conn;
    let provider = item.source_provider.trim();
    let session_id = item.source_session_id.trim();
    let fingerprint = item.source_session_fingerprint.trim();
    if provider.is_empty() {
        return Err(ImportError::SourceProviderRequired);
    }
    if session_id.is_empty() {
        return Err(ImportError::SourceSessionIdRequired);
    }
    // 15. (extension) A retract deletes the session; its fingerprint only keys the request.
    if item.retract {
        return retract(ctx, provider, session_id);
    }
    if fingerprint.is_empty() {
        return Err(ImportError::SourceSessionFingerprintRequired);
    }

    // 1-2. Existing mapping and label.
    let existing: Option<(String, String, Option<u32>)> = conn
        .prepare_cached(sql::SELECT_MAPPING)?
        .query_row(params![ctx.source, provider, session_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let label = match &existing {
        Some((_, label, _)) if !label.trim().is_empty() => label.clone(),
        _ => resolve_label(
            ctx,
            provider,
            session_id,
            item.session.label_hint.as_deref(),
        )?,
    };

    // 13. (extension) A whole item of a newer mapping version replaces the session's rows.
    // Also when the whole item leaves out copies another session owns and its fingerprint
    // moved: those lines may have been imported here before their owner was known.
    let replaces = match (&existing, item.mapping_version) {
        (Some((stored_fp, _, stored)), Some(version)) if item.whole_session => {
            version > stored.unwrap_or(replace::BEFORE_VERSIONS)
                || (item.copies_elsewhere && stored_fp != fingerprint)
        }
        _ => false,
    };
    // The version recorded: a new session's, else only a whole item's (it never goes back).
    let record_version = if existing.is_none() || item.whole_session {
        item.mapping_version
    } else {
        None
    };

    // 3. Unchanged fingerprint: only the persona is refreshed.
    if let Some((stored_fp, _, _)) = &existing
        && stored_fp == fingerprint
        && !replaces
    {
        conn.prepare_cached(sql::SKIP_REFRESH_PERSONA)?
            .execute(params![ctx.persona, label])?;
        return Ok(ItemOutcome {
            status: ItemStatus::Skipped,
            label,
        });
    }

    // 5. Times.
    let session = &item.session;
    let imported_at = positive(item.imported_at_ms).unwrap_or(ctx.now_ms);
    let times = Times {
        imported_at,
        created: session
            .created_at_ms
            .and_then(positive)
            .unwrap_or(imported_at),
        updated: session
            .updated_at_ms
            .and_then(positive)
            .unwrap_or(imported_at),
    };

    // 4. Deterministic ids of the item's own entities (blank source ids are skipped).
    let mut refs = Refs {
        conn,
        source: ctx.source,
        provider,
        session_id,
        label: &label,
        turns: HashMap::with_capacity(item.turns.len()),
        messages: HashMap::with_capacity(item.messages.len()),
        ledger: RefCell::new(HashMap::new()),
    };
    let turns: Vec<&Turn> = item
        .turns
        .iter()
        .filter(|t| !t.source_turn_id.trim().is_empty())
        .collect();
    for turn in &turns {
        let src = turn.source_turn_id.trim();
        let id = refs.id(IdKind::Turn, src);
        refs.turns.insert(src, id);
    }
    for message in &item.messages {
        let src = message.source_message_id.trim();
        if !src.is_empty() {
            let id = refs.id(IdKind::Message, src);
            refs.messages.insert(src, id);
        }
    }
    let tool_ids: HashMap<&str, String> = item
        .tool_calls
        .iter()
        .map(|t| t.source_tool_call_id.trim())
        .filter(|s| !s.is_empty())
        .map(|s| (s, refs.id(IdKind::Tool, s)))
        .collect();

    // 6. Turns and threads.
    let root_id = turns
        .is_empty()
        .then(|| refs.id(IdKind::Turn, ROOT_TURN_ENTITY));
    let fallback_turn = match &root_id {
        Some(root) => root.clone(),
        // Without a root turn there is at least one turn.
        None => turns
            .first()
            .map(|first| refs.turns[first.source_turn_id.trim()].clone())
            .unwrap_or_default(),
    };
    // A session without a mapping has no rows yet: plain inserts (see `sql`).
    let fresh = existing.is_none();
    let refresh_ids = write_turns(ctx, item, &refs, &turns, root_id.as_deref(), &times, fresh)?;
    let head_turn = match &root_id {
        Some(root) => root.clone(),
        None => {
            let best = head_turn_id(&turns, &refs).unwrap_or_else(|| fallback_turn.clone());
            // A replacement holds the whole session: the stored head may be a row it removes.
            if fresh || replaces {
                best
            } else {
                session_head(conn, &label, best, &refs)?
            }
        }
    };
    if !refresh_ids.is_empty() {
        let mut refresh = conn.prepare_cached(sql::REFRESH_HAS_CHILDREN)?;
        for id in &refresh_ids {
            refresh.execute([id])?;
        }
    }

    // 7. Messages.
    write_messages(ctx, item, &refs, &fallback_turn, &times, fresh)?;

    // 8. Tool calls.
    write_tool_calls(
        ctx,
        item,
        json,
        &refs,
        &tool_ids,
        &fallback_turn,
        &times,
        fresh,
    )?;

    // 9. Session.
    let parent_label = match session.parent_source_session_id.as_deref().map(str::trim) {
        Some(parent) if !parent.is_empty() => Some(mapped_label(ctx, provider, parent)?),
        _ => None,
    };
    let spawn_tool_call_id = session
        .spawn_tool_call_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|spawn| match tool_ids.get(spawn) {
            Some(id) => id.clone(),
            None => {
                // (improvement) The spawning call lives in the parent session's rows.
                let owner = session
                    .parent_source_session_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .unwrap_or(session_id);
                scoped_id(IdKind::Tool, ctx.source, provider, owner, spawn)
            }
        });
    let routing_key = session
        .workspace_path
        .as_deref()
        .or(session.project.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    // Inserts are logged here, updates by their trigger (`ledger::change_log`).
    let session_existed =
        ctx.log_inserts && conn.prepare_cached(sql::SESSION_EXISTS)?.exists([&label])?;
    conn.prepare_cached(sql::UPSERT_SESSION)?.execute(params![
        label,
        head_turn,
        ctx.persona,
        i64::from(session.is_subagent),
        parent_label,
        spawn_tool_call_id,
        non_blank(session.task_description.as_deref()),
        non_blank(session.task_status.as_deref()),
        routing_key,
        format!("aix:{provider}"),
        session_id,
        times.created,
        times.updated.max(times.created),
        provider,
        non_blank(session.workspace_path.as_deref()),
    ])?;
    if ctx.log_inserts && !session_existed {
        change_log::log_insert(conn, change_log::SESSIONS, &label)?;
    }

    // 13. A replacement holds the whole session: its creation time is the item's (the kept
    // one may be a removed row's, e.g. a copied line's older time).
    if replaces {
        conn.prepare_cached(sql::REPLACE_SESSION_CREATED)?
            .execute(params![label, times.created])?;
    }

    // 10. History, only when the head changed (improvement).
    let latest: Option<String> = conn
        .prepare_cached(sql::LATEST_HISTORY_THREAD)?
        .query_row([&label], |r| r.get(0))
        .optional()?;
    if latest.as_deref() != Some(head_turn.as_str()) {
        conn.prepare_cached(sql::INSERT_HISTORY)?.execute(params![
            label,
            head_turn,
            times.imported_at.max(times.updated)
        ])?;
        if ctx.log_inserts {
            let id = conn.last_insert_rowid().to_string();
            change_log::log_insert(conn, change_log::SESSION_HISTORY, &id)?;
        }
    }

    // 13. Rows of the session that an older mapping produced and this item does not hold.
    if replaces {
        let keep = replace::Keep {
            turns: refs.turns.values().chain(root_id.as_ref()).collect(),
            messages: refs.messages.values().collect(),
            tool_calls: tool_ids.values().collect(),
        };
        let removed = replace::remove_stale_rows(conn, &label, &keep)?;
        tracing::info!(
            session_label = %label,
            mapping_version = item.mapping_version,
            turns = removed.turns,
            messages = removed.messages,
            tool_calls = removed.tool_calls,
            "session replaced under a newer mapping version"
        );
    }

    // 11. Mapping.
    conn.prepare_cached(sql::UPSERT_MAPPING)?.execute(params![
        ctx.source,
        provider,
        session_id,
        fingerprint,
        label,
        times.imported_at,
        ctx.now_ms,
        ctx.run_id,
        record_version,
    ])?;
    if ctx.log_inserts && existing.is_none() {
        let key = change_log::mapping_key(ctx.source, provider, session_id);
        change_log::log_insert(conn, change_log::SESSION_IMPORTS, &key)?;
    }

    Ok(ItemOutcome {
        status: if existing.is_some() {
            ItemStatus::Upserted
        } else {
            ItemStatus::Imported
        },
        label,
    })
}

/// Item rule 15: the session's rows deleted (`replace::retract_session`); `retracted`, or
/// `skipped` when the ledger does not hold the session (a repeated retract).
fn retract(
    ctx: &ItemContext<'_>,
    provider: &str,
    session_id: &str,
) -> Result<ItemOutcome, ImportError> {
    match replace::retract_session(ctx.conn, ctx.source, provider, session_id)? {
        replace::Retract::Absent => Ok(ItemOutcome {
            status: ItemStatus::Skipped,
            label: session_label(ctx.source, provider, session_id),
        }),
        replace::Retract::Deleted { label, removed } => {
            tracing::info!(
                session_label = %label,
                turns = removed.turns,
                messages = removed.messages,
                tool_calls = removed.tool_calls,
                "session retracted"
            );
            Ok(ItemOutcome {
                status: ItemStatus::Retracted,
                label,
            })
        }
    }
}

/// Rule 2: the deterministic label, unless the hint names a live session of this persona and
/// the deterministic label is not taken yet.
fn resolve_label(
    ctx: &ItemContext<'_>,
    provider: &str,
    session_id: &str,
    hint: Option<&str>,
) -> Result<String, ImportError> {
    let deterministic = session_label(ctx.source, provider, session_id);
    let Some(hint) = hint.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(deterministic);
    };
    if hint == deterministic {
        return Ok(deterministic);
    }
    let hint_live = ctx
        .conn
        .prepare_cached(sql::SESSION_LIVE_FOR_PERSONA)?
        .query_row(params![hint, ctx.persona], |_| Ok(()))
        .optional()?
        .is_some();
    if !hint_live {
        return Ok(deterministic);
    }
    let deterministic_live = ctx
        .conn
        .prepare_cached(sql::SESSION_LIVE)?
        .query_row([&deterministic], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(if deterministic_live {
        deterministic
    } else {
        hint.to_owned()
    })
}

/// The label of another session of the same provider: its import mapping's, else its
/// deterministic label (even when it is not imported yet).
pub(super) fn mapped_label(
    ctx: &ItemContext<'_>,
    provider: &str,
    session_id: &str,
) -> Result<String, ImportError> {
    let stored: Option<(String, String)> = ctx
        .conn
        .prepare_cached(sql::SELECT_MAPPING)?
        .query_row(params![ctx.source, provider, session_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match stored {
        Some((_, label)) if !label.trim().is_empty() => label,
        _ => session_label(ctx.source, provider, session_id),
    })
}

/// The turn with the latest completion-or-start time (non-positive counts as 0; the first
/// wins ties).
fn head_turn_id(turns: &[&Turn], refs: &Refs<'_>) -> Option<String> {
    let mut best: Option<(&Turn, i64)> = None;
    for turn in turns {
        let ts = turn.completed_at_ms.unwrap_or(turn.started_at_ms).max(0);
        if best.is_none_or(|(_, b)| ts > b) {
            best = Some((turn, ts));
        }
    }
    best.and_then(|(turn, _)| refs.turns.get(turn.source_turn_id.trim()).cloned())
}

/// **(improvement)** The head over every turn of the session, not only the item's: a partial
/// item (the turns a tail append touched) may not hold the latest turn. `best` is the item's
/// head; the stored head wins when it is not one of the item's turns and its row is strictly
/// later (ties keep the stored one, sent first). Turn rows must be written already.
fn session_head(
    conn: &Connection,
    label: &str,
    best: String,
    refs: &Refs<'_>,
) -> Result<String, ImportError> {
    let stored: Option<(String, Option<i64>)> = conn
        .prepare_cached(sql::SESSION_HEAD)?
        .query_row([label], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((stored, Some(stored_at))) = stored else {
        return Ok(best);
    };
    if stored == best || refs.turns.values().any(|id| *id == stored) {
        return Ok(best);
    }
    let best_at: Option<i64> = conn
        .prepare_cached(sql::TURN_HEAD_TIME)?
        .query_row([&best], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(match best_at {
        Some(at) if at > stored_at => best,
        _ => stored,
    })
}

pub(super) fn positive(v: i64) -> Option<i64> {
    (v > 0).then_some(v)
}

pub(super) fn non_blank(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}
