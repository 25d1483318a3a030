//! **(improvement)** In-memory staging of the chunk uploads that complete inside one
//! transaction (the ledger writer's batch).
//!
//! When every part of an upload arrives in the same batch, staging each payload in
//! `session_import_chunk_parts` only to read it back and clear it before the same COMMIT writes
//! the payload bytes to the WAL twice for nothing. Here such an upload's parts are held in
//! memory (borrowed from the batch) and its rows are written once, as the completed tombstones
//! the ledger path leaves. Everything else is the chunk algorithm of `chunk`, step for step:
//! the same checks in the same order against the same lowest-index part, the same responses,
//! the same pruning, the same rows at COMMIT.
//!
//! Crash safety is unchanged: nothing of a batch is durable before its COMMIT, and parts that
//! did not complete (a rejected part, a failed import, an upload cut by the batch end) are
//! written as ordinary staged rows by [`ChunkStaging::spill`] before that COMMIT.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use super::chunk::{
    UploadMeta, check_against_upload, check_meta, chunk_checked, completed, import_upload,
};
use super::validation::chunk_bounds;
use super::{
    ImportError, ImportOptions, ItemJson, check_chunk_request, decode_chunked_item, new_run_id, sql,
};
use crate::protocol::{ChunkRequest, ChunkResponse, ChunkStatus, ImportSessionItem};

/// Parts held in memory for the rest of one transaction. Dropping it without
/// [`spill`](Self::spill) loses them: only do so when the transaction is rolled back.
#[derive(Default)]
pub struct ChunkStaging<'b> {
    /// `(source, uploadId)` (trimmed) -> parts by index.
    uploads: HashMap<(&'b str, &'b str), BTreeMap<i64, HeldPart<'b>>>,
}

/// An upload decoded ahead of the writer (the pipeline does it off the writer thread,
/// `stages::prepare`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedUpload {
    /// Ids of the parts it was decoded from ([`BatchPart::part`]), in index order.
    pub parts: Vec<u64>,
    pub item: ImportSessionItem,
    /// [`upload_hash`](super::upload_hash) of the completing part and `item`.
    pub hash: String,
    /// The item's tool JSON, moved out of it by [`ItemJson::take`] (the item alone has none).
    pub json: ItemJson,
    /// [`upload_digest`](super::upload_digest) of the parts' trimmed payloads and the first
    /// part's encoding: when the upload completes from parts staged in the ledger (it spans
    /// batches), the writer reuses this decode only if the staged payloads have this digest.
    pub digest: [u8; 32],
}

/// Where a part sits in its transaction's batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchPart<'b> {
    /// An id of this part, unique among the parts of the transaction (the pipeline numbers
    /// the parts of a run).
    pub part: u64,
    /// The parts of its upload, from this one to the end of the batch, cover every index of
    /// its total.
    pub completes_here: bool,
    /// The upload decoded from parts of the batch, if this part is expected to complete it.
    /// Used only when the parts held at completion are exactly `decoded.parts`.
    pub decoded: Option<&'b DecodedUpload>,
}

#[derive(Clone)]
struct HeldPart<'b> {
    part: u64,
    req: &'b ChunkRequest,
    total: i64,
    run_id: String,
    persona: String,
    created_at: i64,
}

impl<'b> ChunkStaging<'b> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parts held.
    pub fn len(&self) -> usize {
        self.uploads.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every part still held as the staged row the ledger path would have written.
    /// Call it inside the transaction, before COMMIT.
    ///
    /// Errors: any SQLite error (roll the transaction back).
    pub fn spill(self, conn: &Connection) -> rusqlite::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut upsert = conn.prepare_cached(sql::UPSERT_PART)?;
        for ((source, upload_id), parts) in &self.uploads {
            for (index, part) in parts {
                let req = part.req;
                upsert.execute(params![
                    source,
                    upload_id,
                    index,
                    part.total,
                    req.mode.trim(),
                    part.run_id,
                    part.persona,
                    req.idempotency_key.trim(),
                    req.source_provider.trim(),
                    req.source_session_id.trim(),
                    req.source_session_fingerprint.trim(),
                    req.encoding.trim(),
                    req.data.trim(),
                    part.created_at,
                ])?;
            }
        }
        Ok(())
    }

    /// Removes held parts created before `cutoff`, as `PRUNE_PARTS` does for staged rows.
    fn prune(&mut self, cutoff: i64) {
        for parts in self.uploads.values_mut() {
            parts.retain(|_, part| part.created_at >= cutoff);
        }
        self.uploads.retain(|_, parts| !parts.is_empty());
    }
}

/// [`chunk`](super::chunk) for a part applied inside a transaction that holds `staging`.
///
/// `part.completes_here`: the parts of this upload from this one to the end of the transaction
/// cover every index of its total (the caller sees its whole batch). An upload with no staged
/// rows and that flag is staged in memory; an upload already held in memory stays there; any
/// other part takes the ledger path of `chunk`. Results, codes and final rows are those of
/// `chunk`; a failed part leaves `staging` as it was (as the caller's rollback of the part's
/// savepoint leaves the ledger).
///
/// Errors: those of `chunk`.
pub fn chunk_in_transaction<'b>(
    conn: &Connection,
    req: &'b ChunkRequest,
    opts: &ImportOptions,
    staging: &mut ChunkStaging<'b>,
    part: BatchPart<'b>,
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
    let before = staging.uploads.clone();
    let result = stage(conn, req, opts, staging, part, &persona, &run_id, now);
    if result.is_err() {
        staging.uploads = before;
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn stage<'b>(
    conn: &Connection,
    req: &'b ChunkRequest,
    opts: &ImportOptions,
    staging: &mut ChunkStaging<'b>,
    part: BatchPart<'b>,
    persona: &str,
    run_id: &str,
    now: i64,
) -> Result<ChunkResponse, ImportError> {
    let cutoff = now.saturating_sub(opts.chunk_ttl_ms);
    conn.prepare_cached(sql::PRUNE_PARTS)?.execute([cutoff])?;
    staging.prune(cutoff);
    let key = (req.source.trim(), req.upload_id.trim());
    match staging.uploads.get(&key).and_then(|p| p.values().next()) {
        Some(first) => check_meta(
            &UploadMeta {
                total: first.total,
                mode: first.req.mode.trim(),
                key: first.req.idempotency_key.trim(),
                provider: first.req.source_provider.trim(),
                session: first.req.source_session_id.trim(),
                fingerprint: first.req.source_session_fingerprint.trim(),
                encoding: first.req.encoding.trim(),
            },
            req,
        )?,
        None => {
            let first = check_against_upload(conn, req)?;
            if first.is_some() || !part.completes_here {
                return chunk_checked(conn, req, opts, persona, run_id, now, first, part.decoded);
            }
        }
    }
    let (index, total) = chunk_bounds(req);
    let parts = staging.uploads.entry(key).or_default();
    parts.insert(
        index,
        HeldPart {
            part: part.part,
            req,
            total,
            run_id: run_id.to_owned(),
            persona: persona.to_owned(),
            created_at: now,
        },
    );
    let received = parts.len() as u64;
    let total = total as u64;
    if received < total {
        return Ok(ChunkResponse {
            ok: true,
            run_id: run_id.to_owned(),
            upload_id: key.1.to_owned(),
            status: ChunkStatus::Staged,
            received,
            total,
            import: None,
        });
    }
    // As `assemble_upload` over the staged rows.
    if parts.keys().enumerate().any(|(pos, &i)| i != pos as i64) || received != total {
        return Err(ImportError::ChunkIndexGap);
    }
    let decoded = part
        .decoded
        .filter(|d| d.parts.iter().copied().eq(parts.values().map(|p| p.part)));
    let import = match decoded {
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
            let encoding = parts
                .values()
                .next()
                .map_or("", |first| first.req.encoding.trim());
            let item = decode_chunked_item(
                parts.values().map(|p| p.req.data.trim()),
                encoding,
                opts.max_inflated_bytes,
            )?;
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
    let parts = staging.uploads.remove(&key).unwrap_or_default();
    let mut tombstone = conn.prepare_cached(sql::UPSERT_COMPLETED_PART)?;
    for (index, part) in &parts {
        let p = part.req;
        tombstone.execute(params![
            key.0,
            key.1,
            index,
            part.total,
            p.mode.trim(),
            part.run_id,
            part.persona,
            p.idempotency_key.trim(),
            p.source_provider.trim(),
            p.source_session_id.trim(),
            p.source_session_fingerprint.trim(),
            p.encoding.trim(),
            part.created_at,
            now,
        ])?;
    }
    Ok(completed(key.1, total, import))
}

#[cfg(test)]
mod tests;
