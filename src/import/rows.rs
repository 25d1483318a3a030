//! Row writers of the item algorithm (IMPORT_SEMANTICS.md item rules 6-8): turns and threads,
//! messages, tool calls, with the baseline's normalisations.
//!
//! Rows of a session new to the ledger go in with plain INSERTs and fall back to the upsert on
//! a key conflict; rows of a known session go through the upserts, which skip unchanged rows
//! (rule 12). See `sql` for why plain inserts matter.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rusqlite::{CachedStatement, Connection, ToSql, params};
use serde_json::{Map, Value};

use super::ImportError;
use super::ids::ROOT_TURN_ENTITY;
use super::item::{ItemContext, Refs, Times, mapped_label, non_blank, positive};
use super::sql;
use crate::ledger::change_log;
use crate::ledger::text::PackedBody;
use crate::protocol::{ImportSessionItem, Message, ToolCall, ToolJson, Turn};

/// Writes one kind of row: a plain INSERT for a fresh session, falling back to the upsert on a
/// key conflict (a row that exists after all); the upsert otherwise. Statements are prepared
/// once per item. Each row it inserts (not one it updates) is logged in the change log
/// (`ledger::change_log`: no insert trigger does it since migration 0012).
struct RowWriter<'c> {
    conn: &'c Connection,
    fresh: bool,
    /// `ItemContext::log_inserts`.
    log_inserts: bool,
    kind: RowKind,
    insert: Option<CachedStatement<'c>>,
    upsert: Option<CachedStatement<'c>>,
}

/// The statements of one kind of row.
struct RowKind {
    insert_sql: &'static str,
    upsert_sql: &'static str,
    /// The upsert binds the first `upsert_arity` parameters of the insert.
    upsert_arity: usize,
    /// `SELECT 1` of the row with key `?1`.
    exists_sql: &'static str,
    /// Its `change_log.tbl`.
    table: i64,
}

const TURN_ROWS: RowKind = RowKind {
    insert_sql: sql::INSERT_TURN,
    upsert_sql: sql::UPSERT_TURN,
    upsert_arity: 20,
    exists_sql: sql::TURN_EXISTS,
    table: change_log::TURNS,
};
const THREAD_ROWS: RowKind = RowKind {
    insert_sql: sql::INSERT_THREAD,
    upsert_sql: sql::UPSERT_THREAD,
    upsert_arity: 3,
    exists_sql: sql::THREAD_EXISTS,
    table: change_log::THREADS,
};
const MESSAGE_ROWS: RowKind = RowKind {
    insert_sql: sql::INSERT_MESSAGE,
    upsert_sql: sql::UPSERT_MESSAGE,
    upsert_arity: 11,
    exists_sql: sql::MESSAGE_EXISTS,
    table: change_log::MESSAGES,
};
const TOOL_CALL_ROWS: RowKind = RowKind {
    insert_sql: sql::INSERT_TOOL_CALL,
    upsert_sql: sql::UPSERT_TOOL_CALL,
    upsert_arity: 15,
    exists_sql: sql::TOOL_CALL_EXISTS,
    table: change_log::TOOL_CALLS,
};

impl<'c> RowWriter<'c> {
    fn new(ctx: &ItemContext<'c>, fresh: bool, kind: RowKind) -> Self {
        Self {
            conn: ctx.conn,
            fresh,
            log_inserts: ctx.log_inserts,
            kind,
            insert: None,
            upsert: None,
        }
    }

    /// Writes the row whose key (the first parameter) is `key`. Returns true when the row went
    /// through the upsert (it may have existed).
    fn write(&mut self, key: &str, params: &[&dyn ToSql]) -> Result<bool, ImportError> {
        if self.fresh {
            if self.insert.is_none() {
                self.insert = Some(self.conn.prepare_cached(self.kind.insert_sql)?);
            }
            if let Some(insert) = self.insert.as_mut() {
                match insert.execute(params) {
                    Ok(_) => {
                        if self.log_inserts {
                            change_log::log_insert(self.conn, self.kind.table, key)?;
                        }
                        return Ok(false);
                    }
                    Err(err) if is_key_conflict(&err) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        // Whether the upsert inserts or updates: an update is logged by its trigger.
        let existed = self.log_inserts
            && self
                .conn
                .prepare_cached(self.kind.exists_sql)?
                .exists([key])?;
        if self.upsert.is_none() {
            self.upsert = Some(self.conn.prepare_cached(self.kind.upsert_sql)?);
        }
        if let Some(upsert) = self.upsert.as_mut() {
            upsert.execute(&params[..self.kind.upsert_arity])?;
        }
        if self.log_inserts && !existed {
            change_log::log_insert(self.conn, self.kind.table, key)?;
        }
        Ok(true)
    }
}

fn is_key_conflict(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error(),
        Some(e) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Writes the turns (or the synthetic root) and their threads; returns the ids whose
/// `has_children` must be re-derived from the ledger. For a fresh session `has_children` is
/// known from the item (nothing else can name its turns) and written with the row.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_turns(
    ctx: &ItemContext<'_>,
    item: &ImportSessionItem,
    refs: &Refs<'_>,
    turns: &[&Turn],
    root_id: Option<&str>,
    times: &Times,
    fresh: bool,
) -> Result<Vec<String>, ImportError> {
    let session = &item.session;
    let workspace = non_blank(session.workspace_path.as_deref());
    let mut turn_rows = RowWriter::new(ctx, fresh, TURN_ROWS);
    let mut thread_rows = RowWriter::new(ctx, fresh, THREAD_ROWS);
    let mut refresh: Vec<String> = Vec::new();

    if let Some(root) = root_id {
        let config = session.metadata.as_ref().map(Value::to_string);
        let upserted = turn_rows.write(
            root,
            params![
                root,
                None::<String>,
                "completed",
                times.created.min(times.updated),
                times.updated,
                non_blank(session.model.as_deref()),
                non_blank(session.provider.as_deref()),
                config,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<String>,
                None::<String>,
                item.tool_calls.len() as i64,
                ROOT_TURN_ENTITY,
                workspace,
                refs.label,
                0i64,
            ],
        )?;
        thread_rows.write(root, params![root, None::<i64>, ctx.persona])?;
        if upserted {
            refresh.push(root.to_owned());
        }
        return Ok(refresh);
    }

    let mut tool_counts: HashMap<&str, i64> = HashMap::new();
    for call in &item.tool_calls {
        if let Some(turn) = call.source_turn_id.as_deref().map(str::trim) {
            *tool_counts.entry(turn).or_default() += 1;
        }
    }
    // Parents named inside the item (fresh sessions derive has_children from this alone).
    let mut parents_in_item: HashSet<&str> = HashSet::new();
    for turn in turns {
        if let Some(parent) = non_blank(turn.parent_source_turn_id.as_deref())
            && refs.turns.contains_key(parent)
        {
            parents_in_item.insert(parent);
        }
    }
    for turn in turns {
        let src = turn.source_turn_id.trim();
        let id = &refs.turns[src];
        let parent = refs.turn(turn.parent_source_turn_id.as_deref())?;
        let started = positive(turn.started_at_ms).unwrap_or(times.created);
        let completed = turn.completed_at_ms.map(|c| positive(c).unwrap_or(started));
        let status = if completed.is_some() {
            "completed"
        } else {
            "pending"
        };
        let mut query_ids = Vec::with_capacity(turn.query_message_source_ids.len());
        for q in &turn.query_message_source_ids {
            if let Some(id) = refs.message(Some(q))? {
                query_ids.push(Value::String(id));
            }
        }
        let query_json = (!query_ids.is_empty()).then(|| Value::Array(query_ids).to_string());
        let response = refs.message(turn.response_message_source_id.as_deref())?;
        let clamp = |v: Option<i64>| v.map(|n| n.max(0));
        let total_tokens = clamp(turn.total_tokens);
        let upserted = turn_rows.write(
            id,
            params![
                id,
                parent,
                status,
                started,
                completed,
                non_blank(turn.model.as_deref()).or(non_blank(session.model.as_deref())),
                non_blank(turn.provider.as_deref()).or(non_blank(session.provider.as_deref())),
                turn.metadata.as_ref().map(Value::to_string),
                clamp(turn.input_tokens),
                clamp(turn.output_tokens),
                clamp(turn.cached_input_tokens),
                clamp(turn.cache_write_tokens),
                clamp(turn.reasoning_tokens),
                total_tokens,
                query_json,
                response,
                tool_call_count(turn, &tool_counts),
                src,
                workspace,
                refs.label,
                i64::from(parents_in_item.contains(src)),
            ],
        )?;
        thread_rows.write(id, params![id, total_tokens, ctx.persona])?;
        if upserted {
            refresh.push(id.clone());
        }
        if let Some(parent) = parent {
            let named_in_item = non_blank(turn.parent_source_turn_id.as_deref())
                .is_some_and(|p| refs.turns.contains_key(p));
            // A parent in the item gets its value from the insert (fresh) or is refreshed as a
            // written turn (upsert); a parent found in the ledger is always refreshed.
            if !named_in_item || !fresh {
                refresh.push(parent);
            }
        }
    }
    let mut seen = HashSet::with_capacity(refresh.len());
    refresh.retain(|id| seen.insert(id.clone()));
    Ok(refresh)
}

/// Item rule 14 (extension): the worker's count when the turn carries one (a partial item may
/// hold only the turn's new tool calls), else the item's tool calls naming the turn.
fn tool_call_count(turn: &Turn, item_counts: &HashMap<&str, i64>) -> i64 {
    turn.tool_call_count.map_or_else(
        || {
            item_counts
                .get(turn.source_turn_id.trim())
                .copied()
                .unwrap_or(0)
        },
        |n| n.max(0),
    )
}

pub(super) fn write_messages(
    ctx: &ItemContext<'_>,
    item: &ImportSessionItem,
    refs: &Refs<'_>,
    fallback_turn: &str,
    times: &Times,
    fresh: bool,
) -> Result<(), ImportError> {
    if item.messages.is_empty() {
        return Ok(());
    }
    let provider = refs.provider;
    let origin = format!("aix:{provider}");
    let mut rows = RowWriter::new(ctx, fresh, MESSAGE_ROWS);
    for message in &item.messages {
        let src = message.source_message_id.trim();
        if src.is_empty() {
            continue;
        }
        let turn = refs
            .turn(message.source_turn_id.as_deref())?
            .unwrap_or_else(|| fallback_turn.to_owned());
        rows.write(
            &refs.messages[src],
            params![
                refs.messages[src],
                turn,
                normalize_role(&message.role),
                non_blank(message.content.as_deref()),
                origin,
                message.sequence.max(0),
                positive(message.created_at_ms).unwrap_or(times.created),
                non_blank(message.thinking.as_deref()),
                context_json(message),
                message_metadata(ctx.source, refs, src, message),
                refs.label,
            ],
        )?;
    }
    Ok(())
}

/// The JSON text of an item's tool call parameters and results, as `write_tool_calls` stores
/// it (a long one compressed, `ledger::text`), computed ahead (off the ledger writer thread,
/// `stages::prepare`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemJson {
    /// Per tool call of the item, in order: `(params_json, result_json)`.
    tool_calls: Vec<(PackedBody, Option<PackedBody>)>,
}

impl ItemJson {
    pub fn of(item: &ImportSessionItem) -> Self {
        Self {
            tool_calls: item
                .tool_calls
                .iter()
                .map(|call| (params_text(call), result_text(call)))
                .collect(),
        }
    }

    /// [`ItemJson::of`], moving the JSON out of the item: each tool call's `params_json` and
    /// `result_json` values are dropped once serialised, so a large item is not held twice
    /// (parsed values are several times their text). The item must then be written with the
    /// returned value (and hashed before this call): alone, its tool calls have lost their JSON.
    pub fn take(item: &mut ImportSessionItem) -> Self {
        Self {
            tool_calls: item
                .tool_calls
                .iter_mut()
                .map(|call| {
                    // Moved out, not copied: text that crossed the pipe is stored as it is.
                    let params = call
                        .params_json
                        .take()
                        .map_or_else(|| "{}".to_owned(), ToolJson::into_text);
                    let result = call.result_json.take().map(ToolJson::into_text);
                    (PackedBody::of(params), result.map(PackedBody::of))
                })
                .collect(),
        }
    }
}

fn params_text(call: &ToolCall) -> PackedBody {
    PackedBody::of(
        call.params_json
            .as_ref()
            .map_or_else(|| "{}".to_owned(), ToolJson::text),
    )
}

fn result_text(call: &ToolCall) -> Option<PackedBody> {
    call.result_json.as_ref().map(|v| PackedBody::of(v.text()))
}

/// `json`, when given, must be [`ItemJson::of`]`(item)` (it is ignored if its length differs).
#[allow(clippy::too_many_arguments)]
pub(super) fn write_tool_calls(
    ctx: &ItemContext<'_>,
    item: &ImportSessionItem,
    json: Option<&ItemJson>,
    refs: &Refs<'_>,
    tool_ids: &HashMap<&str, String>,
    fallback_turn: &str,
    times: &Times,
    fresh: bool,
) -> Result<(), ImportError> {
    if item.tool_calls.is_empty() {
        return Ok(());
    }
    let mut rows = RowWriter::new(ctx, fresh, TOOL_CALL_ROWS);
    let json = json.filter(|j| j.tool_calls.len() == item.tool_calls.len());
    for (position, call) in item.tool_calls.iter().enumerate() {
        let src = call.source_tool_call_id.trim();
        if src.is_empty() {
            continue;
        }
        let (params_json, result_json) = match json.map(|j| &j.tool_calls[position]) {
            Some((params, result)) => (Cow::Borrowed(params), result.as_ref().map(Cow::Borrowed)),
            None => (
                Cow::Owned(params_text(call)),
                result_text(call).map(Cow::Owned),
            ),
        };
        let turn = refs
            .turn(call.source_turn_id.as_deref())?
            .unwrap_or_else(|| fallback_turn.to_owned());
        let message = refs.message(call.source_message_id.as_deref())?;
        let result_message = refs.message(call.result_source_message_id.as_deref())?;
        let started = positive(call.started_at_ms).unwrap_or(times.created);
        let completed = call.completed_at_ms.map(|c| positive(c).unwrap_or(started));
        let spawned = match non_blank(call.spawned_source_session_id.as_deref()) {
            Some(spawned) => Some(mapped_label(ctx, refs.provider, spawned)?),
            None => None,
        };
        // The batch's search index reads them at its flush, on this thread.
        params_json.remember();
        if let Some(result) = &result_json {
            result.remember();
        }
        rows.write(
            &tool_ids[src],
            params![
                tool_ids[src],
                turn,
                message,
                // Blank stays NULL so the NOT NULL constraint fails the item, as in the baseline.
                non_blank(Some(call.tool_name.as_str())),
                call.tool_number,
                params_json.stored,
                result_json.as_ref().map(|r| &r.stored),
                non_blank(call.error.as_deref()),
                normalize_tool_status(call, completed.is_some()),
                spawned,
                started,
                completed,
                call.sequence,
                refs.label,
                result_message,
            ],
        )?;
    }
    Ok(())
}

/// user | assistant | system | tool; anything else is an assistant message.
fn normalize_role(role: &str) -> &'static str {
    match role.trim().to_ascii_lowercase().as_str() {
        "user" => "user",
        "system" => "system",
        "tool" => "tool",
        _ => "assistant",
    }
}

/// pending | running | completed | failed; blank -> by completion, unknown -> pending.
fn normalize_tool_status(call: &ToolCall, completed: bool) -> &'static str {
    match call
        .status
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
    {
        None => {
            if completed {
                "completed"
            } else {
                "pending"
            }
        }
        Some(s) if s.is_empty() => {
            if completed {
                "completed"
            } else {
                "pending"
            }
        }
        Some(s) => match s.as_str() {
            "running" => "running",
            "completed" => "completed",
            "failed" => "failed",
            _ => "pending",
        },
    }
}

/// A JSON string is stored as its trimmed text; any other value as JSON.
fn context_json(message: &Message) -> Option<String> {
    match message.context_json.as_ref()? {
        Value::String(s) => non_blank(Some(s)).map(str::to_owned),
        other => Some(other.to_string()),
    }
}

/// The given metadata object (a non-object under `_raw`) plus the import provenance keys.
fn message_metadata(source: &str, refs: &Refs<'_>, source_id: &str, message: &Message) -> String {
    let mut map = match &message.metadata_json {
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            let mut map = Map::new();
            map.insert("_raw".to_owned(), other.clone());
            map
        }
        None => Map::new(),
    };
    map.insert("import_source".to_owned(), Value::from(source));
    map.insert("import_provider".to_owned(), Value::from(refs.provider));
    map.insert("import_session_id".to_owned(), Value::from(refs.session_id));
    map.insert("source_message_id".to_owned(), Value::from(source_id));
    Value::Object(map).to_string()
}
