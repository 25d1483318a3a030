//! The SQLite side of nex: opening `agents.db` (the agents ledger) and `nexus.db` (the runtime
//! database) with the house pragmas, the migrations runner, the cursor store and the path
//! defaults.
//!
//! Layout:
//! - `open` (this file): open/create with pragmas and file modes, path resolution.
//! - `migrate`: the embedded forward-only migrations, tracked by `PRAGMA user_version`.
//! - `cursors`: the resume cursors of the workers (`session_import_cursors`).
//! - `runs`: the audit trail of import runs (`nexus.db.import_runs`).
//! - `change_log`: the writer's log of the rows it inserts, which the replica follows.
//! - `search_index`: the full-text indexes over messages and tool calls (rebuild, VACUUM).
//! - `text`: large tool-call bodies stored compressed, and the SQL function that reads them.

pub mod change_log;
mod cursors;
pub mod migrate;
pub mod runs;
pub mod search_index;
pub mod text;

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode};

use crate::protocol::Code;

pub use cursors::{load_cursors, store_cursors};
pub use migrate::{Migration, migrate};

/// How long a writer waits for another process's lock before `ledger_busy`.
pub const BUSY_TIMEOUT_MS: u32 = 5_000;
/// WAL pages between automatic checkpoints: fewer, larger checkpoints (TARGETS.md measured a
/// 35-41 % gain over the default 1000 in commit-heavy modes).
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// Upper bound of the WAL file kept after a checkpoint.
pub const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// Page cache per connection, in KiB (negative = KiB for SQLite): large batches stop spilling
/// dirty pages into the WAL mid-transaction (measured: raw inserts 1.8 s -> 1.0 s on a 400
/// session batch, measured while tuning the import path).
pub const CACHE_SIZE_KIB: i64 = 32 * 1024;
/// Room for every hot statement of the import path (the default cache holds 16).
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Why a database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this nex knows ({known})")]
    SchemaNewer { found: u32, known: u32 },
    /// The file could not be opened, configured or migrated as a database (not a database,
    /// corrupt, unreadable).
    #[error("cannot use database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The agents ledger is a symbolic link and the caller did not allow one.
    #[error(
        "the ledger {0} is a symbolic link; not following it (pass --allow-symlinked-ledger to use it)"
    )]
    Symlinked(PathBuf),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl LedgerError {
    /// `ledger_busy`, `ledger_io_failed`, `ledger_migration_failed`, `ledger_schema_newer`,
    /// `ledger_open_failed`, `ledger_symlinked` or `ledger_write_failed`.
    pub fn code(&self) -> Code {
        match self {
            LedgerError::Io { .. } => Code::LedgerIoFailed,
            LedgerError::Migration { source, .. } if is_busy(source) => Code::LedgerBusy,
            LedgerError::Migration { .. } => Code::LedgerMigrationFailed,
            LedgerError::SchemaNewer { .. } => Code::LedgerSchemaNewer,
            LedgerError::Open { source, .. } if is_busy(source) => Code::LedgerBusy,
            LedgerError::Open { .. } => Code::LedgerOpenFailed,
            LedgerError::Symlinked(_) => Code::LedgerSymlinked,
            LedgerError::Sqlite(e) if is_busy(e) => Code::LedgerBusy,
            LedgerError::Sqlite(_) => Code::LedgerWriteFailed,
        }
    }
}

/// True when SQLite gave up waiting for a lock held by another connection.
pub fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// `$NEX_HOME`, else `~/.nex`.
pub fn nex_home() -> PathBuf {
    if let Some(home) = std::env::var_os("NEX_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    let user_home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".nex")
}

/// `$NEX_LEDGER`, else `$NEX_HOME/agents.db`, else `~/.nex/agents.db`.
pub fn default_ledger_path() -> PathBuf {
    match std::env::var_os("NEX_LEDGER").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => nex_home().join("agents.db"),
    }
}

/// Settings of the connection that writes import batches (the ledger writer): statement
/// journals in memory (`temp_store=MEMORY`).
/// Every INSERT into a table with triggers (the change log's, the search index's) opens a
/// statement journal holding a copy of each page it changes; past 64 KiB SQLite moves it to a
/// temporary file, which then serves every later statement of the transaction: 384,000
/// `pwrite`s for the 88 MB benchmark corpus. In memory, a journal holds one statement's pages
/// (the writer opens no savepoint unless something fails, `pipeline::apply`, and commits each
/// batch). Not for one transaction of the size of a whole corpus: the benchmark's raw loop (one
/// transaction, a savepoint per session) took 55 s of CPU with it instead of 10 at 2,000
/// sessions (not studied further).
///
/// Its page cache is [`WRITER_CACHE_SIZE_KIB`], not the [`CACHE_SIZE_KIB`] of the others.
///
/// Errors: any SQLite error.
pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_SIZE_KIB)
}

/// Page cache of the ledger writer, in KiB. A batch (16 MiB of frames at most) with more dirty
/// pages than this spills some into the WAL before its commit (`pagerStress`, 6 % of nex's
/// samples with 8 MiB) and reads them back. Measured on the standard corpus (2,000 sessions,
/// `nex import replay` of the same frames, three runs of each alternated): 8 MiB 18.9 s of CPU
/// at 117 MiB of RSS, 16 MiB 17.9 s at 124 MiB, 32 MiB 18.7 s at 145 MiB.
pub const WRITER_CACHE_SIZE_KIB: i64 = 16 * 1024;

/// `$NEX_HOME/nexus.db` (else `~/.nex/nexus.db`).
pub fn default_nexus_path() -> PathBuf {
    nex_home().join("nexus.db")
}

/// Opens (creating if missing) the agents ledger at `path` and migrates it; a `path` that is a
/// symbolic link is refused ([`open_agents_allowing_symlink`] follows it).
///
/// A missing parent directory is created with mode 0700 and a missing file with mode 0600
/// (existing ones keep their modes). Pragmas: WAL, `synchronous=FULL` (a commit survives power
/// loss), `foreign_keys=ON`, `busy_timeout` 5 s, `journal_size_limit`, `wal_autocheckpoint`.
pub fn open_agents(path: &Path) -> Result<Connection, LedgerError> {
    refuse_symlink(path)?;
    open_file(path, migrate::AGENTS)
}

/// [`open_agents`], or, when `allow_symlink` (the operator's `--allow-symlinked-ledger`), the
/// same following a symbolic link.
pub fn open_agents_allowing_symlink(
    path: &Path,
    allow_symlink: bool,
) -> Result<Connection, LedgerError> {
    if allow_symlink {
        open_file(path, migrate::AGENTS)
    } else {
        open_agents(path)
    }
}

/// A ledger reached through a symbolic link is not opened: whoever can write the link's
/// directory would choose where the conversations of every agent are written (and the file
/// modes nex sets would apply to the link's target).
///
/// Errors: `ledger_symlinked`.
pub fn refuse_symlink(path: &Path) -> Result<(), LedgerError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(LedgerError::Symlinked(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// Opens (creating if missing) the runtime database `nexus.db` at `path`; as [`open_agents`].
pub fn open_nexus(path: &Path) -> Result<Connection, LedgerError> {
    open_file(path, migrate::NEXUS)
}

/// A private in-memory agents ledger with the same pragmas and schema, for tests.
pub fn open_agents_in_memory() -> Result<Connection, LedgerError> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn, migrate::AGENTS)?;
    Ok(conn)
}

/// A private in-memory `nexus.db`, for tests.
pub fn open_nexus_in_memory() -> Result<Connection, LedgerError> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn, migrate::NEXUS)?;
    Ok(conn)
}

fn open_file(path: &Path, migrations: &[Migration]) -> Result<Connection, LedgerError> {
    create_private(path)?;
    // Errors name the file: a corrupt `nexus.db` is told apart from the agents ledger.
    let at = |e: LedgerError| match e {
        LedgerError::Sqlite(source) => LedgerError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    };
    let mut conn = Connection::open(path).map_err(|e| at(e.into()))?;
    configure(&conn).map_err(at)?;
    migrate(&mut conn, migrations).map_err(at)?;
    Ok(conn)
}

/// Creates the parent directory (0700) and the empty database file (0600) when missing.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file.
fn create_private(path: &Path) -> Result<(), LedgerError> {
    let io = |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    if !path.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<(), LedgerError> {
    // Before the migrations: 0009 compresses the existing bodies with it.
    text::register(conn)?;
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))?;
    // `journal_mode` answers with the resulting mode; in-memory databases stay `memory`.
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -CACHE_SIZE_KIB)?;
    let _limit: i64 =
        conn.pragma_update_and_check(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES, |r| {
            r.get(0)
        })?;
    let _pages: i64 =
        conn.pragma_update_and_check(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES, |r| {
            r.get(0)
        })?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the writer's page cache is its own, smaller than the other connections'.
    #[test]
    fn the_writer_connection_has_its_own_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_agents(&dir.path().join("agents.db")).unwrap();
        let kib = |conn: &Connection| -> i64 {
            -conn
                .pragma_query_value(None, "cache_size", |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(kib(&conn), CACHE_SIZE_KIB);
        configure_writer(&conn).unwrap();
        assert_eq!(kib(&conn), WRITER_CACHE_SIZE_KIB);
    }
}
