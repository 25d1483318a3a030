//! Applying one batch on the writer thread: one IMMEDIATE transaction; per frame a SAVEPOINT
//! holding the import service's own work (`import::import` or `import::chunk`: idempotency,
//! per-item savepoints, staging, reassembly, request rows, and the frame's cursors, which the
//! service stores in the same transaction); COMMIT;
//! then the results.
//!
//! Chunk parts go through `import::chunk_in_transaction` with one [`ChunkStaging`] per batch:
//! an upload whose parts all arrive in this batch is staged in memory and written once as
//! completed rows; parts left over at the end are written as staged rows before COMMIT.
//!
//! A request-level service failure (e.g. `idempotency_key_payload_mismatch`, a `chunk_*`
//! mismatch) rolls back to the frame's savepoint only: that frame is rejected, its cursors are
//! not stored, and the other frames of the batch commit. A ledger failure rolls back the whole
//! batch (busy: the writer retries it; otherwise the run fails).
//!
//! # Savepoints only when something fails
//!
//! A savepoint costs more than its two statements: while one is open, SQLite copies every page
//! that existed before it and that a statement changes into a statement journal (past 64 KiB a
//! temporary file), once per savepoint. With one per frame and one per item, most pages of the
//! ledger's random-key indexes were copied again for every item: about a third of the writer's
//! time (README "Benchmarks"). So each batch is first applied with no savepoint at all; almost
//! always nothing fails and that attempt commits. If any frame is rejected or any item fails,
//! the attempt is rolled back whole and the batch applied again from the same ledger state as
//! described above, with the savepoints: results, rows and cursors are exactly those of
//! applying it with savepoints from the start (a replayed response is only read, so a stored
//! failure in it does not count).

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::RejectCode;
use super::writer::{BatchInfo, BeforeCommit, LedgerError, WriteBatch, WriteOp, WriteResult};
use crate::import::{self, BatchPart, ChunkStaging, ImportError, ImportOptions};
use crate::ledger;
use crate::protocol::{ChunkStatus, Cursor};

/// The savepoint name of one frame (nested inside the batch transaction; the service's own
/// per-item savepoints nest inside it).
const FRAME_SAVEPOINT: &str = "nex_frame";

enum OpError {
    /// The service refused the request: reject this frame.
    Request(RejectCode),
    /// The ledger failed: abandon the batch.
    Ledger(LedgerError),
}

fn ledger_error(e: rusqlite::Error) -> LedgerError {
    if ledger::is_busy(&e) {
        LedgerError::Busy {
            waited_ms: 0,
            source: e,
        }
    } else {
        LedgerError::Write(e)
    }
}

impl From<ImportError> for OpError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::LedgerBusy(source) => OpError::Ledger(LedgerError::Busy {
                waited_ms: 0,
                source,
            }),
            ImportError::LedgerWriteFailed(source) => OpError::Ledger(LedgerError::Write(source)),
            other => OpError::Request(RejectCode::service(other.written_code())),
        }
    }
}

/// Applies `batch` in one transaction and commits it. See the module doc for the failure rules.
pub(crate) fn apply_batch(
    conn: &mut Connection,
    batch: &WriteBatch,
    before_commit: Option<&BeforeCommit>,
) -> Result<Vec<WriteResult>, LedgerError> {
    match apply_without_savepoints(conn, batch, before_commit)? {
        Some(results) => Ok(results),
        None => apply_with_savepoints(conn, batch, before_commit),
    }
}

/// The first attempt (module doc): no savepoint. `None` when a frame was rejected or an item
/// failed: the transaction was rolled back and nothing of the attempt remains.
fn apply_without_savepoints(
    conn: &mut Connection,
    batch: &WriteBatch,
    before_commit: Option<&BeforeCommit>,
) -> Result<Option<Vec<WriteResult>>, LedgerError> {
    let options = ImportOptions {
        item_savepoints: false,
        ..ImportOptions::clone(&batch.options)
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ledger_error)?;
    let mut results = Vec::with_capacity(batch.ops.len());
    let completes_here = uploads_completing_from(&batch.ops);
    let mut staging = ChunkStaging::new();
    for (op, completes_here) in batch.ops.iter().zip(completes_here) {
        match apply_op(&tx, op, &options, &mut staging, completes_here) {
            Ok(result) if all_items_succeeded(&result) => results.push(result),
            // Dropping `tx` rolls the attempt back.
            Ok(_) | Err(OpError::Request(_)) => return Ok(None),
            Err(OpError::Ledger(e)) => return Err(e),
        }
    }
    commit(tx, staging, batch, before_commit)?;
    Ok(Some(results))
}

/// Whether the import a result reports wrote every item (a replayed response wrote none).
fn all_items_succeeded(result: &WriteResult) -> bool {
    let import = match result {
        WriteResult::Import { response, .. } => Some(response),
        WriteResult::Chunk { response, .. } => response.import.as_ref(),
        WriteResult::Rejected(_) => return false,
    };
    import.is_none_or(|r| r.replayed || r.failed == 0)
}

/// The batch with a savepoint per frame (and the service's per item).
fn apply_with_savepoints(
    conn: &mut Connection,
    batch: &WriteBatch,
    before_commit: Option<&BeforeCommit>,
) -> Result<Vec<WriteResult>, LedgerError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ledger_error)?;
    let mut results = Vec::with_capacity(batch.ops.len());
    let completes_here = uploads_completing_from(&batch.ops);
    let mut staging = ChunkStaging::new();
    for (op, completes_here) in batch.ops.iter().zip(completes_here) {
        tx.execute_batch(&format!("SAVEPOINT {FRAME_SAVEPOINT}"))
            .map_err(ledger_error)?;
        match apply_op(&tx, op, &batch.options, &mut staging, completes_here) {
            Ok(result) => {
                tx.execute_batch(&format!("RELEASE {FRAME_SAVEPOINT}"))
                    .map_err(ledger_error)?;
                results.push(result);
            }
            Err(OpError::Request(code)) => {
                tx.execute_batch(&format!(
                    "ROLLBACK TO {FRAME_SAVEPOINT}; RELEASE {FRAME_SAVEPOINT}"
                ))
                .map_err(ledger_error)?;
                tracing::debug!(error_code = %code, "frame rejected by the import service");
                results.push(WriteResult::Rejected(code));
            }
            // Dropping `tx` rolls the whole batch back.
            Err(OpError::Ledger(e)) => return Err(e),
        }
    }
    commit(tx, staging, batch, before_commit)?;
    Ok(results)
}

/// The end of a batch's transaction: staged parts, search index, the test hook, COMMIT.
fn commit(
    tx: Transaction<'_>,
    staging: ChunkStaging<'_>,
    batch: &WriteBatch,
    before_commit: Option<&BeforeCommit>,
) -> Result<(), LedgerError> {
    // Parts of uploads that did not complete in this batch become staged rows.
    staging.spill(&tx).map_err(ledger_error)?;
    // Last: index the batch's new rows (a savepoint after it would cut FTS5's pending terms
    // into a segment).
    ledger::search_index::flush(&tx).map_err(ledger_error)?;
    if let Some(hook) = before_commit {
        hook(&BatchInfo {
            run_id: batch.run_id.clone(),
            ops: batch.ops.len(),
        });
    }
    tx.commit().map_err(ledger_error)
}

/// Per op: whether it is a chunk part whose upload's parts, from this op to the end of the
/// batch, cover every index of its total (so the upload can be staged in memory).
fn uploads_completing_from(ops: &[WriteOp]) -> Vec<bool> {
    let mut seen: HashMap<(&str, &str), HashSet<i64>> = HashMap::new();
    let mut out = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        let WriteOp::Chunk { request: req, .. } = op else {
            continue;
        };
        let (index, total) = import::chunk_bounds(req);
        let indexes = seen
            .entry((req.source.trim(), req.upload_id.trim()))
            .or_default();
        indexes.insert(index);
        out[i] = indexes.iter().filter(|&&k| k < total).count() as i64 == total;
    }
    out
}

fn apply_op<'b>(
    tx: &Transaction<'_>,
    op: &'b WriteOp,
    options: &ImportOptions,
    staging: &mut ChunkStaging<'b>,
    completes_here: bool,
) -> Result<WriteResult, OpError> {
    match op {
        WriteOp::Import {
            request: req,
            request_hash,
            item_json,
        } => {
            // The service stores the request's cursors in the frame's savepoint.
            let response =
                import::import_prehashed(tx, req, request_hash, Some(item_json), options)?;
            let cursors_stored = cursor_count(&req.cursors);
            Ok(WriteResult::Import {
                response,
                cursors_stored,
            })
        }
        WriteOp::Chunk {
            request: req,
            part,
            decoded,
        } => {
            let part = BatchPart {
                part: *part,
                completes_here,
                decoded: decoded.as_deref(),
            };
            let response = import::chunk_in_transaction(tx, req, options, staging, part)?;
            // PROTOCOL.md: a chunk's cursors are honoured (by `import::chunk`) only on the part
            // that completes the upload.
            let cursors_stored = if response.status == ChunkStatus::Completed {
                cursor_count(&req.cursors)
            } else {
                0
            };
            Ok(WriteResult::Chunk {
                response,
                cursors_stored,
            })
        }
    }
}

/// Cursors the service stores for a successful request (blank keys are ignored).
fn cursor_count(cursors: &[Cursor]) -> u64 {
    cursors.iter().filter(|c| !c.key.trim().is_empty()).count() as u64
}
