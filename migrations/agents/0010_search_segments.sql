-- agents.db 0010: fewer, larger index segments per batch (issue 13).
--
-- `hashsize`: FTS5 writes a new segment whenever its pending terms exceed this many bytes
-- (1 MB by default); a batch of the writer indexes several MB at its flush
-- (`search_index::flush`), so 1 MB cut each batch into several small segments, each merged
-- again soon after, and a query reads one more doclist per segment. 8 MB makes one, mostly.
-- A setting of each index (its `_config` table): what is indexed and every result stay the
-- same, and no row is re-indexed.
--
-- Not adopted: `prefix = '2 3'` (a doclist per prefix of two and of three characters, so
-- that `ab*` reads one doclist instead of merging every word it starts). On the standard
-- corpus of `nex-bench search` it made the ledger 6.5 % larger (1,206 -> 1,282 MB) and the
-- import with the index about a third slower, while the slowest queries were frequent words
-- and phrases, not short prefixes.

INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', 8388608);
INSERT INTO tool_calls_fts (tool_calls_fts, rank) VALUES ('hashsize', 8388608);
