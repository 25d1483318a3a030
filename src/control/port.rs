//! The port between the control plane and a run's pipeline: the control plane hands the
//! pipeline the worker's stdout and gets back, as frames flow, the signals it needs to supervise
//! (frames seen, health answers, commits, rejects, the terminal frame) and, at the end, a report.
//!
//! The control plane knows nothing about frame contents beyond these signals (ARCHITECTURE.md
//! "Rules of the house"); the pipeline knows nothing about processes.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol::{HealthStatus, RunError, RunMode, RunProgress};

/// The byte stream of a worker's stdout (or any transport carrying worker frames).
pub type WorkerOutput = Pin<Box<dyn AsyncRead + Send>>;

/// Who a run is, for the pipeline's stamps (`run_id` checks, `import_runs`, job stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    pub mode: RunMode,
    /// The `source` of the run (`aix`).
    pub source: String,
    pub persona_id: String,
    pub job_id: Option<String>,
    /// How the pipeline records the run in `import_runs` (the audit stage, the table's one
    /// writer): set by the run once its worker is spawned, with the worker's pid and the
    /// control plane's outcome rule. `None`: the run is not recorded.
    pub audit: Option<crate::stages::audit::AuditConfig>,
}

/// Committed counters of a run, the authoritative view (from the ledger's commits, not the
/// worker's advisory `run.progress`): the same type the bus events carry.
pub use crate::pipeline::events::CommittedCounters as RunCounters;

/// What a pipeline tells its run while frames flow. Sending may wait (bounded channel); a
/// pipeline whose receiver is gone keeps running and stops sending.
#[derive(Debug, Clone, PartialEq)]
pub enum RunSignal {
    /// A line was read from the worker (any frame, valid or not): the worker is alive.
    FrameSeen,
    /// A `health.status` frame, solicited or not.
    Health(HealthStatus),
    /// A `run.progress` frame (advisory counters, `total`, `emitted`).
    Progress(RunProgress),
    /// A batch was committed; `counters` are the run's totals so far, `newest_event_at` the
    /// newest source event time (epoch ms) now in the ledger, for the lag.
    Committed {
        counters: RunCounters,
        newest_event_at: Option<i64>,
    },
    /// A frame was rejected with `code` (never its content).
    Rejected { code: String, seq: Option<u64> },
}

/// Lines a pipeline has read but not yet finished (committed or rejected). While it is not
/// zero, a worker's silence is the pipeline's doing (it is not reading because the ledger is
/// busy: backpressure), so a late probe answer is not held against the worker.
#[derive(Debug, Default)]
pub struct Backlog {
    read: AtomicU64,
    done: AtomicU64,
}

impl Backlog {
    /// A line was read from the worker.
    pub fn read(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// A line's outcome is final.
    pub fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines read and not yet final.
    pub fn pending(&self) -> u64 {
        let done = self.done.load(Ordering::Relaxed);
        self.read.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// How a pipeline's input ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEnd {
    /// `run.complete` was read; everything before it is committed.
    Complete(RunProgress),
    /// `run.error` was read; everything before it is committed.
    Error(RunError),
    /// End of input without a terminal frame (`worker_exited`).
    Eof,
    /// The cancellation token fired before a terminal frame; what was read is committed.
    Cancelled,
    /// The pipeline itself failed (`ledger_write_failed`, an I/O error on the input, …).
    Failed { code: String },
}

/// The end of one pipeline run: how the input ended, with everything received committed.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineReport {
    pub end: PipelineEnd,
    pub counters: RunCounters,
    pub rejects: BTreeMap<String, u64>,
}

/// Builds and runs one pipeline over one worker's output.
///
/// Contract: read `input` until a terminal frame (`run.complete`/`run.error`), end of input, or
/// `cancel`; commit everything read before returning; record the run per `info.audit` (its
/// outcome from the rule there, applied when the input ends); send [`RunSignal`]s on `signals` as it
/// goes; count every line read and every final outcome on `backlog`. `cancel` is the hard stop: the graceful stop is the worker's own `run.complete` after
/// `run.stop`, which the pipeline sees as a terminal frame.
pub trait RunPipeline: Send + Sync + 'static {
    fn run(
        &self,
        info: RunInfo,
        input: WorkerOutput,
        signals: mpsc::Sender<RunSignal>,
        backlog: Arc<Backlog>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, PipelineReport>;
}

/// Loads the resume cursors NEX committed for a source (PROTOCOL.md "Cursors"), handed to the
/// worker in `run.start`.
pub trait CursorSource: Send + Sync + 'static {
    fn load(
        &self,
        source: &str,
    ) -> BoxFuture<'static, Result<Vec<crate::protocol::Cursor>, String>>;
}

/// No stored cursors: every run starts from the beginning (a `--full` backfill, or tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCursors;

impl CursorSource for NoCursors {
    fn load(
        &self,
        _source: &str,
    ) -> BoxFuture<'static, Result<Vec<crate::protocol::Cursor>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
