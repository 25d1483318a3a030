//! Tail supervision: restarts after a failure with the adapter system's backoff, the `error`
//! state after too many, operator restart, and restarts visible in status.

use std::time::Duration;

use nex::control::ImportEvent;
use nex::control::health::{RunPhase, TailState, TailStatus};
use nex::control::{HostMode, Request};

use crate::control_support::{Home, Running, fake_worker, kill9};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn worker_that_stops_answering_probes_is_unresponsive_and_tail_restarts() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["mute"]).await;
    run.tail().await;
    let error_code = run.run_failed_code(WAIT).await;
    assert_eq!(error_code, "worker_unresponsive");
    let e = run
        .event(WAIT, |e| matches!(e, ImportEvent::RestartScheduled { .. }))
        .await;
    assert_eq!(
        e,
        ImportEvent::RestartScheduled {
            target: "tail".into(),
            restart: 1,
            delay_ms: 50
        }
    );
    run.stop().await;
}

#[tokio::test]
async fn kill9_of_the_tail_worker_restarts_it_within_a_probe_interval() {
    let home = Home::new();
    let mut run = Running::daemon(&home, &["tail"]).await;
    run.tail().await;
    let st = run
        .status_until(WAIT, |s| {
            s.tail
                .run
                .as_ref()
                .is_some_and(|r| r.phase == RunPhase::Running && r.pid.is_some())
        })
        .await;
    let pid = st.tail.run.unwrap().pid.unwrap();
    kill9(pid);
    let error_code = run.run_failed_code(WAIT).await;
    assert_eq!(error_code, "worker_exited");
    // Restarted (backoff 50 ms) and reflected in status within one probe interval (300 ms).
    let st = run
        .status_until(
            Duration::from_millis(300) + Duration::from_millis(500),
            |s| {
                s.tail.restarts == 1
                    && s.tail
                        .run
                        .as_ref()
                        .is_some_and(|r| r.pid.is_some_and(|p| p != pid))
            },
        )
        .await;
    assert_eq!(st.tail.state, TailState::Running);
    assert_eq!(st.tail.last_error.as_deref(), Some("worker_exited"));
    run.stop().await;
}

#[tokio::test]
async fn tail_backs_off_doubling_then_enters_error_until_restart() {
    let home = Home::new();
    let mut settings = home.settings(fake_worker(&["crash", "0"]));
    settings.restart.max_restarts = 3;
    let mut run = Running::start(settings, &home, HostMode::Daemon).await;
    run.tail().await;
    let mut delays = Vec::new();
    for _ in 0..3 {
        let e = run
            .event(WAIT, |e| matches!(e, ImportEvent::RestartScheduled { .. }))
            .await;
        let ImportEvent::RestartScheduled {
            delay_ms, restart, ..
        } = e
        else {
            unreachable!()
        };
        delays.push((restart, delay_ms));
    }
    assert_eq!(delays, vec![(1, 50), (2, 100), (3, 200)]);
    run.event(WAIT, |e| {
        matches!(e, ImportEvent::TailError { restarts: 3, .. })
    })
    .await;
    let st = run.status().await;
    assert_eq!(st.tail.state, TailState::Error);
    assert!(st.tail.run.is_none() && st.tail.next_restart_in_ms.is_none());
    // Operator restart clears the count and runs again.
    let t: TailStatus = run.handle.call(Request::Restart).await.unwrap();
    assert_eq!((t.state, t.restarts), (TailState::Running, 0));
    let e = run
        .event(WAIT, |e| matches!(e, ImportEvent::RestartScheduled { .. }))
        .await;
    assert!(matches!(
        e,
        ImportEvent::RestartScheduled { restart: 1, .. }
    ));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_backoff_follows_the_policy_in_virtual_time() {
    // A worker that cannot be spawned fails at once, so the only waits are the backoffs: with
    // paused time each restart happens exactly its delay after the failure.
    let home = Home::new();
    let mut settings =
        home.settings(nex::control::WorkerCommand::parse("/nonexistent/aix").unwrap());
    settings.restart = nex::control::policy::RestartPolicy::default();
    let mut run = Running::start(settings, &home, HostMode::Daemon).await;
    run.tail().await;
    let long = Duration::from_secs(3600);
    let mut seen = Vec::new();
    let mut last: Option<(tokio::time::Instant, u64)> = None;
    for _ in 0..5 {
        let e = run
            .event(long, |e| matches!(e, ImportEvent::RestartScheduled { .. }))
            .await;
        let ImportEvent::RestartScheduled {
            restart, delay_ms, ..
        } = e
        else {
            unreachable!()
        };
        let now = tokio::time::Instant::now();
        if let Some((at, delay)) = last {
            // The failure that scheduled this restart came right after the previous backoff.
            assert_eq!(now.duration_since(at), Duration::from_millis(delay));
        }
        last = Some((now, delay_ms));
        seen.push((restart, delay_ms));
    }
    assert_eq!(
        seen,
        vec![(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 16000)]
    );
    let e = run
        .event(long, |e| matches!(e, ImportEvent::TailError { .. }))
        .await;
    assert_eq!(
        e,
        ImportEvent::TailError {
            restarts: 5,
            // A program that is not there (issue 15: named as such, never retried by a job).
            error_code: "worker_program_missing".into()
        }
    );
    let (at, delay) = last.unwrap();
    assert_eq!(
        tokio::time::Instant::now().duration_since(at),
        Duration::from_millis(delay)
    );
    let st = run.status().await;
    assert_eq!((st.tail.state, st.tail.restarts), (TailState::Error, 5));
    // No timeout around the stop: in paused time it would fire while the store thread works.
    run.shutdown.cancel();
    run.task.await.unwrap();
}
