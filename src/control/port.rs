//! The port between the control plane and a run's pipeline: the control plane hands the
//! pipeline the worker's stdout and gets back, as frames flow, the signals it needs to supervise
//! (frames seen, health answers, commits, rejects) and, at the end, the pipeline's
//! [`RunReport`].
//!
//! The control plane knows nothing about frame contents beyond these signals (ARCHITECTURE.md
//! "Rules of the house"); the pipeline knows nothing about processes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ledger::runs::AuditConfig;
use crate::pipeline::{CommittedCounters, RunReport};
use crate::protocol::{HealthStatus, RunMode, RunProgress};

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
    /// How the run is recorded in `import_runs` (its start by the pipeline's audit tap, its
    /// end by the run once classified): set by the run once its worker is spawned, with the
    /// worker's pid. `None`: the run is not recorded.
    pub audit: Option<AuditConfig>,
}

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
        counters: CommittedCounters,
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

/// Builds and runs one pipeline over one worker's output.
///
/// Contract: read `input` until a terminal frame (`run.complete`/`run.error`), end of input, or
/// `cancel`; commit everything read before returning; record the run's start per `info.audit`;
/// send [`RunSignal`]s on `signals` as it goes; count every line read and every final outcome
/// on `backlog`; return the report with how the stream ended, unclassified (the run classifies
/// it and records the end). `cancel` is the hard stop: the graceful stop is the worker's own
/// `run.complete` after `run.stop`, which the pipeline sees as a terminal frame.
pub trait RunPipeline: Send + Sync + 'static {
    fn run(
        &self,
        info: RunInfo,
        input: WorkerOutput,
        signals: mpsc::Sender<RunSignal>,
        backlog: Arc<Backlog>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, RunReport>;
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
