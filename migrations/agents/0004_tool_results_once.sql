-- agents.db 0004: every tool result's text stored once (README "The ledger: where the text is").
--
-- A tool call's result lives in `tool_calls.result_json` only. Claude Code used to store it a
-- second time as the content of the role `tool` message that carried it, and a third time in
-- `toolUseResult` fields repeating the text (Bash `stdout`) or the call's input (Edit
-- `oldString`/`newString`, Write `content`).
--
-- (extension) `tool_calls.result_message_id`: the message that carried the call's result (role
-- `tool`), the result's place in the conversation; that message keeps only the text of its other
-- blocks (usually none).
ALTER TABLE tool_calls ADD COLUMN result_message_id TEXT REFERENCES messages(id);

-- Rows written before: each Claude Code call with a result is linked to a role `tool` message
-- of its session (0003's `session_label`; else of its turn) whose content is the result's text
-- (the `content` string, or its non-empty text parts joined by newlines; an empty result: a
-- message without text written at the call's completion time): the one written at the
-- completion time first, then one of the call's turn (a replayed result line moves its message
-- to a later turn), then the earliest.
CREATE TEMP TABLE result_text AS
SELECT id AS call_id, turn_id, session_label, completed_at,
    CASE json_type(result_json, '$.content')
        WHEN 'text' THEN nullif(json_extract(result_json, '$.content'), '')
        WHEN 'array' THEN (
            SELECT group_concat(json_extract(p.value, '$.text'), char(10))
            FROM json_each(tool_calls.result_json, '$.content') p
            WHERE json_extract(p.value, '$.type') = 'text'
                AND json_extract(p.value, '$.text') <> '')
    END AS text
FROM tool_calls
WHERE result_json IS NOT NULL AND json_valid(result_json)
    AND json_type(result_json) = 'object'
    AND json_type(result_json, '$.content') IS NOT NULL;
CREATE INDEX temp.tmp_0004_result_text ON result_text(call_id);

-- Most results were written at their call's completion time: those are found through an index
-- on (session, time) first, which keeps the search from comparing every call with every message
-- of a long session.
CREATE INDEX tmp_0004_messages_time ON messages(session_label, created_at);
UPDATE tool_calls SET result_message_id = (
    SELECT m.id
    FROM result_text rt
    JOIN messages m ON m.session_label = rt.session_label AND m.created_at = rt.completed_at
    WHERE rt.call_id = tool_calls.id
        AND m.role = 'tool'
        AND json_extract(m.metadata_json, '$.import_provider') = 'claude-code'
        AND m.content IS rt.text
    ORDER BY m.turn_id = rt.turn_id DESC, m.sequence
    LIMIT 1)
WHERE id IN (SELECT call_id FROM result_text WHERE session_label IS NOT NULL);
DROP INDEX tmp_0004_messages_time;

UPDATE tool_calls SET result_message_id = (
    SELECT m.id
    FROM result_text rt
    JOIN messages m ON m.session_label = rt.session_label
    WHERE rt.call_id = tool_calls.id
        AND m.role = 'tool'
        AND json_extract(m.metadata_json, '$.import_provider') = 'claude-code'
        AND m.content IS rt.text
        AND (rt.text IS NOT NULL OR m.created_at = rt.completed_at)
    ORDER BY m.created_at = rt.completed_at DESC, m.turn_id = rt.turn_id DESC, m.sequence
    LIMIT 1)
WHERE result_message_id IS NULL AND id IN (SELECT call_id FROM result_text WHERE session_label IS NOT NULL);

UPDATE tool_calls SET result_message_id = (
    SELECT m.id
    FROM result_text rt
    JOIN messages m ON m.turn_id = rt.turn_id
    WHERE rt.call_id = tool_calls.id
        AND m.role = 'tool'
        AND json_extract(m.metadata_json, '$.import_provider') = 'claude-code'
        AND m.content IS rt.text
        AND (rt.text IS NOT NULL OR m.created_at = rt.completed_at)
    ORDER BY m.created_at = rt.completed_at DESC, m.sequence
    LIMIT 1)
WHERE result_message_id IS NULL AND id IN (SELECT call_id FROM result_text);

-- The linked messages' text is the result's: stored once, in the call. A message the call's
-- turn no longer holds was moved by a later copy of its line (real subagent files replay
-- lines), which the mapping keeps as a message of its own: its text stays.
CREATE TEMP TABLE linked AS
SELECT result_message_id AS message_id, turn_id FROM tool_calls WHERE result_message_id IS NOT NULL;
CREATE INDEX temp.tmp_0004_linked ON linked(message_id);
UPDATE messages SET content = NULL
WHERE content IS NOT NULL
    AND EXISTS (SELECT 1 FROM linked l WHERE l.message_id = messages.id AND l.turn_id = messages.turn_id);
DROP TABLE linked;

-- `toolUseResult` of the linked calls: the top-level non-empty strings equal to the result's
-- `content` string or to one of the call's top-level input strings are removed, and named in
-- `toolUseResultFrom` with their place (`"content"`, `"params.<key>"`); a `toolUseResult` that
-- is the `content` string itself becomes `"toolUseResultFrom":"content"`.
CREATE TEMP TABLE tur_field AS
SELECT tc.id AS call_id, f.key, f.fullkey, f.type,
    CASE
        WHEN f.type <> 'text' OR f.atom = '' THEN NULL
        WHEN json_type(tc.result_json, '$.content') = 'text'
            AND f.atom = json_extract(tc.result_json, '$.content') THEN 'content'
        ELSE (SELECT 'params.' || p.key
              FROM json_each(CASE WHEN json_valid(tc.params_json)
                                  AND json_type(tc.params_json) = 'object'
                                  THEN tc.params_json ELSE '{}' END) p
              WHERE p.type = 'text' AND p.atom = f.atom
              ORDER BY p.key LIMIT 1)
    END AS place
FROM tool_calls tc, json_each(tc.result_json, '$.toolUseResult') f
WHERE tc.result_message_id IS NOT NULL
    AND json_type(tc.result_json, '$.toolUseResult') = 'object';
CREATE INDEX temp.tmp_0004_tur_field ON tur_field(call_id);

UPDATE tool_calls SET result_json = (
    SELECT json_object(
        'content', json(tool_calls.result_json -> '$.content'),
        -- json(): a scalar subquery's result loses its JSON subtype.
        'toolUseResult', json((SELECT json_group_object(f.key, json(tool_calls.result_json -> f.fullkey))
                               FROM tur_field f
                               WHERE f.call_id = tool_calls.id AND f.place IS NULL)),
        'toolUseResultFrom', json((SELECT json_group_object(f.key, f.place)
                                   FROM tur_field f
                                   WHERE f.call_id = tool_calls.id AND f.place IS NOT NULL))))
WHERE id IN (SELECT call_id FROM tur_field WHERE place IS NOT NULL);

UPDATE tool_calls SET result_json = json_object(
        'content', json(result_json -> '$.content'),
        'toolUseResultFrom', 'content')
WHERE result_message_id IS NOT NULL
    AND json_type(result_json, '$.toolUseResult') = 'text'
    AND json_type(result_json, '$.content') = 'text'
    AND json_extract(result_json, '$.toolUseResult') <> ''
    AND json_extract(result_json, '$.toolUseResult') = json_extract(result_json, '$.content');

DROP TABLE result_text;
DROP TABLE tur_field;
