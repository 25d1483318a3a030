//! Service-level requests and responses of `sessions.import` / `sessions.import.chunk`
//! (IMPORT_SEMANTICS.md "Requests", "Responses"), and the resume cursors of PROTOCOL.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::alias::{pick_str, pick_string, pick_vec};
use super::items::ImportSessionItem;

/// The only `source` the service accepts.
pub const SOURCE_AIX: &str = "aix";
/// The only chunk encoding the service can decode.
pub const ENCODING_GZIP_BASE64: &str = "gzip+base64";

/// A resume point a worker attaches to the frame whose commit makes it true (PROTOCOL.md
/// "Cursors"). `value` is opaque to NEX; `null` deletes the cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

/// `sessions.import`: a batch of items under one idempotency key.
///
/// `mode` and `source` stay strings so that an unsupported value reaches the service and gets
/// its code (`mode_unsupported`, `source_unsupported`) instead of failing to decode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawImportRequest")]
pub struct ImportRequest {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona_id: Option<String>,
    pub idempotency_key: String,
    pub items: Vec<ImportSessionItem>,
    /// **Extension**: stored in the same transaction as the import (never hashed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cursors: Vec<Cursor>,
}

/// `sessions.import.chunk`: one part of one large item, gzip+base64 encoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawChunkRequest")]
pub struct ChunkRequest {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona_id: Option<String>,
    pub idempotency_key: String,
    pub upload_id: String,
    pub chunk_index: i64,
    pub chunk_total: i64,
    pub encoding: String,
    /// Shared, not copied, by the stages that hold a part until its upload completes.
    pub data: std::sync::Arc<str>,
    pub source_provider: String,
    pub source_session_id: String,
    pub source_session_fingerprint: String,
    /// **Extension**: honoured only on the part that completes the upload.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cursors: Vec<Cursor>,
}

/// Per-item outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// New session.
    Imported,
    /// Known session whose fingerprint changed.
    Upserted,
    /// Known session, same fingerprint (reason `fingerprint_unchanged`).
    Skipped,
    /// The item's error code is the reason.
    Failed,
    /// (extension, item rule 15) A `retract` item whose session was in the ledger: its rows
    /// were deleted. A retract of a session the ledger does not hold is `skipped`.
    Retracted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub source_provider: String,
    pub source_session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_label: Option<String>,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResponse {
    /// Always true: item failures are reported per item, request failures as errors.
    pub ok: bool,
    pub run_id: String,
    pub imported: u64,
    pub upserted: u64,
    pub skipped: u64,
    pub failed: u64,
    /// **Extension**: sessions deleted by `retract` items (item rule 15; omitted when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retracted: u64,
    pub results: Vec<ItemResult>,
    /// **Extension**: true when this is the stored answer of an earlier request with the same
    /// idempotency key and content (nothing was written but the request's cursors); its counts
    /// are that earlier request's, so a run counts its items as `replayed`, never again as
    /// imported. Absent (false) on a request that ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

impl ImportResponse {
    /// Items the response answers for, whatever their status.
    pub fn items(&self) -> u64 {
        self.imported + self.upserted + self.skipped + self.failed + self.retracted
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    Staged,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkResponse {
    pub ok: bool,
    pub run_id: String,
    pub upload_id: String,
    pub status: ChunkStatus,
    pub received: u64,
    pub total: u64,
    /// Present only when `status` is `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportResponse>,
}

// ---- raw mirrors ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawImportRequest {
    source: Option<String>,
    #[serde(rename = "runId")]
    run_id: Option<String>,
    #[serde(rename = "run_id")]
    run_id_s: Option<String>,
    mode: Option<String>,
    #[serde(rename = "personaId")]
    persona_id: Option<String>,
    #[serde(rename = "persona_id")]
    persona_id_s: Option<String>,
    #[serde(rename = "idempotencyKey")]
    idempotency_key: Option<String>,
    #[serde(rename = "idempotency_key")]
    idempotency_key_s: Option<String>,
    items: Option<Vec<ImportSessionItem>>,
    cursors: Option<Vec<Cursor>>,
}

impl From<RawImportRequest> for ImportRequest {
    fn from(r: RawImportRequest) -> Self {
        Self {
            source: pick_string(r.source, None),
            run_id: pick_str(r.run_id, r.run_id_s),
            mode: pick_string(r.mode, None),
            persona_id: pick_str(r.persona_id, r.persona_id_s),
            idempotency_key: pick_string(r.idempotency_key, r.idempotency_key_s),
            items: r.items.unwrap_or_default(),
            cursors: pick_vec(r.cursors, None),
        }
    }
}

#[derive(Deserialize)]
struct RawChunkRequest {
    source: Option<String>,
    #[serde(rename = "runId")]
    run_id: Option<String>,
    #[serde(rename = "run_id")]
    run_id_s: Option<String>,
    mode: Option<String>,
    #[serde(rename = "personaId")]
    persona_id: Option<String>,
    #[serde(rename = "persona_id")]
    persona_id_s: Option<String>,
    #[serde(rename = "idempotencyKey")]
    idempotency_key: Option<String>,
    #[serde(rename = "idempotency_key")]
    idempotency_key_s: Option<String>,
    #[serde(rename = "uploadId")]
    upload_id: Option<String>,
    #[serde(rename = "upload_id")]
    upload_id_s: Option<String>,
    #[serde(rename = "chunkIndex")]
    chunk_index: Option<i64>,
    #[serde(rename = "chunk_index")]
    chunk_index_s: Option<i64>,
    #[serde(rename = "chunkTotal")]
    chunk_total: Option<i64>,
    #[serde(rename = "chunk_total")]
    chunk_total_s: Option<i64>,
    encoding: Option<String>,
    data: Option<String>,
    payload: Option<String>,
    #[serde(rename = "sourceProvider")]
    source_provider: Option<String>,
    #[serde(rename = "source_provider")]
    source_provider_s: Option<String>,
    #[serde(rename = "sourceSessionId")]
    source_session_id: Option<String>,
    #[serde(rename = "source_session_id")]
    source_session_id_s: Option<String>,
    #[serde(rename = "sourceSessionFingerprint")]
    fingerprint: Option<String>,
    #[serde(rename = "source_session_fingerprint")]
    fingerprint_s: Option<String>,
    cursors: Option<Vec<Cursor>>,
}

impl From<RawChunkRequest> for ChunkRequest {
    fn from(r: RawChunkRequest) -> Self {
        Self {
            source: pick_string(r.source, None),
            run_id: pick_str(r.run_id, r.run_id_s),
            mode: pick_string(r.mode, None),
            persona_id: pick_str(r.persona_id, r.persona_id_s),
            idempotency_key: pick_string(r.idempotency_key, r.idempotency_key_s),
            upload_id: pick_string(r.upload_id, r.upload_id_s),
            // Baseline quirk kept: for the chunk indexes the snake_case value overrides.
            chunk_index: r.chunk_index_s.or(r.chunk_index).unwrap_or(0),
            chunk_total: r.chunk_total_s.or(r.chunk_total).unwrap_or(0),
            encoding: pick_string(r.encoding, None),
            data: pick_string(r.data, r.payload).into(),
            source_provider: pick_string(r.source_provider, r.source_provider_s),
            source_session_id: pick_string(r.source_session_id, r.source_session_id_s),
            source_session_fingerprint: pick_string(r.fingerprint, r.fingerprint_s),
            cursors: pick_vec(r.cursors, None),
        }
    }
}
