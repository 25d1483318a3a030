-- agents.db 0007: a cheaper full-text index (issue 13: keeping the index of 0005 tripled the
-- backfill's wall time; most of the text is long tool output, and half the messages have no
-- text at all since 0004 moved tool results into their calls).
--
-- What is indexed, and so searchable:
-- - `messages_fts`: a message's text and thinking, whole. A message with neither (most role
--   `tool` messages) is left out of the index: the view `messages_search` is its content.
-- - `tool_calls_fts`, through the view `tool_calls_search`: a tool call's name, whole; its
--   parameters, result and error: a text of at most 1,536 characters whole, a longer one its
--   first 1,024 characters and its last 512 (the head of an output, and its end, where a
--   build or a test run says how it ended); the middle is stored and exported, not
--   searchable. JSON escapes of line breaks and tabs (`\n`, `\r`, `\t`) and escaped
--   backslashes read as spaces, so the word after a line break is a word (`\nerror` used to
--   be the token `nerror`).
--
-- Each view is its index's external content, so the triggers, `rebuild`, snippets and
-- `integrity-check` read one definition. The tool-call triggers read the row through the view
-- (after it is written; before it is deleted or changed), so the text the index removes is
-- the text it added. An UPDATE re-indexes only when an indexed column changed: the tail's
-- upserts that rewrite status or times leave the index alone.

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;

CREATE VIEW messages_search (message_rowid, content, thinking) AS
SELECT rowid, content, thinking FROM messages WHERE content <> '' OR thinking <> '';

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, thinking,
    content = 'messages_search', content_rowid = 'message_rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN new.content <> '' OR new.thinking <> ''
BEGIN
    INSERT INTO messages_fts (rowid, content, thinking)
        VALUES (new.rowid, new.content, new.thinking);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.content <> '' OR old.thinking <> ''
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, thinking)
        VALUES ('delete', old.rowid, old.content, old.thinking);
END;
-- One trigger, so the old text leaves before the new one comes.
CREATE TRIGGER messages_fts_update AFTER UPDATE ON messages
    WHEN old.content IS NOT new.content OR old.thinking IS NOT new.thinking
      OR old.rowid IS NOT new.rowid
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, thinking)
        SELECT 'delete', old.rowid, old.content, old.thinking
        WHERE old.content <> '' OR old.thinking <> '';
    INSERT INTO messages_fts (rowid, content, thinking)
        SELECT new.rowid, new.content, new.thinking
        WHERE new.content <> '' OR new.thinking <> '';
END;

DROP TRIGGER tool_calls_fts_insert;
DROP TRIGGER tool_calls_fts_delete;
DROP TRIGGER tool_calls_fts_update;
DROP TABLE tool_calls_fts;

CREATE VIEW tool_calls_search (call_rowid, tool_name, params_json, result_json, error) AS
SELECT rowid, tool_name,
    replace(replace(replace(replace(
        CASE WHEN length(params_json) <= 1536 THEN params_json
             ELSE substr(params_json, 1, 1024) || ' … ' || substr(params_json, -512) END,
        '\\', ' '), '\n', ' '), '\r', ' '), '\t', ' '),
    replace(replace(replace(replace(
        CASE WHEN length(result_json) <= 1536 THEN result_json
             ELSE substr(result_json, 1, 1024) || ' … ' || substr(result_json, -512) END,
        '\\', ' '), '\n', ' '), '\r', ' '), '\t', ' '),
    replace(replace(replace(replace(
        CASE WHEN length(error) <= 1536 THEN error
             ELSE substr(error, 1, 1024) || ' … ' || substr(error, -512) END,
        '\\', ' '), '\n', ' '), '\r', ' '), '\t', ' ')
FROM tool_calls;

CREATE VIRTUAL TABLE tool_calls_fts USING fts5(
    tool_name, params_json, result_json, error,
    content = 'tool_calls_search', content_rowid = 'call_rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER tool_calls_fts_insert AFTER INSERT ON tool_calls BEGIN
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        SELECT call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = new.rowid;
END;
CREATE TRIGGER tool_calls_fts_delete BEFORE DELETE ON tool_calls BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        SELECT 'delete', call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = old.rowid;
END;
CREATE TRIGGER tool_calls_fts_update_old BEFORE UPDATE ON tool_calls
    WHEN old.tool_name IS NOT new.tool_name OR old.params_json IS NOT new.params_json
      OR old.result_json IS NOT new.result_json OR old.error IS NOT new.error
      OR old.rowid IS NOT new.rowid
BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        SELECT 'delete', call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = old.rowid;
END;
CREATE TRIGGER tool_calls_fts_update_new AFTER UPDATE ON tool_calls
    WHEN old.tool_name IS NOT new.tool_name OR old.params_json IS NOT new.params_json
      OR old.result_json IS NOT new.result_json OR old.error IS NOT new.error
      OR old.rowid IS NOT new.rowid
BEGIN
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        SELECT call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = new.rowid;
END;

-- The rows written before this migration, to the new rules.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
INSERT INTO tool_calls_fts (tool_calls_fts) VALUES ('rebuild');
