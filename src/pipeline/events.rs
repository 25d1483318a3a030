//! Events a run publishes on the in-process bus (`tokio::sync::broadcast`). Subscribers: the
//! control plane (job tracking, `watch`), logs. Events carry codes, counts and ids, never
//! payload content.
//!
//! A slow subscriber lags (broadcast drops its oldest events for it); publishing never blocks
//! and never fails the run.

use serde::Serialize;
use tokio::sync::broadcast;

use super::report::{RunCounters, RunOutcome};

/// The bus: clone the sender to publish, `subscribe()` to listen.
pub type Bus = broadcast::Sender<ImportEvent>;

/// A new bus with room for `capacity` events per subscriber.
pub fn bus(capacity: usize) -> Bus {
    broadcast::channel(capacity.max(1)).0
}

/// One event of a run. `run_id` is `None` only before the first frame of a run started without
/// a known id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ImportEvent {
    /// The pipeline is built and about to read.
    #[serde(rename = "import.run.started", rename_all = "camelCase")]
    RunStarted { run_id: Option<String> },
    /// Committed counters so far (at most every `progress_interval`, and once at the end), with
    /// the worker's own `total`/`emitted` from its latest committed-order `run.progress`.
    #[serde(rename = "import.run.progress", rename_all = "camelCase")]
    RunProgress {
        run_id: Option<String>,
        counters: RunCounters,
    },
    /// The worker sent a terminal frame (`run.complete` or `run.error`); the pipeline stops
    /// reading and drains.
    #[serde(rename = "import.run.terminal", rename_all = "camelCase")]
    RunTerminal {
        run_id: Option<String>,
        seq: Option<u64>,
        terminal: TerminalKind,
    },
    /// The worker answered a probe (or reported unsolicited) with `health.status`. Published in
    /// frame order, after the frames before it committed. Only typed fields are carried: the
    /// worker's free-form `details` are reduced to `lagMs`.
    #[serde(rename = "import.worker.health", rename_all = "camelCase")]
    WorkerHealth {
        run_id: Option<String>,
        seq: Option<u64>,
        connected: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_event_at_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lag_ms: Option<u64>,
    },
    /// The pipeline drained: everything read is committed or rejected.
    #[serde(rename = "import.run.completed", rename_all = "camelCase")]
    RunCompleted {
        run_id: Option<String>,
        outcome: RunOutcome,
        counters: RunCounters,
    },
    /// The pipeline stopped on a fatal error (input I/O, ledger).
    #[serde(rename = "import.run.failed", rename_all = "camelCase")]
    RunFailed {
        run_id: Option<String>,
        code: String,
    },
    /// A frame was rejected (its outcome is final: nothing of it was written).
    #[serde(rename = "import.frame.rejected", rename_all = "camelCase")]
    FrameRejected {
        run_id: Option<String>,
        seq: Option<u64>,
        code: String,
    },
}

/// What a worker's terminal frame said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TerminalKind {
    /// `run.complete`: the worker emitted everything.
    Complete,
    /// `run.error`: the worker failed with `code`.
    Error {
        code: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retryable: Option<bool>,
    },
}
