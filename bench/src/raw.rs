//! The in-run baseline of the replay benchmark: the corpus' rows (sessions, turns, threads,
//! messages, tool calls, import mappings) inserted by a minimal loop of prepared statements in
//! ONE transaction with one SAVEPOINT per session, into a ledger opened with the same pragmas
//! and schema (`ledger::open_agents`), the search index written before COMMIT as nex's writer
//! does (`search_index::flush`), and a change-log row per row as nex's writer logs them
//! (`ledger::change_log`). No idempotency, no hashing, no JSON decoding of frames: the
//! floor that the pipeline is measured against.
//!
//! Tool bodies are stored as nex stores them (over 1 KiB zlib-compressed, `ledger::text`), so
//! both write the same bytes; their JSON text, compression and search text are computed before
//! the timed loop ([`ToolBodies::of`]), which only binds them (and lets the index read the
//! search texts, as nex's writer does). It keeps the default `temp_store`, not the writer's
//! (`ledger::configure_writer`), with which its one transaction of the whole corpus took 55 s
//! of CPU instead of 10 at 2,000 sessions.

use rusqlite::{Connection, params};

use nex::ledger::change_log::{self, log_insert};
use nex::ledger::text::{PackedBody, REMEMBERED_MAX_BYTES};
use nex::protocol::ImportSessionItem;

/// The stored form of every tool call's `(params_json, result_json)`, per item, in order.
pub struct ToolBodies(Vec<Vec<(PackedBody, Option<PackedBody>)>>);

impl ToolBodies {
    pub fn of(items: &[ImportSessionItem]) -> Self {
        Self(
            items
                .iter()
                .map(|item| {
                    item.tool_calls
                        .iter()
                        .map(|c| {
                            let params = json(&c.params_json).unwrap_or_else(|| "{}".into());
                            (
                                PackedBody::of(params),
                                json(&c.result_json).map(PackedBody::of),
                            )
                        })
                        .collect()
                })
                .collect(),
        )
    }
}

/// Rows written by [`insert_rows`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawCounts {
    pub sessions: u64,
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
}

/// The compact text of a tool body (`Value::to_string`'s, whichever form the body is held in).
fn json(v: &Option<nex::protocol::ToolJson>) -> Option<String> {
    v.as_ref().map(nex::protocol::ToolJson::text)
}

/// Inserts every item's rows and commits.
///
/// # Errors
/// Any SQLite error (nothing is committed then).
pub fn insert_rows(
    conn: &mut Connection,
    items: &[ImportSessionItem],
    bodies: &ToolBodies,
) -> rusqlite::Result<RawCounts> {
    let tx = conn.transaction()?;
    let mut counts = RawCounts::default();
    {
        let mut session = tx.prepare_cached(
            "INSERT INTO sessions (label, thread_id, persona_id, origin, origin_session_id, routing_key, created_at, updated_at)
             VALUES (?1, ?2, 'main', 'aix:claude-code', ?3, ?4, ?5, ?6)",
        )?;
        let mut turn = tx.prepare_cached(
            "INSERT INTO turns (id, parent_turn_id, status, started_at, completed_at, model, input_tokens, output_tokens, total_tokens, query_message_ids, response_message_id, source_event_id, workspace_path)
             VALUES (?1, ?2, 'completed', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut thread = tx.prepare_cached(
            "INSERT INTO threads (turn_id, thread_key, persona_id, total_tokens) VALUES (?1, ?1, 'main', ?2)",
        )?;
        let mut message = tx.prepare_cached(
            "INSERT INTO messages (id, turn_id, role, content, source, sequence, created_at, metadata_json)
             VALUES (?1, ?2, ?3, ?4, 'aix:claude-code', ?5, ?6, ?7)",
        )?;
        let mut tool = tx.prepare_cached(
            "INSERT INTO tool_calls (id, turn_id, message_id, tool_name, params_json, result_json, status, started_at, completed_at, sequence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut mapping = tx.prepare_cached(
            "INSERT INTO session_imports (source, source_provider, source_session_id, source_session_fingerprint, session_label, imported_at, updated_at, last_run_id)
             VALUES ('aix', ?1, ?2, ?3, ?4, ?5, ?5, 'raw')",
        )?;
        let mut remembered = 0;
        for (item, bodies) in items.iter().zip(&bodies.0) {
            tx.execute_batch("SAVEPOINT raw_session")?;
            let sid = &item.source_session_id;
            let label = format!("raw:{sid}");
            let tid = |t: &str| format!("t:{sid}:{t}");
            let mid = |m: &str| format!("m:{sid}:{m}");
            for t in &item.turns {
                let turn_id = tid(&t.source_turn_id);
                let query = serde_json::to_string(
                    &t.query_message_source_ids
                        .iter()
                        .map(|m| mid(m))
                        .collect::<Vec<_>>(),
                )
                .ok();
                turn.execute(params![
                    turn_id,
                    t.parent_source_turn_id.as_deref().map(tid),
                    t.started_at_ms,
                    t.completed_at_ms,
                    t.model,
                    t.input_tokens,
                    t.output_tokens,
                    t.total_tokens,
                    query,
                    t.response_message_source_id.as_deref().map(mid),
                    t.source_turn_id,
                    item.session.workspace_path,
                ])?;
                log_insert(&tx, change_log::TURNS, &turn_id)?;
                thread.execute(params![turn_id, t.total_tokens])?;
                log_insert(&tx, change_log::THREADS, &turn_id)?;
                counts.turns += 1;
            }
            let first_turn = item.turns.first().map(|t| tid(&t.source_turn_id));
            for m in &item.messages {
                let metadata = serde_json::json!({"import_source": "aix", "source_message_id": m.source_message_id}).to_string();
                let message_id = mid(&m.source_message_id);
                message.execute(params![
                    message_id,
                    m.source_turn_id
                        .as_deref()
                        .map(tid)
                        .or_else(|| first_turn.clone()),
                    m.role,
                    m.content,
                    m.sequence,
                    m.created_at_ms,
                    metadata,
                ])?;
                log_insert(&tx, change_log::MESSAGES, &message_id)?;
                counts.messages += 1;
            }
            for (c, (params_json, result_json)) in item.tool_calls.iter().zip(bodies) {
                params_json.remember();
                remembered += params_json.remembered_size();
                if let Some(result) = result_json {
                    result.remember();
                    remembered += result.remembered_size();
                }
                let call_id = format!("c:{sid}:{}", c.source_tool_call_id);
                tool.execute(params![
                    call_id,
                    c.source_turn_id
                        .as_deref()
                        .map(tid)
                        .or_else(|| first_turn.clone()),
                    c.source_message_id.as_deref().map(mid),
                    c.tool_name,
                    params_json.stored,
                    result_json.as_ref().map(|r| &r.stored),
                    c.status.as_deref().unwrap_or("completed"),
                    c.started_at_ms,
                    c.completed_at_ms,
                    c.sequence,
                ])?;
                log_insert(&tx, change_log::TOOL_CALLS, &call_id)?;
                counts.tool_calls += 1;
            }
            let created = item.session.created_at_ms.unwrap_or(item.imported_at_ms);
            session.execute(params![
                label,
                item.turns.last().map(|t| tid(&t.source_turn_id)),
                sid,
                item.session.workspace_path,
                created,
                item.session.updated_at_ms.unwrap_or(created),
            ])?;
            log_insert(&tx, change_log::SESSIONS, &label)?;
            mapping.execute(params![
                item.source_provider,
                sid,
                item.source_session_fingerprint,
                label,
                item.imported_at_ms,
            ])?;
            let key = change_log::mapping_key("aix", &item.source_provider, sid);
            log_insert(&tx, change_log::SESSION_IMPORTS, &key)?;
            counts.sessions += 1;
            tx.execute_batch("RELEASE raw_session")?;
            // Index the rows before their search texts pass what a thread remembers (nex's
            // writer indexes each batch of at most 16 MiB of frames).
            if remembered > REMEMBERED_MAX_BYTES / 2 {
                nex::ledger::search_index::flush(&tx)?;
                remembered = 0;
            }
        }
    }
    // The same rows as an import: its search index too (nex writes it once per batch).
    nex::ledger::search_index::flush(&tx)?;
    tx.commit()?;
    Ok(counts)
}
