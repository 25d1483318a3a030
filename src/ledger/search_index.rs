//! The full-text indexes of the ledger (migrations `0005_search.sql`, `0007_search_bounded.sql`):
//! `messages_fts` over a message's text and thinking, `tool_calls_fts` over a tool call's name
//! and a bounded part of its parameters, result and error (the view `tool_calls_search`). Both
//! are FTS5 external-content indexes kept by triggers in the writing transaction; this module
//! holds what the triggers cannot do.
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

/// Rebuilds both indexes from their tables, in one transaction (readers see the old or the new
/// index, never a half-built one). Takes the write lock; time grows with the ledger's text.
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
