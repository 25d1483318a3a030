//! The supervisor actor: owns every run (a `JoinSet` of run tasks, a stop channel and an abort
//! token per run, children of one root), the tail's restart state and the active backfill
//! jobs. Everything else talks to it through a [`ControlHandle`] (bounded channel, oneshot
//! replies); nothing is shared.
//!
//! Shutdown, in three parts: signal (the shutdown token, or every handle dropped),
//! propagate (`run.stop` to every run), wait (join every run within `shutdown_grace`, then kill
//! and abort stragglers, recorded `shutdown_timeout`).
//!
//! Layout: this file holds the actor, its loop, commands and run spawning; `backfill` the jobs
//! (enqueue, start, cancel); `outcomes` the reactions to run updates, run ends, timers and
//! shutdown; `status` the views it answers with.

mod backfill;
mod outcomes;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::{Pong, Request, Response, Stopped};
use super::error::ControlError;
use super::health::{HealthState, RunPhase, RunStatus, TailState};
use super::jobs::{self, JobRecord, JobStats, JobStatus};
use super::policy::RestartTracker;
use super::port::RunInfo;
use super::run::{self, RunDeps, RunSpec, RunUpdate};
use super::store::{NexusStore, now_ms};
use crate::ledger::runs;
use crate::pipeline::{Bus, ImportEvent, RunEnding};
use crate::protocol::{Code, RunMode, SOURCE_AIX};

/// Whether the supervisor serves a daemon or one CLI invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    Daemon,
    InProcess,
}

/// A handle to the supervisor. Cloning is cheap; the supervisor stops when asked or when the
/// shutdown token fires, not when handles are dropped.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Command>,
}

struct Command {
    request: Request,
    reply: oneshot::Sender<Response>,
}

impl ControlHandle {
    /// Sends `request` and awaits the answer.
    ///
    /// Errors (inside the response): `shutting_down` once the supervisor stopped.
    pub async fn request(&self, request: Request) -> Response {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command { request, reply }).await.is_err() {
            return Response::error(&ControlError::ShuttingDown);
        }
        rx.await
            .unwrap_or_else(|_| Response::error(&ControlError::ShuttingDown))
    }

    /// Typed [`ControlHandle::request`].
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: Request,
    ) -> Result<T, ControlError> {
        self.request(request).await.into_result()
    }
}

/// What a run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunKind {
    Tail,
    Job(String),
}

struct ActiveRun {
    kind: RunKind,
    status: RunStatus,
    stop: watch::Sender<Option<String>>,
}

struct Tail {
    state: TailState,
    tracker: RestartTracker,
    next_at: Option<Instant>,
    run_id: Option<String>,
    last_error: Option<String>,
    /// `nex import tail --once`: one run, no restart.
    once: bool,
    /// A `restart` request waits for the current run to stop, then starts a new one.
    restart_pending: bool,
}

struct ActiveJob {
    record: JobRecord,
    run_id: Option<String>,
    /// Counters of this job's finished runs (retries add up).
    base: crate::pipeline::CommittedCounters,
    tracker: RestartTracker,
    next_at: Option<Instant>,
    cancel_requested: bool,
    last_stats_write: Option<Instant>,
}

/// The actor.
pub struct Supervisor {
    deps: Arc<RunDeps>,
    store: NexusStore,
    bus: Bus,
    mode: HostMode,
    started_at: i64,
    rx: mpsc::Receiver<Command>,
    updates_tx: mpsc::Sender<(String, RunUpdate)>,
    updates_rx: mpsc::Receiver<(String, RunUpdate)>,
    tasks: JoinSet<RunEnding>,
    task_runs: HashMap<tokio::task::Id, String>,
    runs: HashMap<String, ActiveRun>,
    tail: Tail,
    jobs: BTreeMap<String, ActiveJob>,
    rejects: BTreeMap<String, u64>,
    abort_root: CancellationToken,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// Starts the supervisor on the current runtime. When import is enabled it first recovers
    /// from a previous daemon (orphan workers killed, unfinished runs and `running` jobs marked
    /// `daemon_restarted`, interrupted jobs retried when `auto_retry` is on, queued jobs
    /// started) and, for a daemon with `start_tail`, starts the tail.
    ///
    /// The returned task ends once `shutdown` is cancelled (or every [`ControlHandle`] is
    /// dropped) and every run has stopped, within `shutdown_grace`.
    ///
    /// Errors: the runtime store's, during recovery.
    pub async fn start(
        deps: RunDeps,
        store: NexusStore,
        bus: Bus,
        mode: HostMode,
        shutdown: CancellationToken,
    ) -> Result<(ControlHandle, tokio::task::JoinHandle<()>), ControlError> {
        let (tx, rx) = mpsc::channel(32);
        let (updates_tx, updates_rx) = mpsc::channel(1024);
        let enabled = deps.settings.import_enabled;
        let mut sup = Supervisor {
            deps: Arc::new(deps),
            store,
            bus,
            mode,
            started_at: now_ms(),
            rx,
            updates_tx,
            updates_rx,
            tasks: JoinSet::new(),
            task_runs: HashMap::new(),
            runs: HashMap::new(),
            tail: Tail {
                state: if enabled {
                    TailState::Stopped
                } else {
                    TailState::Disabled
                },
                tracker: RestartTracker::default(),
                next_at: None,
                run_id: None,
                last_error: None,
                once: false,
                restart_pending: false,
            },
            jobs: BTreeMap::new(),
            rejects: BTreeMap::new(),
            abort_root: CancellationToken::new(),
            shutdown,
        };
        if enabled {
            sup.recover().await?;
            if mode == HostMode::Daemon && sup.deps.settings.start_tail {
                sup.start_tail(false);
            }
        }
        let task = tokio::spawn(sup.run());
        Ok((ControlHandle { tx }, task))
    }

    async fn recover(&mut self) -> Result<(), ControlError> {
        let run_dir = self.deps.settings.paths.run_dir.clone();
        let killed = tokio::task::spawn_blocking(move || super::worker::reap_orphans(&run_dir))
            .await
            .unwrap_or(0);
        let now = now_ms();
        let auto_retry = self.deps.settings.auto_retry;
        let (runs, failed, queued, retry) = self
            .store
            .call(move |conn| {
                let runs = runs::fail_interrupted(conn, now)
                    .map_err(ControlError::store("run_recover"))?;
                let failed = jobs::fail_interrupted(conn, now)?;
                let queued = jobs::in_status(conn, JobStatus::Queued)?;
                // The newest job of the source decides: interrupted (crash or shutdown) and
                // not yet retried -> retry.
                let newest = jobs::list(conn, 1)?.into_iter().next();
                let retry = newest.filter(|j| {
                    auto_retry
                        && j.status == JobStatus::Failed
                        && matches!(
                            j.error_code.as_deref().and_then(Code::parse),
                            Some(Code::DaemonRestarted | Code::DaemonShutdown)
                        )
                });
                Ok((runs, failed, queued, retry))
            })
            .await?;
        tracing::info!(
            orphans_killed = killed,
            runs_interrupted = runs,
            jobs_interrupted = failed.len(),
            "control plane recovered"
        );
        for job in &failed {
            self.publish(ImportEvent::JobStateChanged {
                job_id: job.id.clone(),
                from: Some(JobStatus::Running),
                to: JobStatus::Failed,
                error_code: job.error_code.clone(),
            });
        }
        for job in queued {
            self.adopt_job(job);
        }
        if let Some(old) = retry
            && self.jobs.is_empty()
        {
            let stats = JobStats {
                full: old.stats.full,
                retry_of: Some(old.id.clone()),
                ..JobStats::default()
            };
            let enq = self.enqueue(stats).await?;
            tracing::info!(job_id = %enq.job.id, retry_of = %old.id, "interrupted job retried");
        }
        Ok(())
    }

    async fn run(mut self) {
        loop {
            let next_wakeup = self.next_wakeup();
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        let response = self.handle(cmd.request).await;
                        let _ = cmd.reply.send(response);
                    }
                    None => break,
                },
                Some((run_id, update)) = self.updates_rx.recv() => self.on_update(&run_id, update).await,
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    let (id, result) = match joined {
                        Ok((id, r)) => (id, r),
                        Err(e) => (e.id(), panicked()),
                    };
                    if let Some(run_id) = self.task_runs.remove(&id) {
                        self.on_run_end(run_id, result).await;
                    }
                }
                _ = sleep_until_opt(next_wakeup) => self.on_timer().await,
            }
        }
        self.stop_all().await;
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter_map(|j| j.next_at)
            .chain(self.tail.next_at)
            .min()
    }

    async fn handle(&mut self, request: Request) -> Response {
        let enabled = self.deps.settings.import_enabled;
        match request {
            Request::Ping => Response::from_result(Ok(Pong {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })),
            Request::Status => Response::from_result(Ok(self.status())),
            Request::Watch => Response::error(&ControlError::BadRequest(
                "watch is served by the control socket".into(),
            )),
            Request::Shutdown => Response::error(&ControlError::BadRequest(
                "shutdown is served by the daemon's control socket".into(),
            )),
            Request::Jobs { limit } => {
                let r = self.store.call(move |c| jobs::list(c, limit)).await;
                Response::from_result(r)
            }
            Request::Job { id } => Response::from_result(self.job_view(id).await),
            Request::Backfill { .. }
            | Request::Tail { .. }
            | Request::Stop { .. }
            | Request::Restart
                if !enabled =>
            {
                Response::error(&ControlError::ImportDisabled)
            }
            Request::Backfill { full } => {
                let stats = JobStats {
                    full,
                    ..JobStats::default()
                };
                Response::from_result(self.enqueue(stats).await)
            }
            Request::Tail { once } => {
                self.request_tail(once);
                Response::from_result(Ok(self.tail_status()))
            }
            Request::Stop { target } => match target.as_deref() {
                None | Some("tail") => {
                    self.stop_tail("operator");
                    Response::from_result(Ok(Stopped::Tail {
                        tail: self.tail_status(),
                    }))
                }
                Some(id) => Response::from_result(
                    self.cancel_job(id.to_owned())
                        .await
                        .map(|job| Stopped::Job { job }),
                ),
            },
            Request::Restart => {
                self.tail.tracker.reset();
                self.tail.last_error = None;
                match self.tail.run_id.clone() {
                    Some(run_id) => {
                        // The new run starts when this one has stopped.
                        self.tail.restart_pending = true;
                        self.tail.state = TailState::Running;
                        self.request_stop(&run_id, "restart");
                    }
                    None => {
                        self.tail.next_at = None;
                        self.start_tail(false);
                    }
                }
                Response::from_result(Ok(self.tail_status()))
            }
        }
    }

    /// A `tail` request: afterwards the tail is running, or restarting after a failure. A run
    /// still stopping after `stop` (its worker draining) is followed by a new run as soon as it
    /// ends, as for `restart`; without this a `stop` just before `tail` left the tail stopped.
    fn request_tail(&mut self, once: bool) {
        match (&self.tail.run_id, self.tail.state) {
            // Running, or about to be replaced by `restart`: nothing to do.
            (Some(_), TailState::Running) => {}
            (Some(_), _) => {
                self.tail.tracker.reset();
                self.tail.once = once;
                self.tail.restart_pending = true;
                self.tail.state = TailState::Running;
            }
            // Waiting for a restart after a failure: it comes at `next_at`.
            (None, _) if self.tail.next_at.is_some() => {}
            (None, _) => {
                self.tail.tracker.reset();
                self.start_tail(once);
            }
        }
    }

    /// Starts a tail run; `once`: not restarted when it ends.
    fn start_tail(&mut self, once: bool) {
        self.tail.once = once;
        self.tail.next_at = None;
        let options = self.options(RunMode::Tail, false);
        let run_id = self.spawn_run(RunKind::Tail, RunMode::Tail, false, options, None);
        self.tail.run_id = Some(run_id);
        self.tail.state = TailState::Running;
    }

    fn stop_tail(&mut self, reason: &str) {
        self.tail.next_at = None;
        self.tail.restart_pending = false;
        if let Some(run_id) = self.tail.run_id.clone() {
            self.request_stop(&run_id, reason);
        }
        if self.tail.state != TailState::Disabled {
            self.tail.state = TailState::Stopped;
        }
    }

    /// `run.start.options`: `full` for a backfill; the configured Cursor, OpenCode and Gemini
    /// locations (`cursorDbs`, `opencodeDirs`, `geminiDirs`). Claude Code and Codex roots travel
    /// as the worker's environment (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`), which `aix` reads.
    fn options(&self, mode: RunMode, full: bool) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        if mode == RunMode::Backfill {
            o.insert("full".into(), full.into());
        }
        let sources = &self.deps.settings.sources;
        for (key, value) in [
            ("cursorDbs", &sources.cursor_db),
            ("opencodeDirs", &sources.opencode_dir),
            ("geminiDirs", &sources.gemini_dir),
        ] {
            if let Some(v) = value {
                o.insert(key.into(), serde_json::json!([v]));
            }
        }
        // Locations given as flags replace the provider's configured one.
        let given = &sources.given;
        for (key, dirs) in [
            ("claudeDirs", &given.claude_dirs),
            ("codexDirs", &given.codex_dirs),
            ("cursorDbs", &given.cursor_dbs),
            ("opencodeDirs", &given.opencode_dirs),
            ("geminiDirs", &given.gemini_dirs),
        ] {
            if !dirs.is_empty() {
                o.insert(key.into(), serde_json::json!(dirs));
            }
        }
        serde_json::Value::Object(o)
    }

    fn spawn_run(
        &mut self,
        kind: RunKind,
        mode: RunMode,
        full: bool,
        options: serde_json::Value,
        job_id: Option<String>,
    ) -> String {
        let run_id = uuid::Uuid::new_v4().to_string();
        let info = RunInfo {
            run_id: run_id.clone(),
            mode,
            source: SOURCE_AIX.to_owned(),
            persona_id: self.deps.settings.persona.clone(),
            job_id: job_id.clone(),
            // Completed by the run once its worker is spawned.
            audit: None,
        };
        let spec = RunSpec {
            info,
            full,
            options,
        };
        let (stop_tx, stop_rx) = watch::channel(None);
        let abort = self.abort_root.child_token();
        let span = tracing::info_span!("run", run_id = %run_id, mode = mode.as_str());
        let handle = self.tasks.spawn(
            run::run(
                self.deps.clone(),
                spec,
                self.updates_tx.clone(),
                stop_rx,
                abort,
            )
            .instrument(span),
        );
        self.task_runs.insert(handle.id(), run_id.clone());
        let started_at = now_ms();
        let status = RunStatus {
            run_id: run_id.clone(),
            mode: mode.as_str().to_owned(),
            job_id: job_id.clone(),
            pid: None,
            phase: RunPhase::Starting,
            health: HealthState::Unknown,
            connected: false,
            started_at,
            last_frame_at: None,
            last_health_at: None,
            last_commit_at: None,
            newest_event_at: None,
            lag_ms: None,
            counters: Default::default(),
            rejects: BTreeMap::new(),
        };
        self.runs.insert(
            run_id.clone(),
            ActiveRun {
                kind,
                status,
                stop: stop_tx,
            },
        );
        run_id
    }

    /// Publishes a run's lifecycle or a control-plane event; no subscriber is fine.
    fn publish(&self, event: ImportEvent) {
        let _ = self.bus.send(event);
    }

    /// A store write whose result only matters for logs; the actor does not wait for it (the
    /// store thread applies writes in the order they were queued).
    fn store_detached<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut rusqlite::Connection) -> Result<(), ControlError> + Send + 'static,
    {
        self.store.submit(what, f);
    }

    /// Asks a run to stop; its status says `stopping` from now on (never `running` and
    /// healthy while its worker drains).
    fn request_stop(&mut self, run_id: &str, reason: &str) {
        if let Some(run) = self.runs.get_mut(run_id) {
            run.status.phase = RunPhase::Stopping;
            run.stop.send_if_modified(|r| {
                if r.is_none() {
                    *r = Some(reason.to_owned());
                    true
                } else {
                    false
                }
            });
        }
    }
}

fn panicked() -> RunEnding {
    RunEnding {
        // The task is gone, not necessarily the cause: a new run may succeed.
        retryable: true,
        ..RunEnding::failed(Code::InternalPanic, "the run task panicked")
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long shutdown waits for aborted runs after the grace before giving up on them.
const ABORT_WAIT: Duration = Duration::from_secs(2);
