//! The ledger side of replication: batches of changes after a watermark, read from
//! `change_log` (migration 0006) with the rows as they are now, on a read-only connection of
//! its own; whole tables for a resend; and the pruning of acknowledged changes
//! ([`LogPruner`]).
//!
//! # Contention
//! The reader never writes: in WAL mode it neither waits for the import's writer nor makes it
//! wait. A batch is one read transaction (one snapshot), kept short by [`Limits`], so the WAL
//! checkpoint is never held back for long. Pruning writes, in transactions of at most
//! [`PRUNE_CHUNK`] rows that give way to the import (see [`LogPruner`]).
//!
//! # Pruning and gaps
//! The log keeps what the replica has not acknowledged: after the replica commits a
//! watermark, the changes before it are deleted. The change *at* the watermark stays: SQLite
//! numbers a new row `max(seq) + 1`, so the sequence never goes back. Committed changes are
//! numbered without holes (one writer; a rolled-back number is reused), so a log whose first
//! change after a watermark `w` is not `w + 1` has lost changes the replica never received
//! (the log was pruned without a replica, or the replica was rebuilt): [`Batch::gap`], and
//! the replicator resends the whole ledger.
//!
//! # Exactness
//! The snapshot that holds change `seq` holds the row it describes at that change or later: a
//! row read now is at least as new as every change in the batch, and a key with no row is a
//! delete. A later change to the same key comes again after the batch's end, so replaying the
//! log from any watermark converges on the ledger.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::ReplicaError;
use super::tables::{self, KEY_SEPARATOR, PgType, TableShape, quoted};

/// How much one batch may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Changes read from the log (distinct keys are fewer or equal).
    pub max_changes: usize,
    /// Approximate bytes of row values; the batch ends at the change that crosses it.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_changes: 5_000,
            max_bytes: 16 << 20,
        }
    }
}

/// The changes `(from, to]` as rows to upsert and keys to delete, per table.
#[derive(Debug, Default)]
pub struct Batch {
    /// The watermark the batch starts after.
    pub from: i64,
    /// Its last change (the new watermark); `from` when the batch is empty.
    pub to: i64,
    /// Changes covered (log rows, before merging repeated keys).
    pub changes: u64,
    /// One entry per table of [`ChangeReader::shapes`], same order.
    pub tables: Vec<TableBatch>,
    /// The changes right after `from` are gone from the log (empty batch): only a resend of
    /// the whole ledger brings the replica up to date.
    pub gap: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.to == self.from
    }

    /// Rows upserted plus keys deleted.
    pub fn rows(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| (t.upserts.len() + t.deletes.len()) as u64)
            .sum()
    }
}

/// One table's part of a batch.
#[derive(Debug, Default)]
pub struct TableBatch {
    /// Whole rows, in the shape's column order.
    pub upserts: Vec<Vec<Value>>,
    /// Keys (key columns' values) whose row is gone.
    pub deletes: Vec<Vec<Value>>,
}

/// A read-only view of one ledger's change log (and, apart, its pruner).
pub struct ChangeReader {
    conn: Connection,
    path: std::path::PathBuf,
    /// Opened at the first prune.
    pruner: Option<LogPruner>,
    ledger_id: String,
    shapes: Vec<TableShape>,
    selects: Vec<String>,
}

impl ChangeReader {
    /// Opens `ledger` read-only (never creating or migrating it).
    ///
    /// Errors: `replica_read_failed` when it cannot be opened or has no change log (a ledger
    /// not yet opened by a `nex` with migration 0006).
    pub fn open(ledger: &Path) -> Result<ChangeReader, ReplicaError> {
        let conn = Connection::open_with_flags(
            ledger,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::ledger::text::register(&conn)?;
        let has_log: bool = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'change_log'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !has_log {
            return Err(ReplicaError::Read(
                "the ledger has no change log (open it with this nex first)".into(),
            ));
        }
        let ledger_id: String =
            conn.query_row("SELECT id FROM ledger_identity LIMIT 1", [], |r| r.get(0))?;
        let shapes = tables::shapes(&conn)?;
        let selects = shapes.iter().map(select_row).collect();
        Ok(ChangeReader {
            conn,
            path: ledger.to_path_buf(),
            pruner: None,
            ledger_id,
            shapes,
            selects,
        })
    }

    /// This ledger's identity (`ledger_identity`, migration 0006).
    pub fn ledger_id(&self) -> &str {
        &self.ledger_id
    }

    pub fn shapes(&self) -> &[TableShape] {
        &self.shapes
    }

    /// The last change's sequence number (0: none yet).
    pub fn head(&self) -> Result<i64, ReplicaError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM change_log", [], |r| {
                r.get(0)
            })?)
    }

    /// When the first change after `watermark` was written (epoch ms), if there is one.
    pub fn first_after(&self, watermark: i64) -> Result<Option<i64>, ReplicaError> {
        Ok(self
            .conn
            .query_row(
                "SELECT at FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT 1",
                [watermark],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The changes after `from`, within `limits`, with their rows as they are now.
    ///
    /// Errors: `replica_read_failed` (a busy or unreadable ledger, or a change of a table this
    /// `nex` does not know: a newer one wrote the ledger).
    pub fn read(&mut self, from: i64, limits: Limits) -> Result<Batch, ReplicaError> {
        let tx = self.conn.transaction()?;
        let changes: Vec<(i64, i64, String)> = tx
            .prepare_cached(
                "SELECT seq, tbl, row_key FROM change_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(rusqlite::params![from, limits.max_changes as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut batch = Batch {
            from,
            to: from,
            changes: 0,
            tables: self.shapes.iter().map(|_| TableBatch::default()).collect(),
            gap: changes.first().is_some_and(|(seq, _, _)| *seq != from + 1),
        };
        if batch.gap {
            return Ok(batch);
        }
        let mut seen: HashSet<(i64, String)> = HashSet::new();
        let mut bytes = 0usize;
        for (seq, code, key) in changes {
            let index = self
                .shapes
                .iter()
                .position(|s| s.table.code == code)
                .ok_or_else(|| {
                    ReplicaError::Read(format!(
                        "change {seq} is of table code {code}, unknown to this nex (a newer one wrote the ledger)"
                    ))
                })?;
            if seen.insert((code, key.clone())) {
                let shape = &self.shapes[index];
                let key = key_values(shape, &key)?;
                let row: Option<Vec<Value>> = {
                    let mut stmt = tx.prepare_cached(&self.selects[index])?;
                    let width = shape.columns.len();
                    stmt.query_row(rusqlite::params_from_iter(key.iter()), |r| {
                        (0..width).map(|i| r.get::<_, Value>(i)).collect()
                    })
                    .optional()?
                };
                let part = &mut batch.tables[index];
                match row {
                    Some(values) => {
                        bytes += values.iter().map(value_size).sum::<usize>();
                        part.upserts.push(values);
                    }
                    None => part.deletes.push(key),
                }
            }
            batch.to = seq;
            batch.changes += 1;
            if bytes >= limits.max_bytes {
                break;
            }
        }
        tx.commit()?;
        Ok(batch)
    }
}

impl ChangeReader {
    /// Up to `limit` rows of table `index` (of [`ChangeReader::shapes`]) after `after_rowid`, in
    /// rowid order, with the last one's rowid (`after_rowid` when none): a whole table read in
    /// short snapshots, for a resend.
    ///
    /// Errors: `replica_read_failed`.
    pub fn table_rows(
        &mut self,
        index: usize,
        after_rowid: i64,
        limit: usize,
    ) -> Result<(Vec<Vec<Value>>, i64), ReplicaError> {
        let shape = &self.shapes[index];
        let cols = column_list(shape);
        let width = cols.len();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            cols.join(", "),
            quoted(shape.table.name)
        ))?;
        let mut last = after_rowid;
        let rows = stmt
            .query_map(rusqlite::params![after_rowid, limit as i64], |r| {
                let rowid: i64 = r.get(0)?;
                let values = (1..=width)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((rowid, values))
            })?
            .map(|row| {
                row.map(|(rowid, values)| {
                    last = rowid;
                    values
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, last))
    }

    /// Deletes the acknowledged changes: every change before `watermark`; see [`LogPruner`].
    ///
    /// Errors: `replica_read_failed` (the ledger cannot be opened for writing).
    pub fn prune(&mut self, watermark: i64) -> Result<u64, ReplicaError> {
        if self.pruner.is_none() {
            self.pruner = Some(LogPruner::open(&self.path)?);
        }
        self.pruner
            .as_mut()
            .expect("opened above")
            .prune_below(watermark)
    }
}

/// Rows deleted per pruning transaction: a few milliseconds of the ledger's write lock.
pub const PRUNE_CHUNK: i64 = 5_000;

/// Deletes changes from the log, on a write connection of its own.
///
/// # Contention
/// Each transaction deletes at most [`PRUNE_CHUNK`] rows, and waits at most 50 ms for the
/// write lock: when the import holds it, pruning stops and the next call goes on. The import
/// waits for one chunk at most.
pub struct LogPruner {
    conn: Connection,
}

impl LogPruner {
    /// Opens `ledger` for writing (never creating it).
    ///
    /// Errors: `replica_read_failed`.
    pub fn open(ledger: &Path) -> Result<LogPruner, ReplicaError> {
        let conn = Connection::open_with_flags(
            ledger,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_millis(50))?;
        crate::ledger::text::register(&conn)?;
        // As the import's writer: in WAL mode a commit waits for no fsync (a deleted change
        // that comes back after a power cut is only sent again).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(LogPruner { conn })
    }

    /// Deletes every change before `seq` (never the last change, see the module's "Pruning");
    /// returns how many. A busy ledger ends it early, without error.
    ///
    /// Errors: `replica_read_failed` (a write that fails otherwise).
    pub fn prune_below(&mut self, seq: i64) -> Result<u64, ReplicaError> {
        let mut deleted = 0u64;
        loop {
            let n = match self.conn.execute(
                "DELETE FROM change_log WHERE seq < ?1
                   AND seq < (SELECT max(seq) FROM change_log)
                   AND seq < (SELECT min(seq) FROM change_log) + ?2",
                rusqlite::params![seq, PRUNE_CHUNK],
            ) {
                Ok(n) => n,
                Err(e) if crate::ledger::is_busy(&e) => return Ok(deleted),
                Err(e) => return Err(e.into()),
            };
            deleted += n as u64;
            if n == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Without a replica: deletes every change but the last (a replica configured later
    /// receives the whole ledger by a resend).
    ///
    /// Errors: as [`LogPruner::prune_below`].
    pub fn prune_all(&mut self) -> Result<u64, ReplicaError> {
        self.prune_below(i64::MAX)
    }
}

/// The columns of `shape` as a SELECT reads them: a compressed body (`ledger::text`) as its
/// text, since the replica holds plain text.
fn column_list(shape: &TableShape) -> Vec<String> {
    shape
        .columns
        .iter()
        .map(|c| {
            let packed =
                crate::ledger::text::PACKED_COLUMNS.contains(&(shape.table.name, c.name.as_str()));
            if packed {
                format!(
                    "{}({})",
                    crate::ledger::text::TEXT_FUNCTION,
                    quoted(&c.name)
                )
            } else {
                quoted(&c.name)
            }
        })
        .collect()
}

/// `SELECT <columns> FROM t WHERE k1 = ?1 AND ...`.
fn select_row(shape: &TableShape) -> String {
    let cols = column_list(shape);
    let cond: Vec<String> = shape
        .key_columns()
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = ?{}", quoted(&c.name), i + 1))
        .collect();
    format!(
        "SELECT {} FROM {} WHERE {}",
        cols.join(", "),
        quoted(shape.table.name),
        cond.join(" AND ")
    )
}

/// A `row_key` split into its typed parts.
fn key_values(shape: &TableShape, key: &str) -> Result<Vec<Value>, ReplicaError> {
    let parts: Vec<&str> = if shape.table.key.len() == 1 {
        vec![key]
    } else {
        key.split(KEY_SEPARATOR).collect()
    };
    if parts.len() != shape.table.key.len() {
        return Err(ReplicaError::Read(format!(
            "a change of {} has a malformed key",
            shape.table.name
        )));
    }
    parts
        .iter()
        .zip(shape.key_columns())
        .map(|(part, col)| match col.pg {
            PgType::BigInt => part.parse::<i64>().map(Value::Integer).map_err(|_| {
                ReplicaError::Read(format!(
                    "a change of {} has a malformed key",
                    shape.table.name
                ))
            }),
            _ => Ok(Value::Text((*part).to_owned())),
        })
        .collect()
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
    }
}
