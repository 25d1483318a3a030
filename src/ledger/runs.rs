//! The `import_runs` repository (`nexus.db`): the audit trail of import runs (seed Security
//! Considerations 4). A run's start is recorded by the pipeline's audit tap; its end, once it
//! is classified ([`RunEnding`]), by whoever classified it: the control plane for a supervised
//! run, the pipeline itself for an unsupervised one. Start-up recovery and the reader are here
//! too.
//!
//! Rows are upserted: columns a row already has (job id, worker pid) are kept, and an end whose
//! start was never recorded creates the row.

use std::path::PathBuf;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::LedgerError;
use crate::pipeline::{FinalOutcome, RunCounters, RunEnding};
use crate::protocol::Code;

/// Where and as what a run is recorded.
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
}

impl AuditConfig {
    fn open(&self) -> Result<Connection, LedgerError> {
        super::open_nexus(&self.nexus_path)
    }
}

/// Records a run's start (blocking). An existing row keeps its columns.
///
/// # Errors
/// When `nexus.db` cannot be opened or written.
pub fn record_start(
    config: &AuditConfig,
    run_id: &str,
    started_at_ms: i64,
) -> Result<(), LedgerError> {
    config.open()?.execute(
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
    )?;
    Ok(())
}

/// Records a run's end (blocking): `ending`'s outcome and code, `stats` as `stats_json`.
/// Creates the row if its start was not recorded.
///
/// # Errors
/// When `nexus.db` cannot be opened or written.
pub fn record_end(
    config: &AuditConfig,
    run_id: &str,
    started_at_ms: i64,
    ended_at_ms: i64,
    stats: &RunCounters,
    ending: &RunEnding,
) -> Result<(), LedgerError> {
    // Plain counters with string keys always serialise.
    let stats = serde_json::to_string(stats).unwrap_or_default();
    config.open()?.execute(
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
            ended_at_ms,
            ending.outcome.as_str(),
            ending.error_code.as_ref().map(|c| c.as_str()),
            stats,
        ],
    )?;
    Ok(())
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
            Code::DaemonRestarted.as_str()
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
