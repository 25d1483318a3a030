//! Backfill jobs: the state machine, one active job per source, and recovery after a daemon
//! died with a job running.

use std::time::Duration;

use nex::control::jobs::{self, JobStats, JobStatus};
use nex::control::{HostMode, Request};

use crate::control_support::{Home, Running, fake_worker};

#[test]
fn state_machine_allows_exactly_the_seed_edges() {
    use JobStatus::*;
    let allowed = [
        (Queued, Running),
        (Queued, Cancelled),
        (Running, Completed),
        (Running, Failed),
        (Running, Cancelled),
    ];
    let home = Home::new();
    let mut conn = home.conn();
    for from in JobStatus::ALL {
        for to in JobStatus::ALL {
            let legal = allowed.contains(&(from, to));
            assert_eq!(from.can_transition(to), legal, "{from} -> {to}");
            // The persisted row obeys the same table: put a job in `from`, try `to`.
            conn.execute("DELETE FROM import_jobs", []).unwrap();
            let job = jobs::enqueue(&mut conn, "aix", JobStats::default(), 1)
                .unwrap()
                .job;
            conn.execute(
                "UPDATE import_jobs SET status = ?1 WHERE id = ?2",
                rusqlite::params![from.as_str(), job.id],
            )
            .unwrap();
            let r = jobs::transition(&conn, &job.id, to, None, 2);
            match r {
                Ok(rec) => {
                    assert!(legal, "{from} -> {to} was persisted");
                    assert_eq!(rec.status, to);
                }
                Err(e) => {
                    assert!(!legal, "{from} -> {to} refused: {e}");
                    assert_eq!(e.code(), "job_transition_illegal");
                    assert_eq!(jobs::get(&conn, &job.id).unwrap().status, from);
                }
            }
        }
    }
    // Timestamps and the error land with their transitions.
    conn.execute("DELETE FROM import_jobs", []).unwrap();
    let job = jobs::enqueue(&mut conn, "aix", JobStats::default(), 10)
        .unwrap()
        .job;
    assert_eq!(job.requested_at, 10);
    let job = jobs::transition(&conn, &job.id, Running, None, 11).unwrap();
    assert_eq!(job.started_at, Some(11));
    let job = jobs::transition(&conn, &job.id, Failed, Some(("worker_exited", "m")), 12).unwrap();
    assert_eq!(job.completed_at, Some(12));
    assert_eq!(job.error_code.as_deref(), Some("worker_exited"));
}

#[test]
fn one_active_job_per_source() {
    let home = Home::new();
    let mut conn = home.conn();
    let first = jobs::enqueue(&mut conn, "aix", JobStats::default(), 1).unwrap();
    assert!(first.created);
    let second = jobs::enqueue(&mut conn, "aix", JobStats::default(), 2).unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    // Another source scope is independent.
    assert!(
        jobs::enqueue(&mut conn, "other", JobStats::default(), 3)
            .unwrap()
            .created
    );
    // Once the job ends, a new one may be created.
    jobs::transition(&conn, &first.job.id, JobStatus::Cancelled, None, 4).unwrap();
    let third = jobs::enqueue(&mut conn, "aix", JobStats::default(), 5).unwrap();
    assert!(third.created);
    assert_ne!(third.job.id, first.job.id);
    // The database refuses a second active job even from a writer that skips the check.
    let dup = conn.execute(
        "INSERT INTO import_jobs (id, source, mode, status, requested_at) \
         VALUES ('dup', 'aix', 'backfill', 'queued', 6)",
        [],
    );
    assert!(dup.is_err());
    // Unique prefixes find jobs; unknown ids have their code.
    let prefix = &third.job.id[..8];
    assert_eq!(jobs::get(&conn, prefix).unwrap().id, third.job.id);
    assert_eq!(
        jobs::get(&conn, "ffffffff-none").unwrap_err().code(),
        "job_not_found"
    );
}

#[tokio::test]
async fn second_backfill_request_returns_the_active_job() {
    let home = Home::new();
    let settings = home.settings(fake_worker(&["backfill", "20", "0.05"]));
    let run = Running::start(settings, &home, HostMode::Daemon).await;
    let a = run.backfill().await;
    let b: jobs::Enqueued = run
        .handle
        .call(Request::Backfill { full: true })
        .await
        .unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.job.id, b.job.id);
    run.stop().await;
}

#[tokio::test]
async fn job_left_running_is_failed_daemon_restarted_and_retried() {
    let home = Home::new();
    let mut conn = home.conn();
    let old = jobs::enqueue(&mut conn, "aix", JobStats::default(), 1)
        .unwrap()
        .job;
    jobs::transition(&conn, &old.id, JobStatus::Running, None, 2).unwrap();
    conn.execute(
        "INSERT INTO import_runs (run_id, job_id, source, mode, started_at) \
         VALUES ('r-old', ?1, 'aix', 'backfill', 2)",
        [&old.id],
    )
    .unwrap();
    let settings = home.settings(fake_worker(&["backfill", "2"]));
    let mut run = Running::start(settings, &home, HostMode::Daemon).await;
    let old_now = jobs::get(&conn, &old.id).unwrap();
    assert_eq!(old_now.status, JobStatus::Failed);
    assert_eq!(old_now.error_code.as_deref(), Some("daemon_restarted"));
    let (outcome, code): (String, String) = conn
        .query_row(
            "SELECT outcome, error_code FROM import_runs WHERE run_id = 'r-old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (outcome.as_str(), code.as_str()),
        ("failed", "daemon_restarted")
    );
    let job_id = run.completed_job_id(Duration::from_secs(10)).await;
    let retry = jobs::get(&conn, &job_id).unwrap();
    assert_ne!(retry.id, old.id);
    assert_eq!(retry.stats.retry_of.as_deref(), Some(old.id.as_str()));
    assert_eq!(retry.stats.counters.requests, 2);
    run.stop().await;
}

#[tokio::test]
async fn without_auto_retry_an_interrupted_job_stays_failed() {
    let home = Home::new();
    let mut conn = home.conn();
    let old = jobs::enqueue(&mut conn, "aix", JobStats::default(), 1)
        .unwrap()
        .job;
    jobs::transition(&conn, &old.id, JobStatus::Running, None, 2).unwrap();
    let mut settings = home.settings(fake_worker(&["backfill", "1"]));
    settings.auto_retry = false;
    let run = Running::start(settings, &home, HostMode::Daemon).await;
    assert_eq!(jobs::get(&conn, &old.id).unwrap().status, JobStatus::Failed);
    assert!(run.status().await.jobs.is_empty());
    assert_eq!(jobs::list(&conn, 10).unwrap().len(), 1);
    run.stop().await;
}
