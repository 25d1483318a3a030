-- agents.db 0012: no trigger fires on an INSERT into a replicated table (issue 12: the CPU of a
-- backfill).
--
-- An INSERT trigger on a table with foreign keys, even one whose WHEN is false, makes SQLite
-- run every INSERT into it under a statement journal: each page the insert touches is first
-- copied aside, in case the statement fails half-way. The insert triggers of 0006 (the change log) and 0008 (the search
-- index, for a row inserted at or below the mark) did that for every row: `nex import replay`
-- of the `nex-bench peer` corpus spent 2.03 s of CPU with them, 1.74 s with them dropped and
-- no change log at all, 1.91 s with this migration (medians of three).
--
-- The change log: the ledger's writer logs each row it inserts, in the statement after it
-- (`ledger::change_log`); the update and delete triggers of 0006 stay.
--
-- The search index: 0008 indexed at once a row inserted at or below the mark, which happens
-- only when a rowid is reused, that is after the rows with the highest rowids were deleted
-- (SQLite gives a new row the highest rowid plus one). Instead, the mark now never stays above
-- the table's highest rowid: a delete that leaves it above lowers it to that rowid. Every row
-- at or below the new mark was at or below the old one (indexed), no row is above it, and a
-- row inserted next gets a rowid above it, which the writer's flush indexes.
--
-- The mark is lowered after the row left the index, which reads the old mark: for messages in
-- the same trigger (the order of two AFTER triggers is SQLite's choice), for tool calls in an
-- AFTER trigger (theirs leaves the index BEFORE the delete, reading the row through the view).
-- Both fire for every delete: deleting unindexed rows above the mark can leave it too high.

DROP TRIGGER change_log_turns_insert;
DROP TRIGGER change_log_threads_insert;
DROP TRIGGER change_log_sessions_insert;
DROP TRIGGER change_log_messages_insert;
DROP TRIGGER change_log_tool_calls_insert;
DROP TRIGGER change_log_session_history_insert;
DROP TRIGGER change_log_session_imports_insert;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER tool_calls_fts_insert;

-- A ledger whose highest rows were deleted since its last flush.
UPDATE search_mark SET
    messages_mark = min(messages_mark, (SELECT coalesce(max(rowid), 0) FROM messages)),
    tool_calls_mark = min(tool_calls_mark, (SELECT coalesce(max(rowid), 0) FROM tool_calls));

DROP TRIGGER messages_fts_delete;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, thinking)
        SELECT 'delete', old.rowid, old.content, old.thinking
        WHERE (old.content <> '' OR old.thinking <> '')
          AND old.rowid <= (SELECT messages_mark FROM search_mark);
    UPDATE search_mark SET messages_mark = (SELECT coalesce(max(rowid), 0) FROM messages)
        WHERE messages_mark > (SELECT coalesce(max(rowid), 0) FROM messages);
END;
CREATE TRIGGER tool_calls_mark_delete AFTER DELETE ON tool_calls
BEGIN
    UPDATE search_mark SET tool_calls_mark = (SELECT coalesce(max(rowid), 0) FROM tool_calls)
        WHERE tool_calls_mark > (SELECT coalesce(max(rowid), 0) FROM tool_calls);
END;
