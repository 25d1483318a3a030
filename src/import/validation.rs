//! Request-level checks (IMPORT_SEMANTICS.md import algorithm 1, chunk algorithm 1): each
//! failure refuses the whole request before anything is written.

use super::ImportError;
use crate::protocol::{ChunkRequest, ImportRequest, SOURCE_AIX};

/// The modes the service accepts.
pub const MODES: [&str; 2] = ["backfill", "tail"];

/// Source, mode, idempotency key, items: in that order.
pub fn check_import_request(req: &ImportRequest) -> Result<(), ImportError> {
    check_common(&req.source, &req.mode, &req.idempotency_key)?;
    if req.items.is_empty() {
        return Err(ImportError::ItemsRequired);
    }
    Ok(())
}

/// Source, mode, idempotency key, upload id, then the index range (after clamping the index to
/// ≥ 0 and the total to ≥ 1, see [`chunk_bounds`]).
pub fn check_chunk_request(req: &ChunkRequest) -> Result<(), ImportError> {
    check_common(&req.source, &req.mode, &req.idempotency_key)?;
    if req.upload_id.trim().is_empty() {
        return Err(ImportError::ChunkUploadIdRequired);
    }
    let (index, total) = chunk_bounds(req);
    if index >= total {
        return Err(ImportError::ChunkIndexOutOfRange);
    }
    Ok(())
}

/// `(chunkIndex, chunkTotal)` clamped as the baseline does: index below 0 -> 0, total below 1
/// -> 1.
pub fn chunk_bounds(req: &ChunkRequest) -> (i64, i64) {
    (req.chunk_index.max(0), req.chunk_total.max(1))
}

fn check_common(source: &str, mode: &str, key: &str) -> Result<(), ImportError> {
    if source.trim() != SOURCE_AIX {
        return Err(ImportError::SourceUnsupported);
    }
    if !MODES.contains(&mode.trim()) {
        return Err(ImportError::ModeUnsupported);
    }
    if key.trim().is_empty() {
        return Err(ImportError::IdempotencyKeyRequired);
    }
    Ok(())
}
