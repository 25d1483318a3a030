//! The `idle` scenario (P7): the CPU an idle tail costs, measured on the processes a user runs.
//!
//! 1. A corpus of N Claude Code session files (one turn each, over 20 project dirs), or a
//!    `nex-bench files` corpus.
//! 2. `nex import backfill --wait` in a temp `NEX_HOME` (production defaults, no config file),
//!    so the ledger holds every file's cursor.
//! 3. `nex daemon` in that home: it starts the tail, `aix worker --stdio` with the committed
//!    cursors, exactly as in production.
//! 4. Once `nex import status` says the tail runs, a warm-up, then until one second passes with
//!    (almost) no CPU used by the tree (at most 30 s; whether it settled is reported).
//! 5. The window: CPU time (`utime + stime`, plus reaped children's) of the daemon and every
//!    process it spawned, from `/proc`, over `--seconds`; nothing talks to the daemon meanwhile.
//!    Also on-CPU nanoseconds of their threads (schedstat) and resident sets.
//! 6. Status again (the tail still runs, the same worker, nothing imported), then SIGTERM.
//!
//! The budget is 0.2 s per 60 s (scaled to the window). Nothing the corpus' files hold changes
//! during the run; the tail's periodic re-scan (every 60 s by default) and the daemon's health
//! probes (every 60 s) fall in a 60 s window about once each, as they would for a user.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::files::{TurnWriter, projects_dir, session_id};
use super::home::{BenchHome, Daemon};
use super::procs::Binaries;
use super::proctree::{self, ProcCpu, RunNsTracker};
use super::rng::Rng;

/// P7: total CPU of nex + aix over 60 s of an idle tail.
pub const BUDGET_SECS_PER_MINUTE: f64 = 0.2;

/// One idle benchmark.
#[derive(Debug, Clone)]
pub struct IdleBench {
    /// Session files to generate (ignored with `corpus`).
    pub files: usize,
    /// Length of the measured window.
    pub seconds: f64,
    /// Time between the tail reporting `running` and the settle check.
    pub warmup: f64,
    /// A `nex-bench files` output dir (its `projects` dir is watched) instead of a generated one.
    pub corpus: Option<PathBuf>,
    pub seed: u64,
    /// Work directory (a temp dir when `None`).
    pub dir: Option<PathBuf>,
    pub bins: Binaries,
}

/// Why the scenario could not measure.
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("interrupted")]
    Interrupted,
    #[error("the tail did not reach `running` within {0} s (daemon log: {1})")]
    TailNotRunning(u64, PathBuf),
    #[error("nex daemon exited ({0}) during the run (daemon log: {1})")]
    DaemonExited(String, PathBuf),
    #[error("no session file under {0}")]
    EmptyCorpus(PathBuf),
}

/// One process of the tree over the window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleProcess {
    pub pid: u32,
    pub comm: String,
    /// `utime + stime + cutime + cstime` delta, seconds (`None`: not alive at both ends).
    pub cpu_secs: Option<f64>,
    /// Threads' on-CPU time (schedstat), seconds.
    pub on_cpu_secs: f64,
    /// Resident set at the end, and the highest seen during the window, MiB.
    pub rss_mib: f64,
    pub max_rss_mib: f64,
    /// Peak resident set over the process' life (`VmHWM`, including the start-up), MiB.
    pub peak_rss_mib: f64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleResult {
    /// Session files under the watched root (subagent files included).
    pub files: u64,
    pub corpus_bytes: u64,
    pub backfill_secs: f64,
    /// Sessions the first backfill imported.
    pub backfill_imported: u64,
    /// Daemon spawn to the tail `running`.
    pub startup_secs: f64,
    /// Tail `running` to the window start (warm-up + settle).
    pub warmup_secs: f64,
    /// A quiet second was seen before the window (else the window started at the 30 s cap).
    pub settled: bool,
    /// CPU of the tree from the daemon's spawn to the window start.
    pub startup_cpu_secs: f64,
    pub window_secs: f64,
    /// CPU of the whole tree over the window (clock ticks: `tick_secs` resolution).
    pub cpu_secs: f64,
    /// The same from the threads' schedstat (ns resolution; threads that live between two
    /// one-second samples only are missed).
    pub on_cpu_secs: f64,
    pub tick_secs: f64,
    pub processes: Vec<IdleProcess>,
    /// Processes that appeared in the tree during the window (a worker restart, a probe).
    pub spawned_during_window: Vec<String>,
    /// 0.2 s scaled to the window.
    pub budget_secs: f64,
    /// `cpu_secs / budget_secs`.
    pub budget_ratio: f64,
    pub within_budget: bool,
    /// The tail's state and restarts after the window, the worker's pid before and after.
    pub tail_state: String,
    pub tail_restarts: u64,
    pub worker_pid_before: Option<u64>,
    pub worker_pid_after: Option<u64>,
    /// Sessions the tail imported or upserted since it started (every cursor was committed
    /// and nothing changed: 0).
    pub tail_imported: u64,
    /// The daemon exited by itself within 15 s of SIGTERM.
    pub daemon_stopped_cleanly: bool,
}

/// Sets the returned flag on SIGINT or SIGTERM (so a benchmark being stopped unwinds and its
/// drop guards stop the processes it started). `None` if the handler cannot be installed.
pub fn interrupt_flag() -> Option<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready_tx.send(false);
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = ready_tx.send(false);
                    return;
                };
                let _ = ready_tx.send(true);
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                f.store(true, Ordering::SeqCst);
            });
        })
        .ok()?;
    ready_rx.recv().ok()?.then_some(flag)
}

/// Writes `files` one-turn session files under `projects` (20 project dirs); their bytes.
///
/// # Errors
/// Any I/O error.
pub fn write_idle_corpus(projects: &Path, files: usize, seed: u64) -> std::io::Result<u64> {
    let mut bytes = 0;
    for i in 0..files {
        let dir = projects.join(format!("-work-idle-{:02}", i % 20));
        std::fs::create_dir_all(&dir)?;
        let sid = session_id(seed, i);
        let mut w = TurnWriter::new(
            &sid,
            None,
            Rng::new(seed ^ (i as u64).wrapping_mul(0x9e37_79b9)),
            1_767_225_600_000 + i as i64 * 60_000,
        );
        let t = w.turn(None);
        let mut f = std::fs::File::create(dir.join(format!("{sid}.jsonl")))?;
        f.write_all(t.text.as_bytes())?;
        bytes += t.stats.bytes;
    }
    Ok(bytes)
}

/// `.jsonl` files and bytes under `dir`, recursively.
fn session_files(dir: &Path) -> (u64, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let (mut n, mut bytes) = (0, 0);
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                let (a, b) = session_files(&e.path());
                n += a;
                bytes += b;
            }
            Ok(_) if e.path().extension().is_some_and(|x| x == "jsonl") => {
                n += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
            _ => {}
        }
    }
    (n, bytes)
}

struct Ctx<'a> {
    interrupted: &'a AtomicBool,
    log: PathBuf,
}

impl Ctx<'_> {
    /// Sleeps `d` in small steps; fails if interrupted or the daemon exited.
    fn sleep(&self, daemon: &mut Daemon, d: Duration) -> Result<(), IdleError> {
        let until = Instant::now() + d;
        loop {
            self.check(daemon)?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn check(&self, daemon: &mut Daemon) -> Result<(), IdleError> {
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(IdleError::Interrupted);
        }
        if let Some(st) = daemon.exited() {
            return Err(IdleError::DaemonExited(st.to_string(), self.log.clone()));
        }
        Ok(())
    }
}

fn tail_counters(status: &Value) -> u64 {
    let c = &status["daemon"]["tail"]["run"]["counters"];
    c["imported"].as_u64().unwrap_or(0) + c["upserted"].as_u64().unwrap_or(0)
}

fn total_ticks(tree: &[ProcCpu]) -> u64 {
    tree.iter().map(ProcCpu::total_ticks).sum()
}

/// Runs the scenario.
///
/// # Errors
/// I/O failures, a backfill that does not complete, a tail that does not start, a daemon that
/// exits, an interrupt. Exceeding the budget is a result, not an error.
pub fn run(b: &IdleBench, interrupted: &AtomicBool) -> Result<IdleResult, IdleError> {
    let tmp = tempfile::tempdir()?;
    let dir = b.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let corpus = match &b.corpus {
        Some(c) => c.clone(),
        None => {
            let c = dir.join("idle-corpus");
            let projects = projects_dir(&c);
            if projects.exists() {
                std::fs::remove_dir_all(&projects)?;
            }
            write_idle_corpus(&projects, b.files, b.seed)?;
            c
        }
    };
    let (files, corpus_bytes) = session_files(&projects_dir(&corpus));
    if files == 0 {
        return Err(IdleError::EmptyCorpus(projects_dir(&corpus)));
    }
    let home_dir = dir.join("idle-home");
    if home_dir.exists() {
        std::fs::remove_dir_all(&home_dir)?;
    }
    std::fs::create_dir_all(&home_dir)?;
    let home = BenchHome::create(&home_dir, &corpus, &b.bins)?;
    let (backfill_secs, job) = home.backfill_wait()?;
    let backfill_imported = job["stats"]["imported"].as_u64().unwrap_or(0)
        + job["stats"]["upserted"].as_u64().unwrap_or(0);

    let ctx = Ctx {
        interrupted,
        log: dir.join("idle-daemon.log"),
    };
    let spawned_at = Instant::now();
    let mut daemon = Daemon::spawn(&home, &ctx.log)?;
    let running_timeout = Duration::from_secs(120);
    let before = loop {
        ctx.check(&mut daemon)?;
        if let Some(st) = home.status() {
            let tail = &st["daemon"]["tail"];
            if tail["state"] == "running"
                && tail["run"]["phase"] == "running"
                && tail["run"]["pid"].is_u64()
            {
                break st;
            }
        }
        if spawned_at.elapsed() > running_timeout {
            return Err(IdleError::TailNotRunning(
                running_timeout.as_secs(),
                ctx.log.clone(),
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let startup_secs = spawned_at.elapsed().as_secs_f64();
    let running_at = Instant::now();
    ctx.sleep(&mut daemon, Duration::from_secs_f64(b.warmup.max(0.0)))?;
    // Settle: one second in which the tree is (almost) not on a CPU.
    let mut settled = false;
    let settle_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle_until {
        let tree = proctree::tree(daemon.pid());
        let pids: Vec<u32> = tree.iter().map(|p| p.pid).collect();
        let mut t = RunNsTracker::default();
        t.sample(pids.iter().copied());
        let t0 = total_ticks(&tree);
        ctx.sleep(&mut daemon, Duration::from_secs(1))?;
        t.sample(pids.iter().copied());
        let ns: u64 = t.per_pid().values().sum();
        let ticks = total_ticks(&proctree::tree(daemon.pid())).saturating_sub(t0);
        if ns < 5_000_000 && ticks <= 1 {
            settled = true;
            break;
        }
    }
    let warmup_secs = running_at.elapsed().as_secs_f64();

    // The window.
    let hz = proctree::clock_ticks_per_sec() as f64;
    let tree0 = proctree::tree(daemon.pid());
    let startup_cpu_secs = total_ticks(&tree0) as f64 / hz;
    let start_pids: BTreeSet<u32> = tree0.iter().map(|p| p.pid).collect();
    let mut tracker = RunNsTracker::default();
    tracker.sample(start_pids.iter().copied());
    let mut max_rss: BTreeMap<u32, u64> = BTreeMap::new();
    let mut spawned: BTreeMap<u32, String> = BTreeMap::new();
    let started = Instant::now();
    let window = Duration::from_secs_f64(b.seconds.max(0.1));
    let tree1 = loop {
        let left = window.saturating_sub(started.elapsed());
        ctx.sleep(&mut daemon, left.min(Duration::from_secs(1)))?;
        let t = proctree::tree(daemon.pid());
        tracker.sample(t.iter().map(|p| p.pid));
        for p in &t {
            if let Some(kib) = proctree::vm_kib(p.pid, "VmRSS") {
                let e = max_rss.entry(p.pid).or_insert(0);
                *e = (*e).max(kib);
            }
            if !start_pids.contains(&p.pid) {
                spawned.insert(p.pid, p.comm.clone());
            }
        }
        if started.elapsed() >= window {
            break t;
        }
    };
    let window_secs = started.elapsed().as_secs_f64();
    let cpu_ticks = total_ticks(&tree1).saturating_sub(total_ticks(&tree0));
    let run_ns = tracker.per_pid();
    let processes: Vec<IdleProcess> = tree1
        .iter()
        .map(|p| {
            let cpu_secs = tree0
                .iter()
                .find(|q| q.pid == p.pid)
                .map(|q| p.total_ticks().saturating_sub(q.total_ticks()) as f64 / hz);
            let mib = |k: Option<u64>| k.unwrap_or(0) as f64 / 1024.0;
            IdleProcess {
                pid: p.pid,
                comm: p.comm.clone(),
                cpu_secs,
                on_cpu_secs: run_ns.get(&p.pid).copied().unwrap_or(0) as f64 / 1e9,
                rss_mib: mib(proctree::vm_kib(p.pid, "VmRSS")),
                max_rss_mib: mib(max_rss.get(&p.pid).copied()),
                peak_rss_mib: mib(proctree::vm_kib(p.pid, "VmHWM")),
            }
        })
        .collect();

    let after = home.status().unwrap_or(Value::Null);
    let tail = &after["daemon"]["tail"];
    let clean = daemon.stop(Duration::from_secs(15));
    let budget_secs = BUDGET_SECS_PER_MINUTE * window_secs / 60.0;
    let cpu_secs = cpu_ticks as f64 / hz;
    Ok(IdleResult {
        files,
        corpus_bytes,
        backfill_secs,
        backfill_imported,
        startup_secs,
        warmup_secs,
        settled,
        startup_cpu_secs,
        window_secs,
        cpu_secs,
        on_cpu_secs: run_ns.values().sum::<u64>() as f64 / 1e9,
        tick_secs: 1.0 / hz,
        processes,
        spawned_during_window: spawned
            .iter()
            .map(|(pid, comm)| format!("{comm}[{pid}]"))
            .collect(),
        budget_secs,
        budget_ratio: cpu_secs / budget_secs,
        within_budget: cpu_secs <= budget_secs,
        tail_state: tail["state"].as_str().unwrap_or("unknown").to_owned(),
        tail_restarts: tail["restarts"].as_u64().unwrap_or(0),
        worker_pid_before: before["daemon"]["tail"]["run"]["pid"].as_u64(),
        worker_pid_after: tail["run"]["pid"].as_u64(),
        tail_imported: tail_counters(&after),
        daemon_stopped_cleanly: clean.is_some_and(|s| s.success()),
    })
}
