//! The one set of error codes (PROTOCOL.md "Error codes", IMPORT_SEMANTICS.md): every error
//! of nex and aix, every reject, every way a run fails, has one. They are stable snake_case
//! strings once written out (metric labels, job and run columns, bus events, responses, the
//! CLI's exit message, test assertions: README lists them) and a [`Code`] until then.
//!
//! Codes from outside (a worker's `run.error`, a daemon's answer) stay text: see
//! `crate::pipeline::RejectCode` and [`Code::parse`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a frame was rejected, a request or item refused, a run ended or a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Code {
    // ---- Frames (per-frame rejects of the pipeline) ----
    FrameTooLarge,
    FrameInvalidUtf8,
    FrameJsonInvalid,
    FrameSchemaInvalid,
    FrameTypeUnknown,
    FrameRunIdMismatch,
    FrameSeqGap,
    FrameSeqRepeat,
    // ---- Workers and runs ----
    WorkerSpawnFailed,
    WorkerExited,
    WorkerUnresponsive,
    WorkerProtocolViolation,
    RunCancelled,
    ShutdownTimeout,
    DaemonRestarted,
    /// A job interrupted by a graceful daemon shutdown; retried at the next start like
    /// `daemon_restarted`.
    DaemonShutdown,
    /// The committed cursors could not be read before a run.
    CursorLoadFailed,
    InternalPanic,
    // ---- The worker's own failures (`aix`, sent in `run.error`) ----
    OutputFailed,
    InputFailed,
    WatchFailed,
    ThreadSpawnFailed,
    // ---- Ledger files and writes ----
    LedgerBusy,
    LedgerWriteFailed,
    LedgerIoFailed,
    LedgerMigrationFailed,
    LedgerSchemaNewer,
    LedgerOpenFailed,
    LedgerSymlinked,
    // ---- Import requests (IMPORT_SEMANTICS.md import algorithm 1, 4) ----
    SourceUnsupported,
    ModeUnsupported,
    IdempotencyKeyRequired,
    ItemsRequired,
    IdempotencyKeySourceMismatch,
    IdempotencyKeyModeMismatch,
    IdempotencyKeyPayloadMismatch,
    // ---- Chunks (chunk algorithm 1, 3, 6); `chunk_encoding_unsupported` is written with `:<encoding>` ----
    ChunkUploadIdRequired,
    ChunkIndexOutOfRange,
    ChunkTotalMismatch,
    ChunkModeMismatch,
    ChunkIdempotencyKeyMismatch,
    ChunkSourceProviderMismatch,
    ChunkSourceSessionIdMismatch,
    ChunkSourceSessionFingerprintMismatch,
    ChunkEncodingMismatch,
    ChunkIndexGap,
    ChunkUploadEmpty,
    ChunkEncodingUnsupported,
    ChunkPayloadDecodeFailed,
    ChunkPayloadJsonInvalid,
    ChunkPayloadTooLarge,
    ChunkUploadExpired,
    ChunkItemSourceProviderMismatch,
    ChunkItemSourceSessionIdMismatch,
    ChunkItemSourceSessionFingerprintMismatch,
    // ---- Items (per-item reasons) ----
    SourceProviderRequired,
    SourceSessionIdRequired,
    SourceSessionFingerprintRequired,
    // ---- Commands (`nex import apply|replay`) ----
    InputReadFailed,
    OutputWriteFailed,
    InternalRuntimeFailed,
    RequestsFailed,
    // ---- The control plane ----
    NexHomeUnresolved,
    NexHomeInvalid,
    ConfigUnreadable,
    ConfigInvalid,
    WorkerCommandInvalid,
    StoreFailed,
    StoreClosed,
    JobNotFound,
    JobAmbiguous,
    JobTransitionIllegal,
    ImportDisabled,
    ShuttingDown,
    DaemonAlreadyRunning,
    DaemonNotRunning,
    SocketFailed,
    IoFailed,
    ControlBusy,
    BadRequest,
    ProviderUnknown,
    LedgerNotFound,
    LedgerSchemaOlder,
    LedgerReadFailed,
    VerifyScanSpawnFailed,
    VerifyScanFailed,
    VerifyScanOutputInvalid,
    // ---- Queries (`nex search`, `nex mcp`) ----
    SearchQueryInvalid,
    /// A daemon's error answer without a code, or with one this version does not know.
    Unknown,
    /// A source location given as a flag does not exist.
    SourceNotFound,
    /// A source location given as a flag holds nothing of its tool.
    SourceNotRecognised,
    /// Worker or source flags given to a command that a running daemon would serve with its
    /// own settings.
    DaemonHasOwnSettings,
    /// The worker program does not exist or cannot be executed: not retried.
    WorkerProgramMissing,
    // ---- Queries (`nex usage`, `nex sessions show|export`) ----
    /// No session has this label, label prefix or tool session id.
    SessionNotFound,
    /// More than one session matches a label prefix or tool session id.
    SessionAmbiguous,
    /// A `--since`/`--until` date that is not a calendar day `YYYY-MM-DD`.
    DateInvalid,
    ReplicaNotConfigured,
    ReplicaUrlInvalid,
    ReplicaMachineInvalid,
    ReplicaUnreachable,
    ReplicaSchemaFailed,
    ReplicaWriteFailed,
    ReplicaReadFailed,
    ReplicaValueInvalid,
    ReplicaMachineTaken,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: &[Code] = &[
        Code::FrameTooLarge,
        Code::FrameInvalidUtf8,
        Code::FrameJsonInvalid,
        Code::FrameSchemaInvalid,
        Code::FrameTypeUnknown,
        Code::FrameRunIdMismatch,
        Code::FrameSeqGap,
        Code::FrameSeqRepeat,
        Code::WorkerSpawnFailed,
        Code::WorkerExited,
        Code::WorkerUnresponsive,
        Code::WorkerProtocolViolation,
        Code::RunCancelled,
        Code::ShutdownTimeout,
        Code::DaemonRestarted,
        Code::DaemonShutdown,
        Code::CursorLoadFailed,
        Code::InternalPanic,
        Code::OutputFailed,
        Code::InputFailed,
        Code::WatchFailed,
        Code::ThreadSpawnFailed,
        Code::LedgerBusy,
        Code::LedgerWriteFailed,
        Code::LedgerIoFailed,
        Code::LedgerMigrationFailed,
        Code::LedgerSchemaNewer,
        Code::LedgerOpenFailed,
        Code::LedgerSymlinked,
        Code::SourceUnsupported,
        Code::ModeUnsupported,
        Code::IdempotencyKeyRequired,
        Code::ItemsRequired,
        Code::IdempotencyKeySourceMismatch,
        Code::IdempotencyKeyModeMismatch,
        Code::IdempotencyKeyPayloadMismatch,
        Code::ChunkUploadIdRequired,
        Code::ChunkIndexOutOfRange,
        Code::ChunkTotalMismatch,
        Code::ChunkModeMismatch,
        Code::ChunkIdempotencyKeyMismatch,
        Code::ChunkSourceProviderMismatch,
        Code::ChunkSourceSessionIdMismatch,
        Code::ChunkSourceSessionFingerprintMismatch,
        Code::ChunkEncodingMismatch,
        Code::ChunkIndexGap,
        Code::ChunkUploadEmpty,
        Code::ChunkEncodingUnsupported,
        Code::ChunkPayloadDecodeFailed,
        Code::ChunkPayloadJsonInvalid,
        Code::ChunkPayloadTooLarge,
        Code::ChunkUploadExpired,
        Code::ChunkItemSourceProviderMismatch,
        Code::ChunkItemSourceSessionIdMismatch,
        Code::ChunkItemSourceSessionFingerprintMismatch,
        Code::SourceProviderRequired,
        Code::SourceSessionIdRequired,
        Code::SourceSessionFingerprintRequired,
        Code::InputReadFailed,
        Code::OutputWriteFailed,
        Code::InternalRuntimeFailed,
        Code::RequestsFailed,
        Code::NexHomeUnresolved,
        Code::NexHomeInvalid,
        Code::ConfigUnreadable,
        Code::ConfigInvalid,
        Code::WorkerCommandInvalid,
        Code::StoreFailed,
        Code::StoreClosed,
        Code::JobNotFound,
        Code::JobAmbiguous,
        Code::JobTransitionIllegal,
        Code::ImportDisabled,
        Code::ShuttingDown,
        Code::DaemonAlreadyRunning,
        Code::DaemonNotRunning,
        Code::SocketFailed,
        Code::IoFailed,
        Code::ControlBusy,
        Code::BadRequest,
        Code::ProviderUnknown,
        Code::LedgerNotFound,
        Code::LedgerSchemaOlder,
        Code::LedgerReadFailed,
        Code::VerifyScanSpawnFailed,
        Code::VerifyScanFailed,
        Code::VerifyScanOutputInvalid,
        Code::SearchQueryInvalid,
        Code::Unknown,
        Code::SourceNotFound,
        Code::SourceNotRecognised,
        Code::DaemonHasOwnSettings,
        Code::WorkerProgramMissing,
        Code::SessionNotFound,
        Code::SessionAmbiguous,
        Code::DateInvalid,
        Code::ReplicaNotConfigured,
        Code::ReplicaUrlInvalid,
        Code::ReplicaMachineInvalid,
        Code::ReplicaUnreachable,
        Code::ReplicaSchemaFailed,
        Code::ReplicaWriteFailed,
        Code::ReplicaReadFailed,
        Code::ReplicaValueInvalid,
        Code::ReplicaMachineTaken,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Code::FrameTooLarge => "frame_too_large",
            Code::FrameInvalidUtf8 => "frame_invalid_utf8",
            Code::FrameJsonInvalid => "frame_json_invalid",
            Code::FrameSchemaInvalid => "frame_schema_invalid",
            Code::FrameTypeUnknown => "frame_type_unknown",
            Code::FrameRunIdMismatch => "frame_run_id_mismatch",
            Code::FrameSeqGap => "frame_seq_gap",
            Code::FrameSeqRepeat => "frame_seq_repeat",
            Code::WorkerSpawnFailed => "worker_spawn_failed",
            Code::WorkerExited => "worker_exited",
            Code::WorkerUnresponsive => "worker_unresponsive",
            Code::WorkerProtocolViolation => "worker_protocol_violation",
            Code::RunCancelled => "run_cancelled",
            Code::ShutdownTimeout => "shutdown_timeout",
            Code::DaemonRestarted => "daemon_restarted",
            Code::DaemonShutdown => "daemon_shutdown",
            Code::CursorLoadFailed => "cursor_load_failed",
            Code::InternalPanic => "internal_panic",
            Code::OutputFailed => "output_failed",
            Code::InputFailed => "input_failed",
            Code::WatchFailed => "watch_failed",
            Code::ThreadSpawnFailed => "thread_spawn_failed",
            Code::LedgerBusy => "ledger_busy",
            Code::LedgerWriteFailed => "ledger_write_failed",
            Code::LedgerIoFailed => "ledger_io_failed",
            Code::LedgerMigrationFailed => "ledger_migration_failed",
            Code::LedgerSchemaNewer => "ledger_schema_newer",
            Code::LedgerOpenFailed => "ledger_open_failed",
            Code::LedgerSymlinked => "ledger_symlinked",
            Code::SourceUnsupported => "source_unsupported",
            Code::ModeUnsupported => "mode_unsupported",
            Code::IdempotencyKeyRequired => "idempotency_key_required",
            Code::ItemsRequired => "items_required",
            Code::IdempotencyKeySourceMismatch => "idempotency_key_source_mismatch",
            Code::IdempotencyKeyModeMismatch => "idempotency_key_mode_mismatch",
            Code::IdempotencyKeyPayloadMismatch => "idempotency_key_payload_mismatch",
            Code::ChunkUploadIdRequired => "chunk_upload_id_required",
            Code::ChunkIndexOutOfRange => "chunk_index_out_of_range",
            Code::ChunkTotalMismatch => "chunk_total_mismatch",
            Code::ChunkModeMismatch => "chunk_mode_mismatch",
            Code::ChunkIdempotencyKeyMismatch => "chunk_idempotency_key_mismatch",
            Code::ChunkSourceProviderMismatch => "chunk_source_provider_mismatch",
            Code::ChunkSourceSessionIdMismatch => "chunk_source_session_id_mismatch",
            Code::ChunkSourceSessionFingerprintMismatch => {
                "chunk_source_session_fingerprint_mismatch"
            }
            Code::ChunkEncodingMismatch => "chunk_encoding_mismatch",
            Code::ChunkIndexGap => "chunk_index_gap",
            Code::ChunkUploadEmpty => "chunk_upload_empty",
            Code::ChunkEncodingUnsupported => "chunk_encoding_unsupported",
            Code::ChunkPayloadDecodeFailed => "chunk_payload_decode_failed",
            Code::ChunkPayloadJsonInvalid => "chunk_payload_json_invalid",
            Code::ChunkPayloadTooLarge => "chunk_payload_too_large",
            Code::ChunkUploadExpired => "chunk_upload_expired",
            Code::ChunkItemSourceProviderMismatch => "chunk_item_source_provider_mismatch",
            Code::ChunkItemSourceSessionIdMismatch => "chunk_item_source_session_id_mismatch",
            Code::ChunkItemSourceSessionFingerprintMismatch => {
                "chunk_item_source_session_fingerprint_mismatch"
            }
            Code::SourceProviderRequired => "source_provider_required",
            Code::SourceSessionIdRequired => "source_session_id_required",
            Code::SourceSessionFingerprintRequired => "source_session_fingerprint_required",
            Code::InputReadFailed => "input_read_failed",
            Code::OutputWriteFailed => "output_write_failed",
            Code::InternalRuntimeFailed => "internal_runtime_failed",
            Code::RequestsFailed => "requests_failed",
            Code::NexHomeUnresolved => "nex_home_unresolved",
            Code::NexHomeInvalid => "nex_home_invalid",
            Code::ConfigUnreadable => "config_unreadable",
            Code::ConfigInvalid => "config_invalid",
            Code::WorkerCommandInvalid => "worker_command_invalid",
            Code::StoreFailed => "store_failed",
            Code::StoreClosed => "store_closed",
            Code::JobNotFound => "job_not_found",
            Code::JobAmbiguous => "job_ambiguous",
            Code::JobTransitionIllegal => "job_transition_illegal",
            Code::ImportDisabled => "import_disabled",
            Code::ShuttingDown => "shutting_down",
            Code::DaemonAlreadyRunning => "daemon_already_running",
            Code::DaemonNotRunning => "daemon_not_running",
            Code::SocketFailed => "socket_failed",
            Code::IoFailed => "io_failed",
            Code::ControlBusy => "control_busy",
            Code::BadRequest => "bad_request",
            Code::ProviderUnknown => "provider_unknown",
            Code::LedgerNotFound => "ledger_not_found",
            Code::LedgerSchemaOlder => "ledger_schema_older",
            Code::LedgerReadFailed => "ledger_read_failed",
            Code::VerifyScanSpawnFailed => "verify_scan_spawn_failed",
            Code::VerifyScanFailed => "verify_scan_failed",
            Code::VerifyScanOutputInvalid => "verify_scan_output_invalid",
            Code::SearchQueryInvalid => "search_query_invalid",
            Code::Unknown => "unknown",
            Code::SourceNotFound => "source_not_found",
            Code::SourceNotRecognised => "source_not_recognised",
            Code::DaemonHasOwnSettings => "daemon_has_own_settings",
            Code::WorkerProgramMissing => "worker_program_missing",
            Code::SessionNotFound => "session_not_found",
            Code::SessionAmbiguous => "session_ambiguous",
            Code::DateInvalid => "date_invalid",
            Code::ReplicaNotConfigured => "replica_not_configured",
            Code::ReplicaUrlInvalid => "replica_url_invalid",
            Code::ReplicaMachineInvalid => "replica_machine_invalid",
            Code::ReplicaUnreachable => "replica_unreachable",
            Code::ReplicaSchemaFailed => "replica_schema_failed",
            Code::ReplicaWriteFailed => "replica_write_failed",
            Code::ReplicaReadFailed => "replica_read_failed",
            Code::ReplicaValueInvalid => "replica_value_invalid",
            Code::ReplicaMachineTaken => "replica_machine_taken",
        }
    }

    /// The code written as `text` (an optional `:<detail>` suffix is ignored).
    pub fn parse(text: &str) -> Option<Code> {
        let name = text.split_once(':').map_or(text, |(name, _)| name);
        Code::ALL.iter().copied().find(|c| c.as_str() == name)
    }

    /// Whether running again may succeed: a worker gone mid-run or silent, a busy ledger, a
    /// run cut short by a stop or a restart. A write failure, a protocol violation, a refused
    /// request or a bug would fail again.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            Code::WorkerSpawnFailed
                | Code::WorkerExited
                | Code::WorkerUnresponsive
                | Code::LedgerBusy
                | Code::RunCancelled
                | Code::ShutdownTimeout
                | Code::DaemonRestarted
                | Code::DaemonShutdown
                | Code::CursorLoadFailed
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Code::parse(&text).ok_or_else(|| serde::de::Error::custom("unknown error code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for &code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            );
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{text}\""));
            assert_eq!(Code::parse(text), Some(code));
        }
        assert_eq!(
            Code::parse("chunk_encoding_unsupported:utf-8"),
            Some(Code::ChunkEncodingUnsupported)
        );
        assert_eq!(Code::parse("nope"), None);
    }
}
