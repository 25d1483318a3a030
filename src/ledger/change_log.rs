//! The change log's inserts (migration 0012): the ledger's writer logs each row it inserts into
//! a replicated table itself, in the statement after the insert and in the same transaction;
//! updates and deletes are still logged by the triggers of migration 0006.
//!
//! Why not a trigger: an INSERT trigger on a table with foreign keys makes SQLite run each
//! INSERT into it under a statement journal (every page the insert touches is copied aside
//! first, in case the statement fails half-way), and the insert triggers of 0006 did that for
//! every row of an import. A plain single-row INSERT followed by this one needs no statement
//! journal. `nex import replay` of the `nex-bench peer` corpus (medians of three): 2.03 s of CPU
//! with the triggers, 1.91 s with this module's inserts instead, 1.74 s with no change log.
//!
//! The log stays what the replicator reads (`replica::changes`): one row per change, in the
//! order of the changes, committed with them.

use rusqlite::{Connection, params};

/// `change_log.tbl` of each replicated table (`replica::tables::TABLES`).
pub const TURNS: i64 = 1;
pub const THREADS: i64 = 2;
pub const SESSIONS: i64 = 3;
pub const MESSAGES: i64 = 4;
pub const TOOL_CALLS: i64 = 5;
pub const SESSION_HISTORY: i64 = 6;
pub const SESSION_IMPORTS: i64 = 7;

/// Separator of a composite key's parts in `change_log.row_key` (`char(31)`).
pub const KEY_SEPARATOR: char = '\u{1f}';

/// The `change_log.row_key` of a `session_imports` row: its key's parts joined as 0006's
/// triggers join them.
pub fn mapping_key(source: &str, provider: &str, session_id: &str) -> String {
    [source, provider, session_id].join(&KEY_SEPARATOR.to_string())
}

/// The row 0006's insert triggers appended, with the same `at` (wall-clock milliseconds).
const LOG_INSERT: &str = "INSERT INTO change_log (tbl, row_key, at)
     VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))";

/// Whether the writer logs its inserts on this ledger: it has a change log and no insert
/// trigger fills it (migration 0012 and later). A ledger of an older schema, which only a test
/// writes to without migrating, gets exactly what that schema's writer gave it.
///
/// # Errors
/// Any SQLite error.
pub fn logged_by_writer(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'change_log')
            AND NOT EXISTS (SELECT 1 FROM sqlite_schema
                WHERE type = 'trigger' AND name = 'change_log_turns_insert')",
    )?
    .query_row([], |r| r.get(0))
}

/// Logs the insert of the row of `table` whose key (`change_log.row_key`) is `key`. Call it
/// after each row a statement inserted, never for a row it updated (the update triggers log
/// those).
///
/// # Errors
/// Any SQLite error.
pub fn log_insert(conn: &Connection, table: i64, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(LOG_INSERT)?
        .execute(params![table, key])
        .map(drop)
}
