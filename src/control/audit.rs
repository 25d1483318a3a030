//! The audit trail of import runs (seed Security Considerations 4): one `nexus.db.import_runs`
//! row per run, written when the worker is spawned and completed when the run ends.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::error::ControlError;
use super::port::RunCounters;

/// How a run ended, as stored in `import_runs.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The worker sent `run.complete` (also after a requested stop).
    Completed,
    Failed,
    /// Stopped by an operator, a job cancel or shutdown before completing.
    Cancelled,
}

impl RunOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
        }
    }
}

/// One `import_runs` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub job_id: Option<String>,
    pub source: String,
    pub mode: String,
    pub worker_pid: Option<i64>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub stats: Option<RunCounters>,
}

/// Records a run's start.
pub fn run_started(conn: &Connection, r: &RunRecord) -> Result<(), ControlError> {
    conn.execute(
        "INSERT INTO import_runs (run_id, job_id, source, mode, worker_pid, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            r.run_id,
            r.job_id,
            r.source,
            r.mode,
            r.worker_pid,
            r.started_at
        ],
    )
    .map_err(ControlError::store("run_started"))?;
    Ok(())
}

/// Records a run's end and final counters.
pub fn run_ended(
    conn: &Connection,
    run_id: &str,
    outcome: RunOutcome,
    error_code: Option<&str>,
    counters: &RunCounters,
    now: i64,
) -> Result<(), ControlError> {
    let stats = serde_json::to_string(counters).expect("run counters serialise");
    conn.execute(
        "UPDATE import_runs SET ended_at = ?1, outcome = ?2, error_code = ?3, stats_json = ?4 \
         WHERE run_id = ?5",
        params![now, outcome.as_str(), error_code, stats, run_id],
    )
    .map_err(ControlError::store("run_ended"))?;
    Ok(())
}

/// Start-up recovery: runs without an end were cut by a daemon crash.
pub fn fail_interrupted(conn: &Connection, now: i64) -> Result<usize, ControlError> {
    conn.execute(
        "UPDATE import_runs SET ended_at = ?1, outcome = 'failed', error_code = ?2 \
         WHERE ended_at IS NULL",
        params![now, crate::protocol::Code::DaemonRestarted.as_str()],
    )
    .map_err(ControlError::store("run_recover"))
}

/// The newest `limit` runs, newest first; `job_id` filters to one job's runs.
pub fn list(
    conn: &Connection,
    job_id: Option<&str>,
    limit: u32,
) -> Result<Vec<RunRecord>, ControlError> {
    let mut stmt = conn
        .prepare(
            "SELECT run_id, job_id, source, mode, worker_pid, started_at, ended_at, outcome, \
             error_code, stats_json FROM import_runs WHERE (?1 IS NULL OR job_id = ?1) \
             ORDER BY started_at DESC, rowid DESC LIMIT ?2",
        )
        .map_err(ControlError::store("run_list"))?;
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
    })
    .and_then(|rows| rows.collect())
    .map_err(ControlError::store("run_list"))
}
