//! Run counters, the run report and the one typed end of a run: how the frame stream ended
//! ([`StreamEnd`], the pipeline's), classified once into a [`RunEnding`] (outcome, code,
//! retryability) that the run's row, job and events are written from. Every count here comes
//! from committed outcomes (or final rejects), never from the worker's own view.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::builder::StageSnapshot;
use super::events::{CommittedCounters, ImportEvent};
use super::{PipelineError, RejectCode};
use crate::protocol::Code;
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
    /// Sessions deleted by `retract` items (item rule 15).
    pub retracted: u64,
    /// Items of replayed requests (same idempotency key and content as an earlier request): the
    /// ledger already held them, nothing was written.
    pub replayed: u64,
    /// Source files the worker checked and found unchanged since their cursor (the worker's
    /// `run.progress.unchangedFiles`).
    pub unchanged_files: u64,
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
    /// The worker's polled stores (`run.progress.stores`).
    #[serde(skip_serializing_if = "crate::protocol::StoreFigures::is_empty")]
    pub stores: crate::protocol::StoreFigures,
}

impl RunCounters {
    /// Takes the worker's own report (`run.progress` / `run.complete`).
    pub fn note_worker(&mut self, p: &crate::protocol::RunProgress) {
        self.total = p.total.or(self.total);
        self.emitted = p.emitted.or(self.emitted);
        self.unchanged_files = p.unchanged_files.unwrap_or(self.unchanged_files);
        self.lossy_lines = p.lossy_lines.unwrap_or(self.lossy_lines);
        self.failed_files = p.failed_files.unwrap_or(self.failed_files);
        if p.failed_files.is_some() {
            self.file_errors = p.file_errors.clone();
        }
        self.stores = p.stores.unwrap_or(self.stores);
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn rejected_with(&self, code: &str) -> u64 {
        self.rejected.get(code).copied().unwrap_or(0)
    }
}

/// How a run's frame stream ended: the pipeline's half of a run's end, before anybody
/// classifies it ([`StreamEnd::classify`]). Everything read before the end is committed or
/// rejected, except what the batch of a `Failed` held.
///
/// Serialised as the `terminal` of `import.run.terminal` (`{"kind":"complete"}` or
/// `{"kind":"error","code":…,"retryable":…}`), the only two variants that event carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamEnd {
    /// The worker sent `run.complete`: it emitted everything.
    Complete,
    /// The worker sent `run.error`. `code` is sanitised like every reject code
    /// ([`RejectCode::service`]); `message` is the worker's text (it promises no secrets or
    /// contents), bounded when recorded and never published.
    #[serde(rename = "error")]
    WorkerError {
        code: RejectCode,
        #[serde(skip)]
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retryable: Option<bool>,
    },
    /// The run's cancellation token fired before a terminal frame.
    Cancelled,
    /// The input ended without a terminal frame (for a worker: it exited).
    InputEnded,
    /// The pipeline itself failed ([`PipelineError`]): a read error of the input, a ledger
    /// failure (that batch is not committed), a failed audit write.
    Failed {
        code: Code,
        /// The error's own text (names no content).
        #[serde(skip)]
        message: String,
    },
}

impl StreamEnd {
    /// A worker's terminal frame wins over cancellation (it arrived before the drain).
    pub fn of_input(terminal: Option<StreamEnd>, cancelled: bool) -> Self {
        match (terminal, cancelled) {
            (Some(terminal), _) => terminal,
            (None, true) => StreamEnd::Cancelled,
            (None, false) => StreamEnd::InputEnded,
        }
    }

    pub fn failed(e: &PipelineError) -> Self {
        StreamEnd::Failed {
            code: e.code(),
            message: e.to_string(),
        }
    }

    /// The one mapping from how the stream ended to how the run ended. `supervision`: what the
    /// supervisor of the run knows besides the stream (the control plane); `None`: nobody
    /// supervises the run (a replay), and the caller's cancellation is a stop it asked for.
    ///
    /// The worker's code is untrusted: sanitised already; its message is bounded and stripped
    /// of control characters here.
    pub fn classify(
        &self,
        supervision: Option<StopFacts>,
        counters: CommittedCounters,
    ) -> RunEnding {
        let StopFacts {
            forced,
            stop_requested,
            aborted,
        } = supervision.unwrap_or_default();
        let failed = |code: RejectCode, message: String, retryable: bool| RunEnding {
            outcome: FinalOutcome::Failed,
            error_code: Some(code),
            error_message: Some(message),
            retryable,
            counters: counters.clone(),
        };
        let ours =
            |code: Code, message: &str| failed(code.into(), message.to_owned(), code.retryable());
        let ended = |outcome: FinalOutcome, code: Option<Code>| RunEnding {
            outcome,
            error_code: code.map(RejectCode::from),
            error_message: None,
            retryable: false,
            counters: counters.clone(),
        };
        match (forced, self) {
            (Some(why), _) => ours(Code::WorkerUnresponsive, why),
            (None, StreamEnd::Complete) if stop_requested => ended(FinalOutcome::Cancelled, None),
            (None, StreamEnd::Complete) => ended(FinalOutcome::Completed, None),
            (
                None,
                StreamEnd::WorkerError {
                    code,
                    message,
                    retryable,
                },
            ) => failed(
                code.clone(),
                bounded_message(message),
                retryable.unwrap_or(false),
            ),
            (None, StreamEnd::InputEnded | StreamEnd::Cancelled) if aborted => {
                ours(Code::ShutdownTimeout, "stopped by the shutdown deadline")
            }
            (None, StreamEnd::InputEnded | StreamEnd::Cancelled) if stop_requested => {
                ended(FinalOutcome::Cancelled, None)
            }
            // Unsupervised, the token is the caller's own stop.
            (None, StreamEnd::Cancelled) if supervision.is_none() => {
                ended(FinalOutcome::Cancelled, Some(Code::RunCancelled))
            }
            (None, StreamEnd::InputEnded) => {
                ours(Code::WorkerExited, "worker exited without a terminal frame")
            }
            (None, StreamEnd::Cancelled) => ours(Code::RunCancelled, "pipeline cancelled"),
            (None, StreamEnd::Failed { code, .. }) => ours(*code, "pipeline failed"),
        }
    }
}

/// What a run's supervisor knows about its end besides the frame stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StopFacts {
    /// The worker was killed as unresponsive, and why.
    pub forced: Option<&'static str>,
    /// Somebody asked the run to stop (an operator, a job cancel, shutdown).
    pub stop_requested: bool,
    /// The shutdown deadline struck.
    pub aborted: bool,
}

/// How a run ended, classified once: the one value its `import_runs` row, its job and its
/// `import.run.completed|failed` event are written from.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnding {
    pub outcome: FinalOutcome,
    /// The cause of a failure (`worker_exited`, a worker's own `run.error` code, …).
    pub error_code: Option<RejectCode>,
    /// The worker's own `run.error` message (bounded), or ours.
    pub error_message: Option<String>,
    /// Whether running again may succeed.
    pub retryable: bool,
    /// What the run committed.
    pub counters: CommittedCounters,
}

impl RunEnding {
    /// A run that ended before its pipeline started (`cursor_load_failed`,
    /// `worker_spawn_failed`) or whose task was lost.
    pub fn failed(code: Code, message: &str) -> RunEnding {
        RunEnding {
            outcome: FinalOutcome::Failed,
            error_code: Some(code.into()),
            error_message: Some(message.to_owned()),
            retryable: code.retryable(),
            counters: CommittedCounters::default(),
        }
    }

    /// A run stopped on request while it had nothing running (a job waiting for its retry).
    pub fn cancelled() -> RunEnding {
        RunEnding {
            outcome: FinalOutcome::Cancelled,
            error_code: None,
            error_message: None,
            retryable: false,
            counters: CommittedCounters::default(),
        }
    }

    /// Whether the run failed with `code`.
    pub fn failed_with(&self, code: Code) -> bool {
        self.outcome == FinalOutcome::Failed && self.error_code.as_ref().is_some_and(|c| *c == code)
    }

    /// The event that publishes this end.
    pub fn event(&self, run_id: Option<String>) -> ImportEvent {
        match self.outcome {
            FinalOutcome::Failed => ImportEvent::RunFailed {
                run_id,
                error_code: self
                    .error_code
                    .as_ref()
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                retryable: self.retryable,
                counters: self.counters.clone(),
            },
            outcome => ImportEvent::RunCompleted {
                run_id,
                outcome,
                counters: self.counters.clone(),
            },
        }
    }
}

/// Longest worker message kept in a job row.
const MAX_MESSAGE_CHARS: usize = 200;

fn bounded_message(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

/// The result of one pipeline run: how its stream ended and what it committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The run's id: the known id it was started with, else the first frame's `runId`.
    pub run_id: Option<String>,
    pub end: StreamEnd,
    /// Tallied by the metrics tap, as of the last committed batch.
    pub counters: RunCounters,
    pub duration_ms: u64,
    /// Per-stage in/out/reject counts, in pipeline order.
    pub stages: Vec<StageSnapshot>,
    /// Present when the telemetry stage was inserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySnapshot>,
}

impl RunReport {
    /// The report of a run whose pipeline did not fail; else the failure's code and message.
    pub fn into_result(self) -> Result<RunReport, (Code, String)> {
        match self.end {
            StreamEnd::Failed { code, message } => Err((code, message)),
            _ => Ok(self),
        }
    }
}

/// How a run ended, in the one vocabulary of `import_runs.outcome`, of [`RunEnding`] and of
/// `import.run.completed`/`import.run.failed` (docs/cli-json.md); a failure's cause is its
/// separate `error_code`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_error(retryable: Option<bool>) -> StreamEnd {
        StreamEnd::WorkerError {
            code: RejectCode::service("source_unreadable"),
            message: "m".into(),
            retryable,
        }
    }

    fn failed(code: Code) -> StreamEnd {
        StreamEnd::Failed {
            code,
            message: String::new(),
        }
    }

    fn facts(forced: Option<&'static str>, stop_requested: bool, aborted: bool) -> StopFacts {
        StopFacts {
            forced,
            stop_requested,
            aborted,
        }
    }

    #[test]
    fn classification_of_supervised_run_ends() {
        use FinalOutcome::*;
        // (end, facts) -> (outcome, code, retryable)
        let cases = [
            (
                StreamEnd::Complete,
                facts(None, false, false),
                Completed,
                None,
                false,
            ),
            (
                StreamEnd::Complete,
                facts(None, true, false),
                Cancelled,
                None,
                false,
            ),
            (
                StreamEnd::InputEnded,
                facts(None, false, false),
                Failed,
                Some("worker_exited"),
                true,
            ),
            (
                StreamEnd::InputEnded,
                facts(None, true, false),
                Cancelled,
                None,
                false,
            ),
            (
                StreamEnd::InputEnded,
                facts(None, true, true),
                Failed,
                Some("shutdown_timeout"),
                true,
            ),
            (
                StreamEnd::Cancelled,
                facts(None, false, false),
                Failed,
                Some("run_cancelled"),
                true,
            ),
            (
                StreamEnd::InputEnded,
                facts(Some("x"), false, false),
                Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                StreamEnd::Complete,
                facts(Some("x"), false, false),
                Failed,
                Some("worker_unresponsive"),
                true,
            ),
            (
                worker_error(Some(true)),
                facts(None, false, false),
                Failed,
                Some("source_unreadable"),
                true,
            ),
            (
                worker_error(None),
                facts(None, false, false),
                Failed,
                Some("source_unreadable"),
                false,
            ),
            (
                failed(Code::LedgerBusy),
                facts(None, false, false),
                Failed,
                Some("ledger_busy"),
                true,
            ),
            (
                failed(Code::LedgerWriteFailed),
                facts(None, false, false),
                Failed,
                Some("ledger_write_failed"),
                false,
            ),
            (
                failed(Code::InternalPanic),
                facts(None, false, false),
                Failed,
                Some("internal_panic"),
                false,
            ),
        ];
        for (end, facts, outcome, code, retryable) in cases {
            let label = format!("{end:?} {facts:?}");
            let r = end.classify(Some(facts), CommittedCounters::default());
            assert_eq!(r.outcome, outcome, "{label}");
            assert_eq!(r.error_code.as_ref().map(|c| c.as_str()), code, "{label}");
            assert_eq!(r.retryable, retryable, "{label}");
        }
    }

    #[test]
    fn an_unsupervised_run_cancelled_by_its_caller_is_cancelled_with_run_cancelled() {
        let r = StreamEnd::Cancelled.classify(None, CommittedCounters::default());
        assert_eq!(r.outcome, FinalOutcome::Cancelled);
        assert_eq!(r.error_code, Some(Code::RunCancelled.into()));
        let r = StreamEnd::InputEnded.classify(None, CommittedCounters::default());
        assert_eq!((r.outcome, r.retryable), (FinalOutcome::Failed, true));
        assert!(r.error_code.is_some_and(|c| c == Code::WorkerExited));
    }

    #[test]
    fn a_worker_code_and_message_are_bounded() {
        let hostile = StreamEnd::WorkerError {
            code: RejectCode::service("bad code with spaces\nand more"),
            message: format!("line\nbreak {}", "x".repeat(500)),
            retryable: None,
        };
        let r = hostile.classify(Some(StopFacts::default()), CommittedCounters::default());
        assert_eq!(
            r.error_code.as_ref().map(|c| c.as_str()),
            Some("bad_code_with_spaces_and_more")
        );
        let message = r.error_message.unwrap();
        assert_eq!(message.chars().count(), 200);
        assert!(!message.contains('\n'));
    }

    #[test]
    fn the_terminal_event_keeps_its_shape() {
        let json = |end: &StreamEnd| serde_json::to_value(end).unwrap();
        assert_eq!(
            json(&StreamEnd::Complete),
            serde_json::json!({"kind": "complete"})
        );
        assert_eq!(
            json(&worker_error(Some(true))),
            serde_json::json!({"kind": "error", "code": "source_unreadable", "retryable": true})
        );
        assert_eq!(
            json(&worker_error(None)),
            serde_json::json!({"kind": "error", "code": "source_unreadable"})
        );
    }
}
