//! `nex import status [--json]` and `nex import jobs [--json]`. With a daemon they ask it;
//! without one they read `nexus.db` read-only (jobs and the last runs still show).

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::control_ctx::{
    ControlArgs, Session, duration, fail, outln, print_json, runtime, table, when,
};
use super::import_ctl::{failed_total, job_line, source_problems, tail_line};
use super::sessions::{NO_SESSIONS_YET, ledger_is_empty};
use crate::control::health::{HealthState, RunStatus, StatusReport};
use crate::control::jobs::{self, JobRecord};
use crate::control::{ControlError, Request};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Print `{"daemon":StatusReport|null,"recent_jobs":[JobRecord…]}` (docs/control.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// How many jobs, newest first.
    /// At most this many jobs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print a JSON array of job records (`JobRecord`, docs/control.md).
    #[arg(long)]
    pub json: bool,
}

/// `nex import status --json`.
#[derive(Debug, Serialize)]
pub struct StatusOutput {
    /// The daemon's live status, `null` when no daemon runs.
    pub daemon: Option<StatusReport>,
    /// The newest jobs (10), from `nexus.db`.
    pub recent_jobs: Vec<JobRecord>,
}

/// Jobs straight from `nexus.db` (read-only; an absent file has none).
fn read_jobs(args: &ControlArgs, limit: u32) -> Result<Vec<JobRecord>, ControlError> {
    let paths = args.paths()?;
    if !paths.nexus.exists() {
        return Ok(Vec::new());
    }
    // Opening is lazy: a corrupt file shows at the first read. Either way the error names it.
    let unusable = |source| {
        ControlError::Ledger(crate::ledger::LedgerError::Open {
            path: paths.nexus.clone(),
            source,
        })
    };
    let conn = rusqlite::Connection::open_with_flags(
        &paths.nexus,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unusable)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(unusable)?;
    let has_table: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'import_jobs'",
            [],
            |r| r.get(0),
        )
        .map_err(unusable)?;
    if !has_table {
        return Ok(Vec::new());
    }
    jobs::list(&conn, limit)
}

async fn jobs_from(args: &ControlArgs, limit: u32) -> Result<Vec<JobRecord>, ControlError> {
    match Session::daemon(args).await? {
        Some(mut control) => control.call(Request::Jobs { limit }).await,
        None => {
            let args = args.clone();
            tokio::task::spawn_blocking(move || read_jobs(&args, limit))
                .await
                .map_err(|_| ControlError::StoreClosed)?
        }
    }
}

pub fn status(args: StatusArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let daemon = match Session::daemon(&args.control).await? {
            Some(mut control) => Some(control.call::<StatusReport>(Request::Status).await?),
            None => None,
        };
        let out = StatusOutput {
            daemon,
            recent_jobs: jobs_from(&args.control, 10).await?,
        };
        if args.json {
            print_json(&out);
        } else {
            print_status(&out);
            if first_run(&args.control, out.daemon.as_ref()).await {
                outln!("{NO_SESSIONS_YET}");
            }
        }
        Ok::<_, ControlError>(ExitCode::SUCCESS)
    })
    .unwrap_or_else(|e| fail(&e))
}

/// Whether the ledger (the daemon's, else this home's) holds no session yet.
async fn first_run(args: &ControlArgs, daemon: Option<&StatusReport>) -> bool {
    let ledger = match daemon {
        Some(d) => std::path::PathBuf::from(&d.ledger),
        None => match args.settings(false) {
            Ok(s) => s.paths.ledger,
            Err(_) => return false,
        },
    };
    tokio::task::spawn_blocking(move || ledger_is_empty(&ledger))
        .await
        .unwrap_or(false)
}

/// Idle sources: a caught-up tail whose newest data is older than this shows "no new data
/// since <time>" rather than a lag that only measures how long nothing happened.
const IDLE_AFTER_MS: i64 = 60_000;

/// The tail's freshness: `lag 2.1s` while data flows or the worker is behind, `no new data
/// since <time>` when it is caught up and the sources are idle.
pub fn freshness(run: &RunStatus) -> String {
    let caught_up = run.health == HealthState::Healthy;
    match (run.newest_event_at, run.lag_ms) {
        (Some(newest), Some(lag)) if caught_up && lag > IDLE_AFTER_MS => {
            format!("no new data since {}", when(Some(newest)))
        }
        (None, _) if caught_up => "no new data yet".to_owned(),
        (_, Some(lag)) => format!("lag {}", duration(lag)),
        (_, None) => "lag -".to_owned(),
    }
}

/// A time, or `-` when unknown.
fn when_or_dash(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| when(Some(ms)))
}

fn print_status(out: &StatusOutput) {
    let Some(d) = &out.daemon else {
        outln!("daemon: not running");
        if let Some(job) = out.recent_jobs.first() {
            outln!(
                "last job: {} {} (requested {})",
                job.id,
                job.status,
                when(Some(job.requested_at))
            );
        }
        return;
    };
    outln!(
        "daemon: pid {}, up {}, import {}, persona {}",
        d.pid,
        duration(crate::control::store::now_ms() - d.started_at),
        if d.import_enabled {
            "enabled"
        } else {
            "disabled"
        },
        d.persona
    );
    outln!("ledger: {}", d.ledger);
    outln!("tail: {}", tail_line(&d.tail));
    if let Some(run) = &d.tail.run {
        outln!(
            "  last frame {}, last commit {}, {}",
            when_or_dash(run.last_frame_at),
            when_or_dash(run.last_commit_at),
            freshness(run)
        );
        for line in source_problems(&run.counters) {
            outln!("{line}");
        }
    }
    if d.jobs.is_empty() {
        outln!("jobs: none active");
    }
    for job in &d.jobs {
        outln!("{}", job_line(job));
        for line in source_problems(&job.job.stats.counters) {
            outln!("{line}");
        }
    }
    if !d.rejects.is_empty() {
        let rejects: Vec<String> = d.rejects.iter().map(|(c, n)| format!("{c} {n}")).collect();
        outln!("rejects: {}", rejects.join(", "));
    }
}

pub fn jobs(args: JobsArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let jobs = jobs_from(&args.control, args.limit).await?;
        if args.json {
            print_json(&jobs);
        } else if jobs.is_empty() {
            if first_run(&args.control, None).await {
                outln!("{NO_SESSIONS_YET}");
            } else {
                outln!("no backfill jobs");
            }
        } else {
            // Sessions deleted by retract items (item rule 15): a column only when some job has.
            let retracted = jobs.iter().any(|j| j.stats.counters.retracted > 0);
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    let c = &j.stats.counters;
                    let mut row = vec![
                        j.id.chars().take(8).collect(),
                        j.status.to_string(),
                        when(Some(j.requested_at)),
                        match (j.started_at, j.completed_at) {
                            (Some(s), Some(e)) => duration(e - s),
                            (Some(s), None) => duration(crate::control::store::now_ms() - s),
                            _ => "-".to_owned(),
                        },
                        j.stats.attempts.to_string(),
                        c.imported.to_string(),
                        c.upserted.to_string(),
                        c.skipped.to_string(),
                        c.replayed.to_string(),
                        failed_total(c).to_string(),
                        j.error_code.clone().unwrap_or_else(|| "-".to_owned()),
                    ];
                    if retracted {
                        row.insert(row.len() - 1, c.retracted.to_string());
                    }
                    row
                })
                .collect();
            let mut header = vec![
                "JOB",
                "STATUS",
                "REQUESTED",
                "TOOK",
                "RUNS",
                "IMPORTED",
                "UPSERTED",
                "SKIPPED",
                "REPLAYED",
                "FAILED",
                "ERROR",
            ];
            if retracted {
                header.insert(header.len() - 1, "RETRACTED");
            }
            outln!("{}", table(&header, &rows));
            for j in &jobs {
                let problems = source_problems(&j.stats.counters);
                if !problems.is_empty() {
                    outln!("job {}:", j.id.chars().take(8).collect::<String>());
                    for line in problems {
                        outln!("{line}");
                    }
                }
            }
        }
        Ok::<_, ControlError>(ExitCode::SUCCESS)
    })
    .unwrap_or_else(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::health::RunPhase;
    use crate::control::store::now_ms;

    fn run(health: HealthState, newest_event_at: Option<i64>, lag_ms: Option<i64>) -> RunStatus {
        RunStatus {
            run_id: "r".into(),
            mode: "tail".into(),
            job_id: None,
            pid: Some(1),
            phase: RunPhase::Running,
            health,
            connected: true,
            started_at: 0,
            last_frame_at: None,
            last_health_at: None,
            last_commit_at: None,
            newest_event_at,
            lag_ms,
            counters: Default::default(),
            rejects: Default::default(),
        }
    }

    /// Regression: an idle tail showed `lag 13046h52m` beside `healthy`.
    #[test]
    fn an_idle_caught_up_tail_shows_when_data_last_came_not_a_lag() {
        let newest = now_ms() - 47_000_000_000;
        let idle = run(HealthState::Healthy, Some(newest), Some(47_000_000_000));
        assert_eq!(
            freshness(&idle),
            format!("no new data since {}", when(Some(newest)))
        );
        let flowing = run(HealthState::Healthy, Some(now_ms() - 2_000), Some(2_000));
        assert_eq!(freshness(&flowing), "lag 2.0s");
        let behind = run(HealthState::Degraded, Some(newest), Some(600_000));
        assert_eq!(freshness(&behind), "lag 10m00s");
        assert_eq!(
            freshness(&run(HealthState::Healthy, None, None)),
            "no new data yet"
        );
        assert_eq!(when_or_dash(None), "-");
    }
}
