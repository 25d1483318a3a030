-- agents.db 0002: mapping versions (SOURCES.md "Rewrites", IMPORT_SEMANTICS.md item rule 13).
--
-- (extension) `turns.session_label`: the session whose item wrote the turn. A session's rows are
-- its turns, the messages and tool calls on them, and their threads; this column is how the
-- import finds the rows an older mapping produced when a newer one replaces the session, and how
-- `nex import verify` counts a session's rows.
ALTER TABLE turns ADD COLUMN session_label TEXT;
CREATE INDEX idx_turns_session ON turns(session_label);

-- (extension) The mapping version of the worker's last whole item of the session; NULL: written
-- before mapping versions (version 1).
ALTER TABLE session_imports ADD COLUMN mapping_version INTEGER;

-- Attribute the turns written before this migration, from what links them to a session:
-- 1. the session's head turn;
UPDATE turns SET session_label = (
        SELECT s.label FROM sessions s WHERE s.thread_id = turns.id ORDER BY s.label LIMIT 1)
    WHERE session_label IS NULL;
-- 2. the import identity of the messages on the turn;
UPDATE turns SET session_label = (
        SELECT si.session_label
        FROM messages m
        JOIN session_imports si
          ON si.source = json_extract(m.metadata_json, '$.import_source')
         AND si.source_provider = json_extract(m.metadata_json, '$.import_provider')
         AND si.source_session_id = json_extract(m.metadata_json, '$.import_session_id')
        WHERE m.turn_id = turns.id AND json_valid(m.metadata_json)
        LIMIT 1)
    WHERE session_label IS NULL;
-- 3. parent links (they never cross sessions: turn ids are scoped by session), both ways.
WITH RECURSIVE linked(id, label) AS (
        SELECT id, session_label FROM turns WHERE session_label IS NOT NULL
        UNION
        SELECT t.id, l.label FROM turns t JOIN linked l ON t.parent_turn_id = l.id
        UNION
        SELECT t.parent_turn_id, l.label FROM turns t JOIN linked l ON t.id = l.id
            WHERE t.parent_turn_id IS NOT NULL)
UPDATE turns SET session_label = (SELECT label FROM linked WHERE linked.id = turns.id LIMIT 1)
    WHERE session_label IS NULL;
