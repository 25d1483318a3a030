-- agents.db 0011: FTS5 merges segments 16 at a time instead of 4 (issue 13: the index's cost
-- to the backfill).
--
-- Each flush of the writer (`search_index::flush`, one per batch) adds a segment to level 0 of
-- each index; FTS5's `automerge` merges the segments of a level into one of the next level
-- once the level holds this many, so every indexed byte is written again once per level. With
-- 4 (the default), the 80 batches of the standard 2,000-session corpus stacked three levels
-- and `search_index::flush` took 18.4 s of the backfill's 93 s (62 s without the index); with
-- 16, two levels and 10.9 s (`nex-bench search --sessions 2000 --runs 1`, see the README). A
-- query reads one more doclist per segment (at most 15 per level before a merge instead of 3):
-- the same run's 100 queries were no slower (p99 of CPU 66 against 76 ms).
-- A setting of each index (its `_config` table): what is indexed, what a query finds and every
-- result stay the same, and nothing is re-indexed or merged by this migration.

INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 16);
INSERT INTO tool_calls_fts (tool_calls_fts, rank) VALUES ('automerge', 16);
