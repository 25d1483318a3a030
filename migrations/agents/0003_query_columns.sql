-- agents.db 0003: columns for querying the ledger (README "The ledger"), and one meaning of the
-- token columns for every provider.
--
-- (extension) `messages.session_label`, `tool_calls.session_label`: the session whose item wrote
-- the row, as `turns.session_label` (0002); a session's transcript is one indexed lookup.
ALTER TABLE messages ADD COLUMN session_label TEXT;
CREATE INDEX idx_messages_session ON messages(session_label);
ALTER TABLE tool_calls ADD COLUMN session_label TEXT;
CREATE INDEX idx_tool_calls_session ON tool_calls(session_label);

-- (extension) `sessions.provider`: the agent the session comes from, as `nex sessions list
-- --provider` names it (`claude-code`, `codex`, `cursor`, `opencode`, `gemini-cli`; =
-- `session_imports.source_provider`). Not the model's vendor, which is `turns.provider`.
-- `sessions.workspace_path`: the project folder the agent ran in (NULL when the source does not
-- say); `routing_key` keeps its meaning (the workspace, else the item's `project`).
ALTER TABLE sessions ADD COLUMN provider TEXT;
CREATE INDEX idx_sessions_provider ON sessions(provider);
ALTER TABLE sessions ADD COLUMN workspace_path TEXT;
CREATE INDEX idx_sessions_workspace ON sessions(workspace_path);

-- Rows written before this migration: messages and tool calls from their turn (a turn 0002 could
-- not attribute leaves its rows NULL, as it stays itself).
UPDATE messages SET session_label = (
        SELECT t.session_label FROM turns t WHERE t.id = messages.turn_id)
    WHERE session_label IS NULL;
UPDATE tool_calls SET session_label = (
        SELECT t.session_label FROM turns t WHERE t.id = tool_calls.turn_id)
    WHERE session_label IS NULL;

-- The provider from the session's import mapping, else from `origin` (`aix:<provider>`).
UPDATE sessions SET provider = COALESCE(
        (SELECT si.source_provider FROM session_imports si WHERE si.session_label = sessions.label
            ORDER BY si.updated_at DESC LIMIT 1),
        CASE WHEN origin LIKE 'aix:_%' THEN substr(origin, 5) END)
    WHERE provider IS NULL;

-- The workspace: `routing_key` when it came from a workspace path (the import writes the item's
-- workspace on the session's turns too; an item's `project` never goes there).
UPDATE sessions SET workspace_path = routing_key
    WHERE workspace_path IS NULL AND routing_key IS NOT NULL
      AND (EXISTS (SELECT 1 FROM turns t
                   WHERE t.session_label = sessions.label AND t.workspace_path = sessions.routing_key)
           OR EXISTS (SELECT 1 FROM turns t
                   WHERE t.id = sessions.thread_id AND t.workspace_path = sessions.routing_key));

-- Tokens: `input_tokens` is uncached input for every provider. Codex and Gemini CLI write input
-- including cache reads; their parsers now store it minus `cached_input_tokens` (mapping
-- versions 3), and the rows already in the ledger get the same value here (sessions whose files
-- are gone are never read again). Clamped at 0 as the parsers clamp.
UPDATE turns SET input_tokens = MAX(input_tokens - cached_input_tokens, 0)
    WHERE input_tokens IS NOT NULL AND cached_input_tokens > 0
      AND session_label IN (SELECT label FROM sessions WHERE provider IN ('codex', 'gemini-cli'));
