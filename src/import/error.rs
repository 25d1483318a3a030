//! The import service's error codes (IMPORT_SEMANTICS.md): request-level errors, chunk errors
//! and per-item reasons. Codes are stable snake_case; messages never carry payload content.

use std::borrow::Cow;

use crate::protocol::Code;

/// Why a request (or, for the item variants, one item) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    // ---- request checks (import algorithm 1) ----
    #[error("source is not supported (only \"aix\")")]
    SourceUnsupported,
    #[error("mode is not supported (backfill or tail)")]
    ModeUnsupported,
    #[error("idempotency key is required")]
    IdempotencyKeyRequired,
    #[error("at least one item is required")]
    ItemsRequired,
    // ---- idempotency (import algorithm 4) ----
    #[error("idempotency key was used with another source")]
    IdempotencyKeySourceMismatch,
    #[error("idempotency key was used with another mode")]
    IdempotencyKeyModeMismatch,
    #[error("idempotency key was used with another payload")]
    IdempotencyKeyPayloadMismatch,
    // ---- chunk checks (chunk algorithm 1, 3) ----
    #[error("upload id is required")]
    ChunkUploadIdRequired,
    #[error("chunk index is not below the chunk total")]
    ChunkIndexOutOfRange,
    #[error("chunk total differs from the upload's")]
    ChunkTotalMismatch,
    #[error("chunk mode differs from the upload's")]
    ChunkModeMismatch,
    #[error("chunk idempotency key differs from the upload's")]
    ChunkIdempotencyKeyMismatch,
    #[error("chunk source provider differs from the upload's")]
    ChunkSourceProviderMismatch,
    #[error("chunk source session id differs from the upload's")]
    ChunkSourceSessionIdMismatch,
    #[error("chunk source session fingerprint differs from the upload's")]
    ChunkSourceSessionFingerprintMismatch,
    #[error("chunk encoding differs from the upload's")]
    ChunkEncodingMismatch,
    // ---- assembly (chunk algorithm 6) ----
    #[error("staged chunk indexes are not contiguous")]
    ChunkIndexGap,
    #[error("upload has no staged parts")]
    ChunkUploadEmpty,
    /// The encoding as sent, or `unknown` when blank; part of the code.
    #[error("chunk encoding is not supported")]
    ChunkEncodingUnsupported(String),
    #[error("chunk payload is not valid base64+gzip")]
    ChunkPayloadDecodeFailed,
    #[error("chunk payload is not a valid import item")]
    ChunkPayloadJsonInvalid,
    #[error("chunk payload inflates past the limit of {limit} bytes")]
    ChunkPayloadTooLarge { limit: u64 },
    #[error("decoded item's source provider differs from the chunk's")]
    ChunkItemSourceProviderMismatch,
    #[error("decoded item's source session id differs from the chunk's")]
    ChunkItemSourceSessionIdMismatch,
    #[error("decoded item's source session fingerprint differs from the chunk's")]
    ChunkItemSourceSessionFingerprintMismatch,
    // ---- per-item reasons (item algorithm) ----
    #[error("item source provider is required")]
    SourceProviderRequired,
    #[error("item source session id is required")]
    SourceSessionIdRequired,
    #[error("item source session fingerprint is required")]
    SourceSessionFingerprintRequired,
    // ---- ledger ----
    /// Another connection held the write lock past the busy timeout; retryable.
    #[error("ledger is busy")]
    LedgerBusy(#[source] rusqlite::Error),
    #[error("ledger write failed")]
    LedgerWriteFailed(#[source] rusqlite::Error),
}

impl ImportError {
    /// The stable code.
    pub fn code(&self) -> Code {
        use ImportError::*;
        match self {
            SourceUnsupported => Code::SourceUnsupported,
            ModeUnsupported => Code::ModeUnsupported,
            IdempotencyKeyRequired => Code::IdempotencyKeyRequired,
            ItemsRequired => Code::ItemsRequired,
            IdempotencyKeySourceMismatch => Code::IdempotencyKeySourceMismatch,
            IdempotencyKeyModeMismatch => Code::IdempotencyKeyModeMismatch,
            IdempotencyKeyPayloadMismatch => Code::IdempotencyKeyPayloadMismatch,
            ChunkUploadIdRequired => Code::ChunkUploadIdRequired,
            ChunkIndexOutOfRange => Code::ChunkIndexOutOfRange,
            ChunkTotalMismatch => Code::ChunkTotalMismatch,
            ChunkModeMismatch => Code::ChunkModeMismatch,
            ChunkIdempotencyKeyMismatch => Code::ChunkIdempotencyKeyMismatch,
            ChunkSourceProviderMismatch => Code::ChunkSourceProviderMismatch,
            ChunkSourceSessionIdMismatch => Code::ChunkSourceSessionIdMismatch,
            ChunkSourceSessionFingerprintMismatch => Code::ChunkSourceSessionFingerprintMismatch,
            ChunkEncodingMismatch => Code::ChunkEncodingMismatch,
            ChunkIndexGap => Code::ChunkIndexGap,
            ChunkUploadEmpty => Code::ChunkUploadEmpty,
            ChunkEncodingUnsupported(_) => Code::ChunkEncodingUnsupported,
            ChunkPayloadDecodeFailed => Code::ChunkPayloadDecodeFailed,
            ChunkPayloadJsonInvalid => Code::ChunkPayloadJsonInvalid,
            ChunkPayloadTooLarge { .. } => Code::ChunkPayloadTooLarge,
            ChunkItemSourceProviderMismatch => Code::ChunkItemSourceProviderMismatch,
            ChunkItemSourceSessionIdMismatch => Code::ChunkItemSourceSessionIdMismatch,
            ChunkItemSourceSessionFingerprintMismatch => {
                Code::ChunkItemSourceSessionFingerprintMismatch
            }
            SourceProviderRequired => Code::SourceProviderRequired,
            SourceSessionIdRequired => Code::SourceSessionIdRequired,
            SourceSessionFingerprintRequired => Code::SourceSessionFingerprintRequired,
            LedgerBusy(_) => Code::LedgerBusy,
            LedgerWriteFailed(_) => Code::LedgerWriteFailed,
        }
    }

    /// The code as written in responses and reject counts: [`ImportError::code`], except
    /// `chunk_encoding_unsupported:<enc>`, which names the encoding sent.
    pub fn written_code(&self) -> Cow<'static, str> {
        match self {
            ImportError::ChunkEncodingUnsupported(enc) => {
                Cow::Owned(format!("{}:{enc}", self.code()))
            }
            other => Cow::Borrowed(other.code().as_str()),
        }
    }

    /// True for errors a caller may retry unchanged (the ledger was locked).
    pub fn is_retryable(&self) -> bool {
        self.code().retryable()
    }
}

impl From<rusqlite::Error> for ImportError {
    fn from(err: rusqlite::Error) -> Self {
        if crate::ledger::is_busy(&err) {
            ImportError::LedgerBusy(err)
        } else {
            ImportError::LedgerWriteFailed(err)
        }
    }
}

impl From<crate::ledger::LedgerError> for ImportError {
    fn from(err: crate::ledger::LedgerError) -> Self {
        match err {
            crate::ledger::LedgerError::Sqlite(e) => e.into(),
            crate::ledger::LedgerError::Migration { source, .. } => source.into(),
            // Open/migration failures never reach the import path (it runs on an open ledger);
            // should one, it is a write failure that keeps its cause as the source.
            other => ImportError::LedgerWriteFailed(rusqlite::Error::ToSqlConversionFailure(
                Box::new(other),
            )),
        }
    }
}
