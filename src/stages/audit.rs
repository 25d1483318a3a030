//! The audit trail of import runs (seed Security Considerations 4): the one writer of
//! `nexus.db.import_runs`, as an insertable stage over frame outcomes, plus the trail's crash
//! recovery and reader.
//!
//! The stage edits no other stage: the builder inserts it at the outcome seam
//! (`PipelineConfig.audit`). It records the run's row when it starts (when the run's id is known
//! up front) and completes it when the input ends (or on a fatal error): ended time, outcome in
//! the one vocabulary `completed | failed | cancelled` with its `error_code`, and the committed
//! counters. Who supervises the run (the control plane) decides the outcome through
//! [`AuditConfig::decide`], so the row says what the run's job and events say. Writes happen on
//! a blocking thread; a failure to write the final row fails the run with `Audit` after
//! everything was committed.
//!
//! The row is upserted: columns a row already has (job id, worker pid) are kept.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::import::system_now_ms;
use crate::ledger;
use crate::pipeline::report::{FinalOutcome, RunOutcome};
use crate::pipeline::{Flow, Flowing, PipelineError, RunCounters, StreamStage};

use super::FrameOutcome;
use super::RunIdCell;
use super::metrics::Tally;

/// How a pipeline ended: how its input ended, or the code of the fatal error that stopped it.
pub type Ending<'a> = Result<&'a RunOutcome, &'a str>;

/// A recorded outcome and its error code.
pub type Decision = (FinalOutcome, Option<String>);

/// The supervisor's rule from a pipeline's [`Ending`] to the recorded [`Decision`].
#[derive(Clone)]
pub struct Decide(Arc<dyn Fn(Ending<'_>) -> Decision + Send + Sync>);

impl Decide {
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(Ending<'_>) -> (FinalOutcome, Option<String>) + Send + Sync + 'static,
    {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Decide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decide(..)")
    }
}

/// Two rules are equal when they are the same rule.
impl PartialEq for Decide {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Decide {}

/// Where and how a run is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The nexus.db file (`ledger::default_nexus_path()` in the daemon).
    pub nexus_path: PathBuf,
    /// The backfill job this run serves, if any.
    pub job_id: Option<String>,
    pub source: String,
    /// `backfill` or `tail`.
    pub mode: String,
    pub worker_pid: Option<u32>,
    /// The supervisor's outcome rule; `None`: [`RunOutcome::final_outcome`], and a fatal error
    /// is `failed` with its code.
    pub decide: Option<Decide>,
}

impl AuditConfig {
    /// The outcome and error code recorded for `ending`.
    pub fn decide(&self, ending: Ending<'_>) -> (FinalOutcome, Option<String>) {
        match (&self.decide, ending) {
            (Some(rule), ending) => (rule.0)(ending),
            (None, Ok(outcome)) => outcome.final_outcome(),
            (None, Err(code)) => (FinalOutcome::Failed, Some(code.to_owned())),
        }
    }
}

/// Records a run's start (blocking). An existing row keeps its columns.
///
/// # Errors
/// `Audit` when `nexus.db` cannot be opened or written.
pub fn record_start(
    config: &AuditConfig,
    run_id: &str,
    started_at_ms: i64,
) -> Result<(), PipelineError> {
    let conn = open(config)?;
    conn.execute(
        "INSERT INTO import_runs (run_id, job_id, source, mode, worker_pid, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(run_id) DO UPDATE SET
             job_id = COALESCE(import_runs.job_id, excluded.job_id),
             worker_pid = COALESCE(import_runs.worker_pid, excluded.worker_pid)",
        params![
            run_id,
            config.job_id,
            config.source,
            config.mode,
            config.worker_pid,
            started_at_ms
        ],
    )
    .map_err(audit_error)?;
    Ok(())
}

/// Records a run's end (blocking): the outcome [`AuditConfig::decide`]s for `ending`, and
/// `counters` as `stats_json`. Creates the row if its start was not recorded.
///
/// # Errors
/// `Audit` when `nexus.db` cannot be opened or written.
pub fn record_end(
    config: &AuditConfig,
    run_id: &str,
    started_at_ms: i64,
    counters: &RunCounters,
    ending: Ending<'_>,
) -> Result<(), PipelineError> {
    let (outcome, error_code) = config.decide(ending);
    // Plain counters with string keys always serialise.
    let stats = serde_json::to_string(counters).unwrap_or_default();
    let conn = open(config)?;
    conn.execute(
        "INSERT INTO import_runs
             (run_id, job_id, source, mode, worker_pid, started_at, ended_at, outcome, error_code, stats_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(run_id) DO UPDATE SET
             job_id = COALESCE(import_runs.job_id, excluded.job_id),
             worker_pid = COALESCE(import_runs.worker_pid, excluded.worker_pid),
             ended_at = excluded.ended_at,
             outcome = excluded.outcome,
             error_code = excluded.error_code,
             stats_json = excluded.stats_json",
        params![
            run_id,
            config.job_id,
            config.source,
            config.mode,
            config.worker_pid,
            started_at_ms,
            system_now_ms(),
            outcome.as_str(),
            error_code,
            stats,
        ],
    )
    .map_err(audit_error)?;
    Ok(())
}

fn audit_error(e: impl std::error::Error + Send + Sync + 'static) -> PipelineError {
    PipelineError::Audit(Box::new(e))
}

fn open(config: &AuditConfig) -> Result<Connection, PipelineError> {
    ledger::open_nexus(&config.nexus_path).map_err(audit_error)
}

/// Start-up recovery: runs without an end were cut by a crash of the process that ran them;
/// they are `failed` with `daemon_restarted`. Returns how many.
pub fn fail_interrupted(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE import_runs SET ended_at = ?1, outcome = ?2, error_code = ?3 \
         WHERE ended_at IS NULL",
        params![
            now_ms,
            FinalOutcome::Failed.as_str(),
            crate::protocol::Code::DaemonRestarted.as_str()
        ],
    )
}

/// One `import_runs` row, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub job_id: Option<String>,
    pub source: String,
    pub mode: String,
    pub worker_pid: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `completed`, `failed` or `cancelled`; `None` while the run is going.
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub stats: Option<RunCounters>,
}

/// The newest `limit` runs, newest first; `job_id` filters to one job's runs.
pub fn list(
    conn: &Connection,
    job_id: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<RunRecord>> {
    let mut stmt = conn.prepare(
        "SELECT run_id, job_id, source, mode, worker_pid, started_at, ended_at, outcome, \
         error_code, stats_json FROM import_runs WHERE (?1 IS NULL OR job_id = ?1) \
         ORDER BY started_at DESC, rowid DESC LIMIT ?2",
    )?;
    stmt.query_map(params![job_id, limit], |row| {
        let stats: Option<String> = row.get(9)?;
        Ok(RunRecord {
            run_id: row.get(0)?,
            job_id: row.get(1)?,
            source: row.get(2)?,
            mode: row.get(3)?,
            worker_pid: row.get(4)?,
            started_at: row.get(5)?,
            ended_at: row.get(6)?,
            outcome: row.get(7)?,
            error_code: row.get(8)?,
            stats: stats.and_then(|s| serde_json::from_str(&s).ok()),
        })
    })?
    .collect()
}

pub struct AuditStage {
    config: AuditConfig,
    run_id: RunIdCell,
    cancel: CancellationToken,
    started_at_ms: i64,
}

impl AuditStage {
    /// `cancel` is the run's token: a run whose input ended because it fired ended
    /// [`RunOutcome::Cancelled`].
    pub fn new(config: AuditConfig, run_id: RunIdCell, cancel: CancellationToken) -> Self {
        Self {
            config,
            run_id,
            cancel,
            started_at_ms: system_now_ms(),
        }
    }

    /// The run's id; a run that never produced a valid frame still happened: it gets one.
    fn run_id(&self) -> String {
        self.run_id
            .get()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
    }

    /// Records the start when the run's id is already known (not on a blocked writer's time:
    /// a failure is logged, the end's upsert creates the row).
    async fn start(&self) {
        let Some(run_id) = self.run_id.get().map(str::to_owned) else {
            return;
        };
        let (config, at) = (self.config.clone(), self.started_at_ms);
        let written = tokio::task::spawn_blocking(move || record_start(&config, &run_id, at)).await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(
                error_code = crate::protocol::Code::LedgerWriteFailed.as_str(),
                "audit row of a starting run not written"
            );
        }
    }

    async fn end(&self, counters: &RunCounters, ending: Ending<'_>) -> Result<(), PipelineError> {
        let (config, run_id, at) = (self.config.clone(), self.run_id(), self.started_at_ms);
        let (counters, ending) = (counters.clone(), ending.cloned().map_err(str::to_owned));
        tokio::task::spawn_blocking(move || {
            record_end(
                &config,
                &run_id,
                at,
                &counters,
                ending.as_ref().map_err(String::as_str),
            )
        })
        .await
        .map_err(audit_error)?
    }
}

struct State {
    input: Flow<FrameOutcome>,
    stage: AuditStage,
    tally: Tally,
    started: bool,
    done: bool,
}

impl StreamStage<FrameOutcome, FrameOutcome> for AuditStage {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn apply(self: Box<Self>, input: Flow<FrameOutcome>) -> Flow<FrameOutcome> {
        let state = State {
            input,
            stage: *self,
            tally: Tally::default(),
            started: false,
            done: false,
        };
        stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if !st.started {
                st.started = true;
                st.stage.start().await;
            }
            match st.input.next().await {
                Some(Ok(Flowing::Item(outcome))) => {
                    st.tally.add(&outcome);
                    Some((Ok(Flowing::Item(outcome)), st))
                }
                Some(Ok(Flowing::Reject(r))) => Some((Ok(Flowing::Reject(r)), st)),
                Some(Err(e)) => {
                    st.done = true;
                    let code = e.code().as_str();
                    if let Err(audit) = st.stage.end(&st.tally.counters, Err(code)).await {
                        tracing::warn!(error_code = %audit.code(), "audit row of a failed run not written");
                    }
                    Some((Err(e), st))
                }
                None => {
                    st.done = true;
                    let outcome = RunOutcome::from_parts(
                        st.tally.terminal.clone(),
                        st.stage.cancel.is_cancelled(),
                    );
                    match st.stage.end(&st.tally.counters, Ok(&outcome)).await {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), st)),
                    }
                }
            }
        })
        .boxed()
    }
}
