//! Shared harness of the control-plane tests: a temp `NEX_HOME`, the fake worker script
//! (`tests/fixtures/control/fake_worker.sh`), a frame-counting pipeline standing in for the
//! real one, and helpers to wait on bus events and status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use nex::control::ImportEvent;
use nex::control::config::{ControlSettings, Paths, Timings};
use nex::control::health::{RunStatus, StatusReport, TailStatus};
use nex::control::jobs::{Enqueued, JobStatus};
use nex::control::port::{Backlog, CursorSource, NoCursors, WorkerOutput};
use nex::control::{
    Bus, ControlHandle, HostMode, NexusStore, Request, RunDeps, RunInfo, RunPipeline, RunSignal,
    Supervisor, WorkerCommand,
};
use nex::pipeline::{RejectCode, RunCounters, RunReport, StreamEnd};
use nex::protocol::{Code, WorkerFrame, decode_worker_frame};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

/// Counts frames instead of importing them: each `import.batch` is one committed request with
/// one imported item. Signals and reports the run exactly as the port's contract says (the
/// run records it). `stall` makes every batch take that long to "commit" (a busy ledger).
#[derive(Default)]
pub struct CountingPipeline {
    pub stall: Option<Duration>,
}

impl RunPipeline for CountingPipeline {
    fn run(
        &self,
        info: RunInfo,
        input: WorkerOutput,
        signals: mpsc::Sender<RunSignal>,
        backlog: Arc<Backlog>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, RunReport> {
        let stall = self.stall;
        Box::pin(async move {
            let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(1 << 20));
            let mut counters = RunCounters::default();
            let end = loop {
                let line = tokio::select! {
                    _ = cancel.cancelled() => break StreamEnd::Cancelled,
                    line = lines.next() => line,
                };
                let line = match line {
                    None => break StreamEnd::InputEnded,
                    Some(Err(_)) => {
                        break StreamEnd::Failed {
                            code: Code::WorkerExited,
                            message: "io".into(),
                        };
                    }
                    Some(Ok(l)) => l,
                };
                backlog.read();
                let _ = signals.send(RunSignal::FrameSeen).await;
                let decoded = decode_worker_frame(&line);
                if let (Some(d), Ok(f)) = (stall, &decoded)
                    && matches!(f.body, WorkerFrame::ImportBatch(_))
                {
                    // A ledger that holds its lock: nothing is read meanwhile (until the
                    // run gives up on the input).
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                backlog.done();
                let frame = match decoded {
                    Ok(f) if f.run_id == info.run_id => f,
                    Ok(f) => {
                        let code = "frame_run_id_mismatch".to_owned();
                        *counters.rejected.entry(code.clone()).or_insert(0) += 1;
                        let _ = signals.send(RunSignal::Rejected { code, seq: f.seq }).await;
                        continue;
                    }
                    Err(e) => {
                        let code = e.code.as_str().to_owned();
                        *counters.rejected.entry(code.clone()).or_insert(0) += 1;
                        let _ = signals.send(RunSignal::Rejected { code, seq: e.seq }).await;
                        continue;
                    }
                };
                match frame.body {
                    WorkerFrame::ImportBatch(_) | WorkerFrame::ImportChunk(_) => {
                        counters.requests += 1;
                        counters.imported += 1;
                        let _ = signals
                            .send(RunSignal::Committed {
                                counters: (&counters).into(),
                                newest_event_at: None,
                            })
                            .await;
                    }
                    WorkerFrame::RunProgress(p) => {
                        counters.total = p.total.or(counters.total);
                        counters.emitted = p.emitted.or(counters.emitted);
                        let _ = signals.send(RunSignal::Progress(p)).await;
                    }
                    WorkerFrame::HealthStatus(h) => {
                        let _ = signals.send(RunSignal::Health(h)).await;
                    }
                    WorkerFrame::RunComplete(p) => {
                        counters.total = p.total.or(counters.total);
                        counters.emitted = p.emitted.or(counters.emitted);
                        break StreamEnd::Complete;
                    }
                    WorkerFrame::RunError(e) => {
                        break StreamEnd::WorkerError {
                            code: RejectCode::service(e.code),
                            message: e.message,
                            retryable: e.retryable,
                        };
                    }
                }
            };
            RunReport {
                run_id: Some(info.run_id),
                end,
                counters,
                duration_ms: 0,
                stages: Vec::new(),
                telemetry: None,
            }
        })
    }
}

pub fn fake_worker(args: &[&str]) -> WorkerCommand {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/control/fake_worker.sh")
        .display()
        .to_string();
    let mut argv = vec!["sh".to_owned(), script];
    argv.extend(args.iter().map(|a| a.to_string()));
    WorkerCommand::from_argv(argv).unwrap()
}

/// Timings shrunk for tests: probes every 300 ms, answers within 500 ms.
pub fn fast_timings() -> Timings {
    Timings {
        probe_healthy: Duration::from_millis(300),
        probe_degraded: Duration::from_millis(300),
        probe_disconnected: Duration::from_millis(300),
        health_timeout: Duration::from_millis(500),
        start_timeout: Duration::from_millis(800),
        backlog_wait: Duration::from_secs(30),
        stop_grace: Duration::from_millis(500),
        kill_after: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(3),
        stale_after: Duration::from_secs(300),
        stats_every: Duration::from_millis(50),
    }
}

pub struct Home {
    /// Keeps the temp dir alive for the test.
    pub _dir: tempfile::TempDir,
    pub paths: Paths,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path(), None);
        std::fs::create_dir_all(&paths.run_dir).unwrap();
        Home { _dir: dir, paths }
    }

    pub fn settings(&self, worker: WorkerCommand) -> ControlSettings {
        let mut s = ControlSettings::new(self.paths.clone(), worker);
        s.timings = fast_timings();
        s.start_tail = false;
        s.restart.base = Duration::from_millis(50);
        s.job_retry.base = Duration::from_millis(50);
        s
    }

    /// A connection to this home's `nexus.db`, migrated.
    pub fn conn(&self) -> rusqlite::Connection {
        nex::ledger::open_nexus(&self.paths.nexus).unwrap()
    }
}

pub struct Running {
    pub handle: ControlHandle,
    pub bus: Bus,
    pub events: broadcast::Receiver<ImportEvent>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(settings: ControlSettings, home: &Home, mode: HostMode) -> Running {
        Running::start_with(settings, home, mode, CountingPipeline::default()).await
    }

    pub async fn start_with(
        settings: ControlSettings,
        home: &Home,
        mode: HostMode,
        pipeline: CountingPipeline,
    ) -> Running {
        Running::start_full(settings, home, mode, pipeline, Arc::new(NoCursors)).await
    }

    pub async fn start_full(
        settings: ControlSettings,
        home: &Home,
        mode: HostMode,
        pipeline: CountingPipeline,
        cursors: Arc<dyn CursorSource>,
    ) -> Running {
        let store = NexusStore::spawn(home.conn()).unwrap();
        let bus = nex::pipeline::events::bus(1024);
        let events = bus.subscribe();
        let bus_handle = bus.clone();
        let deps = RunDeps {
            settings: Arc::new(settings),
            pipeline: Arc::new(pipeline),
            cursors,
        };
        let shutdown = CancellationToken::new();
        let (handle, task) = Supervisor::start(deps, store, bus, mode, shutdown.clone())
            .await
            .unwrap();
        Running {
            handle,
            bus: bus_handle,
            events,
            shutdown,
            task,
        }
    }

    /// A daemon-mode supervisor whose worker is the fake worker with `args`.
    pub async fn daemon(home: &Home, args: &[&str]) -> Running {
        Running::start(home.settings(fake_worker(args)), home, HostMode::Daemon).await
    }

    /// Enqueues an incremental backfill job.
    pub async fn backfill(&self) -> Enqueued {
        self.handle
            .call(Request::Backfill { full: false })
            .await
            .unwrap()
    }

    /// Starts the continuous tail.
    pub async fn tail(&self) -> TailStatus {
        self.handle
            .call(Request::Tail { once: false })
            .await
            .unwrap()
    }

    /// Waits for the next `RunFailed` event, returning its error code.
    pub async fn run_failed_code(&mut self, within: Duration) -> String {
        let failed = self
            .event(within, |e| matches!(e, ImportEvent::RunFailed { .. }))
            .await;
        let ImportEvent::RunFailed { error_code, .. } = failed else {
            unreachable!()
        };
        error_code
    }

    /// Waits for job `id` to change to `to`.
    pub async fn job_reaches(&mut self, within: Duration, id: &str, to: JobStatus) {
        self.event(within, |e| job_changed(e, id, to)).await;
    }

    /// Waits for any job to change to `Completed`, returning its id.
    pub async fn completed_job_id(&mut self, within: Duration) -> String {
        let done = self
            .event(within, |e| {
                matches!(
                    e,
                    ImportEvent::JobStateChanged {
                        to: JobStatus::Completed,
                        ..
                    }
                )
            })
            .await;
        let ImportEvent::JobStateChanged { job_id, .. } = done else {
            unreachable!()
        };
        job_id
    }

    /// Polls status until the first job's run satisfies `pred`.
    pub async fn job_run_until<F: Fn(&RunStatus) -> bool>(
        &self,
        within: Duration,
        pred: F,
    ) -> StatusReport {
        self.status_until(within, |s| {
            s.jobs
                .first()
                .and_then(|j| j.run.as_ref())
                .is_some_and(&pred)
        })
        .await
    }

    pub async fn status(&self) -> StatusReport {
        self.handle.call(Request::Status).await.unwrap()
    }

    /// Waits (up to `within`) for an event matching `pred`, returning it.
    pub async fn event<F: Fn(&ImportEvent) -> bool>(
        &mut self,
        within: Duration,
        pred: F,
    ) -> ImportEvent {
        tokio::time::timeout(within, async {
            loop {
                match self.events.recv().await {
                    Ok(e) if pred(&e) => return e,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => panic!("bus closed"),
                }
            }
        })
        .await
        .expect("event not seen in time")
    }

    /// Polls status until `pred` holds.
    pub async fn status_until<F: Fn(&StatusReport) -> bool>(
        &self,
        within: Duration,
        pred: F,
    ) -> StatusReport {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let st = self.status().await;
            if pred(&st) {
                return st;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status condition not reached: {st:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("supervisor stops in time")
            .unwrap();
    }
}

/// Whether `e` is job `id` changing to `to`.
pub fn job_changed(e: &ImportEvent, id: &str, to: JobStatus) -> bool {
    matches!(e, ImportEvent::JobStateChanged { job_id, to: t, .. } if job_id == id && *t == to)
}

/// How many worker pid files `run_dir` holds.
pub fn pid_files(run_dir: &std::path::Path) -> usize {
    std::fs::read_dir(run_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pid")
        })
        .count()
}

/// Whether process `pid` still exists (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

pub fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A temp `NEX_HOME` for the built `nex` binary, with fast timings in its config.toml and the
/// Claude Code / Codex locations (`CLAUDE_CONFIG_DIR`, `CODEX_HOME`) every command gets.
pub struct NexHome {
    dir: tempfile::TempDir,
    pub claude: PathBuf,
    pub codex: PathBuf,
}

/// The `[import]` timings of [`NexHome::new`]; [`NexHome::with_config`] replaces some.
const NEX_HOME_TIMINGS: [(&str, u64); 7] = [
    ("probe_healthy_ms", 300),
    ("probe_degraded_ms", 300),
    ("probe_disconnected_ms", 300),
    ("health_timeout_ms", 1000),
    ("start_timeout_ms", 3000),
    ("stop_grace_ms", 1000),
    ("backoff_base_ms", 50),
];

impl NexHome {
    /// The control fixtures (`tests/fixtures/control/{claude,codex}`) as the sources.
    pub fn new(tail: bool) -> NexHome {
        NexHome::with_config(tail, &[])
    }

    /// Like [`NexHome::new`], with `overrides` replacing (or adding) `[import]` integer keys.
    pub fn with_config(tail: bool, overrides: &[(&str, u64)]) -> NexHome {
        let dir = tempfile::tempdir().unwrap();
        // Private, as a NEX_HOME should be (nex warns about one that others can read).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut keys: BTreeMap<&str, u64> = NEX_HOME_TIMINGS.into_iter().collect();
        keys.extend(overrides.iter().copied());
        let mut toml = format!("[import]\ntail = {tail}\n");
        for (k, v) in keys {
            toml.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control");
        NexHome {
            dir,
            claude: fixtures.join("claude"),
            codex: fixtures.join("codex"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn ledger(&self) -> PathBuf {
        self.path().join("agents.db")
    }

    /// `nex` in this home with `worker` as `NEX_WORKER_CMD`, logging warnings only.
    pub fn nex(&self, worker: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nex"));
        c.env("NEX_HOME", self.path())
            .env_remove("NEX_LEDGER")
            .env("NEX_WORKER_CMD", worker)
            .env("CLAUDE_CONFIG_DIR", &self.claude)
            .env("CODEX_HOME", &self.codex)
            // The other sources default under HOME and XDG dirs: none of the user's.
            .env("HOME", self.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("OPENCODE_DATA_DIR")
            .env_remove("GEMINI_DIR")
            .env("RUST_LOG", "warn");
        c
    }

    /// `nex daemon`, returned once its socket answers `status`.
    pub fn daemon(&self, worker: &str) -> Child {
        // Its log goes to `daemon.log` in the home: a failing wait prints its tail.
        let log = std::fs::File::create(self.path().join("daemon.log")).unwrap();
        let child = self
            .nex(worker)
            .arg("daemon")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let socket = self.path().join("run/nex.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() || self.status().is_none_or(|s| s["daemon"].is_null()) {
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// The last `lines` lines of the daemon's log (empty when no daemon ran here).
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn run(&self, worker: &str, args: &[&str]) -> Output {
        self.nex(worker).args(args).output().unwrap()
    }

    /// The JSON a successful `nex <args>` printed.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run("unused", args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self) -> Option<Value> {
        let out = self.run("unused", &["import", "status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Polls `nex import status --json` until `pred` holds.
    pub fn status_until(&self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.status()
                && pred(&st)
            {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "status condition not reached: {:?}\ndaemon log tail:\n{}",
                self.status(),
                self.daemon_log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Polls `nex import jobs --json` until `pred` holds. Fails when the jobs stop changing
    /// for `within` (a stall), not after a fixed time: a job that keeps committing on a loaded
    /// machine is waited for, up to `20 * within` in all. A running job's commits show in
    /// `nex import status` (its run's counters), not in the job list until the run ends: both
    /// are watched.
    pub fn jobs_until(&self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last_change = start;
        let mut last = Value::Null;
        loop {
            let jobs = self.json(&["import", "jobs", "--json"]);
            if pred(&jobs) {
                return jobs;
            }
            let running = self
                .status()
                .map_or(Value::Null, |s| s["daemon"]["jobs"].clone());
            let seen = serde_json::json!([jobs, running]);
            let now = Instant::now();
            if seen != last {
                last = seen;
                last_change = now;
            }
            assert!(
                now.duration_since(last_change) < within && now.duration_since(start) < 20 * within,
                "jobs condition not reached ({} ms since the last change): {jobs}\ndaemon log tail:\n{}",
                now.duration_since(last_change).as_millis(),
                self.daemon_log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}
