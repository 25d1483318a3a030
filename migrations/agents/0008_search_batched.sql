-- agents.db 0008: the full-text index written once per batch, not per row (issue 13: with the
-- triggers of 0007, every statement of the writer that fired one got a statement journal, and
-- FTS5 flushes its pending terms to a new segment at each savepoint: every row became a tiny
-- segment that automerge then merged; about half the writer's time).
--
-- `search_mark` holds, per indexed table, the highest rowid the index covers. Invariant: a row
-- whose rowid is <= its mark is in the index (when the view `messages_search` or
-- `tool_calls_search` of 0007 holds it), a row above it is not. The writer, as the last
-- statement before each COMMIT, indexes the rows above the mark through the views and raises
-- the mark (`search_index::flush`); so a committed turn is searchable at once, an uncommitted
-- one never. A writer that forgot is caught up by the next flush.
--
-- The triggers keep the invariant for rows already indexed: an UPDATE or DELETE of a row at or
-- below the mark changes the index at once; an INSERT at or below the mark (a rowid reused
-- after the highest row was deleted) is indexed at once. Rows above the mark are left to the
-- flush, which reads their final values.

CREATE TABLE search_mark (
    messages_mark   INTEGER NOT NULL,
    tool_calls_mark INTEGER NOT NULL
);
-- 0007's triggers indexed every existing row.
INSERT INTO search_mark (messages_mark, tool_calls_mark)
SELECT (SELECT coalesce(max(rowid), 0) FROM messages),
       (SELECT coalesce(max(rowid), 0) FROM tool_calls);

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN (new.content <> '' OR new.thinking <> '')
     AND new.rowid <= (SELECT messages_mark FROM search_mark)
BEGIN
    INSERT INTO messages_fts (rowid, content, thinking)
        VALUES (new.rowid, new.content, new.thinking);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN (old.content <> '' OR old.thinking <> '')
     AND old.rowid <= (SELECT messages_mark FROM search_mark)
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
        WHERE (old.content <> '' OR old.thinking <> '')
          AND old.rowid <= (SELECT messages_mark FROM search_mark);
    INSERT INTO messages_fts (rowid, content, thinking)
        SELECT new.rowid, new.content, new.thinking
        WHERE (new.content <> '' OR new.thinking <> '')
          AND new.rowid <= (SELECT messages_mark FROM search_mark);
END;

DROP TRIGGER tool_calls_fts_insert;
DROP TRIGGER tool_calls_fts_delete;
DROP TRIGGER tool_calls_fts_update_old;
DROP TRIGGER tool_calls_fts_update_new;

CREATE TRIGGER tool_calls_fts_insert AFTER INSERT ON tool_calls
    WHEN new.rowid <= (SELECT tool_calls_mark FROM search_mark)
BEGIN
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        SELECT call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = new.rowid;
END;
CREATE TRIGGER tool_calls_fts_delete BEFORE DELETE ON tool_calls
    WHEN old.rowid <= (SELECT tool_calls_mark FROM search_mark)
BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        SELECT 'delete', call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = old.rowid;
END;
CREATE TRIGGER tool_calls_fts_update_old BEFORE UPDATE ON tool_calls
    WHEN (old.tool_name IS NOT new.tool_name OR old.params_json IS NOT new.params_json
      OR old.result_json IS NOT new.result_json OR old.error IS NOT new.error
      OR old.rowid IS NOT new.rowid)
     AND old.rowid <= (SELECT tool_calls_mark FROM search_mark)
BEGIN
    INSERT INTO tool_calls_fts (tool_calls_fts, rowid, tool_name, params_json, result_json, error)
        SELECT 'delete', call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = old.rowid;
END;
CREATE TRIGGER tool_calls_fts_update_new AFTER UPDATE ON tool_calls
    WHEN (old.tool_name IS NOT new.tool_name OR old.params_json IS NOT new.params_json
      OR old.result_json IS NOT new.result_json OR old.error IS NOT new.error
      OR old.rowid IS NOT new.rowid)
     AND new.rowid <= (SELECT tool_calls_mark FROM search_mark)
BEGIN
    INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
        SELECT call_rowid, tool_name, params_json, result_json, error
        FROM tool_calls_search WHERE call_rowid = new.rowid;
END;
