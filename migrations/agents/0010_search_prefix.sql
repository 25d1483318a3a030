-- agents.db 0010: prefix indexes for short prefix queries (issue 13: `fu*` or `ka*` over the
-- standard corpus took a second, as FTS5 merged the doclists of every term with that prefix,
-- thousands of them, at each query).
--
-- Both indexes are created again with `prefix = '2 3'`: FTS5 also keeps, for every prefix of
-- two and of three characters, one doclist of the rows holding a term with that prefix, so a
-- query `ab*` or `abc*` reads one doclist. What is indexed and how (the views
-- `messages_search` and `tool_calls_search` of 0007, the tokenizer) does not change, nor do
-- the triggers of 0008 (they name the indexes, which keep their names) or the marks of
-- `search_mark`: the rebuild indexes the same rows, those at or below the marks.
--
-- `hashsize`: FTS5 writes a new segment whenever its pending terms exceed this many bytes
-- (1 MB by default); a batch of the writer indexes several MB at its flush, so 1 MB made
-- several small segments per batch, each merged again soon after. 8 MB makes one, mostly.

DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, thinking,
    content = 'messages_search', content_rowid = 'message_rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'",
    prefix = '2 3'
);

DROP TABLE tool_calls_fts;
CREATE VIRTUAL TABLE tool_calls_fts USING fts5(
    tool_name, params_json, result_json, error,
    content = 'tool_calls_search', content_rowid = 'call_rowid',
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'",
    prefix = '2 3'
);

INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', 8388608);
INSERT INTO tool_calls_fts (tool_calls_fts, rank) VALUES ('hashsize', 8388608);

-- Rows above the marks are left to the next flush, as before.
INSERT INTO messages_fts (rowid, content, thinking)
    SELECT message_rowid, content, thinking FROM messages_search
    WHERE message_rowid <= (SELECT messages_mark FROM search_mark)
    ORDER BY message_rowid;
INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
    SELECT call_rowid, tool_name, params_json, result_json, error FROM tool_calls_search
    WHERE call_rowid <= (SELECT tool_calls_mark FROM search_mark)
    ORDER BY call_rowid;
