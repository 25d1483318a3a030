//! Supervised runs against the fake worker process: a job from queued to completed, workers
//! that never answer, cancellation, kill -9 recovery, restart backoff, shutdown.

use std::time::Duration;

use nex::control::ImportEvent;
use nex::control::health::{RunPhase, TailState};
use nex::control::jobs::{self, Enqueued, JobStatus};
use nex::control::{HostMode, Request};
use nex::ledger::runs as audit;
use nex::pipeline::FinalOutcome;

use crate::control_support::{
    CountingPipeline, Home, Running, alive, fake_worker, kill9, pid_files,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn backfill_job_goes_queued_running_completed_with_stats() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["backfill", "5"]).await;
    let enq = run.backfill().await;
    let id = enq.job.id.clone();
    let mut seen = Vec::new();
    while seen.last() != Some(&JobStatus::Completed) {
        let e = run
            .event(
                WAIT,
                |e| matches!(e, ImportEvent::JobStateChanged { job_id, .. } if *job_id == id),
            )
            .await;
        if let ImportEvent::JobStateChanged { from, to, .. } = e {
            seen.push(from.unwrap_or(to));
            if from.is_some() {
                seen.push(to);
            }
        }
    }
    seen.dedup();
    assert_eq!(
        seen,
        vec![JobStatus::Queued, JobStatus::Running, JobStatus::Completed]
    );
    let conn = home.conn();
    let job = jobs::get(&conn, &id).unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert!(job.started_at.is_some() && job.completed_at.is_some());
    assert_eq!(job.stats.counters.requests, 5);
    assert_eq!(job.stats.counters.total, Some(5));
    assert_eq!(job.stats.counters.emitted, Some(5));
    assert_eq!(job.stats.attempts, 1);
    let runs = audit::list(&conn, Some(&id), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert!(runs[0].worker_pid.is_some());
    assert_eq!(runs[0].stats.as_ref().unwrap().requests, 5);
    assert!(run.status().await.jobs.is_empty());
    // No pid file outlives its worker.
    let pid_files = pid_files(&home.paths.run_dir);
    assert_eq!(pid_files, 0);
    run.stop().await;
}

#[tokio::test]
async fn worker_that_never_answers_run_start_is_unresponsive() {
    let home = Home::new();
    let mut settings = home.settings(fake_worker(&["silent"]));
    settings.job_retry.max_restarts = 0;
    let mut run = Running::start(settings, &home, HostMode::Daemon).await;
    let enq = run.backfill().await;
    let failed = run
        .event(WAIT, |e| matches!(e, ImportEvent::RunFailed { .. }))
        .await;
    let ImportEvent::RunFailed {
        error_code,
        retryable,
        ..
    } = failed
    else {
        unreachable!()
    };
    assert_eq!(error_code, "worker_unresponsive");
    assert!(retryable);
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Failed).await;
    let job = jobs::get(&home.conn(), &enq.job.id).unwrap();
    assert_eq!(job.error_code.as_deref(), Some("worker_unresponsive"));
    run.stop().await;
}

#[tokio::test]
async fn cancelled_job_ends_cancelled_and_its_worker_is_gone() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["backfill", "1000", "0.05"]).await;
    let enq = run.backfill().await;
    let st = run.job_run_until(WAIT, |r| r.counters.requests >= 2).await;
    let pid = st.jobs[0].run.as_ref().unwrap().pid.unwrap();
    assert!(alive(pid));
    let _: serde_json::Value = run
        .handle
        .call(Request::Stop {
            target: Some(enq.job.id.clone()),
        })
        .await
        .unwrap();
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Cancelled)
        .await;
    let job = jobs::get(&home.conn(), &enq.job.id).unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.stats.counters.requests >= 2);
    assert!(!alive(pid), "worker {pid} still alive after cancel");
    // Cancelling a finished job is refused with its code.
    let err = run
        .handle
        .call::<serde_json::Value>(Request::Stop {
            target: Some(enq.job.id.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "job_transition_illegal");
    run.stop().await;
}

#[tokio::test]
async fn kill9_of_a_job_worker_retries_the_job() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["backfill", "30", "0.05"]).await;
    let enq = run.backfill().await;
    let st = run.job_run_until(WAIT, |r| r.counters.requests >= 1).await;
    kill9(st.jobs[0].run.as_ref().unwrap().pid.unwrap());
    run.event(
        WAIT,
        |e| matches!(e, ImportEvent::RestartScheduled { target, .. } if *target == enq.job.id),
    )
    .await;
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Completed)
        .await;
    let conn = home.conn();
    let job = jobs::get(&conn, &enq.job.id).unwrap();
    assert_eq!(job.stats.attempts, 2);
    assert!(job.stats.counters.requests >= 31, "{:?}", job.stats);
    let runs = audit::list(&conn, Some(&enq.job.id), 10).unwrap();
    let outcomes: Vec<_> = runs.iter().map(|r| r.outcome.clone().unwrap()).collect();
    assert_eq!(outcomes, vec!["completed", "failed"]);
    assert_eq!(runs[1].error_code.as_deref(), Some("worker_exited"));
    run.stop().await;
}

#[tokio::test]
async fn non_retryable_run_error_fails_the_job_with_the_workers_code() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["error", "false"]).await;
    let enq = run.backfill().await;
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Failed).await;
    let job = jobs::get(&home.conn(), &enq.job.id).unwrap();
    assert_eq!(job.error_code.as_deref(), Some("source_unreadable"));
    assert_eq!(job.stats.attempts, 1);
    run.stop().await;
}

#[tokio::test]
async fn shutdown_mid_backfill_stops_workers_and_the_next_start_completes_the_job() {
    let home = Home::new();
    let run = Running::daemon(&home, &["backfill", "1000", "0.02"]).await;
    let enq = run.backfill().await;
    let st = run.job_run_until(WAIT, |r| r.counters.requests >= 1).await;
    let pid = st.jobs[0].run.as_ref().unwrap().pid.unwrap();
    let started = std::time::Instant::now();
    run.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within shutdown_grace"
    );
    assert!(!alive(pid));
    let conn = home.conn();
    let job = jobs::get(&conn, &enq.job.id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("daemon_shutdown"));
    let runs = audit::list(&conn, Some(&enq.job.id), 10).unwrap();
    assert_eq!(runs[0].outcome.as_deref(), Some("cancelled"));

    let mut again = Running::daemon(&home, &["backfill", "3"]).await;
    let job_id = again.completed_job_id(WAIT).await;
    let retry = jobs::get(&conn, &job_id).unwrap();
    assert_eq!(retry.stats.retry_of.as_deref(), Some(enq.job.id.as_str()));
    again.stop().await;
}

#[tokio::test]
async fn import_disabled_keeps_the_control_plane_up_without_orchestration() {
    let home = Home::new();
    let mut settings = home.settings(fake_worker(&["tail"]));
    settings.import_enabled = false;
    settings.start_tail = true;
    let run = Running::start(settings, &home, HostMode::Daemon).await;
    let st = run.status().await;
    assert!(!st.import_enabled);
    assert_eq!(st.tail.state, TailState::Disabled);
    let err = run
        .handle
        .call::<Enqueued>(Request::Backfill { full: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "import_disabled");
    run.stop().await;
}

#[tokio::test]
async fn a_busy_pipeline_is_not_an_unresponsive_worker() {
    // Each batch takes 3 health timeouts to commit: probes go unanswered meanwhile, because
    // nothing is read, yet the worker is fine (TARGETS.md R6: a held write lock delays, fails
    // nothing).
    let home = Home::new();
    let pipeline = CountingPipeline {
        stall: Some(Duration::from_millis(1500)),
    };
    let mut run = Running::start_with(
        home.settings(fake_worker(&["backfill", "2"])),
        &home,
        HostMode::Daemon,
        pipeline,
    )
    .await;
    let enq = run.backfill().await;
    let e = run
        .event(WAIT, |e| {
            matches!(
                e,
                ImportEvent::RunFailed { .. } | ImportEvent::RunCompleted { .. }
            )
        })
        .await;
    assert!(
        matches!(
            e,
            ImportEvent::RunCompleted {
                outcome: FinalOutcome::Completed,
                ..
            }
        ),
        "{e:?}"
    );
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Completed)
        .await;
    run.stop().await;
}

#[tokio::test]
async fn run_start_carries_the_committed_cursors_unless_full() {
    use nex::control::ledger_pipeline::LedgerCursors;
    use nex::protocol::Cursor;
    let home = Home::new();
    let ledger = home.paths.ledger.clone();
    let conn = nex::ledger::open_agents(&ledger).unwrap();
    let cursors: Vec<Cursor> = (0..3)
        .map(|i| Cursor {
            key: format!("claude-code:/f{i}.jsonl"),
            value: serde_json::json!({"offset": i}),
        })
        .collect();
    nex::ledger::store_cursors(&conn, "aix", &cursors, "r0", 1).unwrap();
    // Another source's cursors are not handed over.
    nex::ledger::store_cursors(&conn, "other", &cursors[..1], "r0", 1).unwrap();
    drop(conn);
    let mut run = Running::start_full(
        home.settings(fake_worker(&["cursors"])),
        &home,
        HostMode::Daemon,
        CountingPipeline::default(),
        std::sync::Arc::new(LedgerCursors { path: ledger }),
    )
    .await;
    for (full, expected) in [(false, 3), (true, 0)] {
        let enq: Enqueued = run.handle.call(Request::Backfill { full }).await.unwrap();
        run.job_reaches(WAIT, &enq.job.id, JobStatus::Completed)
            .await;
        let job = jobs::get(&home.conn(), &enq.job.id).unwrap();
        assert_eq!(job.stats.counters.emitted, Some(expected), "full = {full}");
        assert_eq!(job.stats.full, full);
    }
    run.stop().await;
}

#[tokio::test]
async fn shutdown_kills_a_worker_that_ignores_stop_and_sigterm_within_the_grace() {
    let home = Home::new();
    let mut settings = home.settings(fake_worker(&["deaf"]));
    settings.timings.stop_grace = Duration::from_secs(5);
    settings.timings.kill_after = Duration::from_secs(5);
    settings.timings.shutdown_grace = Duration::from_secs(2);
    let run = Running::start(settings, &home, HostMode::Daemon).await;
    let enq = run.backfill().await;
    let st = run
        .job_run_until(WAIT, |r| r.phase == RunPhase::Running)
        .await;
    let pid = st.jobs[0].run.as_ref().unwrap().pid.unwrap();
    let started = std::time::Instant::now();
    run.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "the worker got its graceful time: {took:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "worker {pid} survived shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let conn = home.conn();
    let job = jobs::get(&conn, &enq.job.id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("daemon_shutdown"));
    let runs = audit::list(&conn, Some(&enq.job.id), 10).unwrap();
    assert_eq!(runs[0].error_code.as_deref(), Some("shutdown_timeout"));
}

#[tokio::test]
async fn a_backlog_excuses_silence_only_for_backlog_wait() {
    let home = Home::new();
    let mut settings = home.settings(fake_worker(&["backfill", "2"]));
    settings.timings.backlog_wait = Duration::from_millis(700);
    settings.job_retry.max_restarts = 0;
    let pipeline = CountingPipeline {
        stall: Some(Duration::from_secs(30)),
    };
    let mut run = Running::start_with(settings, &home, HostMode::Daemon, pipeline).await;
    let enq = run.backfill().await;
    let error_code = run.run_failed_code(WAIT).await;
    assert_eq!(error_code, "worker_unresponsive");
    run.job_reaches(WAIT, &enq.job.id, JobStatus::Failed).await;
    run.stop().await;
}
