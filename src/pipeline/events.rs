//! The import bus (`tokio::sync::broadcast`) and its one event vocabulary (docs/cli-json.md
//! "Events"): what `nex import watch` and the control socket's `watch` stream, one JSON object
//! per event, tagged by `type`, snake_case fields. Events carry codes, counts and ids, never
//! payload content.
//!
//! Each fact has one publisher. A run's pipeline publishes what it sees of frames
//! (`import.frame.rejected`, `import.run.progress`, `import.run.terminal`,
//! `import.worker.health`); the run's lifecycle (`import.run.started|completed|failed`) is
//! published by whoever supervises the run (the control plane, which knows the worker's pid, the
//! mode, the job and the final outcome), or by the pipeline itself when unsupervised (a
//! replay); the control plane alone publishes `import.job.state_changed`,
//! `import.run.restart_scheduled` and `import.tail.error`.
//!
//! A slow subscriber lags (broadcast drops its oldest events for it); publishing never blocks
//! and never fails the run.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::report::{FinalOutcome, RunCounters, StreamEnd};
use crate::protocol::{FileError, JobStatus, MAX_FILE_ERRORS, RunProgress, StoreFigures};

/// The bus: clone the sender to publish, `subscribe()` to listen.
pub type Bus = broadcast::Sender<ImportEvent>;

/// A new bus with room for `capacity` events per subscriber.
pub fn bus(capacity: usize) -> Bus {
    broadcast::channel(capacity.max(1)).0
}

/// Room per subscriber of the daemon's bus.
pub const DEFAULT_BUS_CAPACITY: usize = 1024;

/// Committed counters of a run as events carry them and as the control plane keeps them per
/// run and per job (`RunStatus.counters`, `JobRecord.stats`): committed items by status,
/// requests, rejected frames, and the worker's own `total`/`emitted` for progress bars.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedCounters {
    pub imported: u64,
    pub upserted: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Sessions deleted by `retract` items (item rule 15; omitted when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retracted: u64,
    /// Items of replayed requests: answered from the stored response, nothing written (omitted
    /// when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replayed: u64,
    /// Source files the worker checked and found unchanged since their cursor (omitted when
    /// zero). Files checked = `total` + `unchanged_files`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchanged_files: u64,
    /// Import requests (`import.batch` or completed uploads) committed.
    pub requests: u64,
    /// Frames rejected with a code (not committed).
    pub rejected: u64,
    /// Sessions the worker will emit (from `run.progress.total`), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Sessions the worker emitted so far (from `run.progress.emitted`), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emitted: Option<u64>,
    /// Source lines imported after repair (invalid UTF-8 replaced by U+FFFD, raw control
    /// characters escaped), from the worker's `run.progress.lossyLines`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lossy_lines: u64,
    /// Source files the worker could not read (`run.progress.failedFiles`); they are read
    /// again by the next run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_files: u64,
    /// The first of those files by name, with their OS reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<FileError>,
    /// Polled stores (Cursor databases, OpenCode data directories) and their sessions, which
    /// `total`, `emitted` and `unchanged_files` count one each (omitted without stores). Files
    /// checked, a store counting as one: `total + unchanged_files - stores.sessions -
    /// stores.sessions_unchanged + stores.stores`.
    #[serde(default, skip_serializing_if = "StoreFigures::is_empty")]
    pub stores: StoreFigures,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CommittedCounters {
    /// Items committed, whatever their status.
    pub fn items(&self) -> u64 {
        self.imported + self.upserted + self.skipped + self.failed + self.retracted
    }

    /// Takes the worker's own report of a run (`run.progress` / `run.complete`): `total`,
    /// `emitted`, and its running counts of repaired lines and unreadable files.
    pub fn note_worker(&mut self, p: &RunProgress) {
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

    /// Adds another run's counters (a job's retried runs add up); `total` and `emitted` are the
    /// latest run's.
    pub fn absorb(&mut self, other: &CommittedCounters) {
        self.imported += other.imported;
        self.upserted += other.upserted;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.retracted += other.retracted;
        self.replayed += other.replayed;
        self.requests += other.requests;
        self.rejected += other.rejected;
        if other.total.is_some() {
            self.total = other.total;
        }
        if other.emitted.is_some() {
            self.emitted = other.emitted;
        }
        // Like `total`: the latest run's look at the files.
        if other.total.is_some() || other.unchanged_files > 0 {
            self.unchanged_files = other.unchanged_files;
            self.stores = other.stores;
        }
        self.lossy_lines += other.lossy_lines;
        self.failed_files += other.failed_files;
        for e in &other.file_errors {
            if self.file_errors.len() < MAX_FILE_ERRORS
                && !self.file_errors.iter().any(|f| f.path == e.path)
            {
                self.file_errors.push(e.clone());
            }
        }
    }
}

impl From<&RunCounters> for CommittedCounters {
    fn from(c: &RunCounters) -> Self {
        Self {
            imported: c.imported,
            upserted: c.upserted,
            skipped: c.skipped,
            failed: c.failed,
            retracted: c.retracted,
            replayed: c.replayed,
            unchanged_files: c.unchanged_files,
            requests: c.requests,
            rejected: c.rejected_total(),
            total: c.total,
            emitted: c.emitted,
            lossy_lines: c.lossy_lines,
            failed_files: c.failed_files,
            file_errors: c.file_errors.clone(),
            stores: c.stores,
        }
    }
}

/// One event. `run_id` is `None` only before the first frame of a run started without a known
/// id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ImportEvent {
    /// A run started. `mode`, `job_id` and `pid` are known when the run is supervised.
    #[serde(rename = "import.run.started")]
    RunStarted {
        run_id: Option<String>,
        mode: Option<&'static str>,
        job_id: Option<String>,
        pid: Option<u32>,
    },
    /// Committed counters so far (at most every `progress_interval`, and once at the end), with
    /// the worker's own `total`/`emitted` from its latest committed-order `run.progress`.
    #[serde(rename = "import.run.progress")]
    RunProgress {
        run_id: Option<String>,
        counters: CommittedCounters,
    },
    /// The worker sent a terminal frame (`run.complete` or `run.error`); the pipeline stops
    /// reading and drains.
    #[serde(rename = "import.run.terminal")]
    RunTerminal {
        run_id: Option<String>,
        seq: Option<u64>,
        /// [`StreamEnd::Complete`] or [`StreamEnd::WorkerError`] (its message not published).
        terminal: StreamEnd,
    },
    /// The worker answered a probe (or reported unsolicited) with `health.status`. Published in
    /// frame order, after the frames before it committed. Only typed fields are carried: the
    /// worker's free-form `details` are reduced to `lag_ms`.
    #[serde(rename = "import.worker.health")]
    WorkerHealth {
        run_id: Option<String>,
        seq: Option<u64>,
        connected: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_event_at_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lag_ms: Option<u64>,
    },
    /// The run ended without failure: `outcome` is `completed` or `cancelled`; everything read
    /// is committed or rejected.
    #[serde(rename = "import.run.completed")]
    RunCompleted {
        run_id: Option<String>,
        outcome: FinalOutcome,
        counters: CommittedCounters,
    },
    /// The run failed with `error_code` (a worker's `run.error`, `worker_exited`,
    /// `ledger_write_failed`, …); `retryable`: running again may succeed.
    #[serde(rename = "import.run.failed")]
    RunFailed {
        run_id: Option<String>,
        error_code: String,
        retryable: bool,
        counters: CommittedCounters,
    },
    /// A frame was rejected (its outcome is final: nothing of it was written).
    #[serde(rename = "import.frame.rejected")]
    FrameRejected {
        run_id: Option<String>,
        error_code: String,
        seq: Option<u64>,
    },
    /// The tail (or a job's run) will be restarted after `delay_ms`; `restart` counts from 1.
    #[serde(rename = "import.run.restart_scheduled")]
    RestartScheduled {
        target: String,
        restart: u32,
        delay_ms: u64,
    },
    /// The tail gave up after too many restarts and waits for `nex import restart`.
    #[serde(rename = "import.tail.error")]
    TailError { restarts: u32, error_code: String },
    #[serde(rename = "import.job.state_changed")]
    JobStateChanged {
        job_id: String,
        from: Option<JobStatus>,
        to: JobStatus,
        error_code: Option<String>,
    },
}
