-- agents.db 0005: full-text search (`nex search`, the MCP tool `search_sessions`).
--
-- Two FTS5 indexes with external content: the text stays in `messages` and `tool_calls` only
-- (no second copy); each index holds its tokens and points at its table's rowid.
-- - `messages_fts`: a message's text and thinking.
-- - `tool_calls_fts`: a tool call's name, parameters, result and error. A branch may move tool
--   results into role-tool messages: both tables are indexed, so either place is searchable.
--
-- Kept by triggers, so the index changes in the transaction (and savepoint) that changes the
-- rows: a committed turn is searchable at once, a rolled-back one never was. The import writes
-- with INSERT ... ON CONFLICT DO UPDATE (an UPDATE: the update triggers fire) and DELETE; it
-- never uses INSERT OR REPLACE, whose implicit delete would skip the delete triggers.
--
-- ROWIDS: both tables have TEXT primary keys, so their rowid is implicit and `VACUUM` may
-- renumber it, which would point the index at the wrong rows. nex never runs VACUUM; whoever
-- does must rebuild both indexes afterwards (`nex::ledger::search_index::vacuum` does both, and
-- `rebuild` alone repairs a ledger vacuumed by hand).
--
-- Tokenizer: unicode61 with diacritics folded; `_` is a token character so identifiers such as
-- `read_file` or `session_label` are one word (a prefix query `read*` still finds them).

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, thinking,
    content = 'messages', content_rowid = 'rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE VIRTUAL TABLE tool_calls_fts USING fts5(
    tool_name, params_json, result_json, error,
    content = 'tool_calls', content_rowid = 'rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content, thinking)
        VALUES (new.rowid, new.content, new.thinking);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, thinking)
        VALUES ('delete', old.rowid, old.content, old.thinking);
END;
-- Only when the text changes: an upsert that rewrites other columns leaves the index alone.
CREATE TRIGGER messages_fts_update AFTER UPDATE ON messages
    WHEN old.content IS NOT new.content OR old.thinking IS NOT new.thinking
      OR old.rowid IS NOT new.rowid
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, thinking)
        VALUES ('delete', old.rowid, old.content, old.thinking);
    INSERT INTO messages_fts (rowid, content, thinking)
        VALUES (new.rowid, new.content, new.thinking);
END;

CREATE TRIGGER tool_calls_fts_insert AFTER INSERT ON tool_calls BEGIN
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        VALUES (new.rowid, new.tool_name, new.params_json, new.result_json, new.error);
END;
CREATE TRIGGER tool_calls_fts_delete AFTER DELETE ON tool_calls BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        VALUES ('delete', old.rowid, old.tool_name, old.params_json, old.result_json, old.error);
END;
CREATE TRIGGER tool_calls_fts_update AFTER UPDATE ON tool_calls
    WHEN old.tool_name IS NOT new.tool_name OR old.params_json IS NOT new.params_json
      OR old.result_json IS NOT new.result_json OR old.error IS NOT new.error
      OR old.rowid IS NOT new.rowid
BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        VALUES ('delete', old.rowid, old.tool_name, old.params_json, old.result_json, old.error);
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        VALUES (new.rowid, new.tool_name, new.params_json, new.result_json, new.error);
END;

-- The rows written before this migration.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
INSERT INTO tool_calls_fts (tool_calls_fts) VALUES ('rebuild');
