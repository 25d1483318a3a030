//! Writing one batch into the replica: its rows upserted, its deletes deleted and the machine's
//! watermark moved to the batch's end, in one PostgreSQL transaction.
//!
//! # Idempotence
//! Upserts are keyed by `(machine, ledger key)` and skip rows that are already equal, deletes
//! of absent rows do nothing, so a replayed batch changes nothing. The watermark row is locked
//! (`FOR UPDATE`) and must still be the batch's start: two replicators of one machine (the
//! daemon and `nex replica sync`) serialise, and the later one re-reads from the new watermark
//! instead of writing rows older than what the first one wrote.

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use super::changes::Batch;
use super::error::ReplicaError;
use super::pg::classify;
use super::settings::ReplicaUrl;
use super::tables::{PgType, TableShape, quoted};

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Committed; the watermark is the batch's end.
    Committed,
    /// The watermark was not the batch's start (another replicator moved it): nothing written.
    Moved { watermark: i64 },
}

/// The machine's watermark (0 when it has none yet).
pub async fn watermark(
    client: &Client,
    url: &ReplicaUrl,
    machine: &str,
) -> Result<i64, ReplicaError> {
    Ok(owned_watermark(client, url, machine).await?.0)
}

/// The watermark of `writer`'s machine, checked to be its ledger's.
///
/// Errors: `replica_machine_taken` when another ledger replicates as this machine.
pub async fn watermark_of(
    client: &Client,
    url: &ReplicaUrl,
    writer: Writer<'_>,
) -> Result<i64, ReplicaError> {
    let (seq, owner) = owned_watermark(client, url, writer.machine).await?;
    if owner.as_deref().is_some_and(|o| o != writer.ledger_id) {
        return Err(ReplicaError::MachineTaken(writer.machine.to_owned()));
    }
    Ok(seq)
}

async fn owned_watermark(
    client: &Client,
    url: &ReplicaUrl,
    machine: &str,
) -> Result<(i64, Option<String>), ReplicaError> {
    let row = client
        .query_opt(
            "SELECT seq, ledger_id FROM nex.replica_watermarks WHERE machine = $1",
            &[&machine],
        )
        .await
        .map_err(|e| classify(url, e, ReplicaError::Write))?;
    Ok(row.map_or((0, None), |r| (r.get(0), r.get(1))))
}

/// Hook of the fault tests: run with the connection's backend pid after the rows are written
/// and before the watermark moves (the connection can be killed there, the process too).
pub type BeforeWatermark<'a> = &'a (dyn Fn(i32) -> futures::future::BoxFuture<'static, ()> + Sync);

/// Who writes: the machine name and the identity of its ledger.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub machine: &'a str,
    pub ledger_id: &'a str,
}

/// Applies `batch` (read with `shapes`) for `writer`.
///
/// Errors: `replica_unreachable` when the connection is lost (nothing is committed: the batch
/// is read again), `replica_machine_taken` when another ledger replicates as this machine,
/// `replica_write_failed`, `replica_value_invalid`.
pub async fn apply(
    client: &mut Client,
    url: &ReplicaUrl,
    writer: Writer<'_>,
    shapes: &[TableShape],
    batch: &Batch,
    before_watermark: Option<BeforeWatermark<'_>>,
) -> Result<Applied, ReplicaError> {
    let fail = |e: tokio_postgres::Error| classify(url, e, ReplicaError::Write);
    let machine = writer.machine;
    let tx = client.transaction().await.map_err(fail)?;
    let current = lock_watermark(&tx, url, writer).await?;
    if current != batch.from {
        return Ok(Applied::Moved { watermark: current });
    }
    for (shape, part) in shapes.iter().zip(&batch.tables) {
        if !part.upserts.is_empty() {
            let (sql, params) = upsert(shape, machine, &part.upserts)?;
            tx.execute(&sql, &refs(&params)).await.map_err(fail)?;
        }
        if !part.deletes.is_empty() {
            let (sql, params) = delete(shape, machine, &part.deletes)?;
            tx.execute(&sql, &refs(&params)).await.map_err(fail)?;
        }
    }
    if let Some(hook) = before_watermark {
        let pid: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(fail)?
            .get(0);
        hook(pid).await;
    }
    tx.execute(
        "UPDATE nex.replica_watermarks SET seq = $2, ledger_id = $3, updated_at = now()
         WHERE machine = $1",
        &[&machine, &batch.to, &writer.ledger_id],
    )
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(Applied::Committed)
}

/// Locks the machine's watermark row (created at 0 if missing) until the end of `tx`; its seq.
///
/// Errors: `replica_machine_taken`, `replica_unreachable`, `replica_write_failed`.
async fn lock_watermark(
    tx: &Transaction<'_>,
    url: &ReplicaUrl,
    writer: Writer<'_>,
) -> Result<i64, ReplicaError> {
    let fail = |e: tokio_postgres::Error| classify(url, e, ReplicaError::Write);
    tx.execute(
        "INSERT INTO nex.replica_watermarks (machine, seq, ledger_id) VALUES ($1, 0, $2)
         ON CONFLICT (machine) DO NOTHING",
        &[&writer.machine, &writer.ledger_id],
    )
    .await
    .map_err(fail)?;
    let row = tx
        .query_one(
            "SELECT seq, ledger_id FROM nex.replica_watermarks WHERE machine = $1 FOR UPDATE",
            &[&writer.machine],
        )
        .await
        .map_err(fail)?;
    let owner: Option<String> = row.get(1);
    if owner.as_deref().is_some_and(|o| o != writer.ledger_id) {
        return Err(ReplicaError::MachineTaken(writer.machine.to_owned()));
    }
    Ok(row.get(0))
}

/// The whole ledger sent again, in one PostgreSQL transaction: every row upserted (equal rows
/// untouched), then, table by table, the machine's rows whose key the ledger no longer holds
/// deleted, and the watermark set to the log's head as it was before the first row was read.
/// Readers see the replica as before until the commit, then as the ledger was at least at that
/// head; the changes after it follow from the log.
///
/// Used when the log lacks changes the replica never received (`Batch::gap`).
pub struct Resend<'c> {
    tx: Transaction<'c>,
    url: &'c ReplicaUrl,
    machine: String,
}

impl<'c> Resend<'c> {
    /// Locks the watermark, which must still be `from`; `None` when another replicator moved
    /// it (nothing is written).
    ///
    /// Errors: as [`apply`].
    pub async fn begin(
        client: &'c mut Client,
        url: &'c ReplicaUrl,
        writer: Writer<'_>,
        from: i64,
    ) -> Result<Option<Resend<'c>>, ReplicaError> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify(url, e, ReplicaError::Write))?;
        if lock_watermark(&tx, url, writer).await? != from {
            return Ok(None);
        }
        Ok(Some(Resend {
            tx,
            url,
            machine: writer.machine.to_owned(),
        }))
    }

    /// Upserts rows of `shape`'s table (whole rows, in the shape's column order).
    pub async fn rows(&self, shape: &TableShape, rows: &[Vec<Value>]) -> Result<(), ReplicaError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (sql, params) = upsert(shape, &self.machine, rows)?;
        self.tx
            .execute(&sql, &refs(&params))
            .await
            .map_err(|e| classify(self.url, e, ReplicaError::Write))?;
        Ok(())
    }

    /// Deletes the machine's rows of `shape`'s table whose key is not in `keys` (every key
    /// the ledger holds).
    pub async fn sweep(
        &self,
        shape: &TableShape,
        keys: &[Vec<Value>],
    ) -> Result<u64, ReplicaError> {
        let (sql, params) = keyed_delete(shape, &self.machine, keys, "NOT IN")?;
        self.tx
            .execute(&sql, &refs(&params))
            .await
            .map_err(|e| classify(self.url, e, ReplicaError::Write))
    }

    /// Sets the watermark to `to` and commits.
    pub async fn commit(self, to: i64) -> Result<(), ReplicaError> {
        let fail = |e| classify(self.url, e, ReplicaError::Write);
        self.tx
            .execute(
                "UPDATE nex.replica_watermarks SET seq = $2, updated_at = now() WHERE machine = $1",
                &[&self.machine, &to],
            )
            .await
            .map_err(fail)?;
        self.tx.commit().await.map_err(fail)
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// `INSERT … SELECT $1, * FROM unnest(<one array per column>) ON CONFLICT … DO UPDATE` for
/// changed rows only: one statement for the whole table's part of a batch.
fn upsert(
    shape: &TableShape,
    machine: &str,
    rows: &[Vec<Value>],
) -> Result<(String, Vec<Param>), ReplicaError> {
    let mut params: Vec<Param> = vec![Box::new(machine.to_owned())];
    let mut arrays = Vec::new();
    for (i, col) in shape.columns.iter().enumerate() {
        params.push(column(shape, i, rows.iter().map(|r| &r[i]))?);
        arrays.push(format!("${}::{}[]", i + 2, col.pg.sql()));
    }
    let names: Vec<String> = shape.columns.iter().map(|c| quoted(&c.name)).collect();
    let key: Vec<String> = std::iter::once("machine".to_owned())
        .chain(shape.key_columns().iter().map(|c| quoted(&c.name)))
        .collect();
    let values: Vec<String> = shape
        .value_columns()
        .iter()
        .map(|c| quoted(&c.name))
        .collect();
    let on_conflict = if values.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        let set: Vec<String> = values
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let old: Vec<String> = values.iter().map(|c| format!("t.{c}")).collect();
        let new: Vec<String> = values.iter().map(|c| format!("EXCLUDED.{c}")).collect();
        format!(
            "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
            set.join(", "),
            old.join(", "),
            new.join(", ")
        )
    };
    let sql = format!(
        "INSERT INTO nex.{table} AS t (machine, {cols}) SELECT $1, * FROM unnest({arrays}) \
         ON CONFLICT ({key}) {on_conflict}",
        table = quoted(shape.table.name),
        cols = names.join(", "),
        arrays = arrays.join(", "),
        key = key.join(", "),
    );
    Ok((sql, params))
}

/// `DELETE … WHERE machine = $1 AND (<key>) IN (SELECT * FROM unnest(<key arrays>))`.
fn delete(
    shape: &TableShape,
    machine: &str,
    keys: &[Vec<Value>],
) -> Result<(String, Vec<Param>), ReplicaError> {
    keyed_delete(shape, machine, keys, "IN")
}

/// [`delete`] with `op` `IN` (these keys) or `NOT IN` (every key but these).
fn keyed_delete(
    shape: &TableShape,
    machine: &str,
    keys: &[Vec<Value>],
    op: &str,
) -> Result<(String, Vec<Param>), ReplicaError> {
    let mut params: Vec<Param> = vec![Box::new(machine.to_owned())];
    let mut arrays = Vec::new();
    for (i, col) in shape.key_columns().iter().enumerate() {
        params.push(column(shape, i, keys.iter().map(|k| &k[i]))?);
        arrays.push(format!("${}::{}[]", i + 2, col.pg.sql()));
    }
    let key: Vec<String> = shape
        .key_columns()
        .iter()
        .map(|c| quoted(&c.name))
        .collect();
    let sql = format!(
        "DELETE FROM nex.{table} WHERE machine = $1 AND ({key}) {op} (SELECT * FROM unnest({arrays}))",
        table = quoted(shape.table.name),
        key = key.join(", "),
        arrays = arrays.join(", "),
    );
    Ok((sql, params))
}

/// Column `i`'s values as one typed array parameter.
fn column<'v>(
    shape: &TableShape,
    i: usize,
    values: impl Iterator<Item = &'v Value>,
) -> Result<Param, ReplicaError> {
    let col = &shape.columns[i];
    let invalid = |detail: &'static str| ReplicaError::ValueInvalid {
        table: shape.table.name,
        column: col.name.clone(),
        detail,
    };
    Ok(match col.pg {
        PgType::BigInt => Box::new(
            values
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Integer(n) => Ok(Some(*n)),
                    Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(*f as i64)),
                    Value::Text(s) => s
                        .trim()
                        .parse::<i64>()
                        .map(Some)
                        .map_err(|_| invalid("text in an integer column")),
                    _ => Err(invalid("not an integer")),
                })
                .collect::<Result<Vec<Option<i64>>, _>>()?,
        ),
        PgType::Text => Box::new(
            values
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Text(s) if s.contains('\0') => Err(invalid("a NUL character")),
                    Value::Text(s) => Ok(Some(s.clone())),
                    Value::Integer(n) => Ok(Some(n.to_string())),
                    Value::Real(f) => Ok(Some(f.to_string())),
                    Value::Blob(b) => String::from_utf8(b.clone())
                        .map(Some)
                        .map_err(|_| invalid("bytes that are not UTF-8 in a text column")),
                })
                .collect::<Result<Vec<Option<String>>, _>>()?,
        ),
        PgType::Double => Box::new(
            values
                .map(|v| match v {
                    Value::Null => Ok(None),
                    Value::Integer(n) => Ok(Some(*n as f64)),
                    Value::Real(f) => Ok(Some(*f)),
                    _ => Err(invalid("not a number")),
                })
                .collect::<Result<Vec<Option<f64>>, _>>()?,
        ),
        PgType::Bytea => Box::new(
            values
                .map(|v| match v {
                    Value::Null => None,
                    Value::Blob(b) => Some(b.clone()),
                    Value::Text(s) => Some(s.clone().into_bytes()),
                    Value::Integer(n) => Some(n.to_string().into_bytes()),
                    Value::Real(f) => Some(f.to_string().into_bytes()),
                })
                .collect::<Vec<Option<Vec<u8>>>>(),
        ),
    })
}
