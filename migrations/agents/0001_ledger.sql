-- agents.db: the agents ledger and the Session Import Service tables.
-- Schema of the baseline (IMPORT_SEMANTICS.md "Tables"); extensions are marked.
-- Times are epoch milliseconds.

CREATE TABLE turns (
    id                    TEXT PRIMARY KEY,
    -- Deferred so one item can name a parent listed after the child (forward references)
    -- without a second write pass.
    parent_turn_id        TEXT REFERENCES turns(id) DEFERRABLE INITIALLY DEFERRED,
    turn_type             TEXT NOT NULL DEFAULT 'normal',
    status                TEXT NOT NULL DEFAULT 'pending',
    started_at            INTEGER NOT NULL,
    completed_at          INTEGER,
    model                 TEXT,
    provider              TEXT,
    role                  TEXT NOT NULL DEFAULT 'unified',
    toolset_name          TEXT,
    tools_available       TEXT,
    permissions_granted   TEXT,
    permissions_used      TEXT,
    effective_config_json TEXT,
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    cached_input_tokens   INTEGER,
    cache_write_tokens    INTEGER,
    reasoning_tokens      INTEGER,
    total_tokens          INTEGER,
    query_message_ids     TEXT,
    response_message_id   TEXT,
    has_children          INTEGER NOT NULL DEFAULT 0,
    tool_call_count       INTEGER NOT NULL DEFAULT 0,
    source_event_id       TEXT,
    workspace_path        TEXT
);
CREATE INDEX idx_turns_parent ON turns(parent_turn_id);
CREATE INDEX idx_turns_type ON turns(turn_type);
CREATE INDEX idx_turns_status ON turns(status);
CREATE INDEX idx_turns_started ON turns(started_at DESC);
CREATE INDEX idx_turns_has_children ON turns(has_children);
CREATE INDEX idx_turns_role ON turns(role);
CREATE INDEX idx_turns_source_event ON turns(source_event_id);

CREATE TABLE threads (
    turn_id            TEXT PRIMARY KEY REFERENCES turns(id),
    ancestry           TEXT,
    total_tokens       INTEGER,
    depth              INTEGER,
    persona_id         TEXT,
    system_prompt_hash TEXT,
    thread_key         TEXT UNIQUE
);
CREATE INDEX idx_threads_persona ON threads(persona_id);

CREATE TABLE sessions (
    label                TEXT PRIMARY KEY,
    thread_id            TEXT REFERENCES threads(turn_id),
    persona_id           TEXT NOT NULL,
    is_subagent          INTEGER NOT NULL DEFAULT 0,
    parent_session_label TEXT,
    parent_turn_id       TEXT REFERENCES turns(id),
    spawn_tool_call_id   TEXT,
    task_description     TEXT,
    task_status          TEXT,
    routing_key          TEXT,
    origin               TEXT,
    origin_session_id    TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    status               TEXT NOT NULL DEFAULT 'active'
);
CREATE INDEX idx_sessions_persona ON sessions(persona_id);
CREATE INDEX idx_sessions_routing ON sessions(routing_key);
CREATE INDEX idx_sessions_updated ON sessions(updated_at DESC);
CREATE INDEX idx_sessions_parent ON sessions(parent_session_label);
CREATE INDEX idx_sessions_origin ON sessions(origin);

CREATE TABLE messages (
    id            TEXT PRIMARY KEY,
    turn_id       TEXT NOT NULL REFERENCES turns(id),
    role          TEXT NOT NULL,
    content       TEXT,
    source        TEXT,
    sequence      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    thinking      TEXT,
    context_json  TEXT,
    metadata_json TEXT
);
CREATE INDEX idx_messages_turn_seq ON messages(turn_id, sequence);
CREATE INDEX idx_messages_role ON messages(role);

CREATE TABLE tool_calls (
    id                    TEXT PRIMARY KEY,
    turn_id               TEXT NOT NULL REFERENCES turns(id),
    message_id            TEXT REFERENCES messages(id),
    tool_name             TEXT NOT NULL,
    tool_number           INTEGER,
    params_json           TEXT NOT NULL,
    result_json           TEXT,
    error                 TEXT,
    status                TEXT NOT NULL DEFAULT 'pending',
    spawned_session_label TEXT,
    started_at            INTEGER NOT NULL,
    completed_at          INTEGER,
    sequence              INTEGER NOT NULL
);
CREATE INDEX idx_tool_calls_turn_seq ON tool_calls(turn_id, sequence);
CREATE INDEX idx_tool_calls_name ON tool_calls(tool_name);
CREATE INDEX idx_tool_calls_message ON tool_calls(message_id);
CREATE INDEX idx_tool_calls_spawned ON tool_calls(spawned_session_label);

CREATE TABLE session_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_label TEXT NOT NULL REFERENCES sessions(label),
    thread_id     TEXT NOT NULL REFERENCES threads(turn_id),
    changed_at    INTEGER NOT NULL
);
CREATE INDEX idx_session_history_label ON session_history(session_label, changed_at DESC);
CREATE INDEX idx_session_history_thread ON session_history(thread_id);

CREATE TABLE session_imports (
    source                     TEXT NOT NULL,
    source_provider            TEXT NOT NULL,
    source_session_id          TEXT NOT NULL,
    source_session_fingerprint TEXT NOT NULL,
    session_label              TEXT NOT NULL REFERENCES sessions(label),
    imported_at                INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    last_run_id                TEXT,
    PRIMARY KEY (source, source_provider, source_session_id)
);
CREATE INDEX idx_session_imports_label ON session_imports(session_label);
CREATE INDEX idx_session_imports_updated ON session_imports(updated_at DESC);

CREATE TABLE session_import_requests (
    idempotency_key TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    mode            TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    request_hash    TEXT,
    response_json   TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX idx_session_import_requests_created ON session_import_requests(created_at DESC);

CREATE TABLE session_import_chunk_parts (
    source                     TEXT NOT NULL,
    upload_id                  TEXT NOT NULL,
    chunk_index                INTEGER NOT NULL,
    chunk_total                INTEGER NOT NULL,
    mode                       TEXT NOT NULL,
    run_id                     TEXT NOT NULL,
    persona_id                 TEXT,
    idempotency_key            TEXT NOT NULL,
    source_provider            TEXT NOT NULL,
    source_session_id          TEXT NOT NULL,
    source_session_fingerprint TEXT NOT NULL,
    encoding                   TEXT NOT NULL,
    -- Emptied when the upload is imported (the row stays as a tombstone until the TTL).
    payload                    TEXT NOT NULL,
    created_at                 INTEGER NOT NULL,
    -- (extension) When the upload this part belongs to was imported; NULL while staged.
    completed_at               INTEGER,
    PRIMARY KEY (source, upload_id, chunk_index)
);
CREATE INDEX idx_chunk_parts_upload ON session_import_chunk_parts(source, upload_id, chunk_index);
CREATE INDEX idx_chunk_parts_created ON session_import_chunk_parts(created_at DESC);

-- (extension) Resume points of the workers, stored in the transaction of the import they
-- describe (PROTOCOL.md "Cursors").
CREATE TABLE session_import_cursors (
    source      TEXT NOT NULL,
    cursor_key  TEXT NOT NULL,
    cursor_json TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    last_run_id TEXT,
    PRIMARY KEY (source, cursor_key)
);
