//! The SQL of the import path. Every upsert skips the write when the row already holds the
//! new values (IMPORT_SEMANTICS.md item rule 12): `ON CONFLICT DO UPDATE … WHERE` a column
//! differs, so re-importing a large session that changed in one turn rewrites one turn's rows.

pub(crate) const SELECT_MAPPING: &str = "SELECT source_session_fingerprint, session_label,
        mapping_version
     FROM session_imports
     WHERE source = ?1 AND source_provider = ?2 AND source_session_id = ?3";

pub(crate) const SESSION_LIVE_FOR_PERSONA: &str =
    "SELECT 1 FROM sessions WHERE label = ?1 AND status != 'deleted' AND persona_id = ?2";

pub(crate) const SESSION_LIVE: &str =
    "SELECT 1 FROM sessions WHERE label = ?1 AND status != 'deleted'";

pub(crate) const SKIP_REFRESH_PERSONA: &str =
    "UPDATE sessions SET persona_id = ?1 WHERE label = ?2 AND persona_id IS NOT ?1";

/// A session's stored head and its completion-or-start time.
pub(crate) const SESSION_HEAD: &str = "SELECT t.id, MAX(COALESCE(t.completed_at, t.started_at), 0)
     FROM sessions s JOIN turns t ON t.id = s.thread_id WHERE s.label = ?1";

pub(crate) const TURN_HEAD_TIME: &str =
    "SELECT MAX(COALESCE(completed_at, started_at), 0) FROM turns WHERE id = ?1";

pub(crate) const TURN_EXISTS: &str = "SELECT 1 FROM turns WHERE id = ?1";
pub(crate) const MESSAGE_EXISTS: &str = "SELECT 1 FROM messages WHERE id = ?1";
pub(crate) const THREAD_EXISTS: &str = "SELECT 1 FROM threads WHERE turn_id = ?1";
pub(crate) const TOOL_CALL_EXISTS: &str = "SELECT 1 FROM tool_calls WHERE id = ?1";
pub(crate) const SESSION_EXISTS: &str = "SELECT 1 FROM sessions WHERE label = ?1";

pub(crate) const UPSERT_TURN: &str = "INSERT INTO turns (
        id, parent_turn_id, turn_type, status, started_at, completed_at, model, provider, role,
        effective_config_json, input_tokens, output_tokens, cached_input_tokens,
        cache_write_tokens, reasoning_tokens, total_tokens, query_message_ids,
        response_message_id, tool_call_count, source_event_id, workspace_path, session_label)
     VALUES (?1, ?2, 'normal', ?3, ?4, ?5, ?6, ?7, 'unified', ?8, ?9, ?10, ?11, ?12, ?13, ?14,
        ?15, ?16, ?17, ?18, ?19, ?20)
     ON CONFLICT(id) DO UPDATE SET
        parent_turn_id = excluded.parent_turn_id,
        turn_type = excluded.turn_type,
        status = excluded.status,
        started_at = excluded.started_at,
        completed_at = excluded.completed_at,
        model = excluded.model,
        provider = excluded.provider,
        role = excluded.role,
        effective_config_json = COALESCE(excluded.effective_config_json, turns.effective_config_json),
        input_tokens = excluded.input_tokens,
        output_tokens = excluded.output_tokens,
        cached_input_tokens = excluded.cached_input_tokens,
        cache_write_tokens = excluded.cache_write_tokens,
        reasoning_tokens = excluded.reasoning_tokens,
        total_tokens = excluded.total_tokens,
        query_message_ids = excluded.query_message_ids,
        response_message_id = excluded.response_message_id,
        tool_call_count = excluded.tool_call_count,
        source_event_id = excluded.source_event_id,
        workspace_path = excluded.workspace_path,
        session_label = excluded.session_label
     WHERE turns.parent_turn_id IS NOT excluded.parent_turn_id
        OR turns.turn_type IS NOT excluded.turn_type
        OR turns.status IS NOT excluded.status
        OR turns.started_at IS NOT excluded.started_at
        OR turns.completed_at IS NOT excluded.completed_at
        OR turns.model IS NOT excluded.model
        OR turns.provider IS NOT excluded.provider
        OR turns.role IS NOT excluded.role
        OR (excluded.effective_config_json IS NOT NULL
            AND turns.effective_config_json IS NOT excluded.effective_config_json)
        OR turns.input_tokens IS NOT excluded.input_tokens
        OR turns.output_tokens IS NOT excluded.output_tokens
        OR turns.cached_input_tokens IS NOT excluded.cached_input_tokens
        OR turns.cache_write_tokens IS NOT excluded.cache_write_tokens
        OR turns.reasoning_tokens IS NOT excluded.reasoning_tokens
        OR turns.total_tokens IS NOT excluded.total_tokens
        OR turns.query_message_ids IS NOT excluded.query_message_ids
        OR turns.response_message_id IS NOT excluded.response_message_id
        OR turns.tool_call_count IS NOT excluded.tool_call_count
        OR turns.source_event_id IS NOT excluded.source_event_id
        OR turns.workspace_path IS NOT excluded.workspace_path
        OR turns.session_label IS NOT excluded.session_label";

pub(crate) const UPSERT_THREAD: &str =
    "INSERT INTO threads (turn_id, total_tokens, persona_id, thread_key)
     VALUES (?1, ?2, ?3, ?1)
     ON CONFLICT(turn_id) DO UPDATE SET
        total_tokens = excluded.total_tokens,
        persona_id = excluded.persona_id,
        thread_key = excluded.thread_key
     WHERE threads.total_tokens IS NOT excluded.total_tokens
        OR threads.persona_id IS NOT excluded.persona_id
        OR threads.thread_key IS NOT excluded.thread_key";

/// `has_children` derived from the ledger's rows: 1 exactly when some turn names this one as
/// its parent, so partial items and a full item converge on the same value.
pub(crate) const REFRESH_HAS_CHILDREN: &str = "UPDATE turns
     SET has_children = EXISTS (SELECT 1 FROM turns AS c WHERE c.parent_turn_id = turns.id)
     WHERE id = ?1
       AND has_children IS NOT EXISTS (SELECT 1 FROM turns AS c WHERE c.parent_turn_id = turns.id)";

pub(crate) const UPSERT_MESSAGE: &str = "INSERT INTO messages (
        id, turn_id, role, content, source, sequence, created_at, thinking, context_json,
        metadata_json, session_label)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT(id) DO UPDATE SET
        turn_id = excluded.turn_id,
        role = excluded.role,
        content = excluded.content,
        source = excluded.source,
        sequence = excluded.sequence,
        created_at = excluded.created_at,
        thinking = excluded.thinking,
        context_json = excluded.context_json,
        metadata_json = excluded.metadata_json,
        session_label = excluded.session_label
     WHERE messages.turn_id IS NOT excluded.turn_id
        OR messages.role IS NOT excluded.role
        OR messages.content IS NOT excluded.content
        OR messages.source IS NOT excluded.source
        OR messages.sequence IS NOT excluded.sequence
        OR messages.created_at IS NOT excluded.created_at
        OR messages.thinking IS NOT excluded.thinking
        OR messages.context_json IS NOT excluded.context_json
        OR messages.metadata_json IS NOT excluded.metadata_json
        OR messages.session_label IS NOT excluded.session_label";

/// A body whose stored bytes differ but whose text is the same (`nex_same_text`: a row written
/// by a build whose compressor encodes differently) is not rewritten: the row keeps its bytes.
pub(crate) const UPSERT_TOOL_CALL: &str = "INSERT INTO tool_calls (
        id, turn_id, message_id, tool_name, tool_number, params_json, result_json, error,
        status, spawned_session_label, started_at, completed_at, sequence, session_label, result_message_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
     ON CONFLICT(id) DO UPDATE SET
        turn_id = excluded.turn_id,
        message_id = excluded.message_id,
        tool_name = excluded.tool_name,
        tool_number = excluded.tool_number,
        params_json = excluded.params_json,
        result_json = excluded.result_json,
        error = excluded.error,
        status = excluded.status,
        spawned_session_label = excluded.spawned_session_label,
        started_at = excluded.started_at,
        completed_at = excluded.completed_at,
        sequence = excluded.sequence,
        session_label = excluded.session_label,
        result_message_id = excluded.result_message_id
     WHERE tool_calls.turn_id IS NOT excluded.turn_id
        OR tool_calls.message_id IS NOT excluded.message_id
        OR tool_calls.tool_name IS NOT excluded.tool_name
        OR tool_calls.tool_number IS NOT excluded.tool_number
        OR (tool_calls.params_json IS NOT excluded.params_json
            AND NOT nex_same_text(tool_calls.params_json, excluded.params_json))
        OR (tool_calls.result_json IS NOT excluded.result_json
            AND NOT nex_same_text(tool_calls.result_json, excluded.result_json))
        OR tool_calls.error IS NOT excluded.error
        OR tool_calls.status IS NOT excluded.status
        OR tool_calls.spawned_session_label IS NOT excluded.spawned_session_label
        OR tool_calls.started_at IS NOT excluded.started_at
        OR tool_calls.completed_at IS NOT excluded.completed_at
        OR tool_calls.sequence IS NOT excluded.sequence
        OR tool_calls.session_label IS NOT excluded.session_label
        OR tool_calls.result_message_id IS NOT excluded.result_message_id";

/// Item rule 13: a replacing item's creation time replaces the stored one.
pub(crate) const REPLACE_SESSION_CREATED: &str =
    "UPDATE sessions SET created_at = ?2 WHERE label = ?1 AND created_at IS NOT ?2";

/// Nullable columns keep their stored value when the new one is NULL (rule 9: blanks never
/// erase); `persona_id`, `is_subagent`, `updated_at` and `status` are overwritten;
/// `created_at` is kept.
pub(crate) const UPSERT_SESSION: &str = "INSERT INTO sessions (
        label, thread_id, persona_id, is_subagent, parent_session_label, spawn_tool_call_id,
        task_description, task_status, routing_key, origin, origin_session_id, created_at,
        updated_at, status, provider, workspace_path)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'active', ?14, ?15)
     ON CONFLICT(label) DO UPDATE SET
        thread_id = COALESCE(excluded.thread_id, sessions.thread_id),
        persona_id = excluded.persona_id,
        is_subagent = excluded.is_subagent,
        parent_session_label = COALESCE(excluded.parent_session_label, sessions.parent_session_label),
        spawn_tool_call_id = COALESCE(excluded.spawn_tool_call_id, sessions.spawn_tool_call_id),
        task_description = COALESCE(excluded.task_description, sessions.task_description),
        task_status = COALESCE(excluded.task_status, sessions.task_status),
        routing_key = COALESCE(excluded.routing_key, sessions.routing_key),
        origin = COALESCE(excluded.origin, sessions.origin),
        origin_session_id = COALESCE(excluded.origin_session_id, sessions.origin_session_id),
        updated_at = excluded.updated_at,
        status = excluded.status,
        provider = COALESCE(excluded.provider, sessions.provider),
        workspace_path = COALESCE(excluded.workspace_path, sessions.workspace_path)
     WHERE (excluded.thread_id IS NOT NULL AND sessions.thread_id IS NOT excluded.thread_id)
        OR sessions.persona_id IS NOT excluded.persona_id
        OR sessions.is_subagent IS NOT excluded.is_subagent
        OR (excluded.parent_session_label IS NOT NULL
            AND sessions.parent_session_label IS NOT excluded.parent_session_label)
        OR (excluded.spawn_tool_call_id IS NOT NULL
            AND sessions.spawn_tool_call_id IS NOT excluded.spawn_tool_call_id)
        OR (excluded.task_description IS NOT NULL
            AND sessions.task_description IS NOT excluded.task_description)
        OR (excluded.task_status IS NOT NULL
            AND sessions.task_status IS NOT excluded.task_status)
        OR (excluded.routing_key IS NOT NULL
            AND sessions.routing_key IS NOT excluded.routing_key)
        OR (excluded.origin IS NOT NULL AND sessions.origin IS NOT excluded.origin)
        OR (excluded.origin_session_id IS NOT NULL
            AND sessions.origin_session_id IS NOT excluded.origin_session_id)
        OR sessions.updated_at IS NOT excluded.updated_at
        OR sessions.status IS NOT excluded.status
        OR (excluded.provider IS NOT NULL AND sessions.provider IS NOT excluded.provider)
        OR (excluded.workspace_path IS NOT NULL
            AND sessions.workspace_path IS NOT excluded.workspace_path)";

pub(crate) const LATEST_HISTORY_THREAD: &str = "SELECT thread_id FROM session_history
     WHERE session_label = ?1 ORDER BY changed_at DESC, id DESC LIMIT 1";

pub(crate) const INSERT_HISTORY: &str =
    "INSERT INTO session_history (session_label, thread_id, changed_at) VALUES (?1, ?2, ?3)";

pub(crate) const UPSERT_MAPPING: &str = "INSERT INTO session_imports (
        source, source_provider, source_session_id, source_session_fingerprint, session_label,
        imported_at, updated_at, last_run_id, mapping_version)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT(source, source_provider, source_session_id) DO UPDATE SET
        source_session_fingerprint = excluded.source_session_fingerprint,
        session_label = excluded.session_label,
        imported_at = excluded.imported_at,
        updated_at = excluded.updated_at,
        last_run_id = excluded.last_run_id,
        -- Only whole items carry a version; it never goes back (an older worker still running).
        mapping_version = CASE
            WHEN excluded.mapping_version IS NULL THEN session_imports.mapping_version
            WHEN session_imports.mapping_version IS NULL THEN excluded.mapping_version
            ELSE MAX(excluded.mapping_version, session_imports.mapping_version) END";

pub(crate) const SELECT_REQUEST: &str = "SELECT source, mode, request_hash, response_json
     FROM session_import_requests WHERE idempotency_key = ?1";

pub(crate) const UPSERT_REQUEST: &str = "INSERT INTO session_import_requests (
        idempotency_key, source, mode, run_id, request_hash, response_json, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT(idempotency_key) DO UPDATE SET
        source = excluded.source,
        mode = excluded.mode,
        run_id = excluded.run_id,
        request_hash = excluded.request_hash,
        response_json = excluded.response_json,
        created_at = excluded.created_at";

// ---- chunk parts ----

pub(crate) const PRUNE_PARTS: &str = "DELETE FROM session_import_chunk_parts WHERE created_at < ?1";

pub(crate) const FIRST_PART: &str = "SELECT chunk_total, mode, idempotency_key, source_provider,
        source_session_id, source_session_fingerprint, encoding, completed_at
     FROM session_import_chunk_parts
     WHERE source = ?1 AND upload_id = ?2
     ORDER BY chunk_index LIMIT 1";

pub(crate) const UPSERT_PART: &str = "INSERT INTO session_import_chunk_parts (
        source, upload_id, chunk_index, chunk_total, mode, run_id, persona_id, idempotency_key,
        source_provider, source_session_id, source_session_fingerprint, encoding, payload,
        created_at, completed_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, NULL)
     ON CONFLICT(source, upload_id, chunk_index) DO UPDATE SET
        chunk_total = excluded.chunk_total,
        mode = excluded.mode,
        run_id = excluded.run_id,
        persona_id = excluded.persona_id,
        idempotency_key = excluded.idempotency_key,
        source_provider = excluded.source_provider,
        source_session_id = excluded.source_session_id,
        source_session_fingerprint = excluded.source_session_fingerprint,
        encoding = excluded.encoding,
        payload = excluded.payload,
        created_at = excluded.created_at,
        completed_at = NULL";

/// A part as `UPSERT_PART` then `COMPLETE_PARTS` leave it, written once: payload `''`,
/// `completed_at` set (parts staged in memory by `staging`).
pub(crate) const UPSERT_COMPLETED_PART: &str = "INSERT INTO session_import_chunk_parts (
        source, upload_id, chunk_index, chunk_total, mode, run_id, persona_id, idempotency_key,
        source_provider, source_session_id, source_session_fingerprint, encoding, payload,
        created_at, completed_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, '', ?13, ?14)
     ON CONFLICT(source, upload_id, chunk_index) DO UPDATE SET
        chunk_total = excluded.chunk_total,
        mode = excluded.mode,
        run_id = excluded.run_id,
        persona_id = excluded.persona_id,
        idempotency_key = excluded.idempotency_key,
        source_provider = excluded.source_provider,
        source_session_id = excluded.source_session_id,
        source_session_fingerprint = excluded.source_session_fingerprint,
        encoding = excluded.encoding,
        payload = '',
        created_at = excluded.created_at,
        completed_at = excluded.completed_at";

pub(crate) const COUNT_PARTS: &str =
    "SELECT COUNT(*) FROM session_import_chunk_parts WHERE source = ?1 AND upload_id = ?2";

pub(crate) const LIST_PART_INDEXES: &str = "SELECT chunk_index, encoding
     FROM session_import_chunk_parts
     WHERE source = ?1 AND upload_id = ?2 ORDER BY chunk_index";

pub(crate) const LIST_PART_PAYLOADS: &str = "SELECT payload
     FROM session_import_chunk_parts
     WHERE source = ?1 AND upload_id = ?2 ORDER BY chunk_index";

pub(crate) const COMPLETE_PARTS: &str = "UPDATE session_import_chunk_parts
     SET payload = '', completed_at = ?3
     WHERE source = ?1 AND upload_id = ?2";

pub(crate) const DELETE_UPLOAD: &str =
    "DELETE FROM session_import_chunk_parts WHERE source = ?1 AND upload_id = ?2";

// ---- plain inserts of a new session's rows ----
//
// An upsert (`ON CONFLICT DO UPDATE`) on a table with foreign keys and update triggers runs
// under a statement journal: every page it touches is copied to the sub-journal first. A plain
// single-row INSERT needs none, as long as no trigger fires on it (migration 0012). Rows of a
// session without an import mapping are new, so they go through these and fall back to the
// upserts only on a key conflict.

pub(crate) const INSERT_TURN: &str = "INSERT INTO turns (
        id, parent_turn_id, turn_type, status, started_at, completed_at, model, provider, role,
        effective_config_json, input_tokens, output_tokens, cached_input_tokens,
        cache_write_tokens, reasoning_tokens, total_tokens, query_message_ids,
        response_message_id, tool_call_count, source_event_id, workspace_path, session_label,
        has_children)
     VALUES (?1, ?2, 'normal', ?3, ?4, ?5, ?6, ?7, 'unified', ?8, ?9, ?10, ?11, ?12, ?13, ?14,
        ?15, ?16, ?17, ?18, ?19, ?20, ?21)";

pub(crate) const INSERT_THREAD: &str =
    "INSERT INTO threads (turn_id, total_tokens, persona_id, thread_key) VALUES (?1, ?2, ?3, ?1)";

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (
        id, turn_id, role, content, source, sequence, created_at, thinking, context_json,
        metadata_json, session_label)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

pub(crate) const INSERT_TOOL_CALL: &str = "INSERT INTO tool_calls (
        id, turn_id, message_id, tool_name, tool_number, params_json, result_json, error,
        status, spawned_session_label, started_at, completed_at, sequence, session_label, result_message_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
