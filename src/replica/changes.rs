//! The ledger side of replication: batches of changes after a watermark, read from
//! `change_log` (migration 0006) with the rows as they are now, on a read-only connection of
//! its own.
//!
//! # Contention
//! The reader never writes: in WAL mode it neither waits for the import's writer nor makes it
//! wait. A batch is one read transaction (one snapshot), kept short by [`Limits`], so the WAL
//! checkpoint is never held back for long.
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

/// A read-only view of one ledger's change log.
pub struct ChangeReader {
    conn: Connection,
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
        };
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

/// `SELECT <columns> FROM t WHERE k1 = ?1 AND ...`.
fn select_row(shape: &TableShape) -> String {
    let cols: Vec<String> = shape.columns.iter().map(|c| quoted(&c.name)).collect();
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
