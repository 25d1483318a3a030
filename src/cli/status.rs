//! `nex import status [--json]` and `nex import jobs [--json]`. With a daemon they ask it;
//! without one they read `nexus.db` read-only (jobs and the last runs still show).

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::control_ctx::{
    ControlArgs, Session, duration, fail, outln, print_json, runtime, table, when,
};
use super::import_ctl::{failed_total, job_line, source_problems, tail_line};
use crate::control::health::StatusReport;
use crate::control::jobs::{self, JobRecord};
use crate::control::{ControlError, Request};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// How many jobs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
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
        }
        Ok::<_, ControlError>(ExitCode::SUCCESS)
    })
    .unwrap_or_else(|e| fail(&e))
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
            "  last frame {}, last commit {}, lag {}",
            when(run.last_frame_at),
            when(run.last_commit_at),
            run.lag_ms.map_or("-".into(), duration)
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
            outln!("no backfill jobs");
        } else {
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    let c = &j.stats.counters;
                    vec![
                        j.id.chars().take(8).collect(),
                        j.status.to_string(),
                        when(Some(j.requested_at)),
                        match (j.started_at, j.completed_at) {
                            (Some(s), Some(e)) => duration(e - s),
                            (Some(s), None) => duration(crate::control::store::now_ms() - s),
                            _ => String::new(),
                        },
                        j.stats.attempts.to_string(),
                        c.imported.to_string(),
                        c.upserted.to_string(),
                        c.skipped.to_string(),
                        failed_total(c).to_string(),
                        j.error_code.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            outln!(
                "{}",
                table(
                    &[
                        "JOB",
                        "STATUS",
                        "REQUESTED",
                        "TOOK",
                        "RUNS",
                        "IMPORTED",
                        "UPSERTED",
                        "SKIPPED",
                        "FAILED",
                        "ERROR"
                    ],
                    &rows
                )
            );
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
