//! The Session Import Service (seed "Component 1"): `sessions.import` and
//! `sessions.import.chunk` over a `rusqlite::Transaction`, with the baseline's exact semantics
//! (IMPORT_SEMANTICS.md) and its marked improvements. Plain functions: no processes, frames
//! or async here; the daemon's ledger writer and `nex import apply` call them.
//!
//! Layout:
//! - `options`: [`ImportOptions`] (persona override, inflate bound, chunk TTL, clock).
//! - `error`: [`ImportError`] and its stable codes.
//! - `validation`: request-level checks.
//! - `hash`: the request hash; `canonical`: the sorted-key JSON it is computed over.
//! - `ids`: deterministic session labels and row ids.
//! - `service`: the import algorithm (idempotency, per-item savepoints, stored response).
//! - `item`: the item algorithm (labels, skip, times, ids, session, history, mapping).
//! - `rows`: its row writers (turns, threads, messages, tool calls) and normalisations.
//! - `replace`: rule 13, the rows a newer mapping version no longer produces, removed.
//! - `chunk`: the chunk algorithm (staging, upload checks, assembly).
//! - `staging`: in-memory staging of uploads that complete inside one transaction.
//! - `decode`: the streaming, bounded base64 -> gzip -> JSON decoder of an upload (a large item
//!   parsed member by member from slices, never held whole).
//! - `sql`: the statements, each an upsert that skips unchanged rows.

mod canonical;
mod chunk;
mod decode;
mod error;
mod hash;
mod ids;
mod item;
mod options;
mod replace;
mod rows;
mod service;
mod sql;
mod staging;
mod validation;

pub use chunk::{assemble_upload, check_chunk_against_upload, chunk, stage_chunk, upload_hash};
pub use decode::{decode_chunked_item, upload_digest};
pub use error::ImportError;
pub use hash::{hash_parts, request_hash};
pub use ids::{IdKind, ROOT_TURN_ENTITY, scoped_id, session_label};
pub use options::{
    DEFAULT_CHUNK_TTL_MS, DEFAULT_MAX_INFLATED_BYTES, DEFAULT_PERSONA, ImportOptions, system_now_ms,
};
pub use rows::ItemJson;
pub use service::{
    REASON_FINGERPRINT_UNCHANGED, import, import_items, import_prehashed, new_run_id,
};
pub use staging::{BatchPart, ChunkStaging, DecodedUpload, chunk_in_transaction};
pub use validation::{MODES, check_chunk_request, check_import_request, chunk_bounds};
