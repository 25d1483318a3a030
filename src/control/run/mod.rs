//! One run, start to end: spawn the worker, send `run.start` with the committed cursors, feed
//! its stdout to the pipeline, probe its health, stop it on request (`run.stop`, then SIGTERM
//! after `stop_grace`, then SIGKILL after `kill_after`), and classify how it ended.
//!
//! A run task reports to the supervisor through [`RunUpdate`]s and returns the run's
//! [`RunEnding`]: the pipeline's report classified once, with what the task knows of why it
//! stopped ([`StopFacts`]), and recorded in `import_runs` before it is returned. It owns no
//! shared state.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::config::ControlSettings;
use super::health::{HealthState, RunPhase, worker_lag_ms};
use super::port::{Backlog, CursorSource, RunInfo, RunPipeline, RunSignal};
use super::store::now_ms;
use super::worker::{StopSignal, Worker};
use crate::ledger::runs::{self, AuditConfig};
use crate::pipeline::{CommittedCounters, RunCounters, RunEnding, RunReport, StopFacts, StreamEnd};
use crate::protocol::{Code, ControlFrame, HealthStatus, RunProgress, RunStart, RunStop};

/// What the supervisor needs to run runs.
pub struct RunDeps {
    pub settings: Arc<ControlSettings>,
    pub pipeline: Arc<dyn RunPipeline>,
    pub cursors: Arc<dyn CursorSource>,
}

/// One run to start.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub info: RunInfo,
    /// Ignore stored cursors (`nex import backfill --full`).
    pub full: bool,
    /// `run.start.options`.
    pub options: Value,
}

/// Progress of a run as its task sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunUpdate {
    Spawned {
        pid: u32,
    },
    Phase(RunPhase),
    /// The worker wrote a line (throttled to one update per second).
    Activity {
        at: i64,
    },
    Health {
        state: HealthState,
        connected: bool,
        worker_lag_ms: Option<i64>,
        at: i64,
    },
    Progress(RunProgress),
    Committed {
        counters: CommittedCounters,
        newest_event_at: Option<i64>,
        at: i64,
    },
    Rejected {
        code: String,
        seq: Option<u64>,
    },
}

/// Sends one update; a supervisor that is gone is not the run's problem.
async fn report(tx: &mpsc::Sender<(String, RunUpdate)>, run_id: &str, u: RunUpdate) {
    let _ = tx.send((run_id.to_owned(), u)).await;
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs `spec` to its end.
///
/// `stop` asks for a graceful stop: its value becomes `run.stop.reason`. `abort` is the hard
/// stop (shutdown deadline): the worker is killed and the pipeline cancelled; the end is
/// `shutdown_timeout` unless the run had already been asked to stop.
pub async fn run(
    deps: Arc<RunDeps>,
    spec: RunSpec,
    updates: mpsc::Sender<(String, RunUpdate)>,
    mut stop: watch::Receiver<Option<String>>,
    abort: CancellationToken,
) -> RunEnding {
    let settings = &deps.settings;
    let t = &settings.timings;
    let run_id = spec.info.run_id.clone();
    let cursors = if spec.full {
        Vec::new()
    } else {
        match deps.cursors.load(&spec.info.source).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(run_id = %run_id, error = %e, "cannot load cursors");
                return RunEnding::failed(Code::CursorLoadFailed, "cannot load cursors");
            }
        }
    };
    let mut env = Vec::new();
    if let Some(dir) = &settings.sources.claude_config_dir {
        env.push(("CLAUDE_CONFIG_DIR".to_owned(), dir.clone()));
    }
    if let Some(dir) = &settings.sources.codex_home {
        env.push(("CODEX_HOME".to_owned(), dir.clone()));
    }
    let (mut worker, stdout) =
        match Worker::spawn(&settings.worker, &env, &settings.paths.run_dir, &run_id) {
            Ok(w) => w,
            Err(e) => {
                // A program that is not there (or not executable) will not be there at a retry:
                // one clear error, not retried.
                let missing = matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                );
                let code = if missing {
                    Code::WorkerProgramMissing
                } else {
                    Code::WorkerSpawnFailed
                };
                let program = settings.worker.program.display();
                tracing::warn!(run_id = %run_id, program = %program,
                    error = %e, error_code = code.as_str(), "cannot spawn worker");
                return RunEnding::failed(
                    code,
                    &format!("cannot start the worker program {program}: {e}"),
                );
            }
        };
    let pid = worker.pid;
    tracing::info!(run_id = %run_id, mode = spec.info.mode.as_str(), pid, cursors = cursors.len(), "run started");
    report(&updates, &run_id, RunUpdate::Spawned { pid }).await;

    let start = ControlFrame::RunStart(RunStart {
        mode: spec.info.mode,
        source: spec.info.source.clone(),
        persona_id: Some(spec.info.persona_id.clone()),
        cursors,
        options: Some(spec.options.clone()),
    });
    let mut sup = Supervision::new(&run_id, t);
    sup.send(&mut worker, &start).await;
    sup.send(&mut worker, &ControlFrame::HealthProbe).await;

    let (sig_tx, mut sig_rx) = mpsc::channel(256);
    let pipeline_cancel = abort.child_token();
    let backlog = Arc::new(Backlog::default());
    let started_at = now_ms();
    let mut info = spec.info.clone();
    let audit = AuditConfig {
        nexus_path: settings.paths.nexus.clone(),
        job_id: info.job_id.clone(),
        source: info.source.clone(),
        mode: info.mode.as_str().to_owned(),
        worker_pid: Some(pid),
    };
    info.audit = Some(audit.clone());
    let mut pipeline = deps.pipeline.run(
        info,
        stdout,
        sig_tx,
        backlog.clone(),
        pipeline_cancel.clone(),
    );
    let mut sig_open = true;
    let mut aborted = false;
    let mut stop_reason: Option<String> = None;
    let pipeline_report = loop {
        tokio::select! {
            done = &mut pipeline => break done,
            sig = sig_rx.recv(), if sig_open => match sig {
                Some(sig) => sup.on_signal(sig, &updates).await,
                None => sig_open = false,
            },
            changed = stop.changed(), if stop_reason.is_none() => {
                let reason = match changed {
                    Ok(()) => stop.borrow().clone(),
                    // The supervisor is gone: stop.
                    Err(_) => Some("supervisor_gone".to_owned()),
                };
                if let Some(reason) = reason {
                    stop_reason = Some(reason.clone());
                    sup.begin_stop(&mut worker, reason, &updates).await;
                }
            }
            _ = abort.cancelled(), if !aborted => {
                aborted = true;
                worker.signal(StopSignal::Kill);
                sup.abandon_at = Some(Instant::now() + t.kill_after);
            }
            _ = until(sup.start_deadline) => {
                sup.start_deadline = None;
                sup.unresponsive(&worker, "no frame within start_timeout");
            }
            _ = until(sup.probe_at) => {
                sup.probe_at = None;
                sup.send(&mut worker, &ControlFrame::HealthProbe).await;
                sup.probe_deadline = Some(Instant::now() + t.health_timeout);
            }
            _ = until(sup.probe_deadline) => {
                let excused_since = *sup.backlog_since.get_or_insert_with(Instant::now);
                if backlog.pending() > 0 && excused_since.elapsed() < t.backlog_wait {
                    // The pipeline is not reading (busy ledger): the answer may be waiting in
                    // the pipe. The ledger writer's own timeout bounds this wait.
                    tracing::debug!(run_id = %run_id, pending = backlog.pending(),
                        "probe deadline extended: pipeline backlog");
                    sup.probe_deadline = Some(Instant::now() + t.health_timeout);
                } else {
                    sup.probe_deadline = None;
                    sup.unresponsive(&worker, "health probe not answered within health_timeout");
                }
            }
            _ = until(sup.term_at) => {
                sup.term_at = None;
                worker.signal(StopSignal::Term);
                sup.kill_at = Some(Instant::now() + t.kill_after);
            }
            _ = until(sup.kill_at) => {
                sup.kill_at = None;
                worker.signal(StopSignal::Kill);
                sup.abandon_at = Some(Instant::now() + t.kill_after);
            }
            _ = until(sup.abandon_at) => {
                // The worker is dead but its stdout is still open (a leaked descriptor): stop
                // reading; what was read is committed.
                sup.abandon_at = None;
                pipeline_cancel.cancel();
            }
            status = worker.wait(), if !worker.has_exited() => {
                if let Ok(status) = status {
                    tracing::debug!(run_id = %run_id, pid, code = status.code(), "worker exited");
                }
            }
        }
    };
    // Classified and recorded as of the pipeline's end, before the process is finished: what
    // happens meanwhile (a worker slow to die, the shutdown deadline) does not change how the
    // run ended, and cannot keep it from its record.
    let stops = StopFacts {
        forced: sup.forced,
        stop_requested: stop_reason.is_some(),
        aborted: aborted || abort.is_cancelled(),
    };
    let ending = end_run(&run_id, audit, started_at, pipeline_report, stops).await;
    report(&updates, &run_id, RunUpdate::Phase(RunPhase::Stopping)).await;
    finish_process(&mut worker, t, aborted || sup.forced.is_some()).await;
    tracing::info!(run_id = %run_id, outcome = ending.outcome.as_str(),
        error_code = ending.error_code.as_ref().map(|c| c.as_str()),
        items = ending.counters.items(), "run ended");
    ending
}

/// Classifies the pipeline's end and records it in `import_runs`. A trail that cannot be
/// written fails the run `ledger_write_failed` (what it committed stays committed).
async fn end_run(
    run_id: &str,
    audit: AuditConfig,
    started_at: i64,
    report: RunReport,
    stops: StopFacts,
) -> RunEnding {
    let counters = report.counters;
    let ending = report.end.classify(Some(stops), (&counters).into());
    match record_end(run_id, audit, started_at, &counters, &ending).await {
        Ok(()) => ending,
        Err(e) => {
            tracing::warn!(run_id, error_code = %e, "audit row of an ended run not written");
            let failed = StreamEnd::Failed {
                code: Code::LedgerWriteFailed,
                message: "audit trail write failed".to_owned(),
            };
            failed.classify(Some(stops), ending.counters)
        }
    }
}

async fn record_end(
    run_id: &str,
    audit: AuditConfig,
    started_at: i64,
    counters: &RunCounters,
    ending: &RunEnding,
) -> Result<(), &'static str> {
    let (run_id, counters, ending) = (run_id.to_owned(), counters.clone(), ending.clone());
    tokio::task::spawn_blocking(move || {
        runs::record_end(&audit, &run_id, started_at, now_ms(), &counters, &ending)
    })
    .await
    .map_err(|_| Code::InternalPanic.as_str())?
    .map_err(|e| e.code().as_str())
}

/// Ends the process after the pipeline ended: close stdin, give it `stop_grace` to exit, then
/// SIGTERM, then SIGKILL. `hurry` skips the grace (it was already being killed).
async fn finish_process(worker: &mut Worker, t: &super::config::Timings, hurry: bool) {
    worker.close_stdin();
    if worker.has_exited() {
        return;
    }
    let grace = if hurry { Duration::ZERO } else { t.stop_grace };
    if tokio::time::timeout(grace, worker.wait()).await.is_ok() {
        return;
    }
    worker.signal(StopSignal::Term);
    if tokio::time::timeout(t.kill_after, worker.wait())
        .await
        .is_ok()
    {
        return;
    }
    worker.signal(StopSignal::Kill);
    let _ = tokio::time::timeout(t.kill_after, worker.wait()).await;
}

/// The run's timers and health bookkeeping.
struct Supervision<'a> {
    run_id: &'a str,
    t: &'a super::config::Timings,
    started: bool,
    health: HealthState,
    start_deadline: Option<Instant>,
    probe_at: Option<Instant>,
    probe_deadline: Option<Instant>,
    term_at: Option<Instant>,
    kill_at: Option<Instant>,
    abandon_at: Option<Instant>,
    forced: Option<&'static str>,
    /// Since when unanswered probes have been excused by a pipeline backlog.
    backlog_since: Option<Instant>,
    /// `run.stop` was sent: no more probes.
    stopping: bool,
    last_activity_sent: Option<Instant>,
}

impl<'a> Supervision<'a> {
    fn new(run_id: &'a str, t: &'a super::config::Timings) -> Self {
        Supervision {
            run_id,
            t,
            started: false,
            health: HealthState::Unknown,
            start_deadline: Some(Instant::now() + t.start_timeout),
            probe_at: None,
            probe_deadline: None,
            term_at: None,
            kill_at: None,
            abandon_at: None,
            forced: None,
            backlog_since: None,
            stopping: false,
            last_activity_sent: None,
        }
    }

    /// Probing applies while the run is neither stopping nor being killed.
    fn supervising(&self) -> bool {
        !self.stopping && self.forced.is_none()
    }

    /// Writes a control frame, bounded by `health_timeout` (a worker that does not read its
    /// stdin must not stall supervision). A failed write is logged; the worker's exit or
    /// silence is what ends the run.
    async fn send(&self, worker: &mut Worker, frame: &ControlFrame) {
        let line = frame.encode(self.run_id);
        match tokio::time::timeout(self.t.health_timeout, worker.send(&line)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(run_id = %self.run_id, error = %e, "control frame not delivered")
            }
            Err(_) => tracing::debug!(run_id = %self.run_id, "control frame write timed out"),
        }
    }

    async fn on_signal(&mut self, sig: RunSignal, updates: &mpsc::Sender<(String, RunUpdate)>) {
        let now = Instant::now();
        // Any line proves the worker alive: it answers the start and any outstanding probe
        // (a busy worker's reply may queue behind its import frames).
        if !self.started {
            self.started = true;
            self.start_deadline = None;
            report(updates, self.run_id, RunUpdate::Phase(RunPhase::Running)).await;
        }
        let answered = self.probe_deadline.take().is_some();
        if answered {
            self.backlog_since = None;
        }
        if self.supervising() && (answered || self.probe_at.is_none()) {
            self.probe_at = Some(now + self.health.probe_interval(self.t));
        }
        let throttle = Duration::from_secs(1);
        if self
            .last_activity_sent
            .is_none_or(|at| now.duration_since(at) >= throttle)
        {
            self.last_activity_sent = Some(now);
            report(updates, self.run_id, RunUpdate::Activity { at: now_ms() }).await;
        }
        match sig {
            RunSignal::FrameSeen => {}
            RunSignal::Health(status) => self.on_health(&status, updates).await,
            RunSignal::Progress(p) => report(updates, self.run_id, RunUpdate::Progress(p)).await,
            RunSignal::Committed {
                counters,
                newest_event_at,
            } => {
                let u = RunUpdate::Committed {
                    counters,
                    newest_event_at,
                    at: now_ms(),
                };
                report(updates, self.run_id, u).await;
            }
            RunSignal::Rejected { code, seq } => {
                report(updates, self.run_id, RunUpdate::Rejected { code, seq }).await;
            }
        }
    }

    async fn on_health(
        &mut self,
        status: &HealthStatus,
        updates: &mpsc::Sender<(String, RunUpdate)>,
    ) {
        let state = HealthState::classify(status, self.t.stale_after);
        if self.supervising() {
            self.probe_at = Some(Instant::now() + state.probe_interval(self.t));
        }
        self.health = state;
        let u = RunUpdate::Health {
            state,
            connected: status.connected,
            worker_lag_ms: worker_lag_ms(status),
            at: now_ms(),
        };
        report(updates, self.run_id, u).await;
    }

    /// The worker did not answer: end the run `worker_unresponsive` (SIGTERM now, SIGKILL
    /// after `kill_after`).
    fn unresponsive(&mut self, worker: &Worker, why: &'static str) {
        if self.forced.is_some() {
            return;
        }
        tracing::warn!(run_id = %self.run_id, pid = worker.pid,
            error_code = Code::WorkerUnresponsive.as_str(), why, "worker unresponsive");
        self.forced = Some(why);
        self.probe_at = None;
        self.probe_deadline = None;
        self.start_deadline = None;
        worker.signal(StopSignal::Term);
        self.term_at = None;
        self.kill_at = Some(Instant::now() + self.t.kill_after);
    }

    /// Graceful stop: `run.stop`, SIGTERM after `stop_grace`.
    async fn begin_stop(
        &mut self,
        worker: &mut Worker,
        reason: String,
        updates: &mpsc::Sender<(String, RunUpdate)>,
    ) {
        report(updates, self.run_id, RunUpdate::Phase(RunPhase::Stopping)).await;
        let frame = ControlFrame::RunStop(RunStop {
            reason: Some(reason),
        });
        self.send(worker, &frame).await;
        self.stopping = true;
        // A stopping worker is not probed: its silence is expected.
        self.start_deadline = None;
        self.probe_at = None;
        self.probe_deadline = None;
        if self.term_at.is_none() && self.kill_at.is_none() {
            self.term_at = Some(Instant::now() + self.t.stop_grace);
        }
    }
}
