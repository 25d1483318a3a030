//! Run counters and the run report: what a run committed, rejected and how long it took.
//! Every count here comes from committed outcomes (or final rejects), never from the worker's
//! own view.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::builder::StageSnapshot;
use super::events::TerminalKind;
use crate::stages::telemetry::TelemetrySnapshot;

/// Counters of one run, as of the last committed batch. Also the `stats_json` of its
/// `import_runs` row (read back with unknown or missing fields tolerated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunCounters {
    /// Lines read (rejected or not; empty lines excluded).
    pub frames: u64,
    /// Bytes of those lines, newlines included.
    pub bytes: u64,
    pub imported: u64,
    pub upserted: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Import requests committed (`import.batch` frames, and uploads whose last part imported).
    pub requests: u64,
    /// Rejected frames by code.
    pub rejected: BTreeMap<String, u64>,
    /// Chunk parts staged (frames whose chunk response was `staged` or `completed`).
    pub chunks_staged: u64,
    /// Uploads whose last part arrived and whose item was imported.
    pub uploads_completed: u64,
    /// Cursors written to `session_import_cursors` (deletions included).
    pub cursors_stored: u64,
    /// `frame_seq_gap` occurrences (counted, not rejected).
    pub seq_gaps: u64,
    /// `frame_seq_repeat` occurrences (counted, not rejected).
    pub seq_repeats: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Total and worst commit latency (batch handed to the writer -> committed), ms.
    pub commit_ms_total: u64,
    pub commit_ms_max: u64,
    /// Wall-clock epoch ms of the last commit (health: "last commit at").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit_at_ms: Option<i64>,
    /// The newest committed source event: the largest `session.updatedAtMs` of the items of
    /// committed `import.batch` frames (uploads' items are not looked into). Lag = now minus it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_event_at_ms: Option<i64>,
    /// The worker's latest `total` / `emitted` (progress bars, ETA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emitted: Option<u64>,
    /// The worker's running counts of repaired source lines and unreadable source files, and
    /// the first unreadable files by name (`run.progress` extensions).
    pub lossy_lines: u64,
    pub failed_files: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<crate::protocol::FileError>,
}

impl RunCounters {
    /// Takes the worker's own report (`run.progress` / `run.complete`).
    pub fn note_worker(&mut self, p: &crate::protocol::RunProgress) {
        self.total = p.total.or(self.total);
        self.emitted = p.emitted.or(self.emitted);
        self.lossy_lines = p.lossy_lines.unwrap_or(self.lossy_lines);
        self.failed_files = p.failed_files.unwrap_or(self.failed_files);
        if p.failed_files.is_some() {
            self.file_errors = p.file_errors.clone();
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn rejected_with(&self, code: &str) -> u64 {
        self.rejected.get(code).copied().unwrap_or(0)
    }
}

/// How the input of a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The worker sent a terminal frame.
    Terminal { terminal: TerminalKind },
    /// The run was cancelled; everything read before was drained and committed.
    Cancelled,
    /// The input ended without a terminal frame (for a worker: `worker_exited`).
    InputEnded,
}

/// The result of one pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The run's id: the known id it was started with, else the first frame's `runId`.
    pub run_id: Option<String>,
    pub outcome: RunOutcome,
    pub counters: RunCounters,
    pub duration_ms: u64,
    /// Per-stage in/out/reject counts, in pipeline order.
    pub stages: Vec<StageSnapshot>,
    /// Present when the telemetry stage was inserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySnapshot>,
}

impl RunOutcome {
    /// A worker's terminal frame wins over cancellation (it arrived before the drain).
    pub fn from_parts(terminal: Option<TerminalKind>, cancelled: bool) -> Self {
        match (terminal, cancelled) {
            (Some(terminal), _) => RunOutcome::Terminal { terminal },
            (None, true) => RunOutcome::Cancelled,
            (None, false) => RunOutcome::InputEnded,
        }
    }

    /// The recorded outcome and error code of a run whose input ended so, when nobody
    /// supervising the run decides otherwise (a replay): input that ends without a terminal
    /// frame is a worker that exited.
    pub fn final_outcome(&self) -> (FinalOutcome, Option<String>) {
        match self {
            RunOutcome::Terminal {
                terminal: TerminalKind::Complete,
            } => (FinalOutcome::Completed, None),
            RunOutcome::Terminal {
                terminal: TerminalKind::Error { code, .. },
            } => (FinalOutcome::Failed, Some(code.clone())),
            RunOutcome::Cancelled => (
                FinalOutcome::Cancelled,
                Some(crate::protocol::Code::RunCancelled.as_str().to_owned()),
            ),
            RunOutcome::InputEnded => (
                FinalOutcome::Failed,
                Some(crate::protocol::Code::WorkerExited.as_str().to_owned()),
            ),
        }
    }
}

/// How a run ended, in the one vocabulary of `import_runs.outcome`, of the control plane's run
/// results and of `import.run.completed`/`import.run.failed` (docs/cli-json.md); a failure's
/// cause is its separate `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalOutcome {
    /// The worker sent `run.complete` and nobody asked the run to stop.
    Completed,
    Failed,
    /// Stopped on request (an operator, a job cancel, shutdown) before completing.
    Cancelled,
}

impl FinalOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            FinalOutcome::Completed => "completed",
            FinalOutcome::Failed => "failed",
            FinalOutcome::Cancelled => "cancelled",
        }
    }
}
