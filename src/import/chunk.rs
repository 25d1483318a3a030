//! The chunk algorithm (IMPORT_SEMANTICS.md "Chunk algorithm"): stage the parts of one large
//! item, check each against the upload's first part, and import the item when the last part
//! arrives.
//!
//! **(improvement)** When an upload is imported its parts' payloads are cleared in the same
//! transaction (the rows stay as tombstones until the TTL, so late re-sends are still checked
//! against the upload's metadata); a re-sent part of a completed upload is answered from the
//! stored import response of its idempotency key.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::decode::UploadDigest;
use super::service::{RequestView, import_view, new_run_id, stored_response};
use super::validation::chunk_bounds;
use super::{
    DecodedUpload, ImportError, ImportOptions, ItemJson, check_chunk_request, decode_chunked_item,
    hash, sql,
};
use crate::protocol::{
    ChunkRequest, ChunkResponse, ChunkStatus, ImportResponse, ImportSessionItem,
};

/// Stages one part; when it completes the upload, decodes and imports the item.
///
/// Guarantees: the request checks and the checks against the upload are decided before the
/// part is staged (they leave `tx` untouched apart from pruning expired parts); a repeated part
/// replaces itself; the import runs under the chunk's idempotency key, run id and persona, and
/// stores the chunk's cursors only on the completing part. As in the baseline, a part whose
/// upload then fails to decode or import stays staged (a re-send gets the same answer).
///
/// Errors: the chunk request checks, the `chunk_*_mismatch` checks against the upload, the
/// assembly and decode codes, the `chunk_item_*_mismatch` checks, and whatever the import
/// itself refuses (e.g. `idempotency_key_payload_mismatch`). After `ledger_busy` /
/// `ledger_write_failed` the caller must roll the transaction back.
pub fn chunk(
    tx: &Transaction<'_>,
    req: &ChunkRequest,
    opts: &ImportOptions,
) -> Result<ChunkResponse, ImportError> {
    check_chunk_request(req)?;
    let now = opts.now_ms();
    let persona = opts.resolve_persona(req.persona_id.as_deref());
    let run_id = req
        .run_id
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map_or_else(new_run_id, str::to_owned);
    chunk_unchecked(tx, req, opts, &persona, &run_id, now)
}

fn chunk_unchecked(
    conn: &Connection,
    req: &ChunkRequest,
    opts: &ImportOptions,
    persona: &str,
    run_id: &str,
    now: i64,
) -> Result<ChunkResponse, ImportError> {
    conn.prepare_cached(sql::PRUNE_PARTS)?
        .execute([now.saturating_sub(opts.chunk_ttl_ms)])?;
    let first = check_against_upload(conn, req)?;
    chunk_checked(conn, req, opts, persona, run_id, now, first, None)
}

/// The chunk algorithm after pruning and the checks against the upload's first staged part.
///
/// `decoded`: the upload decoded ahead (`stages::prepare`), if this part is expected to
/// complete it. It replaces the decode of the staged parts (and the hash and tool JSON of the
/// item) only when the staged payloads have its digest, i.e. when decoding them would give
/// exactly its item; the index checks run either way, so results and codes are unchanged.
#[allow(clippy::too_many_arguments)]
pub(super) fn chunk_checked(
    conn: &Connection,
    req: &ChunkRequest,
    opts: &ImportOptions,
    persona: &str,
    run_id: &str,
    now: i64,
    first: Option<UploadState>,
    decoded: Option<&DecodedUpload>,
) -> Result<ChunkResponse, ImportError> {
    let source = req.source.trim();
    let upload_id = req.upload_id.trim();
    if first.is_some_and(|meta| meta.completed) {
        if let Some(import) = stored_response(conn, req.idempotency_key.trim())? {
            let (_, total) = chunk_bounds(req);
            return Ok(completed(upload_id, total as u64, import));
        }
        // Tombstones without a stored response cannot answer: start the upload afresh.
        conn.prepare_cached(sql::DELETE_UPLOAD)?
            .execute(params![source, upload_id])?;
    }
    let (received, total) = stage_chunk(conn, req, persona, run_id, now)?;
    if received < total {
        return Ok(ChunkResponse {
            ok: true,
            run_id: run_id.to_owned(),
            upload_id: upload_id.to_owned(),
            status: ChunkStatus::Staged,
            received,
            total,
            import: None,
        });
    }
    let encoding = staged_encoding(conn, source, upload_id, total)?;
    let reusable = decoded.filter(|d| {
        staged_digest(conn, source, upload_id, &encoding).is_some_and(|staged| staged == d.digest)
    });
    let import = match reusable {
        Some(d) => import_upload(
            conn,
            req,
            &d.item,
            Some((&d.hash, &d.json)),
            persona,
            run_id,
            now,
            opts.item_savepoints,
        )?,
        None => {
            let item = decode_staged(conn, source, upload_id, &encoding, opts.max_inflated_bytes)?;
            import_upload(
                conn,
                req,
                &item,
                None,
                persona,
                run_id,
                now,
                opts.item_savepoints,
            )?
        }
    };
    conn.prepare_cached(sql::COMPLETE_PARTS)?
        .execute(params![source, upload_id, now])?;
    Ok(completed(upload_id, total, import))
}

/// Imports the decoded item of a complete upload under the completing part's key, run id,
/// persona and cursors (chunk algorithm 7-8). `precomputed`, when given, must be
/// ([`upload_hash`]`(req, item)`, [`ItemJson::of`]`(item)`), both taken before any
/// [`ItemJson::take`] emptied the item's tool JSON. `item_savepoints`: as
/// [`ImportOptions::item_savepoints`].
#[allow(clippy::too_many_arguments)]
pub(super) fn import_upload(
    conn: &Connection,
    req: &ChunkRequest,
    item: &ImportSessionItem,
    precomputed: Option<(&str, &ItemJson)>,
    persona: &str,
    run_id: &str,
    now: i64,
    item_savepoints: bool,
) -> Result<ImportResponse, ImportError> {
    check_item_against_chunk(item, req)?;
    let hash = match precomputed {
        Some((hash, _)) => hash.to_owned(),
        None => upload_hash(req, item),
    };
    let view = RequestView {
        source: req.source.trim(),
        mode: req.mode.trim(),
        idempotency_key: req.idempotency_key.trim(),
        run_id: Some(run_id),
        items: std::slice::from_ref(item),
        cursors: &req.cursors,
        json: precomputed.map(|(_, json)| std::slice::from_ref(json)),
        item_savepoints,
    };
    import_view(conn, &view, &hash, persona, now)
}

/// The request hash of the import a complete upload runs: `{source, mode, personaId, [item]}`
/// of the completing part. (improvement) The chunk request's own personaId is hashed, as on
/// the import path.
pub fn upload_hash(req: &ChunkRequest, item: &ImportSessionItem) -> String {
    hash::hash_parts(
        &req.source,
        &req.mode,
        req.persona_id.as_deref(),
        std::slice::from_ref(item),
    )
}

pub(super) fn completed(upload_id: &str, total: u64, import: ImportResponse) -> ChunkResponse {
    ChunkResponse {
        ok: true,
        run_id: import.run_id.clone(),
        upload_id: upload_id.to_owned(),
        status: ChunkStatus::Completed,
        received: total,
        total,
        import: Some(import),
    }
}

/// The metadata of an upload's lowest-index part.
#[derive(Debug, Clone, Copy)]
pub(super) struct UploadState {
    completed: bool,
}

/// What a part is checked against: the upload's lowest-index part, trimmed as staged.
pub(super) struct UploadMeta<'a> {
    pub total: i64,
    pub mode: &'a str,
    pub key: &'a str,
    pub provider: &'a str,
    pub session: &'a str,
    pub fingerprint: &'a str,
    pub encoding: &'a str,
}

/// Rule 3, in the baseline's order: total, mode, idempotency key, provider, session id,
/// fingerprint, encoding.
pub(super) fn check_meta(meta: &UploadMeta<'_>, req: &ChunkRequest) -> Result<(), ImportError> {
    let (_, req_total) = chunk_bounds(req);
    if meta.total != req_total {
        return Err(ImportError::ChunkTotalMismatch);
    }
    if meta.mode != req.mode.trim() {
        return Err(ImportError::ChunkModeMismatch);
    }
    if meta.key != req.idempotency_key.trim() {
        return Err(ImportError::ChunkIdempotencyKeyMismatch);
    }
    if meta.provider != req.source_provider.trim() {
        return Err(ImportError::ChunkSourceProviderMismatch);
    }
    if meta.session != req.source_session_id.trim() {
        return Err(ImportError::ChunkSourceSessionIdMismatch);
    }
    if meta.fingerprint != req.source_session_fingerprint.trim() {
        return Err(ImportError::ChunkSourceSessionFingerprintMismatch);
    }
    if meta.encoding != req.encoding.trim() {
        return Err(ImportError::ChunkEncodingMismatch);
    }
    Ok(())
}

/// Checks `req` against the upload's first staged part, if any (rule 3, in the baseline's
/// order): total, mode, idempotency key, provider, session id, fingerprint, encoding.
pub fn check_chunk_against_upload(
    conn: &Connection,
    req: &ChunkRequest,
) -> Result<(), ImportError> {
    check_against_upload(conn, req).map(|_| ())
}

pub(super) fn check_against_upload(
    conn: &Connection,
    req: &ChunkRequest,
) -> Result<Option<UploadState>, ImportError> {
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .prepare_cached(sql::FIRST_PART)?
        .query_row(params![req.source.trim(), req.upload_id.trim()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((total, mode, key, provider, session, fingerprint, encoding, completed_at)) = row
    else {
        return Ok(None);
    };
    check_meta(
        &UploadMeta {
            total,
            mode: &mode,
            key: &key,
            provider: &provider,
            session: &session,
            fingerprint: &fingerprint,
            encoding: &encoding,
        },
        req,
    )?;
    Ok(Some(UploadState {
        completed: completed_at.is_some(),
    }))
}

/// Upserts the part keyed by `(source, uploadId, chunkIndex)` (a repeat replaces itself) and
/// returns `(received, total)`: the parts now staged and the upload's (clamped) total.
pub fn stage_chunk(
    conn: &Connection,
    req: &ChunkRequest,
    persona: &str,
    run_id: &str,
    now: i64,
) -> Result<(u64, u64), ImportError> {
    let (index, total) = chunk_bounds(req);
    let source = req.source.trim();
    let upload_id = req.upload_id.trim();
    conn.prepare_cached(sql::UPSERT_PART)?.execute(params![
        source,
        upload_id,
        index,
        total,
        req.mode.trim(),
        run_id,
        persona,
        req.idempotency_key.trim(),
        req.source_provider.trim(),
        req.source_session_id.trim(),
        req.source_session_fingerprint.trim(),
        req.encoding.trim(),
        req.data.trim(),
        now,
    ])?;
    let received: i64 = conn
        .prepare_cached(sql::COUNT_PARTS)?
        .query_row(params![source, upload_id], |r| r.get(0))?;
    Ok((received.max(0) as u64, total as u64))
}

/// Loads the staged parts of an upload in index order and decodes the item.
///
/// Errors: `chunk_upload_empty` (no parts), `chunk_index_gap` (the parts are not exactly
/// `0..total`), then the codes of [`decode_chunked_item`] with the first part's encoding.
pub fn assemble_upload(
    conn: &Connection,
    source: &str,
    upload_id: &str,
    total: u64,
    max_inflated_bytes: u64,
) -> Result<ImportSessionItem, ImportError> {
    let encoding = staged_encoding(conn, source, upload_id, total)?;
    decode_staged(conn, source, upload_id, &encoding, max_inflated_bytes)
}

/// The index checks of [`assemble_upload`], without payloads; returns the first part's
/// encoding.
fn staged_encoding(
    conn: &Connection,
    source: &str,
    upload_id: &str,
    total: u64,
) -> Result<String, ImportError> {
    // The upload must be exactly `0..total`.
    let mut stmt = conn.prepare_cached(sql::LIST_PART_INDEXES)?;
    let rows = stmt.query_map(params![source, upload_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut encoding = None;
    let mut count = 0u64;
    for (position, row) in rows.enumerate() {
        let (index, part_encoding) = row?;
        if index != position as i64 {
            return Err(ImportError::ChunkIndexGap);
        }
        encoding.get_or_insert(part_encoding);
        count += 1;
    }
    let Some(encoding) = encoding else {
        return Err(ImportError::ChunkUploadEmpty);
    };
    if count != total {
        return Err(ImportError::ChunkIndexGap);
    }
    Ok(encoding)
}

/// [`upload_digest`] of the staged payloads, read one row at a time; `None` when a row cannot
/// be read as text (the decode path then reports that error).
fn staged_digest(
    conn: &Connection,
    source: &str,
    upload_id: &str,
    encoding: &str,
) -> Option<[u8; 32]> {
    let mut stmt = conn.prepare_cached(sql::LIST_PART_PAYLOADS).ok()?;
    let mut rows = stmt.query(params![source, upload_id]).ok()?;
    let mut digest = UploadDigest::new(encoding);
    while let Some(row) = rows.next().ok()? {
        digest.part(row.get_ref(0).ok()?.as_str().ok()?.as_bytes());
    }
    Some(digest.finish())
}

/// Decodes the staged payloads of an upload whose indexes were checked.
fn decode_staged(
    conn: &Connection,
    source: &str,
    upload_id: &str,
    encoding: &str,
    max_inflated_bytes: u64,
) -> Result<ImportSessionItem, ImportError> {
    // The payloads one row at a time into the streaming decoder: memory holds one part, never
    // the upload (a 200 MB session is 130 MiB of base64).
    let mut stmt = conn.prepare_cached(sql::LIST_PART_PAYLOADS)?;
    let mut rows = stmt.query(params![source, upload_id])?;
    let mut failed: Option<rusqlite::Error> = None;
    let payloads = std::iter::from_fn(|| {
        let next = rows
            .next()
            .and_then(|row| row.map(|r| r.get::<_, String>(0)).transpose());
        match next {
            Ok(payload) => payload,
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    let decoded = decode_chunked_item(payloads, encoding, max_inflated_bytes);
    match failed {
        // A read error cut the payload short: report it, not the decode error it caused.
        Some(e) => Err(e.into()),
        None => decoded,
    }
}

/// The decoded item must name the chunk's provider, session and fingerprint.
fn check_item_against_chunk(
    item: &ImportSessionItem,
    req: &ChunkRequest,
) -> Result<(), ImportError> {
    if item.source_provider.trim() != req.source_provider.trim() {
        return Err(ImportError::ChunkItemSourceProviderMismatch);
    }
    if item.source_session_id.trim() != req.source_session_id.trim() {
        return Err(ImportError::ChunkItemSourceSessionIdMismatch);
    }
    if item.source_session_fingerprint.trim() != req.source_session_fingerprint.trim() {
        return Err(ImportError::ChunkItemSourceSessionFingerprintMismatch);
    }
    Ok(())
}
