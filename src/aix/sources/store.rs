//! Session stores: sources that are not append-only line files but databases updated in place
//! (Cursor's `state.vscdb`, OpenCode's `opencode.db`) or trees of JSON files rewritten whole
//! (OpenCode's legacy `storage/`). They are polled, not tailed (SOURCES.md "Providers"): a cheap
//! [`SessionStore::stamp`] says whether anything may have changed, and [`SessionStore::poll`]
//! reads only the sessions that changed since their cursors.
//!
//! The contract every store keeps:
//! - Every session has its own cursor, keyed `<provider>:<location>#<session id>`
//!   ([`store_cursor_key`]); its value is a [`StoreCursor`]. A session whose change token equals
//!   its cursor's is not read at all.
//! - A changed session is emitted whole: its own item plus the items of the subagent sessions it
//!   owns when they changed, each item complete. The ledger after any sequence of polls equals
//!   the ledger after one poll of the final state.
//! - `fingerprint` is a hex SHA-256 over the rows that make the item (values as stored, in a
//!   fixed order), so an unchanged session is `fingerprint_unchanged` at the service.
//! - The agent's data is never written: databases are opened through [`open_readonly`], so the
//!   database and its `-wal` are byte-identical after any run and no file is ever created
//!   beside them.
//! - One bad record (a malformed JSON value, an unknown key shape) is skipped and counted in
//!   [`ParseStats`]; it never fails the session, let alone the store. A store that cannot be
//!   opened at all is an `io::Error` of `poll` (counted as a failed source, the run goes on).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ParseStats, Provider};
use crate::protocol::ImportSessionItem;

/// Version of the [`StoreCursor`] layout; a cursor of another version makes its session be read
/// whole again (idempotency makes that safe).
pub const STORE_CURSOR_VERSION: u32 = 1;

/// The resume point of one session of a store. Serialised camelCase as the opaque `value` of a
/// protocol cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCursor {
    /// Layout version ([`STORE_CURSOR_VERSION`]).
    pub v: u32,
    /// The session's change token when it was read (source-specific: row ids, update times,
    /// file stats). Equal token: the session is not read again.
    pub token: String,
    /// The fingerprint of the session's own item when it was read.
    pub fingerprint: String,
}

impl StoreCursor {
    /// Decodes a stored cursor value; `None` for anything unusable (its session is read whole).
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        let c: StoreCursor = serde_json::from_value(value.clone()).ok()?;
        (c.v == STORE_CURSOR_VERSION).then_some(c)
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({"v": self.v, "token": self.token, "fingerprint": self.fingerprint})
    }
}

/// `<provider>:<absolute location>#<session id>`.
pub fn store_cursor_key(provider: Provider, location: &Path, session_id: &str) -> String {
    let abs = std::path::absolute(location).unwrap_or_else(|_| location.to_path_buf());
    format!("{}:{}#{}", provider.as_str(), abs.display(), session_id)
}

/// One changed session read by a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUpdate {
    /// The session id its cursor is keyed by (the source's own id: `composerId`, `ses_…`).
    pub session_id: String,
    /// The session's item first, then the items of its changed subagent sessions.
    pub items: Vec<ImportSessionItem>,
    /// True once `items` are committed.
    pub cursor: StoreCursor,
}

/// What one poll of a store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorePoll {
    /// Changed sessions read and handed to the caller.
    pub emitted: u64,
    /// Sessions whose token equalled their cursor's (not read).
    pub unchanged: u64,
    /// Sessions that could not be read (a value too broken to make an item of); logged without
    /// content, counted here.
    pub failed: u64,
    /// Sessions the store still holds, read whole, that make no item under the current
    /// mapping (a Cursor legacy chat tab holding only its input box), with the cursor of what
    /// was read; those whose token equals their cursor's are left out (all listed when `full`).
    /// The run retracts the ones it imported before (item rule 15, `aix::stores`). Only
    /// Cursor's `ItemTable` entries are listed so far; a session that could not be read is
    /// `failed`, never listed here.
    pub empty: Vec<(String, StoreCursor)>,
}

/// Where a poll hands each changed session, one at a time (memory follows the largest session,
/// never the store). An error (the frame output failed) ends the poll and is returned by it.
pub type UpdateSink<'a> = &'a mut dyn FnMut(SessionUpdate) -> io::Result<()>;

/// A polled source of sessions.
pub trait SessionStore: Send {
    fn provider(&self) -> Provider;

    /// The database file (or storage directory) the store reads; with a session id it names
    /// that session's cursor.
    fn location(&self) -> &Path;

    /// A cheap value that changes whenever the store may have changed (stat of the database
    /// and its `-wal`, or of the JSON tree's directories). Equal stamps: no poll is needed.
    ///
    /// Errors: the store is gone or cannot be stat'ed.
    fn stamp(&self) -> io::Result<String>;

    /// Reads the sessions whose change token differs from their cursor's (`cursors` by session
    /// id; a session without one is new), or every session when `full`, and hands each to
    /// `sink`, oldest first, a parent session before its subagents.
    ///
    /// Errors: the store cannot be opened or read at all (one bad row is never an error), or
    /// `sink` failed.
    fn poll(
        &mut self,
        cursors: &HashMap<String, StoreCursor>,
        full: bool,
        sink: UpdateSink<'_>,
    ) -> io::Result<StorePoll>;

    /// Counters of everything read so far (malformed values, skipped record shapes).
    fn stats(&self) -> &ParseStats;

    /// Paths whose change notifications mean the store may have changed (the database, its
    /// `-wal`, the JSON tree): the tail marks the store dirty on events under them.
    fn watch_paths(&self) -> Vec<std::path::PathBuf> {
        vec![self.location().to_path_buf()]
    }
}

/// Polls `store` and collects every update (tests and `aix scan`; the runtime streams).
///
/// Errors: as [`SessionStore::poll`].
pub fn poll_all(
    store: &mut dyn SessionStore,
    cursors: &HashMap<String, StoreCursor>,
    full: bool,
) -> io::Result<(Vec<SessionUpdate>, StorePoll)> {
    let mut updates = Vec::new();
    let counts = store.poll(cursors, full, &mut |u| {
        updates.push(u);
        Ok(())
    })?;
    Ok((updates, counts))
}

/// What identifies a version of a file without reading it: size, modification time, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let ino = 0;
        Self {
            len: meta.len(),
            mtime_ns,
            ino,
        }
    }

    /// The stamp of the file at `path`, `-` when it cannot be stat'ed (absent).
    pub fn token_of(path: &Path) -> String {
        std::fs::metadata(path).map_or_else(|_| "-".to_owned(), |m| Self::of(&m).token())
    }

    pub fn token(&self) -> String {
        format!("{}:{}:{}", self.len, self.mtime_ns, self.ino)
    }
}

/// `path` with `suffix` appended to its file name (`state.vscdb` -> `state.vscdb-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::path::PathBuf::from(p)
}

/// A read-only view of an agent's SQLite database (Cursor, OpenCode).
///
/// - No `-wal` (or an empty one: the agent is closed): opened `immutable=1`, which takes no
///   locks and touches no file but the database.
/// - A `-wal` and its `-shm` (the agent is running): opened `mode=ro`. SQLite never writes the
///   database or the WAL from a read-only connection, and never checkpoints; like any reader
///   of a live WAL database it takes its read lock in the `-shm` index the agent maintains.
/// - A `-wal` without `-shm` (the agent crashed): `mode=ro` would create the `-shm`, so the
///   database and WAL are copied into a private temporary directory and the copy is read.
pub struct ReadOnlyDb {
    pub conn: rusqlite::Connection,
    /// The private copy, when one was needed; removed on drop.
    _copy: Option<tempfile::TempDir>,
}

/// Opens `db` as [`ReadOnlyDb`] says.
///
/// Errors: the file is missing, unreadable or not a database.
pub fn open_readonly(db: &Path) -> io::Result<ReadOnlyDb> {
    use rusqlite::OpenFlags;
    let side = |suffix: &str| with_suffix(db, suffix);
    let wal_len = std::fs::metadata(side("-wal")).map_or(0, |m| m.len());
    let has_shm = side("-shm").exists();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = |path: &Path, params: &str| format!("file:{}?{params}", uri_path(path));
    let (conn, copy) = if wal_len == 0 {
        (
            rusqlite::Connection::open_with_flags(uri(db, "immutable=1"), flags),
            None,
        )
    } else if has_shm {
        (
            rusqlite::Connection::open_with_flags(uri(db, "mode=ro"), flags),
            None,
        )
    } else {
        let dir = tempfile::tempdir()?;
        let copy = dir.path().join("copy.db");
        std::fs::copy(db, &copy)?;
        std::fs::copy(side("-wal"), with_suffix(&copy, "-wal"))?;
        (
            rusqlite::Connection::open_with_flags(uri(&copy, "mode=ro"), flags),
            Some(dir),
        )
    };
    let conn = conn.map_err(io::Error::other)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(io::Error::other)?;
    // A read-only handle still checks the header: fail here on a file that is not a database.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(io::Error::other)?;
    Ok(ReadOnlyDb { conn, _copy: copy })
}

/// `path` escaped for a `file:` URI (`%`, `?` and `#` would end or alter the path).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// A hex SHA-256 over `parts`, each followed by a unit separator, so that `["ab", "c"]` and
/// `["a", "bc"]` differ. Stores hash the stored values that make an item with it.
pub fn fingerprint_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_other_versions() {
        let c = StoreCursor {
            v: STORE_CURSOR_VERSION,
            token: "r12:b40".into(),
            fingerprint: "ab".into(),
        };
        assert_eq!(StoreCursor::from_value(&c.to_value()), Some(c));
        assert_eq!(
            StoreCursor::from_value(&serde_json::json!({"v": 2, "token": "", "fingerprint": ""})),
            None
        );
        assert_eq!(StoreCursor::from_value(&serde_json::json!({"v": 1})), None);
    }

    #[test]
    fn fingerprint_separates_parts() {
        let a = fingerprint_parts([b"ab".as_slice(), b"c".as_slice()]);
        let b = fingerprint_parts([b"a".as_slice(), b"bc".as_slice()]);
        assert_ne!(a, b);
        assert_eq!(a, fingerprint_parts([b"ab".as_slice(), b"c".as_slice()]));
    }

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    /// Closed, running and crashed agents: the database and its WAL are never written and no
    /// file is created beside them; the live `-shm` is the only file a read may touch.
    #[test]
    fn read_only_open_never_writes_the_agents_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("odd #?% name.db");
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT);
                 INSERT INTO t VALUES ('a', '1');",
            )
            .unwrap();
        let count = |ro: &ReadOnlyDb| -> i64 {
            ro.conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        // Running: WAL and shm exist.
        let before = snapshot(dir.path());
        let ro = open_readonly(&db).unwrap();
        assert_eq!(count(&ro), 1);
        drop(ro);
        let after = snapshot(dir.path());
        let data = |s: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            s.iter()
                .filter(|(n, _)| !n.ends_with("-shm"))
                .cloned()
                .collect()
        };
        assert_eq!(data(&after), data(&before));
        assert_eq!(after.len(), before.len());
        // Closed: the WAL is checkpointed away; immutable open touches nothing.
        drop(writer);
        let before = snapshot(dir.path());
        assert_eq!(before.len(), 1, "closed agent leaves only the database");
        assert_eq!(count(&open_readonly(&db).unwrap()), 1);
        assert_eq!(snapshot(dir.path()), before);
        // Crashed: a WAL with rows but no shm; read through a private copy.
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 INSERT INTO t VALUES ('b', '2');",
            )
            .unwrap();
        let names: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
        let wal = dir
            .path()
            .join(names.iter().find(|n| n.ends_with("-wal")).unwrap());
        let shm = dir
            .path()
            .join(names.iter().find(|n| n.ends_with("-shm")).unwrap());
        let wal_bytes = std::fs::read(&wal).unwrap();
        std::mem::forget(writer);
        let crashed = tempfile::tempdir().unwrap();
        let db2 = crashed.path().join("state.vscdb");
        std::fs::copy(&db, &db2).unwrap();
        std::fs::write(crashed.path().join("state.vscdb-wal"), &wal_bytes).unwrap();
        drop(shm);
        let before = snapshot(crashed.path());
        assert_eq!(count(&open_readonly(&db2).unwrap()), 2);
        assert_eq!(snapshot(crashed.path()), before);
    }

    #[test]
    fn not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(
            &db,
            b"definitely not sqlite, just some text of enough length....",
        )
        .unwrap();
        assert!(open_readonly(&db).is_err());
        assert!(open_readonly(&dir.path().join("missing.db")).is_err());
    }

    #[test]
    fn keys_name_provider_location_and_session() {
        let key = store_cursor_key(Provider::Cursor, Path::new("/x/state.vscdb"), "c1");
        assert_eq!(key, "cursor:/x/state.vscdb#c1");
    }
}
