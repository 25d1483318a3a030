//! The cursor store (PROTOCOL.md "Cursors"): resume points of the workers, written in the
//! transaction of the import they describe and handed back at the next `run.start`.

use rusqlite::{Connection, params};

use super::LedgerError;
use crate::protocol::Cursor;

/// Upserts `cursors` for `source`; a cursor whose value is JSON `null` is deleted.
///
/// Runs on whatever transaction `conn` is in: call it inside the import's transaction so the
/// cursor becomes durable exactly when the rows it describes do. Keys are stored as given
/// (trimmed); a blank key is ignored.
pub fn store_cursors(
    conn: &Connection,
    source: &str,
    cursors: &[Cursor],
    run_id: &str,
    now_ms: i64,
) -> Result<(), LedgerError> {
    if cursors.is_empty() {
        return Ok(());
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO session_import_cursors (source, cursor_key, cursor_json, updated_at, last_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(source, cursor_key) DO UPDATE SET
             cursor_json = excluded.cursor_json,
             updated_at = excluded.updated_at,
             last_run_id = excluded.last_run_id
         WHERE session_import_cursors.cursor_json IS NOT excluded.cursor_json",
    )?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM session_import_cursors WHERE source = ?1 AND cursor_key = ?2",
    )?;
    for cursor in cursors {
        let key = cursor.key.trim();
        if key.is_empty() {
            continue;
        }
        if cursor.value.is_null() {
            delete.execute(params![source, key])?;
        } else {
            let json = cursor.value.to_string();
            upsert.execute(params![source, key, json, now_ms, run_id])?;
        }
    }
    Ok(())
}

/// Every stored cursor of `source`, ordered by key.
///
/// A stored value that is no longer valid JSON (edited by hand) is returned as a JSON string
/// holding the raw text rather than failing the whole load.
pub fn load_cursors(conn: &Connection, source: &str) -> Result<Vec<Cursor>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT cursor_key, cursor_json FROM session_import_cursors
         WHERE source = ?1 ORDER BY cursor_key",
    )?;
    let rows = stmt.query_map([source], |row| {
        let key: String = row.get(0)?;
        let json: String = row.get(1)?;
        Ok((key, json))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, json) = row?;
        let value = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
        out.push(Cursor { key, value });
    }
    Ok(out)
}
