//! The full-text indexes of the ledger (migrations `0005_search.sql`, `0007_search_bounded.sql`):
//! `messages_fts` over a message's text and thinking, `tool_calls_fts` over a tool call's name
//! and a bounded part of its parameters, result and error (the view `tool_calls_search`). Both
//! are FTS5 external-content indexes.
//!
//! # Written once per batch (migration `0008_search_batched.sql`)
//!
//! New rows are indexed by [`flush`], which every writer of `messages` or `tool_calls` calls as
//! the last statement before its COMMIT, in the same transaction: a committed turn is
//! searchable at once, an uncommitted one never. Rows are not indexed by per-row triggers,
//! because FTS5 turns its pending terms into a new segment at every statement savepoint, and
//! the ledger's writer opens one per row (its triggers): every row became a tiny segment.
//! `search_mark` holds the highest rowid indexed per table (rows at or below it are indexed,
//! rows above are not); triggers keep already indexed rows right on UPDATE and DELETE. A writer
//! that commits without flushing leaves its rows unsearchable (and [`check`] false) until the
//! next flush, by any writer, indexes them.
//!
//! # VACUUM
//!
//! `messages` and `tool_calls` have TEXT primary keys, so their rowid is implicit, and SQLite
//! may renumber such rowids in a `VACUUM`. The indexes point at rowids: after a `VACUUM` they
//! would name the wrong rows. nex never vacuums the ledger; [`vacuum`] is the one way to do it
//! that keeps search right (it rebuilds both indexes after), and [`rebuild`] repairs a ledger
//! vacuumed by another tool. [`check`] tells whether the indexes match their tables.

use rusqlite::Connection;

/// The two indexes, each with its content table.
pub const INDEXES: [&str; 2] = ["messages_fts", "tool_calls_fts"];

/// Indexes the rows written since the last flush (rowid above `search_mark`) through the views
/// `messages_search` and `tool_calls_search`, then raises the marks to the tables' highest
/// rowids. Call it in the writing transaction, as its last statement before COMMIT (see the
/// module doc); a statement after it that opens a savepoint would make FTS5 write a segment.
///
/// A ledger without `search_mark` has no index to feed (one migrated with nex's migrations
/// always has it; `nex-bench search` drops the index for its baseline): nothing is done.
///
/// Errors: any SQLite error (the caller's transaction should be rolled back).
pub fn flush(conn: &Connection) -> rusqlite::Result<()> {
    let indexed: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'search_mark')",
        )?
        .query_row([], |r| r.get(0))?;
    if !indexed {
        return Ok(());
    }
    conn.execute_batch(
        "INSERT INTO messages_fts (rowid, content, thinking)
             SELECT message_rowid, content, thinking FROM messages_search
             WHERE message_rowid > (SELECT messages_mark FROM search_mark)
             ORDER BY message_rowid;
         INSERT INTO tool_calls_fts (rowid, tool_name, params_json, result_json, error)
             SELECT call_rowid, tool_name, params_json, result_json, error
             FROM tool_calls_search
             WHERE call_rowid > (SELECT tool_calls_mark FROM search_mark)
             ORDER BY call_rowid;
         UPDATE search_mark SET
             messages_mark = (SELECT coalesce(max(rowid), 0) FROM messages),
             tool_calls_mark = (SELECT coalesce(max(rowid), 0) FROM tool_calls)
         -- Nothing new: no write at all (a replayed request changes nothing).
         WHERE messages_mark IS NOT (SELECT coalesce(max(rowid), 0) FROM messages)
            OR tool_calls_mark IS NOT (SELECT coalesce(max(rowid), 0) FROM tool_calls);",
    )?;
    // The search texts the writer remembered for these rows have been read.
    super::text::forget_search_texts();
    Ok(())
}

/// Rebuilds both indexes from their tables, in one transaction (readers see the old or the new
/// index, never a half-built one), and sets the marks of [`flush`] to the tables' highest
/// rowids. Takes the write lock; time grows with the ledger's text.
///
/// Errors: any SQLite error (the transaction is rolled back, the old indexes stay).
pub fn rebuild(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for index in INDEXES {
        tx.execute(
            &format!("INSERT INTO {index} ({index}) VALUES ('rebuild')"),
            [],
        )?;
    }
    tx.execute(
        "UPDATE search_mark SET
             messages_mark = (SELECT coalesce(max(rowid), 0) FROM messages),
             tool_calls_mark = (SELECT coalesce(max(rowid), 0) FROM tool_calls)",
        [],
    )?;
    tx.commit()
}

/// `VACUUM`, then [`rebuild`]: the only safe way to vacuum the ledger (see the module doc).
///
/// Between the two steps another reader may see stale index entries (a search may miss or
/// misplace hits for that moment); nothing is lost, and the rebuild ends it.
pub fn vacuum(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch("VACUUM")?;
    rebuild(conn)
}

/// Whether both indexes match their tables exactly (FTS5 `integrity-check` with the content
/// tables compared). `Ok(false)` when one is out of step (for example after a `VACUUM` that
/// renumbered rows); `Err` for any other failure.
pub fn check(conn: &Connection) -> rusqlite::Result<bool> {
    for index in INDEXES {
        let result = conn.execute(
            &format!("INSERT INTO {index} ({index}, rank) VALUES ('integrity-check', 1)"),
            [],
        );
        match result {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
