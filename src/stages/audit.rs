//! Audit stage: an insertable tap over frame outcomes that persists the run's summary in
//! `nexus.db.import_runs` (the audit trail of import runs, seed Security Considerations 4) when
//! the run ends: outcome, error code, counters. It edits no other stage: the builder inserts it
//! at the outcome seam.
//!
//! The row is upserted: a row the daemon created at spawn (job id, worker pid) keeps those
//! columns. The write happens once, at the end of input (or on a fatal error, recording the
//! failure), on a blocking thread; a failure to write the audit row fails the run with
//! `Audit` after everything was committed.

use std::path::PathBuf;

use futures::StreamExt;
use futures::stream;
use rusqlite::params;
use tokio_util::sync::CancellationToken;

use crate::import::system_now_ms;
use crate::ledger;
use crate::pipeline::report::RunOutcome;
use crate::pipeline::{Flow, Flowing, PipelineError, RunCounters, StreamStage};

use super::FrameOutcome;
use super::RunIdCell;
use super::metrics::Tally;

/// Where and how a run is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// The nexus.db file (`ledger::default_nexus_path()` in the daemon).
    pub nexus_path: PathBuf,
    /// The backfill job this run serves, if any.
    pub job_id: Option<String>,
    pub source: String,
    /// `backfill` or `tail`.
    pub mode: String,
    pub worker_pid: Option<u32>,
}

pub struct AuditStage {
    config: AuditConfig,
    run_id: RunIdCell,
    cancel: CancellationToken,
    started_at_ms: i64,
}

impl AuditStage {
    /// `cancel` is the run's token: a run whose input ended because it fired is recorded as
    /// `cancelled`.
    pub fn new(config: AuditConfig, run_id: RunIdCell, cancel: CancellationToken) -> Self {
        Self {
            config,
            run_id,
            cancel,
            started_at_ms: system_now_ms(),
        }
    }
}

/// One `import_runs` row.
#[derive(Debug, Clone)]
struct RunRow {
    run_id: String,
    config: AuditConfig,
    started_at_ms: i64,
    ended_at_ms: i64,
    outcome: &'static str,
    error_code: Option<String>,
    stats_json: String,
}

fn write_row(row: RunRow) -> Result<(), PipelineError> {
    let audit = |e: Box<dyn std::error::Error + Send + Sync>| PipelineError::Audit(e);
    let conn = ledger::open_nexus(&row.config.nexus_path).map_err(|e| audit(Box::new(e)))?;
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
            row.run_id,
            row.config.job_id,
            row.config.source,
            row.config.mode,
            row.config.worker_pid,
            row.started_at_ms,
            row.ended_at_ms,
            row.outcome,
            row.error_code,
            row.stats_json,
        ],
    )
    .map_err(|e| audit(Box::new(e)))?;
    Ok(())
}

impl AuditStage {
    fn row(
        &self,
        counters: &RunCounters,
        outcome: &'static str,
        error_code: Option<String>,
    ) -> RunRow {
        RunRow {
            // A run that never produced a valid frame still happened: give it an id.
            run_id: self
                .run_id
                .get()
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            config: self.config.clone(),
            started_at_ms: self.started_at_ms,
            ended_at_ms: system_now_ms(),
            outcome,
            error_code,
            // Plain counters with string keys always serialise.
            stats_json: serde_json::to_string(counters).unwrap_or_default(),
        }
    }
}

async fn persist(row: RunRow) -> Result<(), PipelineError> {
    tokio::task::spawn_blocking(move || write_row(row))
        .await
        .map_err(|e| PipelineError::Audit(Box::new(e)))?
}

struct State {
    input: Flow<FrameOutcome>,
    stage: AuditStage,
    tally: Tally,
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
            done: false,
        };
        stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.input.next().await {
                Some(Ok(Flowing::Item(outcome))) => {
                    st.tally.add(&outcome);
                    Some((Ok(Flowing::Item(outcome)), st))
                }
                Some(Ok(Flowing::Reject(r))) => Some((Ok(Flowing::Reject(r)), st)),
                Some(Err(e)) => {
                    st.done = true;
                    let row = st.stage.row(&st.tally.counters, "failed", Some(e.code().as_str().to_owned()));
                    if let Err(audit) = persist(row).await {
                        tracing::warn!(error_code = %audit.code(), "audit row of a failed run not written");
                    }
                    Some((Err(e), st))
                }
                None => {
                    st.done = true;
                    let outcome =
                        RunOutcome::from_parts(st.tally.terminal.clone(), st.stage.cancel.is_cancelled());
                    let (label, code) = outcome.audit_fields();
                    let row = st.stage.row(&st.tally.counters, label, code);
                    match persist(row).await {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), st)),
                    }
                }
            }
        })
        .boxed()
    }
}
