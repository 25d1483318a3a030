//! Transport and pipeline error codes (PROTOCOL.md "Error codes"). The import service's own
//! codes live on `crate::import::ImportError`; both sets are stable snake_case strings that
//! become metric labels, job columns, bus events and test assertions.

use serde::{Deserialize, Serialize};

/// Why a frame was rejected or a run ended, outside the import service's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Code {
    FrameTooLarge,
    FrameInvalidUtf8,
    FrameJsonInvalid,
    FrameSchemaInvalid,
    FrameTypeUnknown,
    FrameRunIdMismatch,
    FrameSeqGap,
    FrameSeqRepeat,
    WorkerSpawnFailed,
    WorkerExited,
    WorkerUnresponsive,
    WorkerProtocolViolation,
    LedgerBusy,
    LedgerWriteFailed,
    RunCancelled,
    ShutdownTimeout,
    ChunkUploadExpired,
    ChunkPayloadTooLarge,
    DaemonRestarted,
    InternalPanic,
    /// The committed cursors could not be read before a run.
    CursorLoadFailed,
    /// A job interrupted by a graceful daemon shutdown; retried at the next start like
    /// `daemon_restarted`.
    DaemonShutdown,
}

impl Code {
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
            Code::LedgerBusy => "ledger_busy",
            Code::LedgerWriteFailed => "ledger_write_failed",
            Code::RunCancelled => "run_cancelled",
            Code::ShutdownTimeout => "shutdown_timeout",
            Code::ChunkUploadExpired => "chunk_upload_expired",
            Code::ChunkPayloadTooLarge => "chunk_payload_too_large",
            Code::DaemonRestarted => "daemon_restarted",
            Code::InternalPanic => "internal_panic",
            Code::CursorLoadFailed => "cursor_load_failed",
            Code::DaemonShutdown => "daemon_shutdown",
        }
    }

    /// Whether running again may succeed: a worker gone mid-run or silent, a busy ledger, a
    /// run cut short by a stop or a restart. A write failure, a protocol violation or a bug
    /// would fail again.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_equals_as_str() {
        for code in [
            Code::FrameTooLarge,
            Code::FrameSeqRepeat,
            Code::ChunkPayloadTooLarge,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
