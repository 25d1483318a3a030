-- agents.db 0006: the change sequence the replica follows (issue 14, ARCHITECTURE.md "Scale out").
--
-- Every insert, update and delete of a replicated table appends one row here, by trigger, in the
-- transaction of the change itself: `seq` orders the changes in commit order (one writer at a
-- time; rowids of a rolled-back savepoint are reused, never skipped past a committed one), and a
-- reader's snapshot holds a change exactly when it holds the row it describes. The replicator
-- reads the rows *as they are now* for the keys after its watermark (a key changed twice is sent
-- once; a key whose row is gone is a delete), so the log needs no payload.
--
-- `tbl`: 1 turns, 2 threads, 3 sessions, 4 messages, 5 tool_calls, 6 session_history,
-- 7 session_imports (src/replica/tables.rs). `row_key`: the row's primary key as text; the
-- parts of a composite key joined by char(31). `at`: wall-clock milliseconds, only for the lag
-- shown by `nex replica status` (never for order). The import's own tables (requests, chunk
-- parts, cursors) are the importer's state, not the ledger's record: not logged.
CREATE TABLE change_log (
    seq     INTEGER PRIMARY KEY,
    tbl     INTEGER NOT NULL,
    row_key TEXT NOT NULL,
    at      INTEGER NOT NULL
);

-- This ledger's identity in a replica: a second ledger replicating under the same machine name
-- (two hosts with one host name, a ledger deleted and started anew) is refused instead of
-- mixing its changes with this one's.
CREATE TABLE ledger_identity (id TEXT NOT NULL);
INSERT INTO ledger_identity (id) VALUES (lower(hex(randomblob(16))));

CREATE TRIGGER change_log_turns_insert AFTER INSERT ON turns BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (1, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_turns_update AFTER UPDATE ON turns BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (1, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_turns_delete AFTER DELETE ON turns BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (1, OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_threads_insert AFTER INSERT ON threads BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (2, NEW.turn_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_threads_update AFTER UPDATE ON threads BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (2, NEW.turn_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_threads_delete AFTER DELETE ON threads BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (2, OLD.turn_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_sessions_insert AFTER INSERT ON sessions BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (3, NEW.label, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_sessions_update AFTER UPDATE ON sessions BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (3, NEW.label, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_sessions_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (3, OLD.label, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_messages_insert AFTER INSERT ON messages BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (4, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_messages_update AFTER UPDATE ON messages BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (4, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_messages_delete AFTER DELETE ON messages BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (4, OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_tool_calls_insert AFTER INSERT ON tool_calls BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (5, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_tool_calls_update AFTER UPDATE ON tool_calls BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (5, NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_tool_calls_delete AFTER DELETE ON tool_calls BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (5, OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_history_insert AFTER INSERT ON session_history BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (6, CAST(NEW.id AS TEXT), CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_history_update AFTER UPDATE ON session_history BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (6, CAST(NEW.id AS TEXT), CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_history_delete AFTER DELETE ON session_history BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (6, CAST(OLD.id AS TEXT), CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_imports_insert AFTER INSERT ON session_imports BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (7, NEW.source || char(31) || NEW.source_provider || char(31) || NEW.source_session_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_imports_update AFTER UPDATE ON session_imports BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (7, NEW.source || char(31) || NEW.source_provider || char(31) || NEW.source_session_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER change_log_session_imports_delete AFTER DELETE ON session_imports BEGIN
    INSERT INTO change_log (tbl, row_key, at) VALUES (7, OLD.source || char(31) || OLD.source_provider || char(31) || OLD.source_session_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- The rows written before this migration, logged once so that a new replica receives them.
INSERT INTO change_log (tbl, row_key, at) SELECT 1, id, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM turns;
INSERT INTO change_log (tbl, row_key, at) SELECT 2, turn_id, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM threads;
INSERT INTO change_log (tbl, row_key, at) SELECT 3, label, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM sessions;
INSERT INTO change_log (tbl, row_key, at) SELECT 4, id, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM messages;
INSERT INTO change_log (tbl, row_key, at) SELECT 5, id, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM tool_calls;
INSERT INTO change_log (tbl, row_key, at) SELECT 6, CAST(id AS TEXT), CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM session_history;
INSERT INTO change_log (tbl, row_key, at) SELECT 7, source || char(31) || source_provider || char(31) || source_session_id, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM session_imports;
