//! The only SQL the Cursor store runs. Values are read for composer, bubble and the two legacy
//! chat keys only, each named exactly or by a key range under its own prefix: the database
//! also holds auth tokens and other state whose values are never selected. Change detection
//! reads keys, row ids and value lengths alone (from the key index and the record headers: no
//! value is loaded). Not read, by decision (README, "Cursor, unchanged by decision"):
//! `agentKv:blob:*` (the model's copy of a composer's bubbles) and `aiService.prompts` /
//! `aiService.generations` (the input box's recall history: no chat, time or reply).

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

/// Key prefix of a session header.
pub(super) const COMPOSER_PREFIX: &str = "composerData:";
/// Key prefix of a message.
pub(super) const BUBBLE_PREFIX: &str = "bubbleId:";
/// Legacy chat tabs (`ItemTable`).
pub(super) const LEGACY_CHAT_KEY: &str = "workbench.panel.aichat.view.aichat.chatdata";
/// Legacy composer list (`ItemTable`).
pub(super) const LEGACY_COMPOSER_KEY: &str = "composer.composerData";

/// One stored row of a key range.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub key: String,
    pub rowid: i64,
    /// The value's bytes (TEXT or BLOB); `None` for NULL or a number.
    pub value: Option<Vec<u8>>,
    /// The value is SQL NULL: what Cursor leaves of a deleted composer or bubble.
    pub deleted: bool,
    /// The value's length as [`Stamp`] measures it.
    pub len: i64,
}

/// Which of Cursor's tables the database has: `(cursorDiskKV, ItemTable)`.
pub(super) fn tables(conn: &Connection) -> rusqlite::Result<(bool, bool)> {
    let has = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    Ok((has("cursorDiskKV")?, has("ItemTable")?))
}

/// The exclusive upper bound of the keys starting with `prefix` (which ends in `:`): the same
/// string with its last character incremented (`:` -> `;`).
fn upper(prefix: &str) -> String {
    let mut s = prefix.to_owned();
    if s.pop() == Some(':') {
        s.push(';');
    } else {
        s.push('\u{10FFFF}');
    }
    s
}

/// Session ids of every `composerData:<id>` key with the row's [`Stamp`], in key order.
pub(super) fn composers(conn: &Connection) -> rusqlite::Result<Vec<(String, Stamp)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, rowid, coalesce(octet_length(value), 0) FROM cursorDiskKV
         WHERE key >= ?1 AND key < ?2 ORDER BY key",
    )?;
    let rows = stmt.query_map(params![COMPOSER_PREFIX, upper(COMPOSER_PREFIX)], |r| {
        Ok((
            key_text(r.get_ref(0)?),
            (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, stamp) = row?;
        if let Some(id) = key.strip_prefix(COMPOSER_PREFIX) {
            out.push((id.to_owned(), stamp));
        }
    }
    Ok(out)
}

/// `(count, max row id)` of the keys under `prefix`, from the key index alone.
pub(super) fn range_stats(conn: &Connection, prefix: &str) -> rusqlite::Result<(u64, i64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*), coalesce(max(rowid), 0) FROM cursorDiskKV WHERE key >= ?1 AND key < ?2",
    )?;
    stmt.query_row(params![prefix, upper(prefix)], |r| {
        Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?))
    })
}

/// `(row id, value length in bytes)` of one row, `(0, 0)` when absent: a row rewritten by
/// `INSERT OR REPLACE` gets a new row id, one updated in place most often a new length. Read
/// from the key index and the row's header (SQLite takes the length from the record header
/// without loading the value).
pub(super) type Stamp = (i64, i64);

/// The [`Stamp`] of `key`.
pub(super) fn stamp_of(conn: &Connection, key: &str) -> rusqlite::Result<Stamp> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, coalesce(octet_length(value), 0) FROM cursorDiskKV WHERE key = ?1",
    )?;
    Ok(stmt
        .query_row([key], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// The row of `key` (a composer key: the caller names it).
pub(super) fn row_of(conn: &Connection, key: &str) -> rusqlite::Result<Option<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, value, coalesce(octet_length(value), 0) FROM cursorDiskKV WHERE key = ?1",
    )?;
    stmt.query_row([key], |r| {
        let value = r.get_ref(1)?;
        Ok(Row {
            key: key.to_owned(),
            rowid: r.get(0)?,
            value: value_bytes(value),
            deleted: value == ValueRef::Null,
            len: r.get(2)?,
        })
    })
    .optional()
}

/// Every row under `prefix` (a session's bubbles: the caller names the prefix), in key order.
pub(super) fn rows(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, rowid, value, coalesce(octet_length(value), 0) FROM cursorDiskKV
         WHERE key >= ?1 AND key < ?2 ORDER BY key",
    )?;
    let rows = stmt.query_map(params![prefix, upper(prefix)], |r| {
        let value = r.get_ref(2)?;
        Ok(Row {
            key: key_text(r.get_ref(0)?),
            rowid: r.get(1)?,
            value: value_bytes(value),
            deleted: value == ValueRef::Null,
            len: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The [`Stamp`] of a legacy `ItemTable` key.
pub(super) fn legacy_stamp(conn: &Connection, key: &str) -> rusqlite::Result<Stamp> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, coalesce(octet_length(value), 0) FROM ItemTable WHERE key = ?1",
    )?;
    Ok(stmt
        .query_row([key], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

/// The value of a legacy `ItemTable` chat key (one of the two constants above).
pub(super) fn legacy_value(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    let mut stmt = conn.prepare_cached("SELECT value FROM ItemTable WHERE key = ?1")?;
    Ok(stmt
        .query_row([key], |r| Ok(value_bytes(r.get_ref(0)?)))
        .optional()?
        .flatten())
}

fn key_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn value_bytes(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
             INSERT INTO cursorDiskKV VALUES ('bubbleId:a:1', '{}'), ('bubbleId:a:2', x'7b7d'),
               ('bubbleId:ab:1', '{}'), ('bubbleId:a;', '{}'), ('composerData:a', '{}'),
               ('cursorAuth/accessToken', 'secret');",
        )
        .unwrap();
        c
    }

    #[test]
    fn ranges_cover_exactly_their_prefix() {
        let c = db();
        assert_eq!(range_stats(&c, "bubbleId:a:").unwrap(), (2, 2));
        assert_eq!(range_stats(&c, "bubbleId:none:").unwrap(), (0, 0));
        let keys: Vec<String> = rows(&c, "bubbleId:a:")
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, ["bubbleId:a:1", "bubbleId:a:2"]);
        assert_eq!(composers(&c).unwrap(), vec![("a".to_owned(), (5, 2))]);
        assert_eq!(stamp_of(&c, "composerData:a").unwrap(), (5, 2));
        assert_eq!(stamp_of(&c, "composerData:b").unwrap(), (0, 0));
    }

    /// A stamp never loads the value: with the value's overflow pages broken, reading the
    /// value fails and the stamp still succeeds.
    #[test]
    fn stamps_do_not_load_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE cursorDiskKV (key TEXT PRIMARY KEY, value BLOB);")
            .unwrap();
        let big = "C".repeat(30_000);
        c.execute(
            "INSERT INTO cursorDiskKV VALUES ('composerData:a', ?1)",
            [&big],
        )
        .unwrap();
        drop(c);
        let mut bytes = std::fs::read(&path).unwrap();
        let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        for chunk in bytes.chunks_mut(page) {
            if chunk.len() == page && chunk[4..].iter().all(|&b| b == b'C') {
                chunk[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0]);
            }
        }
        std::fs::write(&path, bytes).unwrap();
        let c =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert!(row_of(&c, "composerData:a").is_err());
        assert_eq!(stamp_of(&c, "composerData:a").unwrap().1, 30_000);
        assert_eq!(composers(&c).unwrap()[0].1.1, 30_000);
    }

    /// Change detection must not read values: the range aggregates run on the key index.
    #[test]
    fn change_detection_uses_the_key_index() {
        let c = db();
        let plan: Vec<String> = c
            .prepare(
                "EXPLAIN QUERY PLAN SELECT count(*), coalesce(max(rowid), 0) FROM cursorDiskKV
                 WHERE key >= ?1 AND key < ?2",
            )
            .unwrap()
            .query_map(params!["bubbleId:a:", "bubbleId:a;"], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|p| p.contains("COVERING INDEX")),
            "plan: {plan:?}"
        );
    }
}
