-- agents.db 0009: large tool-call bodies stored compressed (issue 12, TARGETS.md P9; README
-- "Where the text is").
--
-- `tool_calls.params_json` and `tool_calls.result_json` hold a text of at most 1,024 bytes as
-- TEXT, a longer one as a BLOB: the zlib stream of the same UTF-8 text (`ledger::text`). Each
-- text was already stored once (0004); tool output is most of the sources' bytes and
-- compresses about three times. `nex_text(x)` (registered on every connection nex opens, and
-- in `nex sql`) reads either form; `nex_pack(x)` gives the stored form of a text.
--
-- The search index is unchanged: the view `tool_calls_search` (0007) reads the bodies through
-- `nex_search_text`, so it gives the index the same text as before and the FTS5 segments stay valid.

DROP VIEW tool_calls_search;
-- `nex_search_text(x)` is 0007's bounded, unescaped text of `nex_text(x)`, computed in one pass
-- (`ledger::text::search_text`, tested against 0007's SQL); the error column keeps 0007's SQL.
CREATE VIEW tool_calls_search (call_rowid, tool_name, params_json, result_json, error) AS
SELECT rowid, tool_name, nex_search_text(params_json), nex_search_text(result_json),
    replace(replace(replace(replace(
        CASE WHEN length(error) <= 1536 THEN error
             ELSE substr(error, 1, 1024) || ' … ' || substr(error, -512) END,
        '\\', ' '), '\n', ' '), '\r', ' '), '\t', ' ')
FROM tool_calls;

-- The rows written before: compressed in place. Their text does not change, so the triggers
-- that would re-index them (0008) or log them for the replica (0006) are set aside for this
-- one statement and put back as they were.
DROP TRIGGER tool_calls_fts_update_old;
DROP TRIGGER tool_calls_fts_update_new;
DROP TRIGGER change_log_tool_calls_update;

-- nex_pack decides on the exact byte length; a text of more than 1,024 bytes has more than
-- 256 characters.
UPDATE tool_calls
SET params_json = nex_pack(params_json), result_json = nex_pack(result_json)
WHERE (typeof(params_json) = 'text' AND length(params_json) > 256)
   OR (typeof(result_json) = 'text' AND length(result_json) > 256);

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
CREATE TRIGGER change_log_tool_calls_update AFTER UPDATE ON tool_calls BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (5, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
