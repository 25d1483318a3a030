//! Backfill jobs (seed "Backfill Job Model"): the five states, the only legal edges, and their
//! persistence in `nexus.db.import_jobs`. Every transition is a conditional `UPDATE … WHERE
//! status = from`, so a row never takes an edge that the table below does not allow, even with
//! two processes on one database.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::error::ControlError;
use crate::pipeline::CommittedCounters;

pub use crate::protocol::JobStatus;

/// `stats_json` of a job: the committed counters of all its runs, and its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    #[serde(flatten)]
    pub counters: CommittedCounters,
    /// Runs started for this job (1 + retries).
    pub attempts: u32,
    /// The latest run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// A `--full` backfill ignores stored cursors.
    #[serde(default)]
    pub full: bool,
    /// The job this one retries (after `daemon_restarted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

/// One `import_jobs` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub source: String,
    pub mode: String,
    pub status: JobStatus,
    pub requested_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub stats: JobStats,
}

/// The result of asking for a backfill: the new job, or the active one already there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    pub job: JobRecord,
    /// `false`: a job was already active for the source and is returned instead.
    pub created: bool,
}

const COLUMNS: &str = "id, source, mode, status, requested_at, started_at, completed_at, \
                       error_code, error_message, stats_json";

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let status: String = row.get(3)?;
    let stats: Option<String> = row.get(9)?;
    Ok(JobRecord {
        id: row.get(0)?,
        source: row.get(1)?,
        mode: row.get(2)?,
        // A status this version does not know reads as failed: it can only be left alone.
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        requested_at: row.get(4)?,
        started_at: row.get(5)?,
        completed_at: row.get(6)?,
        error_code: row.get(7)?,
        error_message: row.get(8)?,
        stats: stats
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    })
}

fn stats_text(stats: &JobStats) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string(stats).expect("job stats serialise")
}

/// The active (queued or running) job of `source`, if any.
pub fn active(conn: &Connection, source: &str) -> Result<Option<JobRecord>, ControlError> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM import_jobs WHERE source = ?1 \
             AND status IN ('queued', 'running') ORDER BY requested_at LIMIT 1"
        ),
        params![source],
        row_to_job,
    )
    .optional()
    .map_err(ControlError::store("job_active"))
}

/// Inserts a queued backfill job for `source`, unless one is active: then returns that one with
/// `created: false` (one active job per source).
pub fn enqueue(
    conn: &mut Connection,
    source: &str,
    stats: JobStats,
    now: i64,
) -> Result<Enqueued, ControlError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(ControlError::store("job_enqueue"))?;
    if let Some(job) = active(&tx, source)? {
        return Ok(Enqueued {
            job,
            created: false,
        });
    }
    let id = uuid::Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO import_jobs (id, source, mode, status, requested_at, stats_json) \
         VALUES (?1, ?2, 'backfill', 'queued', ?3, ?4)",
        params![id, source, now, stats_text(&stats)],
    )
    .map_err(ControlError::store("job_enqueue"))?;
    tx.commit().map_err(ControlError::store("job_enqueue"))?;
    let job = get(conn, &id)?;
    Ok(Enqueued { job, created: true })
}

/// Moves job `id` to `to`, stamping `started_at` (running) or `completed_at` (terminal) and the
/// error of a failure.
///
/// Errors: `job_not_found`; `job_transition_illegal` when the current state has no edge to `to`
/// (including when another writer moved it first).
pub fn transition(
    conn: &Connection,
    id: &str,
    to: JobStatus,
    error: Option<(&str, &str)>,
    now: i64,
) -> Result<JobRecord, ControlError> {
    let current = get(conn, id)?;
    let from = current.status;
    if !from.can_transition(to) {
        return Err(ControlError::IllegalTransition {
            id: id.to_owned(),
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    let (code, message) = error.unzip();
    let changed = match to {
        JobStatus::Running => conn.execute(
            "UPDATE import_jobs SET status = ?1, started_at = ?2 WHERE id = ?3 AND status = ?4",
            params![to.as_str(), now, id, from.as_str()],
        ),
        _ => conn.execute(
            "UPDATE import_jobs SET status = ?1, completed_at = ?2, error_code = ?3, \
             error_message = ?4 WHERE id = ?5 AND status = ?6",
            params![to.as_str(), now, code, message, id, from.as_str()],
        ),
    }
    .map_err(ControlError::store("job_transition"))?;
    if changed == 0 {
        return Err(ControlError::IllegalTransition {
            id: id.to_owned(),
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    tracing::info!(job_id = %id, from = %from, to = %to, error_code = code, "job state transition");
    get(conn, id)
}

/// Rewrites `stats_json` of job `id`.
pub fn set_stats(conn: &Connection, id: &str, stats: &JobStats) -> Result<(), ControlError> {
    conn.execute(
        "UPDATE import_jobs SET stats_json = ?1 WHERE id = ?2",
        params![stats_text(stats), id],
    )
    .map_err(ControlError::store("job_stats"))?;
    Ok(())
}

/// The job whose id is `id`, or the only one whose id starts with `id` (at least 4 characters).
///
/// Errors: `job_not_found`, `job_ambiguous`.
pub fn get(conn: &Connection, id: &str) -> Result<JobRecord, ControlError> {
    let exact = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM import_jobs WHERE id = ?1"),
            params![id],
            row_to_job,
        )
        .optional()
        .map_err(ControlError::store("job_get"))?;
    if let Some(job) = exact {
        return Ok(job);
    }
    if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ControlError::JobNotFound(id.to_owned()));
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM import_jobs WHERE substr(id, 1, ?2) = ?1 LIMIT 2"
        ))
        .map_err(ControlError::store("job_get"))?;
    let found: Vec<JobRecord> = stmt
        .query_map(params![id, id.len() as i64], row_to_job)
        .and_then(|rows| rows.collect())
        .map_err(ControlError::store("job_get"))?;
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one row")),
        0 => Err(ControlError::JobNotFound(id.to_owned())),
        _ => Err(ControlError::JobAmbiguous(id.to_owned())),
    }
}

/// The newest `limit` jobs, newest first.
pub fn list(conn: &Connection, limit: u32) -> Result<Vec<JobRecord>, ControlError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM import_jobs ORDER BY requested_at DESC, rowid DESC LIMIT ?1"
        ))
        .map_err(ControlError::store("job_list"))?;
    stmt.query_map(params![limit], row_to_job)
        .and_then(|rows| rows.collect())
        .map_err(ControlError::store("job_list"))
}

/// Jobs in `status`, oldest first.
pub fn in_status(conn: &Connection, status: JobStatus) -> Result<Vec<JobRecord>, ControlError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM import_jobs WHERE status = ?1 ORDER BY requested_at, rowid"
        ))
        .map_err(ControlError::store("job_list"))?;
    stmt.query_map(params![status.as_str()], row_to_job)
        .and_then(|rows| rows.collect())
        .map_err(ControlError::store("job_list"))
}

/// Start-up recovery: every job left `running` by a daemon that died is marked `failed` with
/// `daemon_restarted`. Returns the jobs so marked (for `auto_retry`).
pub fn fail_interrupted(conn: &Connection, now: i64) -> Result<Vec<JobRecord>, ControlError> {
    let mut failed = Vec::new();
    for job in in_status(conn, JobStatus::Running)? {
        failed.push(transition(
            conn,
            &job.id,
            JobStatus::Failed,
            Some((
                crate::protocol::Code::DaemonRestarted.as_str(),
                "the daemon stopped while the job was running",
            )),
            now,
        )?);
    }
    Ok(failed)
}
