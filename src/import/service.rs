//! The import algorithm (IMPORT_SEMANTICS.md "Import algorithm"): request checks, idempotency
//! by key and request hash, one savepoint per item, the stored response, the cursors.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::item::{ItemContext, import_item};
use super::rows::ItemJson;
use super::{ImportError, ImportOptions, check_import_request, request_hash, sql};
use crate::ledger::{change_log, store_cursors};
use crate::protocol::{
    Cursor, ImportRequest, ImportResponse, ImportSessionItem, ItemResult, ItemStatus,
};

/// Skip reason of an item whose fingerprint is already imported.
pub const REASON_FINGERPRINT_UNCHANGED: &str = "fingerprint_unchanged";

/// The reason of a skipped `retract` item (item rule 15): the ledger holds no such session.
pub const REASON_SESSION_ABSENT: &str = "session_absent";

/// Runs one import request inside `tx`.
///
/// Guarantees: the request-level and idempotency errors are decided before anything is
/// written, so they leave `tx` untouched; a replay of a known key with the same content returns
/// the stored response unchanged and writes nothing but the request's cursors; each item runs
/// in its own savepoint, so one item's failure never affects the others (unless
/// `opts.item_savepoints` is off: then the caller rolls back a request with a failed item); `req.cursors` are
/// stored in the same transaction whenever the request succeeds. Nothing is durable before the
/// caller commits `tx`.
///
/// Errors: the codes of [`check_import_request`], the `idempotency_key_*` mismatches, and
/// `ledger_busy` / `ledger_write_failed`. After a ledger error the request may be partly
/// written: the caller must roll the transaction back (`ledger_busy` is retryable). A busy
/// ledger inside an item fails the whole request rather than the item.
///
/// There is deliberately no savepoint around the whole request: nested under it, every item
/// savepoint would copy its pages to a sub-journal that only shrinks when the outermost
/// savepoint ends (measured: 2-4x slower on large batches).
pub fn import(
    tx: &Transaction<'_>,
    req: &ImportRequest,
    opts: &ImportOptions,
) -> Result<ImportResponse, ImportError> {
    check_import_request(req)?;
    let hash = request_hash(req);
    let persona = opts.resolve_persona(req.persona_id.as_deref());
    import_unchecked(tx, req, &hash, &persona, opts.now_ms())
}

/// [`import`] with the request hash already computed (the pipeline hashes each request before
/// handing it to the ledger writer, so that the writer thread only does ledger work).
///
/// `hash` must be [`request_hash`]`(req)`; anything else breaks idempotency (a replay would be
/// refused as `idempotency_key_payload_mismatch`, or a changed request answered from the stored
/// response). Guarantees and errors as [`import`].
///
/// `json`, when given, must hold [`ItemJson::of`] of each item of `req`, in order (the tool
/// call JSON text is then not serialised again on the writer thread).
pub fn import_prehashed(
    tx: &Transaction<'_>,
    req: &ImportRequest,
    hash: &str,
    json: Option<&[ItemJson]>,
    opts: &ImportOptions,
) -> Result<ImportResponse, ImportError> {
    check_import_request(req)?;
    let persona = opts.resolve_persona(req.persona_id.as_deref());
    let view = RequestView {
        source: &req.source,
        mode: &req.mode,
        idempotency_key: &req.idempotency_key,
        run_id: req.run_id.as_deref(),
        items: &req.items,
        cursors: &req.cursors,
        json,
        item_savepoints: opts.item_savepoints,
    };
    import_view(tx, &view, hash, &persona, opts.now_ms())
}

/// The import after its checks, hash and persona: replay or run, then store.
pub(crate) fn import_unchecked(
    conn: &Connection,
    req: &ImportRequest,
    hash: &str,
    persona: &str,
    now: i64,
) -> Result<ImportResponse, ImportError> {
    let view = RequestView {
        source: &req.source,
        mode: &req.mode,
        idempotency_key: &req.idempotency_key,
        run_id: req.run_id.as_deref(),
        items: &req.items,
        cursors: &req.cursors,
        json: None,
        item_savepoints: true,
    };
    import_view(conn, &view, hash, persona, now)
}

/// The fields of an import request the algorithm reads, borrowed (the chunk path imports a
/// decoded item it does not own through one).
pub(crate) struct RequestView<'a> {
    pub source: &'a str,
    pub mode: &'a str,
    pub idempotency_key: &'a str,
    pub run_id: Option<&'a str>,
    pub items: &'a [ImportSessionItem],
    pub cursors: &'a [Cursor],
    /// Tool call JSON of `items` computed ahead, one per item.
    pub json: Option<&'a [ItemJson]>,
    /// [`ImportOptions::item_savepoints`].
    pub item_savepoints: bool,
}

/// [`import_unchecked`] over a [`RequestView`].
pub(crate) fn import_view(
    conn: &Connection,
    req: &RequestView<'_>,
    hash: &str,
    persona: &str,
    now: i64,
) -> Result<ImportResponse, ImportError> {
    let source = req.source.trim();
    let mode = req.mode.trim();
    let key = req.idempotency_key.trim();
    let response = match lookup_replay(conn, key, source, mode, hash)? {
        Some(stored) => stored,
        None => {
            let run_id = req
                .run_id
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map_or_else(new_run_id, str::to_owned);
            let response = import_items_with(
                conn,
                source,
                persona,
                &run_id,
                req.items,
                req.json,
                req.item_savepoints,
                now,
            )?;
            store_request(conn, key, source, mode, hash, &response, now)?;
            response
        }
    };
    store_cursors(conn, source, req.cursors, &response.run_id, now)?;
    Ok(response)
}

/// Imports `items` in order, each in its own savepoint (rule 5), and counts the outcomes.
///
/// An item error is rolled back to its savepoint and reported as the item's `failed` reason;
/// the other items are unaffected. Only a busy ledger (retryable) or a failing savepoint
/// statement ends the whole call with an error.
pub fn import_items(
    conn: &Connection,
    source: &str,
    persona: &str,
    run_id: &str,
    items: &[ImportSessionItem],
    now_ms: i64,
) -> Result<ImportResponse, ImportError> {
    import_items_with(conn, source, persona, run_id, items, None, true, now_ms)
}

/// [`import_items`] with each item's tool call JSON computed ahead (`json[i]` is
/// [`ItemJson::of`]`(&items[i])`; ignored unless there is one per item). Without
/// `savepoints`, a failed item is still counted and reported, but its partial rows stay in the
/// transaction, which the caller must then roll back ([`ImportOptions::item_savepoints`]).
#[allow(clippy::too_many_arguments)]
fn import_items_with(
    conn: &Connection,
    source: &str,
    persona: &str,
    run_id: &str,
    items: &[ImportSessionItem],
    json: Option<&[ItemJson]>,
    savepoints: bool,
    now_ms: i64,
) -> Result<ImportResponse, ImportError> {
    let json = json.filter(|j| j.len() == items.len());
    let ctx = ItemContext {
        conn,
        source,
        persona,
        run_id,
        now_ms,
        log_inserts: change_log::logged_by_writer(conn)?,
    };
    let mut response = ImportResponse {
        ok: true,
        run_id: run_id.to_owned(),
        imported: 0,
        upserted: 0,
        skipped: 0,
        failed: 0,
        retracted: 0,
        results: Vec::with_capacity(items.len()),
        replayed: false,
    };
    for (position, item) in items.iter().enumerate() {
        if savepoints {
            conn.prepare_cached("SAVEPOINT nex_import_item")?
                .execute([])?;
        }
        let outcome = import_item(&ctx, item, json.map(|j| &j[position]));
        let result = match outcome {
            Ok(outcome) => {
                if savepoints {
                    conn.prepare_cached("RELEASE nex_import_item")?
                        .execute([])?;
                }
                match outcome.status {
                    ItemStatus::Imported => response.imported += 1,
                    ItemStatus::Upserted => response.upserted += 1,
                    ItemStatus::Skipped => response.skipped += 1,
                    ItemStatus::Failed => response.failed += 1,
                    ItemStatus::Retracted => response.retracted += 1,
                }
                ItemResult {
                    source_provider: item.source_provider.trim().to_owned(),
                    source_session_id: item.source_session_id.trim().to_owned(),
                    session_label: Some(outcome.label),
                    reason: (outcome.status == ItemStatus::Skipped).then(|| {
                        if item.retract {
                            REASON_SESSION_ABSENT.to_owned()
                        } else {
                            REASON_FINGERPRINT_UNCHANGED.to_owned()
                        }
                    }),
                    status: outcome.status,
                }
            }
            Err(err) => {
                if savepoints {
                    conn.prepare_cached("ROLLBACK TO nex_import_item")?
                        .execute([])?;
                    conn.prepare_cached("RELEASE nex_import_item")?
                        .execute([])?;
                }
                if err.is_retryable() {
                    return Err(err);
                }
                tracing::debug!(error_code = %err.code(), "import item failed");
                response.failed += 1;
                ItemResult {
                    source_provider: item.source_provider.trim().to_owned(),
                    source_session_id: item.source_session_id.trim().to_owned(),
                    session_label: None,
                    status: ItemStatus::Failed,
                    reason: Some(err.written_code().into_owned()),
                }
            }
        };
        response.results.push(result);
    }
    Ok(response)
}

/// Rule 4: the stored response of `key`, a mismatch error, or `None` to run the request (no
/// row, or a legacy row without a hash or with an unreadable response).
fn lookup_replay(
    conn: &Connection,
    key: &str,
    source: &str,
    mode: &str,
    hash: &str,
) -> Result<Option<ImportResponse>, ImportError> {
    let row: Option<(String, String, Option<String>, String)> = conn
        .prepare_cached(sql::SELECT_REQUEST)?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((stored_source, stored_mode, stored_hash, response_json)) = row else {
        return Ok(None);
    };
    if stored_source != source {
        return Err(ImportError::IdempotencyKeySourceMismatch);
    }
    if stored_mode != mode {
        return Err(ImportError::IdempotencyKeyModeMismatch);
    }
    match stored_hash.as_deref().filter(|h| !h.is_empty()) {
        Some(stored) if stored != hash => Err(ImportError::IdempotencyKeyPayloadMismatch),
        Some(_) => Ok(serde_json::from_str::<ImportResponse>(&response_json)
            .ok()
            .map(|r| ImportResponse {
                replayed: true,
                ..r
            })),
        None => Ok(None),
    }
}

/// The stored response of `key` whatever its hash (the chunk path answers a re-sent part of a
/// completed upload with it).
pub(crate) fn stored_response(
    conn: &Connection,
    key: &str,
) -> Result<Option<ImportResponse>, ImportError> {
    let json: Option<String> = conn
        .prepare_cached(sql::SELECT_REQUEST)?
        .query_row([key], |r| r.get(3))
        .optional()?;
    Ok(json
        .and_then(|j| serde_json::from_str::<ImportResponse>(&j).ok())
        .map(|r| ImportResponse {
            replayed: true,
            ..r
        }))
}

fn store_request(
    conn: &Connection,
    key: &str,
    source: &str,
    mode: &str,
    hash: &str,
    response: &ImportResponse,
    now: i64,
) -> Result<(), ImportError> {
    // Serialising plain data cannot fail.
    let json = serde_json::to_string(response).unwrap_or_default();
    conn.prepare_cached(sql::UPSERT_REQUEST)?.execute(params![
        key,
        source,
        mode,
        response.run_id,
        hash,
        json,
        now
    ])?;
    Ok(())
}

/// A fresh run id (UUID v4), for requests that carry none.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
